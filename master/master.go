package master

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cloudflare/tableflip"
	"github.com/rs/zerolog"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/configs/edge"
	"github.com/mgw-gateway/mgw/ipc"
	"github.com/mgw-gateway/mgw/plugins"
	"github.com/mgw-gateway/mgw/plugins/analytics"
	"github.com/mgw-gateway/mgw/plugins/zone"
	"github.com/mgw-gateway/mgw/worker/balance"
)

// Variables a master generation passes to the next one through the
// environment tableflip gives it. Workers never see them.
const (
	envGeneration = "MGW_GENERATION"      // the next generation's number
	envRevision   = "MGW_REVISION"        // the last revision served, so revisions keep increasing
	envUpgradeErr = "MGW_UPGRADE_ERRFILE" // where a failing new generation writes why
	// The worker count and port a reload asked for (mgw reload -p N -r
	// PORT). They override the command line's for every later
	// generation; the keeper passes them on to a master it restarts.
	envProcesses = "MGW_RELOAD_PROCESSES"
	envPort      = "MGW_RELOAD_PORT"
)

// File names in the run directory.
const (
	PIDFileName     = "mgw.pid"
	ControlFileName = "mgw.sock"
	// ZoneFileName is the limit zone every worker maps; it outlives
	// generations so that quotas and spike arrests survive reloads.
	ZoneFileName = "mgw.zone"
)

// Options configure a master.
type Options struct {
	// ConfigPath is the configuration file; empty means the embedded default.
	ConfigPath string
	// RunDir holds mgw.pid and mgw.sock.
	RunDir string
	// Processes is the number of workers. Defaults to 1.
	Processes int
	// Port, when not zero, overrides edgemicro.port.
	Port int
	// Logger is the master's logger.
	Logger zerolog.Logger
	// Executable is the binary workers run. Defaults to os.Executable().
	Executable string
	// WorkerArgs follow `worker --id N` on a worker's command line.
	WorkerArgs []string
	// LookupEnv resolves ${VAR} in the configuration. Defaults to os.LookupEnv.
	LookupEnv configs.LookupEnv
	// StartTimeout bounds the wait for every worker to serve. Defaults to 15s.
	StartTimeout time.Duration
	// Logs is the log file, when logging goes to one: reopened on
	// SIGUSR1 and rotated by size and age. Optional.
	Logs LogFile
	// ConfigDir holds the Edge cache and the local token key pair.
	ConfigDir string
	// Org, Env, Key and Secret identify the gateway to Edge (Edge mode).
	Org, Env, Key, Secret string
	// Signals, when set, is the channel from Signals, made by the caller
	// before anything else; otherwise Run makes it first thing.
	Signals chan os.Signal
}

type phase int

const (
	phaseStarting phase = iota
	phaseServing
	phaseDraining
)

// LogFile is the file the instance logs to.
type LogFile interface {
	// Reopen opens the file at its path again (after logrotate moved it).
	Reopen() error
	// Rotate rotates the file when it is over its size or age, and
	// reports whether it did.
	Rotate(now time.Time) (bool, error)
}

// logCheckInterval is how often the log file's size and age are checked
// (a stat, and one of the config file): often enough that a busy access
// log overshoots max_size_mb by a tenth of a second of logging (at 9k
// requests/s with the access log, 1 MB became 3.5 MB with checks every
// second, 50 MB every ten).
const logCheckInterval = 100 * time.Millisecond

// Master is one generation of the master process.
type Master struct {
	opts       Options
	log        zerolog.Logger
	upg        *tableflip.Upgrader
	link       *keeperLink // to the keeper, which holds the sockets while no master serves
	sup        *supervisor
	generation int
	started    time.Time
	snap       *configs.Snapshot
	phase      phase
	lastError  *string

	control     chan controlRequest
	ctl         *controlSocket
	ctlWG       sync.WaitGroup
	done        chan struct{}
	doneOnce    sync.Once
	upgrading   bool
	upgradeRep  []chan ipc.Reply
	upgradeDone chan error
	stopReplies []chan ipc.Reply
	replaced    bool
	// handedOver is replaced for the metrics handlers, which run outside
	// the loop: a probe answered after the loop ended is still ready.
	handedOver atomic.Bool

	edge   edgeState
	polled chan pollResult

	analytics     atomic.Pointer[analytics.Queue] // read by the workers' channel readers
	stopAnalytics func()
	stopQuotas    func()
	quotas        *quotaSyncer // Edge mode: the edge quota backend's syncer
	metricsReqs   chan metricsRequest
	quitting      bool
	dryRun        bool // Preflight: load as start does, write nothing

	// The gateway's listening socket as this process holds it: closed at
	// the start of a stop, so that new connections are refused at once.
	ln          net.Listener
	lnFile      *os.File
	metrics     *http.Server
	metricsLn   net.Listener
	metricsOnce sync.Once
	metricsStop sync.Once
	// reloadAsked is a SIGHUP that came before the generation served.
	reloadAsked bool
	// stopping is set once the listener is closed for a stop.
	stopping bool
	// next is what the reload being started asked for; nextProcesses the
	// worker count the next generation starts.
	next          ipc.Control
	nextProcesses int
}

// Run starts a master generation and serves until it is stopped or
// replaced by the next one. It returns nil after a clean stop or hand-over.
func Run(ctx context.Context, opts Options) (err error) {
	if opts.Signals == nil {
		opts.Signals = Signals()
	}
	defer signal.Stop(opts.Signals)
	if n, err := strconv.Atoi(os.Getenv(envProcesses)); err == nil && n > 0 {
		opts.Processes = n
	}
	if n, err := strconv.Atoi(os.Getenv(envPort)); err == nil && n > 0 {
		opts.Port = n
	}
	if opts.Processes < 1 {
		opts.Processes = 1
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 15 * time.Second
	}
	if opts.LookupEnv == nil {
		opts.LookupEnv = os.LookupEnv
	}
	if opts.Executable == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("finding the mgw executable: %w", err)
		}
		opts.Executable = exe
	}
	gen := 1
	if g, err := strconv.Atoi(os.Getenv(envGeneration)); err == nil && g > 0 {
		gen = g
	}
	m := &Master{
		opts:        opts,
		generation:  gen,
		started:     time.Now(),
		control:     make(chan controlRequest),
		done:        make(chan struct{}),
		upgradeDone: make(chan error, 1),
		polled:      make(chan pollResult),
		metricsReqs: make(chan metricsRequest),
	}
	m.edge.keys = &edge.KeyCache{Verify: m.verifyKey}
	m.edge.keyCalls = make(chan struct{}, maxKeyCalls)
	m.log = opts.Logger.With().Str("component", "master").Int("generation", gen).Int("pid", os.Getpid()).Logger()
	defer m.closeDone()

	if err := os.MkdirAll(opts.RunDir, 0o700); err != nil {
		return fmt.Errorf("creating run dir: %w", err)
	}
	// The pid file is written by becomeReady, not by tableflip: tableflip
	// writes it and then fails Ready when the previous generation has died
	// meanwhile, and this generation must serve on its own then.
	upg, err := tableflip.New(tableflip.Options{
		UpgradeTimeout: opts.StartTimeout + 15*time.Second,
	})
	if err != nil {
		return fmt.Errorf("setting up upgrades: %w", err)
	}
	defer upg.Stop()
	m.upg = upg
	m.link = newKeeperLink(upg, m.log)
	defer func() {
		// A new generation that cannot start tells the old one why.
		if p := os.Getenv(envUpgradeErr); err != nil && p != "" && upg.HasParent() {
			_ = os.WriteFile(p, []byte(err.Error()), 0o600)
		}
	}()
	return m.run(ctx)
}

func (m *Master) run(ctx context.Context) error {
	sockPath := filepath.Join(m.opts.RunDir, ControlFileName)
	if !m.upg.HasParent() {
		if err := checkRunning(sockPath); err != nil {
			return err
		}
	}
	base, _ := strconv.ParseUint(os.Getenv(envRevision), 10, 64)
	sigs := m.opts.Signals
	snap, stopped, err := m.loadFirst(sigs)
	if err != nil || stopped {
		return err
	}
	snap.Revision = base + 1
	m.snap = snap

	cfg := &snap.Config.Edgemicro
	addr := net.JoinHostPort(cfg.Address, strconv.Itoa(cfg.Port))
	ln, err := m.listen(addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", addr, err)
	}
	lnFile, err := dupListener(ln)
	if err != nil {
		return err
	}
	m.ln, m.lnFile = ln, lnFile
	defer m.closeListener()

	z, err := m.openZone()
	if err != nil {
		return err
	}
	defer func() { _ = z.Close() }()
	args := append([]string{"--generation", strconv.Itoa(m.generation)}, m.opts.WorkerArgs...)
	bal, err := balance.Create(m.opts.Processes)
	if err != nil {
		return err
	}
	defer func() { _ = bal.Close() }()
	spawner := &execSpawner{executable: m.opts.Executable, args: args, listener: lnFile, zone: z.File(), balance: bal, env: workerEnv(m.opts.Processes)}
	m.sup = newSupervisor(m.opts.Processes, spawner, realClock{}, m.log)
	m.sup.askKey = m.askKey
	m.sup.records = m.addRecords
	m.sup.recordsBuffer = m.recordsBuffer
	if err := m.applyAnalytics(snap); err != nil {
		return err
	}
	m.startQuotaSync(snap, z)
	if err := m.listenMetrics(snap); err != nil {
		return err
	}
	if err := m.sup.setConfig(snap); err != nil {
		return err
	}
	m.log.Info().Str("addr", ln.Addr().String()).Int("workers", m.opts.Processes).
		Str("config", snap.Source).Uint64("revision", snap.Revision).Msg("starting")
	m.sup.startAll()
	startDeadline := time.NewTimer(m.opts.StartTimeout)
	defer startDeadline.Stop()

	var (
		watch       *watcher
		fileChanged <-chan struct{}
		drainKill   <-chan time.Time
		exitTimeout <-chan time.Time
		pollTick    <-chan time.Time
		rotateTick  <-chan time.Time
	)
	beats := time.NewTicker(time.Second)
	defer beats.Stop()
	if m.opts.Logs != nil {
		t := time.NewTicker(logCheckInterval)
		defer t.Stop()
		rotateTick = t.C
	}
	// The Edge poll follows the serving revision's interval.
	var (
		poll      *time.Ticker
		pollEvery time.Duration
	)
	setPoll := func(first bool) {
		d := pollInterval(&m.snap.Config)
		if d == pollEvery {
			return
		}
		if poll != nil {
			poll.Stop()
			poll, pollTick = nil, nil
		}
		if d > 0 {
			poll = time.NewTicker(d)
			pollTick = poll.C
		}
		if !first {
			m.log.Info().Dur("interval", d).Msg("Edge poll interval changed")
		}
		pollEvery = d
	}
	setPoll(true)
	// Closed when the next generation serves, and also by a stop's
	// upg.Stop: only the first means this generation was replaced.
	upgExit := m.upg.Exit()
	defer func() {
		if poll != nil {
			poll.Stop()
		}
	}()
	defer func() {
		if watch != nil {
			watch.close()
		}
	}()

	for {
		select {
		case ev := <-m.sup.Events():
			m.sup.handle(ev)
			if m.phase == phaseStarting {
				if err := m.sup.startFailure(); err != nil {
					m.abortStart()
					return fmt.Errorf("starting workers: %w", err)
				}
				if m.sup.allServing() {
					startDeadline.Stop()
					if err := m.becomeReady(sockPath); err != nil {
						m.abortStart()
						return err
					}
					if m.snap.Source != configs.DefaultSource {
						if watch, err = newWatcher(m.snap.Source, m.log); err != nil {
							m.log.Warn().Err(err).Msg("config file changes will not be seen")
						} else {
							fileChanged = watch.changed
						}
					}
					if m.reloadAsked {
						m.reloadAsked = false
						m.log.Info().Msg("reloading, as SIGHUP asked during start")
						m.startUpgrade(nil)
					}
				}
			}

		case <-startDeadline.C:
			if m.phase == phaseStarting {
				m.abortStart()
				return fmt.Errorf("starting workers: not every worker served within %s", m.opts.StartTimeout)
			}

		case <-fileChanged:
			m.reloadFile()
			setPoll(false)

		case <-pollTick:
			m.startPoll()

		case <-beats.C:
			m.sup.checkBeats()

		case now := <-rotateTick:
			rotated, err := m.opts.Logs.Rotate(now)
			if err != nil {
				m.log.Error().Err(err).Msg("rotating logs")
			}
			if rotated {
				m.sup.signalAll(syscall.SIGUSR1)
				m.log.Info().Msg("log file rotated")
			}

		case req := <-m.metricsReqs:
			m.answerMetrics(req)

		case r := <-m.polled:
			m.onPoll(r)
			setPoll(false)

		case req := <-m.control:
			m.onControl(req)

		case sig := <-sigs:
			if sig == syscall.SIGCHLD {
				continue // the workers' exits come through their Wait
			}
			m.log.Info().Stringer("signal", sig).Msg("signal received")
			switch sig {
			case syscall.SIGHUP:
				if m.phase == phaseStarting {
					m.reloadAsked = true // once this generation serves
					continue
				}
				m.startUpgrade(nil)
			case syscall.SIGTERM, syscall.SIGINT:
				m.beginStop(0)
			case syscall.SIGQUIT:
				m.sup.draining = true
				m.quitting = true // stop now: no long analytics flush either
				m.closeListener()
				m.sup.killAll()
				m.cleanup()
				return nil
			case syscall.SIGUSR1:
				if m.opts.Logs != nil {
					if err := m.opts.Logs.Reopen(); err != nil {
						m.log.Error().Err(err).Msg("reopening logs")
					}
				}
				m.sup.signalAll(syscall.SIGUSR1) // each worker reopens its own descriptor
			}

		case err := <-m.upgradeDone:
			m.finishUpgrade(err)

		case <-upgExit:
			upgExit = nil
			if !m.replaced && !m.stopping {
				m.replaced = true
				m.handedOver.Store(true)
				m.log.Info().Msg("replaced by the next generation: draining")
				if watch != nil {
					watch.close()
					watch, fileChanged = nil, nil
				}
				if m.ctl != nil {
					m.ctl.close(false)
				}
				// The next generation answers on the same socket. Not on
				// this goroutine: the requests being finished wait on it.
				go m.stopMetrics()
				m.beginDrain(0)
			}

		case <-ctx.Done():
			m.beginStop(0)

		case <-drainKill:
			m.log.Warn().Msg("drain timeout passed: killing the remaining workers")
			m.sup.killAll()
			drainKill = nil
			exitTimeout = time.After(5 * time.Second)

		case <-exitTimeout:
			m.log.Error().Msg("workers did not exit after SIGKILL")
			m.cleanup()
			return errors.New("workers did not exit")
		}

		if m.phase == phaseDraining {
			if drainKill == nil && exitTimeout == nil {
				drainKill = time.After(m.sup.drainOrder.Timeout + 2*time.Second)
			}
			if m.sup.allExited() {
				m.log.Info().Msg("all workers exited")
				m.cleanup()
				return nil
			}
		}
	}
}

// loadFirst loads the configuration of a starting generation (in Edge
// mode this may wait on Edge for a while) and keeps answering signals
// meanwhile: SIGHUP is a reload once the generation serves, SIGTERM,
// SIGINT and SIGQUIT end the start without serving (stopped is true).
func (m *Master) loadFirst(sigs <-chan os.Signal) (snap *configs.Snapshot, stopped bool, err error) {
	type result struct {
		snap *configs.Snapshot
		err  error
	}
	done := make(chan result, 1)
	go func() {
		s, err := m.load()
		done <- result{s, err}
	}()
	for {
		select {
		case r := <-done:
			return r.snap, false, r.err
		case sig := <-sigs:
			switch sig {
			case syscall.SIGHUP:
				m.log.Info().Msg("SIGHUP during start: reloading once serving")
				m.reloadAsked = true
			case syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT:
				m.log.Info().Stringer("signal", sig).Msg("stop asked during start: exiting without serving")
				return nil, true, nil
			case syscall.SIGUSR1:
				if m.opts.Logs != nil {
					_ = m.opts.Logs.Reopen()
				}
			}
		}
	}
}

// listenRetry bounds how long a first generation waits for a port held by
// the draining workers of a master that was killed: they close their
// copies of the socket as soon as they read EOF on their channels.
const listenRetry = 3 * time.Second

// listen opens the gateway's socket through tableflip (a later
// generation inherits it).
func (m *Master) listen(addr string) (net.Listener, error) {
	deadline := time.Now().Add(listenRetry)
	for {
		ln, err := m.link.listen(m.upg, "tcp", addr)
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) || m.upg.HasParent() || time.Now().After(deadline) {
			return ln, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// writePIDFile writes this process's pid to path, atomically.
func writePIDFile(path string) error {
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

// zoneFDName names the in-memory limit zone among the descriptors
// tableflip hands to the next generation.
const zoneFDName = "mgw.zone"

// openZone maps the limit zone: the in-memory zone of the previous
// generation when it had one, else the file in the run dir (in memory
// when the file's pages cannot be reserved, handed on at the next reload).
func (m *Master) openZone() (*zone.Zone, error) {
	if f, err := m.upg.File(zoneFDName); err == nil && f != nil {
		if z, err := zone.Map(f); err == nil {
			m.log.Warn().Msg("the limit zone lives in memory, as the previous generation's did")
			return z, nil
		}
		_ = f.Close()
	}
	z, err := zone.Open(filepath.Join(m.opts.RunDir, ZoneFileName), zone.DefaultSlots)
	if err != nil {
		return nil, fmt.Errorf("%w (free some space in the run dir %s, or give mgw another with --run-dir)", err, m.opts.RunDir)
	}
	if why := z.InMemory(); why != "" {
		m.log.Warn().Str("reason", why).Msg("the limit zone lives in memory: limits hold across reloads, not across a stop and start")
		if err := m.upg.AddFile(zoneFDName, z.File()); err != nil {
			m.log.Warn().Err(err).Msg("the next generation will not inherit the in-memory limit zone")
		}
	}
	return z, nil
}

// load reads the configuration and checks what the workers will build.
func (m *Master) load() (*configs.Snapshot, error) {
	var snap *configs.Snapshot
	var err error
	if m.opts.ConfigPath == "" {
		snap, err = configs.Default(m.opts.LookupEnv)
	} else {
		snap, err = configs.Load(m.opts.ConfigPath, m.opts.LookupEnv)
	}
	if err != nil {
		return nil, err
	}
	if m.opts.Port != 0 {
		snap.Config.Edgemicro.Port = m.opts.Port
	}
	snap.Org, snap.Env = m.opts.Org, m.opts.Env
	if err := configs.LoadTLS(snap); err != nil {
		return nil, fmt.Errorf("config %s: %w", snap.Source, err)
	}
	if snap.Config.EdgeMode() {
		if err := m.mergeEdge(snap); err != nil {
			return nil, err
		}
	} else if err := m.localKeys(snap); err != nil {
		return nil, err
	}
	if err := plugins.Check(snap, plugins.Env{Logger: m.log}); err != nil {
		return nil, fmt.Errorf("config %s: %w", snap.Source, err)
	}
	return snap, nil
}

// becomeReady installs the control socket and tells tableflip (and so the
// previous generation) that this generation serves.
func (m *Master) becomeReady(sockPath string) error {
	ctl, err := listenControl(sockPath, m.control, m.done, &m.ctlWG)
	if err != nil {
		return err
	}
	m.ctl = ctl
	if err := writePIDFile(filepath.Join(m.opts.RunDir, PIDFileName)); err != nil {
		return fmt.Errorf("writing the pid file: %w", err)
	}
	m.serveMetrics()
	if err := m.upg.Ready(); err != nil {
		// Only telling the previous generation can fail here: it died
		// during the hand-over. Its workers drain by themselves (EOF on
		// their channels); this generation serves on its own.
		m.log.Warn().Err(err).Msg("the previous generation died before this one served: serving on its own")
	}
	m.link.hold()
	m.phase = phaseServing
	m.sup.starting = false
	m.log.Info().Uint64("revision", m.snap.Revision).Msg("serving")
	return nil
}

func (m *Master) abortStart() {
	m.sup.draining = true
	m.sup.killAll()
	if m.ctl != nil {
		m.ctl.close(true)
	}
}

// reloadFile pushes an edited configuration file to the workers in place.
func (m *Master) reloadFile() {
	if m.phase != phaseServing {
		return
	}
	snap, err := m.load()
	if err != nil {
		msg := err.Error()
		m.lastError = &msg
		m.log.Error().Err(err).Uint64("serving_revision", m.snap.Revision).Msg("config edit rejected; the last good config keeps serving")
		return
	}
	m.lastError = nil
	if snap.Checksum == m.snap.Checksum {
		return
	}
	old := m.snap.Config.Edgemicro
	n := snap.Config.Edgemicro
	if old.Port != n.Port || old.Address != n.Address || old.MaxConnections != n.MaxConnections ||
		old.KeepAliveTimeout != n.KeepAliveTimeout || old.MaxHeaderBytes != n.MaxHeaderBytes {
		m.log.Warn().Msg("port, address, max_connections, keep_alive_timeout and max_header_bytes change only on mgw reload")
	}
	// The master's own parts follow the revision before the workers do,
	// so that a worker's first record finds a queue.
	if err := m.applyAnalytics(snap); err != nil {
		msg := err.Error()
		m.lastError = &msg
		m.log.Error().Err(err).Uint64("serving_revision", m.snap.Revision).Msg("config edit rejected; the last good config keeps serving")
		return
	}
	if m.quotas != nil {
		m.quotas.setURI(quotaApplyURI(&snap.Config, m.opts.Org, m.opts.Env))
	}
	snap.Revision = m.snap.Revision + 1
	if err := m.sup.setConfig(snap); err != nil {
		m.log.Error().Err(err).Msg("pushing config")
		return
	}
	m.snap = snap
	m.log.Info().Uint64("revision", snap.Revision).Int("proxies", len(snap.Config.Proxies)).Msg("config changed: pushed to workers")
}

func (m *Master) onControl(req controlRequest) {
	switch req.ctl.Command {
	case ipc.CommandStatus:
		st := m.status()
		req.reply <- ipc.Reply{OK: true, Status: &st}
	case ipc.CommandReload:
		if msg := m.reloadRefusal(req.ctl); msg != "" {
			m.log.Warn().Msg("reload refused: " + msg)
			req.reply <- ipc.Reply{Error: msg}
			return
		}
		m.next = req.ctl
		m.startUpgrade(req.reply)
	case ipc.CommandStop:
		if m.phase == phaseDraining && !m.replaced {
			m.stopReplies = append(m.stopReplies, req.reply)
			return
		}
		if m.replaced || m.upgrading {
			req.reply <- ipc.Reply{Error: "a reload is in progress; stop the new generation once it serves"}
			return
		}
		m.stopReplies = append(m.stopReplies, req.reply)
		m.beginStop(req.ctl.Timeout)
	default:
		req.reply <- ipc.Reply{Error: fmt.Sprintf("unknown command %q", req.ctl.Command)}
	}
}

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
	if ctl.Processes < 0 || ctl.Processes > maxProcesses {
		return fmt.Sprintf("--processes %d: give 1 to %d workers", ctl.Processes, maxProcesses)
	}
	if msg := m.keptRefusal(ctl); msg != "" {
		return msg
	}
	if ctl.Port < 0 || ctl.Port > 65535 {
		return fmt.Sprintf("--port %d is not a port number", ctl.Port)
	}
	return ""
}

// keptRefusal says why a reload refuses an org, env, Edge key or secret
// or log level that is not the instance's own, which a reload keeps, or
// "". The same values are accepted, so that scripts may pass start's
// flags to reload.
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
		level := ""
		for i, a := range m.opts.WorkerArgs {
			if a == "--log-level" && i+1 < len(m.opts.WorkerArgs) {
				level = m.opts.WorkerArgs[i+1]
			}
		}
		if level == "" {
			level = "info"
		}
		if ctl.LogLevel != level {
			return fmt.Sprintf("--log-level %s: the instance logs at %s; a reload takes [edgemicro.logging] level from the config afresh unless mgw start was given --log-level, which it keeps", ctl.LogLevel, level)
		}
	}
	return ""
}

// maxProcesses bounds the worker count a reload may ask for.
const maxProcesses = 1024

// startUpgrade begins a tableflip upgrade; reply, if not nil, gets the
// outcome. A previous generation still draining is waited for first.
func (m *Master) startUpgrade(reply chan ipc.Reply) {
	fail := func(msg string) {
		m.log.Warn().Msg("reload refused: " + msg)
		if reply != nil {
			reply <- ipc.Reply{Error: msg}
		}
	}
	switch {
	case m.phase != phaseServing:
		fail("mgw is not serving (starting or stopping)")
		return
	case m.upgrading:
		fail("a reload is already in progress")
		return
	}
	m.upgrading = true
	if reply != nil {
		m.upgradeRep = append(m.upgradeRep, reply)
	}
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
	m.nextProcesses = processes
	wait := m.snap.Config.DrainTimeout() + 5*time.Second
	m.log.Info().Int("next_generation", m.generation+1).Msg("reload: starting the next generation")
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := m.upg.WaitForParent(ctx); errors.Is(err, context.DeadlineExceeded) {
			m.upgradeDone <- errors.New("the previous generation is still draining")
			return
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
		m.upgradeDone <- err
	}()
}

func (m *Master) finishUpgrade(err error) {
	m.upgrading = false
	rep := ipc.Reply{OK: true, Message: fmt.Sprintf("reloaded: generation %d serves with %d workers", m.generation+1, m.nextProcesses)}
	if err != nil {
		m.log.Error().Err(err).Msg("reload failed; this generation keeps serving")
		rep = ipc.Reply{Error: err.Error()}
		// A failed generation may have renamed its control socket over ours.
		if m.ctl != nil && !m.ctl.owned() {
			m.ctl.close(false)
			if ctl, cerr := listenControl(m.ctl.path, m.control, m.done, &m.ctlWG); cerr == nil {
				m.ctl = ctl
			} else {
				m.log.Error().Err(cerr).Msg("restoring the control socket")
			}
		}
	} else {
		m.log.Info().Msg("reload: the next generation serves")
	}
	for _, r := range m.upgradeRep {
		r <- rep
	}
	m.upgradeRep = nil
}

// beginStop drains every worker for a stop. timeout 0 means the configured drain timeout.
func (m *Master) beginStop(timeout time.Duration) {
	if m.phase == phaseDraining {
		return
	}
	m.log.Info().Msg("stopping: no new connections; draining workers")
	// Stop accepting first: once the workers close their copies too (the
	// first thing a drain does), a new connection is refused at once
	// rather than queued to be reset later, and the port is free for
	// the next start by the time the drain ends.
	m.closeListener()
	m.beginDrain(timeout)
}

// closeListener closes this process's descriptors of the gateway socket,
// its own and tableflip's: a stop hands the socket to no one. tableflip's
// Stop also ends any upgrade in progress.
func (m *Master) closeListener() {
	if !m.replaced {
		m.stopping = true
		if m.phase != phaseStarting {
			m.link.release() // the keeper lets go too: a stop refuses
		}
	}
	m.upg.Stop()
	if m.ln != nil {
		_ = m.ln.Close()
		m.ln = nil
	}
	if m.lnFile != nil {
		_ = m.lnFile.Close()
		m.lnFile = nil
	}
}

func (m *Master) beginDrain(timeout time.Duration) {
	if timeout <= 0 {
		timeout = m.snap.Config.DrainTimeout()
	}
	m.phase = phaseDraining
	m.sup.drainAll(ipc.Drain{Grace: min(m.snap.Config.DrainGrace(), timeout), Timeout: timeout})
}

// cleanup answers pending stop requests and, unless a newer generation
// owns them, removes the control socket and the pid file.
func (m *Master) cleanup() {
	m.flushAnalytics()
	if m.stopQuotas != nil {
		m.stopQuotas()
	}
	if !m.replaced {
		// The ports are free before anyone hears "stopped".
		m.closeListener()
		m.stopMetrics()
	}
	if !m.replaced {
		if m.ctl != nil {
			m.ctl.close(true)
		}
		pidPath := filepath.Join(m.opts.RunDir, PIDFileName)
		if b, err := os.ReadFile(pidPath); err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(os.Getpid()) {
			_ = os.Remove(pidPath)
		}
	}
	if m.upgrading {
		// The hand-over finished; let its reply go out too.
		select {
		case err := <-m.upgradeDone:
			m.finishUpgrade(err)
		case <-time.After(5 * time.Second):
		}
	}
	for _, r := range m.stopReplies {
		r <- ipc.Reply{OK: true, Message: "stopped"}
	}
	m.stopReplies = nil
	if m.ctl != nil {
		m.ctl.close(false)
	}
	// Let the handlers write the replies queued above.
	m.closeDone()
	// A probe this generation accepted before the next one took the
	// metrics socket is answered before the process exits, not cut off.
	m.stopMetrics()
	flushed := make(chan struct{})
	go func() { m.ctlWG.Wait(); close(flushed) }()
	select {
	case <-flushed:
	case <-time.After(2 * time.Second):
	}
	m.log.Info().Msg("master exiting")
}

// closeDone tells control handlers that no more requests will be read.
func (m *Master) closeDone() { m.doneOnce.Do(func() { close(m.done) }) }

func (m *Master) status() ipc.Status {
	return ipc.Status{
		MasterPID:  os.Getpid(),
		Generation: m.generation,
		UptimeS:    time.Since(m.started).Seconds(),
		Mode:       m.snap.Config.Mode(),
		Config: ipc.ConfigStatus{
			Source:    m.snap.Source,
			Revision:  m.snap.Revision,
			LastPoll:  m.edge.lastPoll,
			LastError: m.lastError,
		},
		Workers:   m.sup.status(),
		Analytics: m.analyticsStatus(),
	}
}

// dupListener returns a close-on-exec duplicate of ln's descriptor for the
// workers' ExtraFiles. It goes through SyscallConn rather than File: File
// returns a descriptor that os/exec would switch to blocking mode, which
// would change the shared socket under every worker accepting on it.
func dupListener(ln net.Listener) (*os.File, error) {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("listener %T has no file descriptor", ln)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("duplicating listener: %w", err)
	}
	var fd int
	var dupErr error
	if err := raw.Control(func(f uintptr) {
		fd, dupErr = dupCloexec(int(f))
	}); err != nil {
		return nil, fmt.Errorf("duplicating listener: %w", err)
	}
	if dupErr != nil {
		return nil, fmt.Errorf("duplicating listener: %w", dupErr)
	}
	return os.NewFile(uintptr(fd), "listener"), nil
}

func dupCloexec(fd int) (int, error) {
	r, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_DUPFD_CLOEXEC, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(r), nil
}
