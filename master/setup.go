package master

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/internal/logkey"
	"github.com/mgw-gateway/mgw/plugins"
	"github.com/mgw-gateway/mgw/plugins/zone"
	"github.com/mgw-gateway/mgw/worker/balance"
)

// setup builds what the loop needs, in the order a start takes: it
// refuses to start beside a running instance, loads the configuration
// (answering signals meanwhile), listens through tableflip, maps the
// limit zone, creates the balance table, starts the analytics queue, the
// quota syncer and the metrics socket, spawns every worker and arms the
// loop's timers. stopped is true when a stop signal came while the
// configuration loaded: the generation ends without serving. What setup
// opened, teardown closes, also when setup fails half-way.
func (m *Master) setup() (stopped bool, err error) {
	if !m.upg.HasParent() {
		if err := checkRunning(m.controlPath()); err != nil {
			return false, err
		}
	}
	base, _ := strconv.ParseUint(os.Getenv(envRevision), 10, 64)
	snap, stopped, err := m.loadFirst(m.opts.Signals)
	if err != nil || stopped {
		return stopped, err
	}
	snap.Revision = base + 1
	m.snap = snap

	cfg := &snap.Config.Edgemicro
	addr := net.JoinHostPort(cfg.Address, strconv.Itoa(cfg.Port))
	ln, err := m.listen(addr)
	if err != nil {
		return false, fmt.Errorf("listening on %s: %w", addr, configs.ExplainListen(addr, err))
	}
	lnFile, err := dupListener(ln)
	if err != nil {
		return false, err
	}
	m.ln, m.lnFile = ln, lnFile

	if m.zone, err = m.openZone(); err != nil {
		return false, err
	}
	if m.balance, err = balance.Create(m.opts.Processes); err != nil {
		return false, err
	}
	spawner := m.spawner
	if spawner == nil {
		args := append([]string{"--generation", strconv.Itoa(m.generation)}, m.opts.WorkerArgs...)
		spawner = &execSpawner{executable: m.opts.Executable, args: args, listener: lnFile, zone: m.zone.File(), balance: m.balance, env: workerEnv(m.opts.Processes)}
	}
	m.sup = newSupervisor(m.opts.Processes, spawner, m.clock, m.log)
	m.sup.askKey = m.askKey
	m.sup.records = m.addRecords
	m.sup.recordsBuffer = m.recordsBuffer
	if err := m.applyAnalytics(snap); err != nil {
		return false, err
	}
	m.startQuotaSync(snap, m.zone)
	if err := m.listenMetrics(snap); err != nil {
		return false, err
	}
	if err := m.sup.setConfig(snap); err != nil {
		return false, err
	}
	m.log.Info().Str(logkey.Addr, ln.Addr().String()).Int(logkey.Workers, m.opts.Processes).
		Str(logkey.Config, snap.Source).Uint64(logkey.Revision, snap.Revision).Msg("starting")
	m.sup.startAll()
	m.wake.arm(m.opts.StartTimeout, m.opts.Logs != nil, m.upg.Exit())
	m.followPollInterval(true)
	return false, nil
}

// teardown closes what setup opened, once the loop has ended (or setup
// failed): the loop's timers, the balance table, the limit zone and this
// process's descriptors of the gateway socket.
func (m *Master) teardown() {
	m.wake.disarm()
	if m.balance != nil {
		_ = m.balance.Close()
	}
	if m.zone != nil {
		_ = m.zone.Close()
	}
	if m.ln != nil {
		m.closeListener()
	}
}

// controlPath is where mgw.sock is.
func (m *Master) controlPath() string { return filepath.Join(m.opts.RunDir, ControlFileName) }

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
				m.log.Info().Stringer(logkey.Signal, sig).Msg("stop asked during start: exiting without serving")
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
		m.log.Warn().Str(logkey.Reason, why).Msg("the limit zone lives in memory: limits hold across reloads, not across a stop and start")
		if err := m.upg.AddFile(zoneFDName, z.File()); err != nil {
			m.log.Warn().Err(err).Msg("the next generation will not inherit the in-memory limit zone")
		}
	}
	return z, nil
}

// readConfig reads and parses the configuration file, or the embedded
// default when the master was given none.
func (m *Master) readConfig() (*configs.Snapshot, error) {
	if m.opts.ConfigPath == "" {
		return configs.Default(m.opts.LookupEnv)
	}
	return configs.Load(m.opts.ConfigPath, m.opts.LookupEnv)
}

// load reads the configuration and checks what the workers will build.
func (m *Master) load() (*configs.Snapshot, error) {
	snap, err := m.readConfig()
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
func (m *Master) becomeReady() error {
	ctl, err := listenControl(m.controlPath(), m.control, m.done, &m.ctlWG)
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
	m.setPhase(phaseServing)
	m.sup.starting = false
	m.log.Info().Uint64(logkey.Revision, m.snap.Revision).Msg("serving")
	return nil
}

func (m *Master) abortStart() {
	m.sup.draining = true
	m.sup.killAll()
	if m.ctl != nil {
		m.ctl.close(true)
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
