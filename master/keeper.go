package master

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mgw-gateway/mgw/internal/logkey"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// KeeperEnv is set in the environment of a master started by a keeper (to
// the keeper's pid). A process that finds it runs the master; tableflip
// passes the environment on, so every later generation finds it too.
const KeeperEnv = "MGW_KEEPER"

// Kept reports whether this process was started by a keeper, and so is a master.
func Kept() bool { return os.Getenv(KeeperEnv) != "" }

// Signals returns a channel that receives every signal the master and the
// keeper act on. Call it first thing, so that a signal during start is
// seen, never the default action that would kill the process.
func Signals() chan os.Signal {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGCHLD)
	return sigs
}

// KeeperOptions configure a keeper.
type KeeperOptions struct {
	// RunDir holds mgw.pid, which names the serving master.
	RunDir string
	// Executable and Args start a master: Args[0] is the program name.
	Executable string
	Args       []string
	// Signals come from Signals.
	Signals chan os.Signal
	Logger  zerolog.Logger
	// MaxFailures is how many restarts in a row may fail before the
	// keeper gives up. Defaults to 5.
	MaxFailures int
}

// Restart delays of a master that died.
const (
	keeperBackoffBase = time.Second
	keeperBackoffMax  = 30 * time.Second
	// keeperRestartSoon is the delay after a master that had served for
	// keeperStable: its clients wait in the backlog the keeper holds.
	keeperRestartSoon = 100 * time.Millisecond
	keeperStable      = 10 * time.Second
)

// keeper is the process `mgw start` leaves in the foreground for the life
// of the instance: it is the child subreaper of every master generation,
// passes signals on to the serving master, restarts a master that dies,
// and reaps every orphan.
type keeper struct {
	opts    KeeperOptions
	log     zerolog.Logger
	pidPath string
	self    int

	current  int                 // the master this keeper started last
	masters  map[int]bool        // every master pid seen (started, named by mgw.pid, or a child that is no worker)
	last     *syscall.WaitStatus // how the last master to exit ended
	restarts int                 // masters started after the first
	failures int                 // restarts in a row that did not serve
	served   bool                // the current attempt has served
	servedAt time.Time           // since when
	stopping bool
	restart  <-chan time.Time
	// carry is what a reload changed (worker count, port), read from the
	// serving master's environment, for a master this keeper restarts.
	carry      []string
	carriedFor int
	// ch is the channel from the masters; held the listening sockets of
	// the serving generation, handed to a master this keeper restarts.
	ch   *keeperChannel
	held []keeperSocket
}

// Keep runs the keeper until the instance has stopped, and returns the
// exit status for `mgw start`: 0 after a clean stop, 1 when the first
// master could not start, the instance died and could not be restarted,
// or it died while stopping.
func Keep(opts KeeperOptions) int {
	if opts.MaxFailures <= 0 {
		opts.MaxFailures = 5
	}
	k := &keeper{
		opts:    opts,
		log:     opts.Logger.With().Str(logkey.Component, logkey.ComponentKeeper).Int(logkey.PID, os.Getpid()).Logger(),
		pidPath: filepath.Join(opts.RunDir, PIDFileName),
		self:    os.Getpid(),
		masters: map[int]bool{},
	}
	lock, err := lockRunDir(opts.RunDir)
	if err != nil {
		k.log.Error().Err(err).Msg("starting the instance")
		return 1
	}
	defer lock.Close()
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		// Without it a generation started by a reload is re-parented to
		// init when its parent exits, and the keeper loses sight of it.
		k.log.Error().Err(err).Msg("becoming the child subreaper")
		return 1
	}
	var msgs <-chan keeperDelivery
	if ch, err := newKeeperChannel(); err != nil {
		k.log.Warn().Err(err).Msg("the keeper will not hold the listening sockets: while a dead master is restarted, connections are refused")
	} else {
		k.ch, msgs = ch, ch.msgs
		defer ch.close()
	}
	defer k.letGo()
	if err := k.spawn(); err != nil {
		k.log.Error().Err(err).Msg("starting the master")
		return 1
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case sig := <-opts.Signals:
			s, _ := sig.(syscall.Signal)
			switch s {
			case syscall.SIGCHLD:
			case syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT:
				if !k.stopping {
					k.log.Info().Stringer(logkey.Signal, s).Msg("stopping the instance")
				}
				k.stopping = true
				k.restart = nil
				k.letGo() // a stop refuses new connections at once
				k.forward(s)
			default:
				k.forward(s)
			}
		case d := <-msgs:
			k.onMessage(d)
		case <-tick.C:
		case <-k.restart:
			k.restart = nil
			if err := k.spawn(); err != nil {
				k.log.Error().Err(err).Msg("restarting the master")
				return 1
			}
		}
		if code, done := k.check(); done {
			return code
		}
	}
}

// spawn starts a master: this executable with the same arguments.
func (k *keeper) spawn() error {
	kenv, kfiles := keeperFiles(k.ch, k.held)
	env := append(append(append(os.Environ(), k.carry...), kenv...), KeeperEnv+"="+strconv.Itoa(k.self))
	pid, err := syscall.ForkExec(k.opts.Executable, k.opts.Args, &syscall.ProcAttr{
		Env:   env,
		Files: append([]uintptr{0, 1, 2}, kfiles...),
	})
	if err != nil {
		return fmt.Errorf("starting %s: %w", k.opts.Executable, err)
	}
	if k.current != 0 {
		k.restarts++
	}
	k.current, k.served = pid, false
	k.masters[pid] = true
	k.log.Debug().Int(logkey.MasterPID, pid).Msg("master started")
	return nil
}

// check reaps what has exited and decides what the instance's state asks
// for; done is true when the keeper should exit with code.
func (k *keeper) check() (code int, done bool) {
	k.reap()
	live := k.liveMasters()
	if pid := k.servingPID(); pid != 0 {
		k.masters[pid] = true
		if k.carriedFor != pid {
			k.carriedFor, k.carry = pid, reloadEnv(pid)
		}
		if !k.served {
			k.served, k.servedAt = true, time.Now()
			k.failures = 0
		}
	}
	if len(live) > 0 || k.restart != nil {
		return 0, false
	}
	// No master is left.
	named, _ := readPID(k.pidPath)
	died := named != 0 && k.masters[named]
	clean := k.last != nil && k.last.Exited() && k.last.ExitStatus() == 0
	how := "unknown"
	if k.last != nil {
		how = describeWait(*k.last)
	}
	switch {
	case k.stopping:
		if clean && !died {
			k.log.Info().Msg("instance stopped")
			return 0, true
		}
		k.log.Error().Str(logkey.Exit, how).Msg("the master did not stop cleanly")
		return 1, true
	case died:
		_ = os.Remove(k.pidPath)
		stable := k.served && time.Since(k.servedAt) >= keeperStable
		d := restartDelay(k.failures, stable)
		k.schedule(d)
		k.log.Error().Int(logkey.MasterPID, named).Str(logkey.Exit, how).Dur(logkey.RestartInMS, d).Msg("the master died: restarting it")
		return 0, false
	case clean:
		k.log.Info().Msg("instance stopped")
		return 0, true
	case k.restarts == 0:
		// The first master could not start; it said why on stderr.
		return 1, true
	default:
		k.failures++
		if k.failures >= k.opts.MaxFailures {
			k.log.Error().Int(logkey.Failures, k.failures).Msg("the master failed to start again and again: giving up")
			return 1, true
		}
		d := restartDelay(k.failures, false)
		k.schedule(d)
		k.log.Error().Str(logkey.Exit, how).Dur(logkey.RestartInMS, d).Msg("the restarted master failed to start: restarting it")
		return 0, false
	}
}

// onMessage acts on a message from a master: a generation that serves
// hands over its listening sockets, which replace those held (a reload
// may have moved the port); a stopping one asks the keeper to let go.
func (k *keeper) onMessage(d keeperDelivery) {
	if d.err != nil {
		k.log.Warn().Err(d.err).Msg("a message on the keeper's channel was refused")
		return
	}
	switch d.msg.kind {
	case keeperHold:
		k.letGo()
		if k.stopping {
			closeFDs(d.fds)
			return
		}
		for i, fd := range d.fds {
			k.held = append(k.held, keeperSocket{name: d.msg.names[i], fd: fd})
		}
		k.log.Debug().Int(logkey.MasterPID, d.msg.pid).Strs(logkey.Addr, d.msg.names).Msg("holding the serving generation's listening sockets")
	case keeperRelease:
		k.letGo()
		closeFDs(d.fds) // the master waits for this
		k.log.Debug().Int(logkey.MasterPID, d.msg.pid).Msg("the master stops: the listening sockets are let go")
	}
}

// letGo closes the listening sockets the keeper holds.
func (k *keeper) letGo() {
	for _, s := range k.held {
		_ = unix.Close(s.fd)
	}
	k.held = nil
}

// schedule restarts the master after d.
func (k *keeper) schedule(d time.Duration) {
	k.restart = time.After(d)
}

// restartDelay is how long the keeper waits before it restarts a master:
// keeperRestartSoon after a master that had served for keeperStable
// (stable), so that the clients waiting in the backlog wait little;
// keeperBackoffBase after one that died sooner, twice as long after each
// restart in a row that did not serve (failures), up to keeperBackoffMax.
// Never at once: a master that dies as it starts must not loop.
func restartDelay(failures int, stable bool) time.Duration {
	if stable && failures == 0 {
		return keeperRestartSoon
	}
	d := keeperBackoffBase
	for i := 0; i < failures && d < keeperBackoffMax; i++ {
		d *= 2
	}
	return min(d, keeperBackoffMax)
}

// reap collects every child that has exited: masters, and the workers of
// a dead master, re-parented here.
func (k *keeper) reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
		if k.masters[pid] {
			st := ws
			k.last = &st
			k.log.Debug().Int(logkey.MasterPID, pid).Str(logkey.Exit, describeWait(ws)).Msg("master exited")
		}
	}
}

// liveMasters returns the children of the keeper that are not workers
// (nor reaped yet): the master it started, or the generation that
// followed it.
func (k *keeper) liveMasters() []int {
	var out []int
	for _, pid := range children(k.self) {
		if procState(pid) == 'Z' {
			// Exiting, its command line gone: a master known as one is
			// waited for; any other zombie is a worker, or about to be
			// reaped with its status unknown anyway.
			if k.masters[pid] {
				out = append(out, pid)
			}
			continue
		}
		if isWorkerProcess(pid) {
			continue
		}
		k.masters[pid] = true
		out = append(out, pid)
	}
	return out
}

// servingPID returns the pid in mgw.pid when it names a live descendant.
func (k *keeper) servingPID() int {
	pid, err := readPID(k.pidPath)
	if err != nil || pid == 0 || !descendantOf(pid, k.self) {
		return 0
	}
	return pid
}

// forward sends sig to the serving master, or to the one starting.
func (k *keeper) forward(sig syscall.Signal) {
	target := k.servingPID()
	if target == 0 {
		for _, pid := range k.liveMasters() {
			target = pid
			if pid == k.current {
				break
			}
		}
	}
	if target == 0 {
		return
	}
	if err := syscall.Kill(target, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		k.log.Warn().Err(err).Int(logkey.MasterPID, target).Stringer(logkey.Signal, sig).Msg("passing a signal on")
	}
}

// reloadEnv returns the variables of pid's environment through which a
// reload changed the worker count or the port.
func reloadEnv(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return nil
	}
	var out []string
	for _, kv := range strings.Split(string(b), "\x00") {
		if strings.HasPrefix(kv, envProcesses+"=") || strings.HasPrefix(kv, envPort+"=") {
			out = append(out, kv)
		}
	}
	return out
}

func describeWait(ws syscall.WaitStatus) string {
	switch {
	case ws.Signaled():
		return "killed by " + unix.SignalName(ws.Signal())
	case ws.Exited():
		return "exit status " + strconv.Itoa(ws.ExitStatus())
	}
	return fmt.Sprintf("wait status %#x", uint32(ws))
}

// readPID reads a pid file.
func readPID(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// children lists the children of pid not yet reaped, from every thread's
// /proc/PID/task/TID/children (a re-parented orphan may be attached to
// any thread of its new parent). A zombie counts: a multi-threaded
// process shows as one while its other threads exit, before wait4 can
// report it, and its exit status is not known until then.
func children(pid int) []int {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	seen := map[int]bool{}
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			c, err := strconv.Atoi(f)
			if err == nil && !seen[c] && procState(c) != 0 {
				seen[c] = true
				out = append(out, c)
			}
		}
	}
	return out
}

// procState returns the state letter of pid (0 when it is gone).
func procState(pid int) byte {
	st, _, ok := procStat(pid)
	if !ok {
		return 0
	}
	return st
}

// procStat returns the state and parent of pid.
func procStat(pid int) (state byte, ppid int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return 0, 0, false
	}
	f := strings.Fields(s[i+2:])
	if len(f) < 2 {
		return 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	return f[0][0], ppid, true
}

// descendantOf reports whether pid is a live process below ancestor.
func descendantOf(pid, ancestor int) bool {
	for range 8 {
		st, ppid, ok := procStat(pid)
		if !ok || st == 'Z' {
			return false
		}
		if ppid == ancestor {
			return true
		}
		if ppid <= 1 {
			return false
		}
		pid = ppid
	}
	return false
}

// isWorkerProcess reports whether pid runs `mgw worker`.
func isWorkerProcess(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(string(b), "\x00")
	return len(args) > 1 && args[1] == "worker"
}
