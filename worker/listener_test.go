package worker

import (
	"errors"
	"net"
	"os"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mgw-gateway/mgw/ipc"
	"github.com/mgw-gateway/mgw/worker/balance"
)

// listen returns a listener on 127.0.0.1 and a function that opens n
// connections to it.
func listen(t *testing.T) (net.Listener, func(n int)) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return ln, func(n int) {
		for range n {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Close() })
		}
	}
}

// TestListenerYieldsItsShare: a worker holding more than its share waits
// for the others in steps, stops waiting as soon as it no longer does,
// waits no longer than balanceWait, then not at all for balanceRest, and
// counts its connections until they close.
func TestListenerYieldsItsShare(t *testing.T) {
	ln, dial := listen(t)
	dial(4)
	table := balance.New(2)
	table.Join(1) // the other worker, with no connections
	l := newLimitListener(ln, 0)
	l.balanceWith(table, 0)
	var pauses []time.Duration
	l.pause = func(d time.Duration) bool {
		pauses = append(pauses, d)
		return true
	}
	clock := time.Unix(1000, 0)
	l.now = func() time.Time { return clock }

	var conns []net.Conn
	accept := func() {
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	accept() // 0 against 0: at once
	accept() // 1 against 0
	accept() // 2 against 0: within the slack
	if len(pauses) != 0 || table.Count(0) != 3 {
		t.Fatalf("first three: paused %v, count %d", pauses, table.Count(0))
	}

	// 3 against 0 is over: it waits, and the other worker taking two
	// connections during the third step ends the wait.
	l.pause = func(d time.Duration) bool {
		pauses = append(pauses, d)
		if len(pauses) == 3 {
			table.Add(1, 2)
		}
		return true
	}
	accept()
	if len(pauses) != 3 {
		t.Fatalf("waited %d steps, want 3 (until the other worker caught up)", len(pauses))
	}

	// The other worker not taking any: it waits balanceWait in all, then accepts.
	table.Add(1, -2)
	pauses = nil
	l.pause = func(d time.Duration) bool { pauses = append(pauses, d); return true }
	dial(1)
	accept()
	var waited time.Duration
	for _, d := range pauses {
		waited += d
	}
	if waited != balanceWait {
		t.Fatalf("waited %v in all, want %v", waited, balanceWait)
	}

	// The other let balanceGiveUp whole waits in a row pass: no waiting
	// for balanceRest.
	dial(balanceGiveUp + 1)
	for range balanceGiveUp - 1 {
		accept()
	}
	pauses = nil
	clock = clock.Add(balanceRest - time.Millisecond)
	accept()
	if len(pauses) != 0 {
		t.Fatalf("waited %d steps within balanceRest of giving up", len(pauses))
	}
	clock = clock.Add(time.Millisecond)
	accept()
	if len(pauses) == 0 {
		t.Fatal("did not wait again after balanceRest")
	}

	for _, c := range conns {
		_ = c.Close()
		_ = c.Close() // a second Close does not count twice
	}
	if got := table.Count(0); got != 0 {
		t.Fatalf("after closing every connection the count is %d", got)
	}
}

// TestListenerAloneNeverWaits: with no other worker present, a worker
// never waits, whatever it holds.
func TestListenerAloneNeverWaits(t *testing.T) {
	ln, dial := listen(t)
	dial(5)
	table := balance.New(2)
	l := newLimitListener(ln, 0)
	l.balanceWith(table, 0)
	l.pause = func(time.Duration) bool { t.Fatal("paused with no other worker present"); return false }
	for range 5 {
		if _, err := l.Accept(); err != nil {
			t.Fatal(err)
		}
	}
	if table.Count(0) != 5 {
		t.Fatalf("count %d, want 5", table.Count(0))
	}
}

// TestListenerCloseEndsTheWait: closing the listener ends a wait at once,
// however long it was to be.
func TestListenerCloseEndsTheWait(t *testing.T) {
	ln, _ := listen(t)
	l := newLimitListener(ln, 0)
	done := make(chan bool)
	go func() { done <- l.sleep(time.Hour) }()
	_ = l.Close()
	select {
	case slept := <-done:
		if slept {
			t.Fatal("the wait reported it had slept its whole time")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the wait went on after the listener closed")
	}
}

// TestBalanceNeedsTheMastersWord: a worker maps its balance descriptor
// only when MGW_BALANCE_FD names it, and otherwise leaves it alone: in a
// worker an older master started, it may be anything.
func TestBalanceNeedsTheMastersWord(t *testing.T) {
	table, err := balance.Create(2)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = table.Close() }()
	fd, err := syscall.Dup(int(table.File().Fd()))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(ipc.BalanceEnv, "")
	if tb := inheritedBalance(zerolog.Nop(), fd); tb != nil {
		t.Fatal("mapped a descriptor without the master's word")
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		t.Fatalf("the descriptor was closed: %v", err)
	}
	t.Setenv(ipc.BalanceEnv, strconv.Itoa(fd))
	tb := inheritedBalance(zerolog.Nop(), fd)
	if tb == nil || tb.Len() != 2 {
		t.Fatal("did not map the table the master named")
	}
	_ = tb.Close()
}

// TestListenerWaitsOnlyWithABacklog: a worker over its share whose
// Accepts wait for each connection (no backlog) has nothing to leave the
// others, and does not wait.
func TestListenerWaitsOnlyWithABacklog(t *testing.T) {
	ln, dial := listen(t)
	dial(6)
	table := balance.New(2)
	table.Join(1)
	l := newLimitListener(ln, 0)
	l.balanceWith(table, 0)
	clock := time.Unix(1000, 0)
	l.now = func() time.Time { clock = clock.Add(5 * time.Millisecond); return clock } // every Accept seems to wait
	l.pause = func(time.Duration) bool { t.Fatal("waited with no backlog"); return false }
	for range 6 {
		if _, err := l.Accept(); err != nil {
			t.Fatal(err)
		}
	}
	if !table.Over(0) {
		t.Fatal("the test never put the worker over its share")
	}
}

// emfileListener fails its first n accepts with EMFILE, as accept4 does
// when the process is out of descriptors, then accepts from the real one.
type emfileListener struct {
	net.Listener
	n int
}

func (l *emfileListener) Accept() (net.Conn, error) {
	if l.n > 0 {
		l.n--
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestListenerWaitsOutFDExhaustion: EMFILE is no end of serving; the
// listener waits 5 ms, doubling up to 1 s, and then accepts, and a close
// ends the wait.
func TestListenerWaitsOutFDExhaustion(t *testing.T) {
	ln, dial := listen(t)
	dial(1)
	l := newLimitListener(&emfileListener{Listener: ln, n: 10}, 2)
	var pauses []time.Duration
	l.pause = func(d time.Duration) bool {
		pauses = append(pauses, d)
		return true
	}
	heard := 0
	l.onFDExhausted = func(error) { heard++ }
	c, err := l.Accept()
	if err != nil {
		t.Fatalf("Accept: %v", err)
	}
	defer c.Close()
	want := []time.Duration{5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000}
	for i := range want {
		want[i] *= time.Millisecond
	}
	if !slices.Equal(pauses, want) || heard != 10 || l.fdFailures.Load() != 10 {
		t.Fatalf("pauses %v, heard %d, counted %d; want %v, 10, 10", pauses, heard, l.fdFailures.Load(), want)
	}

	// A close during the wait ends it; the slot is given back.
	l2 := newLimitListener(&emfileListener{Listener: ln, n: 1}, 1)
	l2.pause = func(time.Duration) bool { return false }
	if _, err := l2.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after close: %v", err)
	}
	if len(l2.sem) != 0 {
		t.Fatal("the connection slot was not given back")
	}
}
