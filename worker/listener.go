package worker

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mgw-gateway/mgw/worker/balance"
	"github.com/mgw-gateway/mgw/worker/h1"
)

// limitListener stops accepting while max connections are open, leaving
// new connections in the shared backlog for the other workers (zero max
// means no limit). With a balance table it also leaves them a backlog
// (connections that arrived faster than one worker takes them) while
// this worker holds more than its share.
type limitListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once

	table *balance.Table
	id    int
	// pause sleeps for d, or returns false at once when the listener
	// closes; now is the clock. Tests replace both.
	pause func(d time.Duration) bool
	now   func() time.Time
	// backlog: the last Accept returned at once, so more connections
	// may be waiting. Only then is there something to leave the others.
	backlog bool
	// After balanceGiveUp whole waits in a row, this worker accepts
	// without waiting until trustAfter.
	wholeWaits int
	trustAfter time.Time
	// fdFailures counts the accepts that failed for want of a file
	// descriptor; onFDExhausted, when set, hears of each.
	fdFailures    atomic.Uint64
	onFDExhausted func(err error)
}

// An accept that fails for want of a file descriptor (EMFILE, ENFILE)
// is retried after fdWaitFirst, doubling up to fdWaitMax, as net/http's
// Serve does.
const (
	fdWaitFirst = 5 * time.Millisecond
	fdWaitMax   = time.Second
)

// fdExhausted reports whether err is an accept's EMFILE or ENFILE.
func fdExhausted(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// A worker over its share waits balanceStep at a time, and at most
// balanceWait, for the others to take the backlog; then it accepts
// anyway, so a worker slow to run delays a connection by no more than
// that. When the others let balanceGiveUp whole waits in a row pass (a
// worker that is stuck, not just slow), it stops waiting for
// balanceRest, so that one stuck worker cannot hold the others to one
// new connection per balanceWait.
const (
	balanceStep   = time.Millisecond
	balanceWait   = 10 * time.Millisecond
	balanceGiveUp = 3
	balanceRest   = time.Second
	// acceptAtOnce is how soon an Accept returns when a connection was
	// already waiting.
	acceptAtOnce = time.Millisecond
)

func newLimitListener(ln net.Listener, maxConns int) *limitListener {
	l := &limitListener{Listener: ln, done: make(chan struct{})}
	if maxConns > 0 {
		l.sem = make(chan struct{}, maxConns)
	}
	l.pause, l.now = l.sleep, time.Now
	return l
}

// balanceWith counts this worker's connections as worker id in t, from
// now on, and balances against the others there.
func (l *limitListener) balanceWith(t *balance.Table, id int) {
	if t == nil {
		return
	}
	l.table, l.id = t, id
	t.Join(id)
}

func (l *limitListener) Accept() (net.Conn, error) {
	if l.sem != nil {
		select {
		case l.sem <- struct{}{}:
		case <-l.done:
			return nil, net.ErrClosed
		}
	}
	if l.backlog {
		l.yield()
	}
	var start time.Time
	if l.table != nil {
		start = l.now()
	}
	c, err := l.Listener.Accept()
	for delay := fdWaitFirst; err != nil && fdExhausted(err); delay = min(2*delay, fdWaitMax) {
		// Out of descriptors: the connection stays in the backlog. Wait
		// for some to close, as net/http does, and keep serving the
		// connections that are open.
		l.fdFailures.Add(1)
		if l.onFDExhausted != nil {
			l.onFDExhausted(err)
		}
		if !l.pause(delay) {
			err = net.ErrClosed
			break
		}
		if l.table != nil {
			start = l.now()
		}
		c, err = l.Listener.Accept()
	}
	if l.table != nil {
		l.backlog = l.now().Sub(start) < acceptAtOnce
	}
	if err != nil {
		if l.sem != nil {
			<-l.sem
		}
		return nil, err
	}
	rc := h1.RawConn(c)
	if l.sem == nil && l.table == nil {
		return rc, nil
	}
	if l.table != nil {
		l.table.Add(l.id, 1)
	}
	return &limitConn{Conn: rc, l: l}, nil
}

// yield waits while this worker holds more than its share, for at most
// balanceWait.
func (l *limitListener) yield() {
	if l.table == nil || !l.table.Over(l.id) || l.now().Before(l.trustAfter) {
		return
	}
	waited := time.Duration(0)
	for ; waited < balanceWait && l.table.Over(l.id); waited += balanceStep {
		if !l.pause(balanceStep) {
			return
		}
	}
	if waited < balanceWait {
		l.wholeWaits = 0
		return
	}
	if l.wholeWaits++; l.wholeWaits >= balanceGiveUp {
		l.wholeWaits = 0
		l.trustAfter = l.now().Add(balanceRest)
	}
}

func (l *limitListener) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-l.done:
		return false
	}
}

// release gives back what an accepted connection held.
func (l *limitListener) release() {
	if l.sem != nil {
		<-l.sem
	}
	if l.table != nil {
		l.table.Add(l.id, -1)
	}
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type limitConn struct {
	net.Conn
	once sync.Once
	l    *limitListener
}

func (c *limitConn) Close() error {
	c.once.Do(c.l.release)
	return c.Conn.Close()
}

// CloseWrite half-closes the connection, for the servers' lingering
// close, which ends in Close.
func (c *limitConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
