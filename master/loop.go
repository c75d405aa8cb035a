package master

import (
	"context"
	"errors"
	"time"

	"github.com/mgw-gateway/mgw/internal/logkey"
)

// errStopped ends the loop when the generation is over without an
// error: stopped, or replaced and drained.
var errStopped = errors.New("the generation ended")

// loop is the generation's one select loop. It owns the worker table and
// every field of the Master the handlers change, so nothing needs a lock.
// It only dispatches: each case calls the handler named for its event
// (events.go, upgrade.go, stop.go), and after each event it asks whether
// a drain has finished. It returns errStopped after a clean end, or why
// the generation could not go on.
func (m *Master) loop(ctx context.Context) error {
	w := &m.wake
	for {
		var err error
		select {
		case ev := <-m.sup.Events():
			err = m.onWorkerEvent(ev)
		case <-w.startDeadline.C:
			err = m.onStartTimeout()
		case <-w.watch.changes():
			m.onConfigFileChanged()
		case <-tick(w.poll):
			m.onEdgePollTick()
		case r := <-m.polled:
			m.onEdgePollResult(r)
		case <-w.beats.C:
			m.onBeatCheck()
		case now := <-tick(w.logCheck):
			m.onLogCheck(now)
		case req := <-m.metricsReqs:
			m.answerMetrics(req)
		case req := <-m.control:
			m.onControlRequest(req)
		case sig := <-m.opts.Signals:
			err = m.onSignal(sig)
		case err := <-m.upgradeDone:
			m.onUpgradeDone(err)
		case <-w.upgExit:
			m.onReplaced()
		case <-ctx.Done():
			m.beginStop(0)
		case <-w.drainKill:
			m.onDrainTimeout()
		case <-w.exitTimeout:
			err = m.onExitTimeout()
		}
		if err == nil {
			err = m.endIfDrained()
		}
		if err != nil {
			return err
		}
	}
}

// wake holds the loop's timers and the channels that come and go with
// the phase. A nil channel is never selected.
type wake struct {
	startDeadline *time.Timer  // ends a start that takes too long
	beats         *time.Ticker // checks the workers' stats beats
	logCheck      *time.Ticker // checks the log file's size and age; nil without a log file
	poll          *time.Ticker // polls Edge; nil without polls
	pollEvery     time.Duration
	watch         *watcher // the config file's directory, once serving
	upgExit       <-chan struct{}
	drainKill     <-chan time.Time // the drain timeout: kill what is left
	exitTimeout   <-chan time.Time // killed workers that do not exit
}

// arm starts the timers a starting generation needs.
func (w *wake) arm(startTimeout time.Duration, logFile bool, upgExit <-chan struct{}) {
	w.startDeadline = time.NewTimer(startTimeout)
	w.beats = time.NewTicker(BeatCheckEvery)
	if logFile {
		w.logCheck = time.NewTicker(logCheckInterval)
	}
	// Closed when the next generation serves, and also by a stop's
	// upg.Stop: only the first means this generation was replaced.
	w.upgExit = upgExit
}

// disarm stops every timer and the watcher.
func (w *wake) disarm() {
	w.stopWatch()
	for _, t := range []*time.Ticker{w.poll, w.beats, w.logCheck} {
		if t != nil {
			t.Stop()
		}
	}
	if w.startDeadline != nil {
		w.startDeadline.Stop()
	}
}

// stopWatch stops watching the config file.
func (w *wake) stopWatch() {
	if w.watch != nil {
		w.watch.close()
		w.watch = nil
	}
}

// tick is t's channel, nil for no ticker.
func tick(t *time.Ticker) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C
}

// followPollInterval sets the Edge poll to the serving revision's
// interval.
func (m *Master) followPollInterval(first bool) {
	w := &m.wake
	d := pollInterval(&m.snap.Config)
	if d == w.pollEvery {
		return
	}
	if w.poll != nil {
		w.poll.Stop()
		w.poll = nil
	}
	if d > 0 {
		w.poll = time.NewTicker(d)
	}
	if !first {
		m.log.Info().Dur(logkey.IntervalMS, d).Msg("Edge poll interval changed")
	}
	w.pollEvery = d
}
