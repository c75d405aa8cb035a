package master

import (
	"os"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/ipc"
)

func TestBackoff(t *testing.T) {
	t.Parallel()
	b := backoff{Base: 100 * time.Millisecond, Max: time.Second, Stable: 10 * time.Second}
	steps := []struct {
		uptime time.Duration
		want   time.Duration
	}{
		{time.Hour, 0}, // a long-lived worker died: replace at once
		{time.Millisecond, 100 * time.Millisecond}, // died again at once: crash loop
		{time.Millisecond, 200 * time.Millisecond},
		{time.Millisecond, 400 * time.Millisecond},
		{time.Millisecond, 800 * time.Millisecond},
		{time.Millisecond, time.Second}, // capped
		{time.Millisecond, time.Second},
		{11 * time.Second, 0}, // ran long enough: forgiven
		{time.Millisecond, 100 * time.Millisecond},
	}
	for i, s := range steps {
		if got := b.next(s.uptime); got != s.want {
			t.Fatalf("step %d: next(%v) = %v, want %v", i, s.uptime, got, s.want)
		}
	}
}

// fakeClock fires timers only when the test advances it.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	at      time.Time
	f       func()
	stopped bool
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return func() bool { c.mu.Lock(); defer c.mu.Unlock(); s := !t.stopped; t.stopped = true; return s }
}

// advance moves time forward and runs the timers that come due.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*fakeTimer
	rest := c.timers[:0]
	for _, t := range c.timers {
		if !t.stopped && !t.at.After(c.now) {
			due = append(due, t)
		} else if !t.stopped {
			rest = append(rest, t)
		}
	}
	c.timers = rest
	c.mu.Unlock()
	sort.Slice(due, func(i, j int) bool { return due[i].at.Before(due[j].at) })
	for _, t := range due {
		t.f()
	}
}

// fakeProc is a worker process the test controls through its channel.
type fakeProc struct {
	pid     int
	worker  *ipc.Conn
	exited  func(error)
	signals []os.Signal
}

func (p *fakeProc) Pid() int { return p.pid }
func (p *fakeProc) Signal(sig os.Signal) error {
	p.signals = append(p.signals, sig)
	if sig == syscall.SIGKILL {
		p.die()
	}
	return nil
}
func (p *fakeProc) die() { p.worker.Close(); p.exited(nil) }

type fakeSpawner struct {
	nextPID int
	procs   []*fakeProc
}

func (s *fakeSpawner) Spawn(id int, exited func(error)) (Process, *ipc.Conn, error) {
	parent, child, err := ipc.Pair()
	if err != nil {
		return nil, nil, err
	}
	wc, err := ipc.FileConn(child)
	if err != nil {
		return nil, nil, err
	}
	s.nextPID++
	p := &fakeProc{pid: 1000 + s.nextPID, worker: wc, exited: exited}
	s.procs = append(s.procs, p)
	return p, parent, nil
}

type fixture struct {
	t     *testing.T
	sup   *supervisor
	clock *fakeClock
	sp    *fakeSpawner
}

func newFixture(t *testing.T, n int) *fixture {
	clock := &fakeClock{now: time.Unix(1_000_000, 0)}
	sp := &fakeSpawner{}
	sup := newSupervisor(n, sp, clock, zerolog.Nop())
	snap, err := configs.Default(func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	snap.Revision = 1
	if err := sup.setConfig(snap); err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, sup: sup, clock: clock, sp: sp}
}

// pump handles events until cond holds.
func (f *fixture) pump(what string, cond func() bool) {
	f.t.Helper()
	timeout := time.After(5 * time.Second)
	for !cond() {
		select {
		case ev := <-f.sup.Events():
			f.sup.handle(ev)
		case <-timeout:
			f.t.Fatalf("waiting for %s", what)
		}
	}
}

// startServing starts every worker and plays each one up to ready.
func (f *fixture) startServing() {
	f.t.Helper()
	f.sup.startAll()
	for i, p := range f.sp.procs {
		f.serve(p, i)
	}
	f.pump("all serving", f.sup.allServing)
}

// serve plays a worker's part for proc: hello, ack, ready.
func (f *fixture) serve(p *fakeProc, id int) {
	f.t.Helper()
	go func() {
		_ = p.worker.Send(ipc.KindHello, ipc.Hello{WorkerID: id, PID: p.pid, Protocol: ipc.ProtocolVersion})
		fr, err := p.worker.Recv()
		if err != nil || fr.Kind != ipc.KindConfig {
			return
		}
		var c ipc.Config
		_ = fr.Decode(&c)
		_ = p.worker.Send(ipc.KindAck, ipc.Ack{Revision: c.Revision})
		_ = p.worker.Send(ipc.KindReady, ipc.Ready{Revision: c.Revision})
	}()
}

func TestSupervisorStartsAndReplaces(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 2)
	f.startServing()
	f.sup.starting = false
	if st := f.sup.status(); st[0].Revision != 1 || st[1].PID != 1002 {
		t.Fatalf("status = %+v", st)
	}

	// A worker that ran for a minute dies: replaced at once, no timer.
	f.clock.advance(time.Minute)
	f.sp.procs[0].die()
	f.pump("a replacement", func() bool { return len(f.sp.procs) == 3 })
	if f.sup.slots[0].restarts != 1 || f.sup.slots[0].proc.Pid() != 1003 {
		t.Fatalf("slot 0 = pid %d restarts %d", f.sup.slots[0].proc.Pid(), f.sup.slots[0].restarts)
	}
	f.serve(f.sp.procs[2], 0)
	f.pump("the replacement serving", f.sup.allServing)
}

func TestSupervisorCrashLoopBacksOff(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	f.sup.starting = false // the generation served before; now the worker crash-loops
	f.sup.startAll()
	// Every incarnation dies at once, before serving.
	wantDelays := []time.Duration{0, 250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second}
	for i, delay := range wantDelays {
		spawned := len(f.sp.procs)
		f.sp.procs[spawned-1].die()
		f.pump("the exit", func() bool { return f.sup.slots[0].exited || len(f.sp.procs) > spawned })
		if delay > 0 {
			if len(f.sp.procs) != spawned {
				t.Fatalf("crash %d: restarted at once, want a %v backoff", i, delay)
			}
			if st := f.sup.status(); st[0].State != ipc.StateBackoff {
				t.Fatalf("crash %d: state %q, want backoff", i, st[0].State)
			}
			f.clock.advance(delay - time.Millisecond)
			for drained := false; !drained; {
				select {
				case ev := <-f.sup.Events():
					f.sup.handle(ev)
				case <-time.After(50 * time.Millisecond):
					drained = true
				}
			}
			if len(f.sp.procs) != spawned {
				t.Fatalf("crash %d: restarted before its %v backoff ended", i, delay)
			}
			f.clock.advance(time.Millisecond)
		}
		f.pump("the restart", func() bool { return len(f.sp.procs) == spawned+1 })
	}
	if got := f.sup.slots[0].restarts; got != len(wantDelays) {
		t.Fatalf("restarts = %d, want %d", got, len(wantDelays))
	}
}

func TestSupervisorDrainDoesNotRestart(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 2)
	f.startServing()
	f.sup.drainAll(ipc.Drain{Grace: time.Second, Timeout: 5 * time.Second})
	for _, p := range f.sp.procs {
		fr, err := p.worker.Recv()
		if err != nil || fr.Kind != ipc.KindDrain {
			t.Fatalf("worker got %v %v, want drain", fr.Kind, err)
		}
		p.die()
	}
	f.pump("all exited", f.sup.allExited)
	f.clock.advance(time.Minute)
	if len(f.sp.procs) != 2 {
		t.Fatalf("%d processes spawned during a drain, want none", len(f.sp.procs)-2)
	}
}

func TestSupervisorPushesNewRevision(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 2)
	f.startServing()
	next := *f.sup.snap
	next.Revision = 2
	if err := f.sup.setConfig(&next); err != nil {
		t.Fatal(err)
	}
	for _, p := range f.sp.procs {
		go func() {
			fr, _ := p.worker.Recv()
			var c ipc.Config
			_ = fr.Decode(&c)
			_ = p.worker.Send(ipc.KindAck, ipc.Ack{Revision: c.Revision})
		}()
	}
	f.pump("every worker at revision 2", func() bool { return f.sup.allAt(2) })
}

func TestSupervisorStartFailure(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 2)
	f.sup.startAll()
	f.serve(f.sp.procs[0], 0)
	f.sp.procs[1].die()
	f.pump("the failure", func() bool { return f.sup.startFailure() != nil })
}

func TestQuotaApplyURI(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ quotaURI, bootstrap, want string }{
		{"", "https://e.apigee.net/edgemicro/bootstrap/organization/o/environment/e", "https://e.apigee.net/edgemicro/quotas/organization/o/environment/e/v2/quotas/apply"},
		{"https://%s-%s.apigee.net/edgemicro-auth", "https://x/bootstrap", "https://o-e.apigee.net/edgemicro-auth/v2/quotas/apply"},
	} {
		cfg := configs.Config{EdgeConfig: &configs.EdgeConfig{QuotaURI: tc.quotaURI, Bootstrap: tc.bootstrap}}
		if got := quotaApplyURI(&cfg, "o", "e"); got != tc.want {
			t.Errorf("quotaApplyURI = %q, want %q", got, tc.want)
		}
	}
}

// TestSupervisorUnresponsiveWorker: a serving worker that sends nothing
// (stopped) is shown as unresponsive after UnresponsiveAfter, back to
// serving when it sends again, and killed and replaced once silent for
// ReplaceAfter.
func TestSupervisorUnresponsiveWorker(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 2)
	f.startServing()
	f.sup.starting = false
	beat := func(i int) {
		t.Helper()
		if err := f.sup.slots[i].proc.(*fakeProc).worker.Send(ipc.KindStats, ipc.Stats{}); err != nil {
			t.Fatal(err)
		}
		f.pump("the beat", func() bool { return f.sup.slots[i].lastBeat.Equal(f.clock.Now()) })
	}
	state := func(i int) string { return f.sup.status()[i].State }

	// Worker 1 beats every second; worker 0 stops.
	for range 3 {
		f.clock.advance(time.Second)
		beat(1)
		f.sup.checkBeats()
	}
	if state(0) != ipc.StateUnresponsive || state(1) != ipc.StateServing {
		t.Fatalf("after 3 s: states %q %q, want unresponsive serving", state(0), state(1))
	}
	// It comes back (SIGCONT): serving again.
	beat(0)
	f.sup.checkBeats()
	if state(0) != ipc.StateServing {
		t.Fatalf("after a beat: %q, want serving", state(0))
	}
	// Silent again: still there a second before ReplaceAfter, killed at it.
	for range int(ReplaceAfter/time.Second) - 1 {
		f.clock.advance(time.Second)
		beat(1)
		f.sup.checkBeats()
	}
	if n := len(f.sp.procs[0].signals); n != 0 || state(0) != ipc.StateUnresponsive {
		t.Fatalf("before ReplaceAfter: %d signals, state %q", n, state(0))
	}
	f.clock.advance(time.Second)
	f.sup.checkBeats()
	if sigs := f.sp.procs[0].signals; len(sigs) != 1 || sigs[0] != syscall.SIGKILL {
		t.Fatalf("signals to the silent worker: %v, want one SIGKILL", sigs)
	}
	if len(f.sp.procs[1].signals) != 0 {
		t.Fatalf("the beating worker got %v", f.sp.procs[1].signals)
	}
	f.pump("a replacement", func() bool { return len(f.sp.procs) == 3 })
	if f.sup.slots[0].restarts != 1 {
		t.Fatalf("slot 0 restarts = %d, want 1", f.sup.slots[0].restarts)
	}
}

// TestSupervisorWorkerDrainingOnItsOwn: a worker that drains without the
// master's order (SIGTERM sent to it) says so in its beats: it shows as
// draining, is not killed however long its drain while it beats, is
// replaced when it exits, and is killed and replaced like any other
// once silent for ReplaceAfter.
func TestSupervisorWorkerDrainingOnItsOwn(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 2)
	f.startServing()
	f.sup.starting = false
	beat := func(i int, draining bool) {
		t.Helper()
		if err := f.sup.slots[i].proc.(*fakeProc).worker.Send(ipc.KindStats, ipc.Stats{Active: 1, Draining: draining}); err != nil {
			t.Fatal(err)
		}
		f.pump("the beat", func() bool { return f.sup.slots[i].lastBeat.Equal(f.clock.Now()) })
	}
	state := func(i int) string { return f.sup.status()[i].State }

	// Both drain on their own, beating, for longer than ReplaceAfter.
	for range int(ReplaceAfter/time.Second) + 2 {
		f.clock.advance(time.Second)
		beat(0, true)
		beat(1, true)
		f.sup.checkBeats()
	}
	if state(0) != ipc.StateDraining || state(1) != ipc.StateDraining {
		t.Fatalf("states %q %q, want draining draining", state(0), state(1))
	}
	if n := len(f.sp.procs[0].signals) + len(f.sp.procs[1].signals); n != 0 {
		t.Fatalf("%d signals to workers that drain and beat", n)
	}
	// Worker 0 ends its drain and exits: replaced.
	f.sp.procs[0].die()
	f.pump("worker 0's replacement", func() bool { return len(f.sp.procs) == 3 })
	// Worker 1 goes silent in its drain: killed at ReplaceAfter, replaced.
	for range int(ReplaceAfter / time.Second) {
		f.clock.advance(time.Second)
		f.sup.checkBeats()
	}
	if sigs := f.sp.procs[1].signals; len(sigs) != 1 || sigs[0] != syscall.SIGKILL {
		t.Fatalf("signals to the silent draining worker: %v, want one SIGKILL", sigs)
	}
	f.pump("worker 1's replacement", func() bool { return len(f.sp.procs) == 4 })
}

// TestSupervisorMasterStallBlamesNoWorker: when the master itself did
// not run (stopped, starved) for longer than ReplaceAfter, the check
// that comes after it kills no worker whose beats wait unread in its
// socket; a worker that then stays silent across normal checks is still
// killed and replaced, and one silent before the stall keeps the silence
// the master saw.
func TestSupervisorMasterStallBlamesNoWorker(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 3)
	f.startServing()
	f.sup.starting = false
	send := func(i int) {
		t.Helper()
		if err := f.sup.slots[i].proc.(*fakeProc).worker.Send(ipc.KindStats, ipc.Stats{}); err != nil {
			t.Fatal(err)
		}
	}
	beat := func(i int) {
		t.Helper()
		send(i)
		f.pump("the beat", func() bool { return f.sup.slots[i].lastBeat.Equal(f.clock.Now()) })
	}
	state := func(i int) string { return f.sup.status()[i].State }
	killed := func(i int) bool { return len(f.sp.procs[i].signals) != 0 }

	// Normal checks; worker 2 stops 5 s before the master does.
	for s := range 5 {
		f.clock.advance(BeatCheckEvery)
		beat(0)
		beat(1)
		if s == 0 {
			beat(2)
		}
		f.sup.checkBeats()
	}
	if state(2) != ipc.StateUnresponsive {
		t.Fatalf("worker 2 silent 4 s: %q, want unresponsive", state(2))
	}
	// The master stops for 40 s. Workers 0 and 1 beat all along: their
	// beats wait in the sockets, not yet read when the first check runs.
	f.clock.advance(40 * time.Second)
	send(0)
	send(1)
	f.sup.checkBeats()
	for i := range 3 {
		if killed(i) {
			t.Fatalf("worker %d killed for the master's own stall (signals %v)", i, f.sp.procs[i].signals)
		}
	}
	if state(0) != ipc.StateServing || state(1) != ipc.StateServing {
		t.Fatalf("after the stall: states %q %q, want serving", state(0), state(1))
	}
	f.pump("the pending beats", func() bool {
		return f.sup.slots[0].lastBeat.Equal(f.clock.Now()) && f.sup.slots[1].lastBeat.Equal(f.clock.Now())
	})

	// Normal checks again: 0 and 1 beat, 2 stays silent and is replaced
	// before ReplaceAfter of checks have passed (it was silent before).
	checks := 0
	for ; !killed(2) && checks < int(ReplaceAfter/BeatCheckEvery); checks++ {
		f.clock.advance(BeatCheckEvery)
		beat(0)
		beat(1)
		f.sup.checkBeats()
	}
	if !killed(2) || checks == int(ReplaceAfter/BeatCheckEvery) {
		t.Fatalf("the silent worker 2: signals %v after %d checks, want a SIGKILL before %v", f.sp.procs[2].signals, checks, ReplaceAfter)
	}
	if killed(0) || killed(1) {
		t.Fatalf("the beating workers got %v %v", f.sp.procs[0].signals, f.sp.procs[1].signals)
	}
	f.pump("a replacement", func() bool { return len(f.sp.procs) == 4 })
}

// TestSupervisorMasterStallBeforeTheFirstCheck: a master stopped before
// its first beat check (right after its workers served) blames them no
// more than one stopped later.
func TestSupervisorMasterStallBeforeTheFirstCheck(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 2)
	f.startServing()
	f.sup.starting = false
	f.clock.advance(40 * time.Second)
	for _, p := range f.sp.procs {
		if err := p.worker.Send(ipc.KindStats, ipc.Stats{}); err != nil {
			t.Fatal(err)
		}
	}
	f.sup.checkBeats()
	for i, p := range f.sp.procs {
		if len(p.signals) != 0 || f.sup.status()[i].State != ipc.StateServing {
			t.Fatalf("worker %d after the stall: signals %v, state %q", i, p.signals, f.sup.status()[i].State)
		}
	}
}
