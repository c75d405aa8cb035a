package master

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cloudflare/tableflip"

	"github.com/mgw-gateway/mgw/internal/logkey"
	"github.com/mgw-gateway/mgw/ipc"
)

// upgrader is what the master uses of tableflip: the sockets and files a
// generation hands to the next, and the hand-over itself. Run gives the
// master tableflip's Upgrader; tests give it a double, so that reloads
// and upgrades run without processes.
type upgrader interface {
	// Listen returns the listener the previous generation handed on for
	// addr, or a new one, and hands it on to the next.
	Listen(network, addr string) (net.Listener, error)
	// ListenWithCallback is Listen, with callback making the new one
	// (on the socket the keeper held, when it held one).
	ListenWithCallback(network, addr string, callback func(network, addr string) (net.Listener, error)) (net.Listener, error)
	// File returns the file the previous generation handed on as name,
	// or nil; AddFile hands f on to the next generation as name.
	File(name string) (*os.File, error)
	AddFile(name string, f *os.File) error
	// HasParent reports whether a previous generation started this one.
	HasParent() bool
	// Ready tells the previous generation that this one serves.
	Ready() error
	// Exit is closed when the next generation serves, or on Stop.
	Exit() <-chan struct{}
	// Stop ends any upgrade in progress and closes Exit; the sockets
	// are handed to no one.
	Stop()
	// WaitForParent returns once the previous generation has exited.
	WaitForParent(ctx context.Context) error
	// Upgrade starts the next generation and returns once it is ready,
	// or failed.
	Upgrade() error
}

var _ upgrader = (*tableflip.Upgrader)(nil)

// upgradeRun is a reload in flight: who waits for its outcome, and the
// worker count the next generation starts.
type upgradeRun struct {
	replies   []chan ipc.Reply
	processes int
}

// keptRefusal says why a reload refuses an org, env, Edge key or secret
// that is not the instance's own, which a reload keeps, or a log level
// the new generation would not log at (nextLogLevel), or "". The same
// values are accepted, so that scripts may pass start's flags to reload;
// the CLI sends only what its command line names, never the environment.
func (m *Master) keptRefusal(ctl ipc.Control) string {
	restart := "a reload keeps the ones mgw start was given: to change them, run mgw stop, then mgw start with the new ones"
	switch {
	case ctl.Org != "" && ctl.Org != m.opts.Org, ctl.Env != "" && ctl.Env != m.opts.Env:
		return fmt.Sprintf("--org %q --env %q: the instance serves org %q env %q; %s", ctl.Org, ctl.Env, m.opts.Org, m.opts.Env, restart)
	case ctl.KeyDigest != "" && ctl.KeyDigest != ipc.Digest(m.opts.Key):
		return "--key is not the Edge key the instance started with; " + restart
	case ctl.SecretDigest != "" && ctl.SecretDigest != ipc.Digest(m.opts.Secret):
		return "--secret is not the Edge secret the instance started with; " + restart
	}
	if ctl.LogLevel != "" {
		if want, next := strings.ToLower(ctl.LogLevel), m.nextLogLevel(os.Args[1:]); want != next {
			return fmt.Sprintf("--log-level %s: the new generation would log at %s; a reload takes [edgemicro.logging] level from the config afresh unless mgw start was given --log-level, which it keeps", ctl.LogLevel, next)
		}
	}
	return ""
}

// nextLogLevel is the level the next generation will log at, lower
// case: the --log-level in args, the master's own arguments, which a
// reload runs again; else [edgemicro.logging] level of the config file as
// it is now (a config that does not load: the level in force, and the
// reload reports the config's error).
func (m *Master) nextLogLevel(args []string) string {
	for i, a := range args {
		if a == "--" {
			break
		}
		for _, name := range []string{"--log-level", "-log-level"} {
			if a == name && i+1 < len(args) {
				return strings.ToLower(args[i+1])
			}
			if v, ok := strings.CutPrefix(a, name+"="); ok {
				return strings.ToLower(v)
			}
		}
	}
	if snap, err := m.readConfig(); err == nil {
		if l := snap.Config.Edgemicro.Logging.Level; l != "" {
			return l
		}
		return "info"
	}
	level := "info"
	for i, a := range m.opts.WorkerArgs {
		if a == "--log-level" && i+1 < len(m.opts.WorkerArgs) {
			level = m.opts.WorkerArgs[i+1]
		}
	}
	return strings.ToLower(level)
}

// MaxProcesses bounds the worker count a start or a reload may ask for.
const MaxProcesses = 1024

// reloadRefusal says why a reload cannot do what ctl asks, or "".
func (m *Master) reloadRefusal(ctl ipc.Control) string {
	if ctl.Config != "" && ctl.Config != m.opts.ConfigPath {
		abs, err := filepath.Abs(m.opts.ConfigPath)
		if err != nil || abs != ctl.Config {
			running := m.snap.Source
			return fmt.Sprintf("reload reads the instance's own config file (%s) afresh and cannot switch to %s; to serve that file, run mgw stop, then mgw start --config %s",
				running, ctl.Config, ctl.Config)
		}
	}
	if ctl.Processes < 0 || ctl.Processes > MaxProcesses {
		return fmt.Sprintf("--processes %d: give 1 to %d workers", ctl.Processes, MaxProcesses)
	}
	if msg := m.keptRefusal(ctl); msg != "" {
		return msg
	}
	if ctl.Port < 0 || ctl.Port > 65535 {
		return fmt.Sprintf("--port %d is not a port number", ctl.Port)
	}
	return ""
}

// startUpgrade begins a tableflip upgrade; reply, if not nil, gets the
// outcome. A previous generation still draining is waited for first. The
// outcome comes back on m.upgradeDone (onUpgradeDone); the next
// generation serving closes the upgrader's Exit (onReplaced).
func (m *Master) startUpgrade(reply chan ipc.Reply) {
	fail := func(msg string) {
		m.log.Warn().Str(logkey.Reason, msg).Msg("reload refused")
		if reply != nil {
			reply <- ipc.Reply{Error: msg}
		}
	}
	switch {
	case m.phase == phaseUpgrading:
		fail("a reload is already in progress")
		return
	case m.phase != phaseServing:
		fail("mgw is not serving (starting or stopping)")
		return
	}
	m.setPhase(phaseUpgrading)
	run := &upgradeRun{}
	if reply != nil {
		run.replies = append(run.replies, reply)
	}
	m.upgrade = run
	errFile := filepath.Join(m.opts.RunDir, fmt.Sprintf(".mgw-upgrade-%d.err", os.Getpid()))
	_ = os.Remove(errFile)
	_ = os.Setenv(envGeneration, strconv.Itoa(m.generation+1))
	_ = os.Setenv(envRevision, strconv.FormatUint(m.snap.Revision, 10))
	_ = os.Setenv(envUpgradeErr, errFile)
	processes, port := m.opts.Processes, m.opts.Port
	if m.next.Processes > 0 {
		processes = m.next.Processes
	}
	if m.next.Port > 0 {
		port = m.next.Port
	}
	m.next = ipc.Control{}
	_ = os.Setenv(envProcesses, strconv.Itoa(processes))
	if port > 0 {
		_ = os.Setenv(envPort, strconv.Itoa(port))
	}
	run.processes = processes
	wait := m.snap.Config.DrainTimeout() + 5*time.Second
	m.log.Info().Int(logkey.NextGeneration, m.generation+1).Msg("reload: starting the next generation")
	go func() { m.upgradeDone <- m.upgradeNow(wait, errFile) }()
}

// upgradeNow runs on its own goroutine: it waits (up to wait) for a
// previous generation still draining, then starts the next generation
// and returns how that went, with the reason the next generation wrote
// to errFile when it failed.
func (m *Master) upgradeNow(wait time.Duration, errFile string) error {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := m.upg.WaitForParent(ctx); errors.Is(err, context.DeadlineExceeded) {
		return errors.New("the previous generation is still draining")
	}
	err := m.upg.Upgrade()
	// tableflip learns of its parent's exit on its own goroutine, a
	// moment after WaitForParent returns, and refuses meanwhile. It
	// has no sentinel error for that, hence the text.
	for err != nil && err.Error() == "parent hasn't exited" && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
		err = m.upg.Upgrade()
	}
	if err != nil {
		if b, rerr := os.ReadFile(errFile); rerr == nil && len(b) > 0 {
			err = fmt.Errorf("new generation failed: %s", strings.TrimSpace(string(b)))
		} else {
			err = fmt.Errorf("new generation failed: %w", err)
		}
	}
	_ = os.Remove(errFile)
	return err
}

// onUpgradeDone takes the outcome of the reload in flight: on success the
// next generation serves (and onReplaced follows, or came first); on
// failure this generation keeps serving. Either way, whoever asked for
// the reload hears how it went.
func (m *Master) onUpgradeDone(err error) {
	run := m.upgrade
	m.upgrade = nil
	if run == nil {
		run = &upgradeRun{}
	}
	if m.phase == phaseUpgrading {
		m.setPhase(phaseServing)
	}
	rep := ipc.Reply{OK: true, Message: fmt.Sprintf("reloaded: generation %d serves with %d workers", m.generation+1, run.processes)}
	if err != nil {
		m.log.Error().Err(err).Msg("reload failed; this generation keeps serving")
		rep = ipc.Reply{Error: err.Error()}
		m.reclaimControlSocket()
	} else {
		m.log.Info().Msg("reload: the next generation serves")
	}
	for _, r := range run.replies {
		r <- rep
	}
}

// reclaimControlSocket installs this generation's control socket again
// when a failed next generation renamed its own over it.
func (m *Master) reclaimControlSocket() {
	if m.ctl == nil || m.ctl.owned() {
		return
	}
	m.ctl.close(false)
	if ctl, err := listenControl(m.ctl.path, m.control, m.done, &m.ctlWG); err == nil {
		m.ctl = ctl
	} else {
		m.log.Error().Err(err).Msg("restoring the control socket")
	}
}

// onReplaced runs when the upgrader's Exit closes. When this generation
// serves, that means the next one does: this one stops watching and
// answering, and drains. During a stop it is the stop's own upg.Stop, and
// nothing more happens.
func (m *Master) onReplaced() {
	m.wake.upgExit = nil
	if !m.phase.serving() {
		return
	}
	m.setPhase(phaseReplaced)
	m.log.Info().Msg("replaced by the next generation: draining")
	m.wake.stopWatch()
	if m.ctl != nil {
		m.ctl.close(false)
	}
	// The next generation answers on the same socket. Not on this
	// goroutine: the requests being finished wait on it.
	go m.stopMetrics()
	m.beginDrain(0)
}
