package master

import (
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/internal/logkey"
	"github.com/mgw-gateway/mgw/ipc"
)

// The loop's handlers, one per event, named for it. Each runs on the
// loop's goroutine. The upgrade's are in upgrade.go, the stop's in stop.go.

// onWorkerEvent applies a worker's event (hello, ack, ready, stats, its
// exit, a restart timer) to the worker table. While the generation starts,
// a worker that failed ends the start, and every worker serving makes the
// generation serve.
func (m *Master) onWorkerEvent(ev event) error {
	m.sup.handle(ev)
	if m.phase != phaseStarting {
		return nil
	}
	if err := m.sup.startFailure(); err != nil {
		m.abortStart()
		return fmt.Errorf("starting workers: %w", err)
	}
	if m.sup.allServing() {
		return m.onAllServing()
	}
	return nil
}

// onAllServing ends a successful start: the generation serves, watches
// its config file, and reloads if a SIGHUP came while it started.
func (m *Master) onAllServing() error {
	m.wake.startDeadline.Stop()
	if err := m.becomeReady(); err != nil {
		m.abortStart()
		return err
	}
	m.watchConfigFile()
	if m.reloadAsked {
		m.reloadAsked = false
		m.log.Info().Msg("reloading, as SIGHUP asked during start")
		m.startUpgrade(nil)
	}
	return nil
}

// watchConfigFile starts watching the config file's directory, unless the
// configuration is the embedded default.
func (m *Master) watchConfigFile() {
	if m.snap.Source == configs.DefaultSource {
		return
	}
	w, err := newWatcher(m.snap.Source, m.log)
	if err != nil {
		m.log.Warn().Err(err).Msg("config file changes will not be seen")
		return
	}
	m.wake.watch = w
}

// onStartTimeout ends a start that took longer than StartTimeout.
func (m *Master) onStartTimeout() error {
	if m.phase != phaseStarting {
		return nil
	}
	m.abortStart()
	return fmt.Errorf("starting workers: not every worker served within %s", m.opts.StartTimeout)
}

// onConfigFileChanged takes an edit of the config file: a new revision
// for the workers, in place, when it is valid and changes something.
func (m *Master) onConfigFileChanged() {
	m.reloadFile()
	m.followPollInterval(false)
}

// reloadFile pushes an edited configuration file to the workers in place.
func (m *Master) reloadFile() {
	if !m.phase.serving() {
		return
	}
	snap, err := m.load()
	if err != nil {
		msg := err.Error()
		m.lastError = &msg
		m.log.Error().Err(err).Uint64(logkey.ServingRevision, m.snap.Revision).Msg("config edit rejected; the last good config keeps serving")
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
		m.log.Error().Err(err).Uint64(logkey.ServingRevision, m.snap.Revision).Msg("config edit rejected; the last good config keeps serving")
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
	m.log.Info().Uint64(logkey.Revision, snap.Revision).Int(logkey.Proxies, len(snap.Config.Proxies)).Msg("config changed: pushed to workers")
}

// onEdgePollTick starts an Edge poll, unless one is in flight.
func (m *Master) onEdgePollTick() { m.startPoll() }

// onEdgePollResult takes a finished Edge poll: a changed download is a
// new revision for the workers.
func (m *Master) onEdgePollResult(r pollResult) {
	m.onPoll(r)
	m.followPollInterval(false)
}

// onBeatCheck marks the workers that missed their stats beats, and
// replaces those silent for too long.
func (m *Master) onBeatCheck() { m.sup.checkBeats() }

// onLogCheck rotates the log file when it is over its size or age, and
// tells the workers to reopen theirs.
func (m *Master) onLogCheck(now time.Time) {
	rotated, err := m.opts.Logs.Rotate(now)
	if err != nil {
		m.log.Error().Err(err).Msg("rotating logs")
	}
	if rotated {
		m.sup.signalAll(syscall.SIGUSR1)
		m.log.Info().Msg("log file rotated")
	}
}

// onSignal acts on a signal: SIGHUP reloads (once serving, when it comes
// during the start), SIGTERM and SIGINT stop gracefully, SIGQUIT stops
// now, SIGUSR1 reopens the log files.
func (m *Master) onSignal(sig os.Signal) error {
	if sig == syscall.SIGCHLD {
		return nil // the workers' exits come through their Wait
	}
	m.log.Info().Stringer(logkey.Signal, sig).Msg("signal received")
	switch sig {
	case syscall.SIGHUP:
		if m.phase == phaseStarting {
			m.reloadAsked = true // once this generation serves
			return nil
		}
		m.startUpgrade(nil)
	case syscall.SIGTERM, syscall.SIGINT:
		m.beginStop(0)
	case syscall.SIGQUIT:
		return m.stopNow()
	case syscall.SIGUSR1:
		m.reopenLogs()
	}
	return nil
}

// reopenLogs reopens the log file (logrotate moved it) and has every
// worker reopen its own descriptor.
func (m *Master) reopenLogs() {
	if m.opts.Logs != nil {
		if err := m.opts.Logs.Reopen(); err != nil {
			m.log.Error().Err(err).Msg("reopening logs")
		}
	}
	m.sup.signalAll(syscall.SIGUSR1)
}

// onControlRequest answers a command from mgw.sock: status at once;
// reload once the next generation serves or failed; stop once the workers
// have exited.
func (m *Master) onControlRequest(req controlRequest) {
	switch req.ctl.Command {
	case ipc.CommandStatus:
		st := m.status()
		req.reply <- ipc.Reply{OK: true, Status: &st}
	case ipc.CommandReload:
		m.onReloadRequest(req)
	case ipc.CommandStop:
		m.onStopRequest(req)
	default:
		req.reply <- ipc.Reply{Error: fmt.Sprintf("unknown command %q", req.ctl.Command)}
	}
}

// onReloadRequest starts the upgrade mgw reload asks for, or says why not.
func (m *Master) onReloadRequest(req controlRequest) {
	if msg := m.reloadRefusal(req.ctl); msg != "" {
		m.log.Warn().Str(logkey.Reason, msg).Msg("reload refused")
		req.reply <- ipc.Reply{Error: msg}
		return
	}
	m.next = req.ctl
	m.startUpgrade(req.reply)
}

// onStopRequest begins the stop mgw stop asks for, or joins the one under
// way. During a reload it is refused: the generation that will serve is
// not this one.
func (m *Master) onStopRequest(req controlRequest) {
	switch m.phase {
	case phaseDraining:
		m.stopReplies = append(m.stopReplies, req.reply)
	case phaseReplaced, phaseUpgrading:
		req.reply <- ipc.Reply{Error: "a reload is in progress; stop the new generation once it serves"}
	default:
		m.stopReplies = append(m.stopReplies, req.reply)
		m.beginStop(req.ctl.Timeout)
	}
}

// status is what mgw status shows of the generation.
func (m *Master) status() ipc.Status {
	return ipc.Status{
		MasterPID:  os.Getpid(),
		Generation: m.generation,
		UptimeS:    m.clock.Now().Sub(m.started).Seconds(),
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
