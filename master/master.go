package master

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudflare/tableflip"
	"github.com/rs/zerolog"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/configs/edge"
	"github.com/mgw-gateway/mgw/internal/logkey"
	"github.com/mgw-gateway/mgw/ipc"
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

// Master is one generation of the master process. Its fields are owned
// by the goroutine that runs the loop (loop.go), except where a comment
// says otherwise.
type Master struct {
	opts       Options
	log        zerolog.Logger
	clock      Clock       // the time of status and uptime; injected by tests
	upg        upgrader    // tableflip's Upgrader, or a test's double
	link       *keeperLink // to the keeper, which holds the sockets while no master serves
	spawner    Spawner     // nil: setup starts real worker processes
	sup        *supervisor
	generation int
	started    time.Time
	snap       *configs.Snapshot
	lastError  *string

	// phase is where the generation is in its life. Only setPhase changes
	// it, and it mirrors it in shown for the metrics handlers, which run
	// outside the loop: a probe answered after the loop ended still sees
	// that the generation was replaced.
	phase phase
	shown atomic.Int32
	// handedOver is set when the next generation serves (the phase
	// replaced), and stays set through a later SIGQUIT (quitting): the
	// sockets, mgw.pid and mgw.sock are the next generation's then.
	handedOver bool

	control     chan controlRequest
	ctl         *controlSocket
	ctlWG       sync.WaitGroup
	done        chan struct{}
	doneOnce    sync.Once
	upgrade     *upgradeRun // the reload in flight, nil when there is none
	upgradeDone chan error
	stopReplies []chan ipc.Reply
	// reloadAsked is a SIGHUP that came before the generation served.
	reloadAsked bool
	// next is what the reload being asked for wants (mgw reload -p, -r).
	next ipc.Control

	edge   edgeState
	polled chan pollResult

	analytics     atomic.Pointer[analytics.Queue] // read by the workers' channel readers
	stopAnalytics func()
	stopQuotas    func()
	quotas        *quotaSyncer // Edge mode: the edge quota backend's syncer
	metricsReqs   chan metricsRequest
	dryRun        bool // Preflight: load as start does, write nothing

	// The gateway's listening socket as this process holds it: closed at
	// the start of a stop, so that new connections are refused at once.
	ln          net.Listener
	lnFile      *os.File
	metrics     *http.Server
	metricsLn   net.Listener
	metricsOnce sync.Once
	metricsStop sync.Once
	// What setup opens besides, closed by teardown.
	zone    *zone.Zone
	balance *balance.Table
	// wake holds the loop's timers and the channels that come and go
	// with the phase.
	wake wake
}

// Run starts a master generation and serves until it is stopped or
// replaced by the next one. It returns nil after a clean stop or hand-over.
func Run(ctx context.Context, opts Options) (err error) {
	if opts.Signals == nil {
		opts.Signals = Signals()
	}
	defer signal.Stop(opts.Signals)
	if opts, err = withDefaults(opts); err != nil {
		return err
	}
	gen := 1
	if g, err := strconv.Atoi(os.Getenv(envGeneration)); err == nil && g > 0 {
		gen = g
	}
	m := newMaster(opts, gen)
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
		if upg.HasParent() {
			ReportUpgradeFailure(err)
		}
	}()
	return m.run(ctx)
}

// ReportUpgradeFailure writes why this process, a new generation a
// reload started, cannot serve, where the generation that started it
// reads it for the reload's reply. The command line calls it for what
// fails before Run (the config file, the log files); elsewhere, with no
// reload waiting, it does nothing.
func ReportUpgradeFailure(err error) {
	if p := os.Getenv(envUpgradeErr); err != nil && p != "" {
		_ = os.WriteFile(p, []byte(err.Error()), 0o600)
	}
}

// withDefaults fills in what opts leaves out, and applies what the last
// reload asked for (worker count, port), which a generation finds in its
// environment.
func withDefaults(opts Options) (Options, error) {
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
			return opts, fmt.Errorf("finding the mgw executable: %w", err)
		}
		opts.Executable = exe
	}
	return opts, nil
}

// newMaster makes generation gen's master, with real time; Run gives it
// tableflip's upgrader, a test its double.
func newMaster(opts Options, gen int) *Master {
	m := &Master{
		opts:        opts,
		clock:       realClock{},
		generation:  gen,
		control:     make(chan controlRequest),
		done:        make(chan struct{}),
		upgradeDone: make(chan error, 1),
		polled:      make(chan pollResult),
		metricsReqs: make(chan metricsRequest),
	}
	m.started = m.clock.Now()
	m.edge.keys = &edge.KeyCache{Verify: m.verifyKey}
	m.edge.keyCalls = make(chan struct{}, maxKeyCalls)
	m.log = opts.Logger.With().Str(logkey.Component, logkey.ComponentMaster).Int(logkey.Generation, gen).Int(logkey.PID, os.Getpid()).Logger()
	return m
}

// run sets the generation up, serves it until it ends, and tears it down.
func (m *Master) run(ctx context.Context) error {
	defer m.teardown()
	if stopped, err := m.setup(); err != nil || stopped {
		return err
	}
	if err := m.loop(ctx); !errors.Is(err, errStopped) {
		return err
	}
	return nil
}
