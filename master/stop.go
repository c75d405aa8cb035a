package master

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mgw-gateway/mgw/ipc"
)

// How a generation ends: a stop (beginStop) or a hand-over (onReplaced)
// drains the workers; endIfDrained ends the loop once they have all
// exited; cleanup answers whoever waits and removes what this generation
// owns. SIGQUIT (stopNow) kills the workers instead of draining them.

// beginStop drains every worker for a stop. timeout 0 means the configured drain timeout.
func (m *Master) beginStop(timeout time.Duration) {
	if m.phase.draining() {
		return
	}
	m.log.Info().Msg("stopping: no new connections; draining workers")
	// Stop accepting first: once the workers close their copies too (the
	// first thing a drain does), a new connection is refused at once
	// rather than queued to be reset later, and the port is free for
	// the next start by the time the drain ends.
	m.closeListener()
	m.setPhase(phaseDraining)
	m.beginDrain(timeout)
}

// stopNow is SIGQUIT: the workers are killed, the analytics get one short
// try, and the generation ends.
func (m *Master) stopNow() error {
	m.sup.draining = true
	m.closeListener()
	m.setPhase(phaseQuitting)
	m.sup.killAll()
	m.cleanup()
	return errStopped
}

// closeListener closes this process's descriptors of the gateway socket,
// its own and tableflip's: a stop hands the socket to no one. tableflip's
// Stop also ends any upgrade in progress. When the keeper holds this
// generation's sockets, it lets go of them too. It holds none of a
// generation that never served (a start that fails leaves the keeper's
// to it, for the master it restarts), and once the next generation
// serves it holds that one's: a replaced generation, also one that gets
// SIGQUIT, must not make the keeper let go of them.
func (m *Master) closeListener() {
	if !m.handedOver {
		m.link.release() // the keeper lets go too: a stop refuses
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

// beginDrain orders every worker to drain, and arms the drain's timeout:
// what is left after it is killed.
func (m *Master) beginDrain(timeout time.Duration) {
	if timeout <= 0 {
		timeout = m.snap.Config.DrainTimeout()
	}
	m.sup.drainAll(ipc.Drain{Grace: min(m.snap.Config.DrainGrace(), timeout), Timeout: timeout})
	if m.wake.drainKill == nil && m.wake.exitTimeout == nil {
		m.wake.drainKill = time.After(m.sup.drainOrder.Timeout + 2*time.Second)
	}
}

// onDrainTimeout kills the workers a drain left.
func (m *Master) onDrainTimeout() {
	m.log.Warn().Msg("drain timeout passed: killing the remaining workers")
	m.sup.killAll()
	m.wake.drainKill = nil
	m.wake.exitTimeout = time.After(5 * time.Second)
}

// onExitTimeout gives up on killed workers that did not exit.
func (m *Master) onExitTimeout() error {
	m.log.Error().Msg("workers did not exit after SIGKILL")
	m.cleanup()
	return errors.New("workers did not exit")
}

// endIfDrained ends the generation once a drain has no worker left.
func (m *Master) endIfDrained() error {
	if !m.phase.draining() || !m.sup.allExited() {
		return nil
	}
	m.log.Info().Msg("all workers exited")
	m.cleanup()
	return errStopped
}

// cleanup answers pending stop requests and, unless a newer generation
// owns them, removes the control socket and the pid file.
func (m *Master) cleanup() {
	m.flushAnalytics()
	if m.stopQuotas != nil {
		m.stopQuotas()
	}
	released := true
	if !m.handedOver {
		// The ports are free before anyone hears "stopped".
		m.closeListener()
		released = m.link.awaitRelease()
		m.stopMetrics()
		if m.ctl != nil {
			m.ctl.close(true)
		}
		pidPath := filepath.Join(m.opts.RunDir, PIDFileName)
		if b, err := os.ReadFile(pidPath); err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(os.Getpid()) {
			_ = os.Remove(pidPath)
		}
	}
	if m.upgrade != nil {
		// The hand-over finished; let its reply go out too.
		select {
		case err := <-m.upgradeDone:
			m.onUpgradeDone(err)
		case <-time.After(5 * time.Second):
		}
	}
	rep := ipc.Reply{OK: true, Message: "stopped"}
	if !released {
		rep.Message = stoppedUnreleased
	}
	for _, r := range m.stopReplies {
		r <- rep
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

// stoppedUnreleased is the stop's reply when the keeper (mgw start) did
// not let go of the listening sockets in time: stopped, or hung.
const stoppedUnreleased = "stopped; the keeper (the mgw start process) did not let go of the listening sockets within 2s, " +
	"so this master shut them down: new connections are refused; mgw start exits once it runs again"

// closeDone tells control handlers that no more requests will be read.
func (m *Master) closeDone() { m.doneOnce.Do(func() { close(m.done) }) }
