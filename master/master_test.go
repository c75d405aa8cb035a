package master

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mgw-gateway/mgw/ipc"
)

// fakeUpgrader stands in for tableflip: the test decides how each upgrade
// ends, and when the next generation serves (handOver).
type fakeUpgrader struct {
	parent bool

	mu      sync.Mutex
	readies int
	stops   int
	files   map[string]*os.File

	exit     chan struct{}
	exitOnce sync.Once
	ready    chan struct{} // closed by the first Ready
	// upgrades gets one channel per Upgrade call; the test sends the
	// call's outcome on it.
	upgrades chan chan error
}

func newFakeUpgrader() *fakeUpgrader {
	return &fakeUpgrader{
		files:    map[string]*os.File{},
		exit:     make(chan struct{}),
		ready:    make(chan struct{}),
		upgrades: make(chan chan error, 4),
	}
}

func (u *fakeUpgrader) Listen(network, _ string) (net.Listener, error) {
	return net.Listen(network, "127.0.0.1:0")
}

func (u *fakeUpgrader) ListenWithCallback(network, _ string, callback func(network, addr string) (net.Listener, error)) (net.Listener, error) {
	return callback(network, "127.0.0.1:0")
}

func (u *fakeUpgrader) File(name string) (*os.File, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.files[name], nil
}

func (u *fakeUpgrader) AddFile(name string, f *os.File) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.files[name] = f
	return nil
}

func (u *fakeUpgrader) HasParent() bool { return u.parent }

func (u *fakeUpgrader) Ready() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.readies++; u.readies == 1 {
		close(u.ready)
	}
	return nil
}

func (u *fakeUpgrader) Exit() <-chan struct{} { return u.exit }

// Stop ends the upgrade in flight, as tableflip's does, and closes Exit.
func (u *fakeUpgrader) Stop() {
	u.mu.Lock()
	u.stops++
	u.mu.Unlock()
	u.handOver()
}

// handOver is the next generation serving: Exit closes.
func (u *fakeUpgrader) handOver() { u.exitOnce.Do(func() { close(u.exit) }) }

func (u *fakeUpgrader) WaitForParent(context.Context) error { return nil }

func (u *fakeUpgrader) Upgrade() error {
	outcome := make(chan error)
	u.upgrades <- outcome
	return <-outcome
}

func (u *fakeUpgrader) counts() (readies, stops int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.readies, u.stops
}

// nextUpgrade returns the outcome channel of the Upgrade call the master
// makes next.
func (u *fakeUpgrader) nextUpgrade(t *testing.T) chan error {
	t.Helper()
	select {
	case c := <-u.upgrades:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("the master started no upgrade")
		return nil
	}
}

// playWorker plays a worker's part for p until its channel ends: hello,
// an ack for every config (and a ready after the first), and an exit on
// a drain order unless it is stuck.
func playWorker(p *fakeProc, id int, stuck bool) {
	go func() {
		_ = p.worker.Send(ipc.KindHello, ipc.Hello{WorkerID: id, PID: p.pid, Protocol: ipc.ProtocolVersion})
		ready := false
		for {
			fr, err := p.worker.Recv()
			if err != nil {
				return
			}
			switch fr.Kind {
			case ipc.KindConfig:
				var c ipc.Config
				_ = fr.Decode(&c)
				_ = p.worker.Send(ipc.KindAck, ipc.Ack{Revision: c.Revision})
				if !ready {
					ready = true
					_ = p.worker.Send(ipc.KindReady, ipc.Ready{Revision: c.Revision})
				}
			case ipc.KindDrain:
				if !stuck {
					p.die()
					return
				}
			}
		}
	}()
}

// playingSpawner starts fake workers that play their part on their own;
// stuck ones never finish a drain.
type playingSpawner struct {
	fakeSpawner
	stuck bool
}

func (s *playingSpawner) Spawn(id int, exited func(error)) (Process, *ipc.Conn, error) {
	p, c, err := s.fakeSpawner.Spawn(id, exited)
	if err == nil {
		playWorker(p.(*fakeProc), id, s.stuck)
	}
	return p, c, err
}

func noEnv(string) (string, bool) { return "", false }

// clearUpgradeEnv keeps what an upgrade writes to the environment for the
// next generation inside the test.
func clearUpgradeEnv(t *testing.T) {
	for _, k := range []string{envGeneration, envRevision, envUpgradeErr, envProcesses, envPort} {
		t.Setenv(k, "")
	}
}

// newTestMaster makes generation 3 of an instance with n workers, the
// embedded default config, fake time, fake workers and a fake tableflip.
// Nothing runs yet.
func newTestMaster(t *testing.T, n int) (*Master, *fakeUpgrader) {
	t.Helper()
	clearUpgradeEnv(t)
	opts := Options{
		RunDir: t.TempDir(), ConfigDir: t.TempDir(), Processes: n,
		Logger: zerolog.Nop(), LookupEnv: noEnv, StartTimeout: time.Minute,
		Signals: make(chan os.Signal, 4),
	}
	m := newMaster(opts, 3)
	clock := &fakeClock{now: time.Unix(1_000_000, 0)}
	m.clock, m.started = clock, clock.Now()
	upg := newFakeUpgrader()
	m.upg = upg
	m.spawner = &playingSpawner{}
	return m, upg
}

// serving sets m up as a start does, without the loop, and handles the
// workers' events until the generation serves.
func serving(t *testing.T, m *Master) {
	t.Helper()
	snap, err := m.load()
	if err != nil {
		t.Fatal(err)
	}
	snap.Revision = 7
	m.snap = snap
	m.sup = newSupervisor(m.opts.Processes, m.spawner, m.clock, m.log)
	if err := m.sup.setConfig(snap); err != nil {
		t.Fatal(err)
	}
	m.wake.startDeadline = time.NewTimer(time.Hour)
	m.wake.upgExit = m.upg.Exit()
	t.Cleanup(func() {
		m.wake.disarm()
		if m.ctl != nil {
			m.ctl.close(true)
		}
		m.closeDone()
	})
	m.sup.startAll()
	handleUntil(t, m, "serving", func() bool { return m.phase != phaseStarting })
}

// handleUntil hands the workers' events to the master until cond holds.
func handleUntil(t *testing.T, m *Master, what string, cond func() bool) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for !cond() {
		select {
		case ev := <-m.sup.Events():
			if err := m.onWorkerEvent(ev); err != nil {
				t.Fatalf("waiting for %s: %v", what, err)
			}
		case <-timeout:
			t.Fatalf("waiting for %s: phase %s", what, m.phase)
		}
	}
}

// control sends one command to the master's handler and returns the
// channel its reply comes on.
func control(m *Master, ctl ipc.Control) chan ipc.Reply {
	reply := make(chan ipc.Reply, 1)
	m.onControlRequest(controlRequest{ctl: ctl, reply: reply})
	return reply
}

// replied returns the reply on c, failing when there is none yet.
func replied(t *testing.T, c chan ipc.Reply) ipc.Reply {
	t.Helper()
	select {
	case r := <-c:
		return r
	default:
		t.Fatal("no reply")
		return ipc.Reply{}
	}
}

// exited fails unless the upgrader's Exit is closed.
func exited(t *testing.T, exit <-chan struct{}) {
	t.Helper()
	select {
	case <-exit:
	default:
		t.Fatal("tableflip's Exit is not closed")
	}
}

// upgradeOutcome hands the master the outcome of the upgrade in flight.
func upgradeOutcome(t *testing.T, m *Master) {
	t.Helper()
	select {
	case err := <-m.upgradeDone:
		m.onUpgradeDone(err)
	case <-time.After(10 * time.Second):
		t.Fatal("the upgrade never ended")
	}
}

func TestStartServesOnceEveryWorkerIsReady(t *testing.T) {
	m, upg := newTestMaster(t, 2)
	serving(t, m)
	if readies, _ := upg.counts(); readies != 1 {
		t.Fatalf("tableflip Ready called %d times, want 1", readies)
	}
	if m.sup.starting {
		t.Fatal("the supervisor still counts exits as a failed start")
	}
	b, err := os.ReadFile(filepath.Join(m.opts.RunDir, PIDFileName))
	if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		t.Fatalf("pid file = %q, %v", b, err)
	}
	if !m.ctl.owned() {
		t.Fatal("the control socket is not installed")
	}
}

func TestStatusReply(t *testing.T) {
	m, _ := newTestMaster(t, 2)
	serving(t, m)
	m.clock.(*fakeClock).advance(90 * time.Second)
	rep := replied(t, control(m, ipc.Control{Command: ipc.CommandStatus}))
	st := rep.Status
	if !rep.OK || st == nil {
		t.Fatalf("reply = %+v", rep)
	}
	if st.MasterPID != os.Getpid() || st.Generation != 3 || st.UptimeS != 90 || st.Mode != "local" {
		t.Fatalf("status = pid %d generation %d uptime %v mode %q", st.MasterPID, st.Generation, st.UptimeS, st.Mode)
	}
	if st.Config.Revision != 7 || st.Config.LastError != nil {
		t.Fatalf("config status = %+v", st.Config)
	}
	if len(st.Workers) != 2 || st.Workers[0].State != ipc.StateServing || st.Workers[1].Revision != 7 {
		t.Fatalf("workers = %+v", st.Workers)
	}
}

func TestControlRequestsRefused(t *testing.T) {
	m, upg := newTestMaster(t, 1)
	serving(t, m)
	for _, tc := range []struct {
		desc string
		ctl  ipc.Control
		want string
	}{
		{"an unknown command", ipc.Control{Command: "restart"}, `unknown command "restart"`},
		{"a reload to another config file", ipc.Control{Command: ipc.CommandReload, Config: "/elsewhere/mgw.toml"}, "cannot switch to /elsewhere/mgw.toml"},
		{"a reload to too many workers", ipc.Control{Command: ipc.CommandReload, Processes: MaxProcesses + 1}, "--processes 1025: give 1 to 1024 workers"},
		{"a reload to a port that is no port", ipc.Control{Command: ipc.CommandReload, Port: 70000}, "--port 70000 is not a port number"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			rep := replied(t, control(m, tc.ctl))
			if rep.OK || !strings.Contains(rep.Error, tc.want) {
				t.Fatalf("reply = %+v, want an error with %q", rep, tc.want)
			}
		})
	}
	if m.phase != phaseServing || m.upgrade != nil || len(upg.upgrades) != 0 {
		t.Fatalf("after refusals: phase %s, upgrade %v", m.phase, m.upgrade)
	}
}

// TestReloadSucceeds: mgw reload -p 3 starts the next generation with
// three workers and what it needs to know in its environment; the reply
// waits for the outcome, and the hand-over drains this generation, which
// then leaves mgw.pid and mgw.sock to the next one.
func TestReloadSucceeds(t *testing.T) {
	m, upg := newTestMaster(t, 2)
	serving(t, m)
	reply := control(m, ipc.Control{Command: ipc.CommandReload, Processes: 3})
	if m.phase != phaseUpgrading {
		t.Fatalf("phase %s, want upgrading", m.phase)
	}
	outcome := upg.nextUpgrade(t)
	for k, want := range map[string]string{envGeneration: "4", envRevision: "7", envProcesses: "3"} {
		if got := os.Getenv(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	select {
	case r := <-reply:
		t.Fatalf("replied before the next generation served: %+v", r)
	default:
	}
	outcome <- nil
	upgradeOutcome(t, m)
	rep := replied(t, reply)
	if !rep.OK || rep.Message != "reloaded: generation 4 serves with 3 workers" {
		t.Fatalf("reply = %+v", rep)
	}

	upg.handOver()
	exited(t, m.wake.upgExit)
	m.onReplaced()
	if m.phase != phaseReplaced || m.shownPhase() != phaseReplaced {
		t.Fatalf("phase %s (shown %s), want replaced", m.phase, m.shownPhase())
	}
	handleUntil(t, m, "the drain", m.sup.allExited)
	if err := m.endIfDrained(); !errors.Is(err, errStopped) {
		t.Fatalf("endIfDrained = %v, want the end", err)
	}
	// mgw.pid and mgw.sock are the next generation's now.
	for _, name := range []string{PIDFileName, ControlFileName} {
		if _, err := os.Stat(filepath.Join(m.opts.RunDir, name)); err != nil {
			t.Fatalf("the replaced generation removed %s: %v", name, err)
		}
	}
}

// TestReloadFailureKeepsServing: the next generation fails and writes why;
// the reply carries that reason, this generation serves on, and a later
// reload is taken.
func TestReloadFailureKeepsServing(t *testing.T) {
	m, upg := newTestMaster(t, 1)
	serving(t, m)
	reply := control(m, ipc.Control{Command: ipc.CommandReload})
	outcome := upg.nextUpgrade(t)
	errFile := os.Getenv(envUpgradeErr)
	if err := os.WriteFile(errFile, []byte("config mgw.toml: line 3: unknown key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	outcome <- errors.New("child exited")
	upgradeOutcome(t, m)
	rep := replied(t, reply)
	if rep.OK || rep.Error != "new generation failed: config mgw.toml: line 3: unknown key" {
		t.Fatalf("reply = %+v", rep)
	}
	if m.phase != phaseServing || m.upgrade != nil {
		t.Fatalf("phase %s, upgrade %v: want serving, none", m.phase, m.upgrade)
	}
	if _, err := os.Stat(errFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the error file is left: %v", err)
	}
	// Without a reason written, the upgrade's own error.
	reply = control(m, ipc.Control{Command: ipc.CommandReload})
	upg.nextUpgrade(t) <- errors.New("child exited")
	upgradeOutcome(t, m)
	if rep := replied(t, reply); rep.Error != "new generation failed: child exited" {
		t.Fatalf("second reply = %+v", rep)
	}
}

// TestSecondReloadWhileOneIsInFlight: a reload, a SIGHUP or a stop while
// the next generation starts are refused at once; the first reload's
// reply is unaffected.
func TestSecondReloadWhileOneIsInFlight(t *testing.T) {
	m, upg := newTestMaster(t, 1)
	serving(t, m)
	first := control(m, ipc.Control{Command: ipc.CommandReload})
	outcome := upg.nextUpgrade(t)

	if rep := replied(t, control(m, ipc.Control{Command: ipc.CommandReload})); rep.Error != "a reload is already in progress" {
		t.Fatalf("second reload: %+v", rep)
	}
	if err := m.onSignal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if rep := replied(t, control(m, ipc.Control{Command: ipc.CommandStop})); !strings.Contains(rep.Error, "a reload is in progress") {
		t.Fatalf("stop during a reload: %+v", rep)
	}
	if n := len(upg.upgrades); n != 0 {
		t.Fatalf("%d more upgrades started", n)
	}
	if m.phase != phaseUpgrading {
		t.Fatalf("phase %s, want upgrading", m.phase)
	}
	outcome <- nil
	upgradeOutcome(t, m)
	if rep := replied(t, first); !rep.OK {
		t.Fatalf("first reload: %+v", rep)
	}
}

// TestStopRequest: mgw stop closes the gateway socket, stops tableflip,
// drains the workers with the timeout asked for, and is answered once the
// last one exited, after mgw.pid and mgw.sock are gone. A second stop
// meanwhile waits for the same end.
func TestStopRequest(t *testing.T) {
	m, upg := newTestMaster(t, 2)
	serving(t, m)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.ln = ln
	first := control(m, ipc.Control{Command: ipc.CommandStop, Timeout: 3 * time.Second})
	second := control(m, ipc.Control{Command: ipc.CommandStop})
	if m.phase != phaseDraining {
		t.Fatalf("phase %s, want draining", m.phase)
	}
	if m.ln != nil {
		t.Fatal("the gateway socket is still open")
	}
	if _, stops := upg.counts(); stops == 0 {
		t.Fatal("tableflip was not stopped: the socket would go to a next generation")
	}
	if got := m.sup.drainOrder; got.Timeout != 3*time.Second {
		t.Fatalf("drain order %+v, want a 3s timeout", got)
	}
	if rep := replied(t, control(m, ipc.Control{Command: ipc.CommandReload})); rep.Error != "mgw is not serving (starting or stopping)" {
		t.Fatalf("reload while stopping: %+v", rep)
	}
	if err := m.endIfDrained(); err != nil || len(first) != 0 {
		t.Fatalf("ended before the workers exited: %v", err)
	}
	handleUntil(t, m, "the drain", m.sup.allExited)
	if err := m.endIfDrained(); !errors.Is(err, errStopped) {
		t.Fatalf("endIfDrained = %v, want the end", err)
	}
	for _, c := range []chan ipc.Reply{first, second} {
		if rep := replied(t, c); !rep.OK || rep.Message != "stopped" {
			t.Fatalf("stop reply = %+v", rep)
		}
	}
	for _, name := range []string{PIDFileName, ControlFileName} {
		if _, err := os.Stat(filepath.Join(m.opts.RunDir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s is left after a stop: %v", name, err)
		}
	}
}

// TestPhases walks a generation through its phases, with what each one
// answers on /readyz and which events it still takes.
func TestPhases(t *testing.T) {
	m, upg := newTestMaster(t, 1)
	if m.phase != phaseStarting || m.phase.readiness() != "starting" {
		t.Fatalf("a new master: phase %s", m.phase)
	}
	// A SIGHUP while starting waits for the generation to serve.
	if err := m.onSignal(syscall.SIGHUP); err != nil || !m.reloadAsked || len(upg.upgrades) != 0 {
		t.Fatalf("SIGHUP while starting: err %v, asked %v", err, m.reloadAsked)
	}
	serving(t, m)
	if m.phase != phaseUpgrading || m.reloadAsked {
		t.Fatalf("served after a SIGHUP: phase %s, still asked %v", m.phase, m.reloadAsked)
	}
	if r := m.phase.readiness(); r != "serving" {
		t.Fatalf("readiness while upgrading: %q", r)
	}
	upg.nextUpgrade(t) <- errors.New("child exited")
	upgradeOutcome(t, m)
	if m.phase != phaseServing {
		t.Fatalf("after a failed upgrade: phase %s", m.phase)
	}
	// An Exit closed by a stop's own tableflip Stop is no hand-over.
	m.beginStop(0)
	if m.phase != phaseDraining || m.phase.readiness() != "draining" {
		t.Fatalf("after a stop: phase %s", m.phase)
	}
	exited(t, m.wake.upgExit)
	m.onReplaced()
	if m.phase != phaseDraining {
		t.Fatalf("a stop's Exit made the generation %s", m.phase)
	}
}

// TestDrainTimeoutKillsWhatIsLeft: workers that do not finish their drain
// are killed when its timeout passes, and the stop then ends.
func TestDrainTimeoutKillsWhatIsLeft(t *testing.T) {
	m, _ := newTestMaster(t, 2)
	m.spawner = &playingSpawner{stuck: true}
	serving(t, m)
	reply := control(m, ipc.Control{Command: ipc.CommandStop})
	if m.wake.drainKill == nil {
		t.Fatal("the drain has no timeout")
	}
	if err := m.endIfDrained(); err != nil {
		t.Fatalf("ended while the workers drain: %v", err)
	}
	m.onDrainTimeout()
	for i, p := range m.spawner.(*playingSpawner).procs {
		if len(p.signals) != 1 || p.signals[0] != syscall.SIGKILL {
			t.Fatalf("worker %d got %v, want SIGKILL", i, p.signals)
		}
	}
	if m.wake.drainKill != nil || m.wake.exitTimeout == nil {
		t.Fatal("after the drain timeout, the wait for the killed workers is not armed")
	}
	handleUntil(t, m, "the exits", m.sup.allExited)
	if err := m.endIfDrained(); !errors.Is(err, errStopped) {
		t.Fatalf("endIfDrained = %v, want the end", err)
	}
	if rep := replied(t, reply); !rep.OK {
		t.Fatalf("stop reply = %+v", rep)
	}
}

// TestStartTimeout: a start whose workers never all serve ends when
// StartTimeout passes, with the workers killed; once serving, the timer
// means nothing.
func TestStartTimeout(t *testing.T) {
	m, _ := newTestMaster(t, 1)
	m.spawner = &fakeSpawner{} // a worker that never says hello
	snap, err := m.load()
	if err != nil {
		t.Fatal(err)
	}
	m.snap = snap
	m.sup = newSupervisor(1, m.spawner, m.clock, m.log)
	m.sup.startAll()
	err = m.onStartTimeout()
	if err == nil || err.Error() != "starting workers: not every worker served within 1m0s" {
		t.Fatalf("onStartTimeout = %v", err)
	}
	if sigs := m.spawner.(*fakeSpawner).procs[0].signals; len(sigs) != 1 || sigs[0] != syscall.SIGKILL {
		t.Fatalf("the worker got %v, want SIGKILL", sigs)
	}

	m, _ = newTestMaster(t, 1)
	serving(t, m)
	if err := m.onStartTimeout(); err != nil {
		t.Fatalf("onStartTimeout while serving = %v", err)
	}
}

func TestSigquitStopsNow(t *testing.T) {
	m, upg := newTestMaster(t, 2)
	serving(t, m)
	if err := m.onSignal(syscall.SIGQUIT); !errors.Is(err, errStopped) {
		t.Fatalf("SIGQUIT: %v, want the end", err)
	}
	if m.phase != phaseQuitting {
		t.Fatalf("phase %s, want quitting", m.phase)
	}
	for i, p := range m.spawner.(*playingSpawner).procs {
		if len(p.signals) != 1 || p.signals[0] != syscall.SIGKILL {
			t.Fatalf("worker %d got %v, want SIGKILL", i, p.signals)
		}
	}
	if _, stops := upg.counts(); stops == 0 {
		t.Fatal("tableflip was not stopped")
	}
}

func TestReadinessByPhase(t *testing.T) {
	t.Parallel()
	for p, want := range map[phase]string{
		phaseStarting: "starting", phaseServing: "serving", phaseUpgrading: "serving",
		phaseReplaced: "serving", phaseDraining: "draining", phaseQuitting: "draining",
	} {
		m := &Master{phase: p}
		reply := make(chan []byte, 1)
		m.answerMetrics(metricsRequest{health: true, reply: reply})
		if got := string(<-reply); got != want {
			t.Errorf("%s: /readyz says %q, want %q", p, got, want)
		}
	}
}

// TestMetricsText renders the counters of a living worker, of one that
// exited (its counters are kept), of a generation that polls Edge and of
// its analytics queue.
func TestMetricsText(t *testing.T) {
	m, _ := newTestMaster(t, 2)
	serving(t, m)
	m.sup.retired = ipc.Metrics{
		Requests:   map[string]map[string]uint64{"orders": {"2xx": 5}},
		Rejections: map[string]uint64{"quota": 1},
		Latency:    []uint64{5},
		LatencySum: 0.004,
	}
	m.sup.slots[0].metrics = &ipc.Metrics{
		Requests:   map[string]map[string]uint64{"orders": {"2xx": 2, "5xx": 1}, `we"ird`: {"4xx": 1}},
		Upstream:   map[string]map[string]uint64{"orders": {"timeout": 1}},
		Rejections: map[string]uint64{"quota": 2, "oauth": 1},
		Latency:    []uint64{0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3},
		LatencySum: 33.5,
	}
	m.sup.slots[1].restarts = 2
	m.sup.slots[1].state = ipc.StateBackoff
	polled := time.Unix(1_700_000_000, 0)
	m.edge.lastPoll = &polled
	m.sup.retired.RecordsDropped = 1
	m.sup.slots[0].metrics.RecordsDropped = 2
	m.snap.Config.Sections = map[string]any{"analytics": map[string]any{"enabled": true, "bufferSize": 50}}
	if err := m.applyAnalytics(m.snap); err != nil {
		t.Fatal(err)
	}
	defer m.stopAnalytics()
	want := `# HELP mgw_requests_total Requests answered, by proxy and status class.
# TYPE mgw_requests_total counter
mgw_requests_total{proxy="orders",class="2xx"} 7
mgw_requests_total{proxy="orders",class="5xx"} 1
mgw_requests_total{proxy="we\"ird",class="4xx"} 1
# HELP mgw_upstream_errors_total Target calls that failed, by proxy and kind (error, timeout).
# TYPE mgw_upstream_errors_total counter
mgw_upstream_errors_total{proxy="orders",kind="timeout"} 1
# HELP mgw_plugin_rejections_total Requests answered by a plugin instead of the target, by plugin.
# TYPE mgw_plugin_rejections_total counter
mgw_plugin_rejections_total{plugin="oauth"} 1
mgw_plugin_rejections_total{plugin="quota"} 3
# HELP mgw_request_duration_seconds Time from reading a request to the end of its answer.
# TYPE mgw_request_duration_seconds histogram
mgw_request_duration_seconds_bucket{le="0.001"} 5
mgw_request_duration_seconds_bucket{le="0.0025"} 6
mgw_request_duration_seconds_bucket{le="0.005"} 6
mgw_request_duration_seconds_bucket{le="0.01"} 6
mgw_request_duration_seconds_bucket{le="0.025"} 6
mgw_request_duration_seconds_bucket{le="0.05"} 6
mgw_request_duration_seconds_bucket{le="0.1"} 6
mgw_request_duration_seconds_bucket{le="0.25"} 6
mgw_request_duration_seconds_bucket{le="0.5"} 6
mgw_request_duration_seconds_bucket{le="1"} 6
mgw_request_duration_seconds_bucket{le="2.5"} 6
mgw_request_duration_seconds_bucket{le="5"} 6
mgw_request_duration_seconds_bucket{le="10"} 6
mgw_request_duration_seconds_bucket{le="+Inf"} 9
mgw_request_duration_seconds_sum 33.504
mgw_request_duration_seconds_count 9
# HELP mgw_workers Worker processes, by state.
# TYPE mgw_workers gauge
mgw_workers{state="backoff"} 1
mgw_workers{state="serving"} 1
# HELP mgw_worker_restarts_total Workers replaced after they died.
# TYPE mgw_worker_restarts_total counter
mgw_worker_restarts_total 2
# HELP mgw_generation The master generation (one more per reload).
# TYPE mgw_generation gauge
mgw_generation 3
# HELP mgw_config_revision The configuration revision served.
# TYPE mgw_config_revision gauge
mgw_config_revision 7
# HELP mgw_config_last_poll_timestamp_seconds When Edge was last polled successfully.
# TYPE mgw_config_last_poll_timestamp_seconds gauge
mgw_config_last_poll_timestamp_seconds 1700000000
# HELP mgw_analytics_queue_length Analytics records waiting for upload.
# TYPE mgw_analytics_queue_length gauge
mgw_analytics_queue_length 0
# HELP mgw_analytics_dropped_total Analytics records dropped (buffer full, or refused as malformed).
# TYPE mgw_analytics_dropped_total counter
mgw_analytics_dropped_total 3
# HELP mgw_analytics_sent_total Analytics records uploaded.
# TYPE mgw_analytics_sent_total counter
mgw_analytics_sent_total 0
# HELP mgw_analytics_buffer_size Analytics records the queue holds at most (bufferSize); past it the oldest are dropped.
# TYPE mgw_analytics_buffer_size gauge
mgw_analytics_buffer_size 50
# HELP mgw_analytics_uploads_in_flight Analytics uploads in progress (at most [analytics] concurrency).
# TYPE mgw_analytics_uploads_in_flight gauge
mgw_analytics_uploads_in_flight 0
`
	reply := make(chan []byte, 1)
	m.answerMetrics(metricsRequest{reply: reply})
	if got := string(<-reply); got != want {
		t.Fatalf("/metrics:\n%s\nwant:\n%s", got, want)
	}
}

// runLoop runs a generation, loop and all, with fake workers and a fake
// tableflip, until it serves.
func runLoop(t *testing.T, n int) (m *Master, upg *fakeUpgrader, ended chan error) {
	t.Helper()
	m, upg = newTestMaster(t, n)
	ended = make(chan error, 1)
	go func() { ended <- m.run(context.Background()) }()
	select {
	case <-upg.ready:
	case err := <-ended:
		t.Fatalf("the generation ended before it served: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the generation did not serve")
	}
	return m, upg, ended
}

func call(t *testing.T, m *Master, ctl ipc.Control) ipc.Reply {
	t.Helper()
	rep, err := ipc.Call(m.controlPath(), ctl, 10*time.Second)
	if err != nil {
		t.Fatalf("%s: %v", ctl.Command, err)
	}
	return rep
}

func waitEnd(t *testing.T, ended chan error) error {
	t.Helper()
	select {
	case err := <-ended:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("the generation did not end")
		return nil
	}
}

// TestLoopServesAndStops runs the loop: the generation serves, answers
// status on mgw.sock, and ends cleanly on mgw stop.
func TestLoopServesAndStops(t *testing.T) {
	m, _, ended := runLoop(t, 2)
	rep := call(t, m, ipc.Control{Command: ipc.CommandStatus})
	if !rep.OK || rep.Status.Generation != 3 || len(rep.Status.Workers) != 2 || rep.Status.Workers[1].State != ipc.StateServing {
		t.Fatalf("status = %+v", rep)
	}
	if rep := call(t, m, ipc.Control{Command: ipc.CommandStop}); !rep.OK || rep.Message != "stopped" {
		t.Fatalf("stop = %+v", rep)
	}
	if err := waitEnd(t, ended); err != nil {
		t.Fatalf("run = %v, want nil after a stop", err)
	}
}

// TestLoopHandsOver runs the loop through a reload: the reply comes when
// the next generation serves, and this one drains and ends.
func TestLoopHandsOver(t *testing.T) {
	m, upg, ended := runLoop(t, 1)
	go func() {
		outcome := <-upg.upgrades
		outcome <- nil
		upg.handOver()
	}()
	if rep := call(t, m, ipc.Control{Command: ipc.CommandReload}); !rep.OK || rep.Message != "reloaded: generation 4 serves with 1 workers" {
		t.Fatalf("reload = %+v", rep)
	}
	if err := waitEnd(t, ended); err != nil {
		t.Fatalf("run = %v, want nil after a hand-over", err)
	}
}

// TestLoopStartFailure: a worker that exits before it serves ends the
// start with an error that says so.
func TestLoopStartFailure(t *testing.T) {
	m, _ := newTestMaster(t, 2)
	m.spawner = &dyingSpawner{}
	err := m.run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "exited before it served") {
		t.Fatalf("run = %v", err)
	}
}

// dyingSpawner starts workers that exit at once.
type dyingSpawner struct{ fakeSpawner }

func (s *dyingSpawner) Spawn(id int, exited func(error)) (Process, *ipc.Conn, error) {
	p, c, err := s.fakeSpawner.Spawn(id, exited)
	if err == nil {
		go p.(*fakeProc).die()
	}
	return p, c, err
}
