// The worker's event loop: one goroutine owns the worker's state, its
// select only dispatches, and each event has one method named after it.

package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/mgw-gateway/mgw/internal/logkey"
	"github.com/mgw-gateway/mgw/ipc"
)

// phase is where a worker is in its life; it only moves forward.
type phase int32

const (
	// phaseStarting: start runs; nothing is accepted yet.
	phaseStarting phase = iota
	// phaseServing: the worker accepts and serves, and the loop runs.
	phaseServing
	// phaseDraining: the worker no longer accepts and every answer
	// closes its connection, while the drain's goroutine waits for the
	// connections to end; the loop runs on (stats beats, the master's
	// frames, the records' flush).
	phaseDraining
	// phaseStopped: the drain has ended; the loop returns and Run puts
	// away what start opened.
	phaseStopped
)

// phaseVar holds the worker's phase: the loop moves it, requests read it.
type phaseVar struct{ v atomic.Int32 }

func (p *phaseVar) load() phase    { return phase(p.v.Load()) }
func (p *phaseVar) store(ph phase) { p.v.Store(int32(ph)) }

// loopState is what the loop owns besides the worker: its timers, the
// counters it last sent and the drain's channels.
type loopState struct {
	// beat is the stats beat, every StatsInterval.
	beat <-chan time.Time
	// flush fires recordFlush after records or access-log lines began
	// to wait; it runs only while armed.
	flush      *time.Timer
	flushArmed bool
	// last is the stats last sent with counters.
	last ipc.Stats
	// stop is ctx's end until the loop took it, then nil: a signal
	// drains once.
	stop <-chan struct{}
	// drained gets the end of the drain, from the drain's goroutine.
	drained chan struct{}
}

// loop waits for the worker's events and hands each to its method, until
// a drain has ended. It returns an error only when a server failed.
func (w *Worker) loop(ctx context.Context) error {
	l := &loopState{beat: w.opts.statsBeat, flush: time.NewTimer(recordFlush), stop: ctx.Done(), drained: make(chan struct{}, 1)}
	l.flush.Stop()
	defer l.flush.Stop()
	if l.beat == nil {
		t := time.NewTicker(w.opts.StatsInterval)
		defer t.Stop()
		l.beat = t.C
	}
	for w.phase.load() != phaseStopped {
		select {
		case <-l.stop:
			l.stop = nil
			w.onStop(l)
		case err := <-w.recvErr:
			w.onMasterGone(l, err)
		case f := <-w.frames:
			w.onFrame(l, f)
		case err := <-w.serveErr:
			if err := w.onServeError(err); err != nil {
				return err
			}
		case <-l.drained:
			w.onDrained()
		case <-w.pending:
			w.onRecordsWaiting(l)
		case <-l.flush.C:
			w.onFlushDue(l)
		case <-w.sink.kick:
			w.onRecordsFull()
		case <-l.beat:
			w.onStatsBeat(l)
		}
	}
	return nil
}

// onStop is ctx's end (SIGTERM or SIGINT): a drain with the serving
// revision's settings, unless one is under way (a drain the master
// ordered; a second signal is swallowed by the signal's context).
func (w *Worker) onStop(l *loopState) {
	if w.phase.load() != phaseServing {
		w.log.Info().Msg("signal: already draining")
		return
	}
	w.log.Info().Msg("signal: draining")
	c := &w.rt.Load().snap.Config
	w.startDrain(l, c.DrainGrace(), c.DrainTimeout())
}

// onMasterGone is the end of the master's channel: EOF when the master
// exited, else an error or garbage. Nobody is left to order a drain, so
// the worker drains with the serving revision's settings, unless it
// drains already.
func (w *Worker) onMasterGone(l *loopState, err error) {
	if !errors.Is(err, io.EOF) {
		w.log.Error().Err(err).Msg("reading from the master")
	}
	if w.phase.load() != phaseServing {
		w.log.Warn().Msg("master gone while draining")
		return
	}
	w.log.Warn().Msg("master gone: draining")
	c := &w.rt.Load().snap.Config
	w.startDrain(l, c.DrainGrace(), c.DrainTimeout())
}

// onFrame hands a frame from the master to the method of its kind.
func (w *Worker) onFrame(l *loopState, f ipc.Frame) {
	switch f.Kind {
	case ipc.KindConfig:
		w.onConfig(f)
	case ipc.KindDrain:
		w.onDrainOrder(l, f)
	default:
		w.log.Debug().Stringer(logkey.Kind, f.Kind).Msg("ignoring unknown message")
	}
}

// onConfig is a config revision pushed by the master: it is applied and
// acknowledged (through the outbox: a master that does not read holds
// no event). A draining worker applies it too: the last answers on its
// kept-alive connections use the instance's configuration, and its ack
// says truly which revision it serves (the master pushes none to a
// worker it knows drains).
func (w *Worker) onConfig(f ipc.Frame) {
	ack, _ := w.applyConfig(f)
	w.out.sendAck(ack)
}

// onDrainOrder is the master's order to drain, with its grace and
// timeout; an order that does not decode drains with the serving
// revision's settings. An order to a worker that drains already (on
// SIGTERM, or a second order) changes nothing.
func (w *Worker) onDrainOrder(l *loopState, f ipc.Frame) {
	var d ipc.Drain
	if err := f.Decode(&d); err != nil {
		w.log.Error().Err(err).Msg("bad drain order; draining with defaults")
		c := &w.rt.Load().snap.Config
		d = ipc.Drain{Grace: c.DrainGrace(), Timeout: c.DrainTimeout()}
	}
	if w.phase.load() != phaseServing {
		w.log.Info().Dur(logkey.GraceMS, d.Grace).Dur(logkey.TimeoutMS, d.Timeout).Msg("drain order: already draining")
		return
	}
	w.log.Info().Dur(logkey.GraceMS, d.Grace).Dur(logkey.TimeoutMS, d.Timeout).Msg("draining")
	w.startDrain(l, d.Grace, d.Timeout)
}

// startDrain moves the worker to draining and runs the drain on a
// goroutine of its own, which reports its end on l.drained: the loop
// dispatches on meanwhile, so the worker still beats (a drain may last
// longer than the master lets a worker be silent) and still reads the
// master's frames (API-key answers wait behind them).
func (w *Worker) startDrain(l *loopState, grace, timeout time.Duration) {
	w.phase.store(phaseDraining)
	go func() {
		w.drain(grace, timeout)
		l.drained <- struct{}{}
	}()
}

// onDrained is the drain's end: the worker has stopped, and the loop
// returns.
func (w *Worker) onDrained() {
	w.phase.store(phaseStopped)
}

// onServeError is a server that stopped: while serving, the end of the
// worker; once draining, the drain's doing.
func (w *Worker) onServeError(err error) error {
	if w.phase.load() == phaseServing {
		return fmt.Errorf("serving: %w", err)
	}
	return nil
}

// onRecordsWaiting is the first record or access-log line waiting since
// the last flush: the flush timer starts, so that none waits longer than
// recordFlush.
func (w *Worker) onRecordsWaiting(l *loopState) {
	if !l.flushArmed {
		l.flush.Reset(recordFlush)
		l.flushArmed = true
	}
}

// onFlushDue sends the waiting records and writes the waiting access-log
// lines.
func (w *Worker) onFlushDue(l *loopState) {
	l.flushArmed = false
	w.sink.flush()
	if w.abuf != nil {
		w.abuf.flush()
	}
}

// onRecordsFull is the sink's buffer past recordFlushBytes: its records
// go now.
func (w *Worker) onRecordsFull() {
	w.sink.flush()
}

// onStatsBeat sends the stats, every StatsInterval, changed or not and
// draining or not: the master takes a worker that stops sending for
// unresponsive, and a draining one says so. The counters go only when
// they changed. The frame goes through the outbox, so that a master that
// does not read holds no event.
func (w *Worker) onStatsBeat(l *loopState) {
	s := ipc.Stats{Requests: w.requests.Load(), Active: w.conns.Load(), Draining: w.phase.load() == phaseDraining}
	if s.Requests != l.last.Requests || s.Active != l.last.Active {
		s.Metrics = w.metrics.snapshot()
		s.Metrics.RecordsDropped = w.sink.droppedCount()
		l.last = s
	}
	w.out.sendStats(s)
}

// drain stops accepting, lets keep-alive clients make one more request
// (answered with Connection: close) for up to grace, then closes idle
// connections and waits for active ones until timeout. It runs on the
// drain's own goroutine (startDrain), never on the loop's.
func (w *Worker) drain(grace, timeout time.Duration) {
	start := time.Now()
	if w.ln != nil {
		_ = w.ln.Close()
	}
	if w.srv == nil {
		return
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for w.conns.Load() > 0 && time.Since(start) < grace {
		<-tick.C
	}
	ctx, cancel := context.WithDeadline(context.Background(), start.Add(max(timeout, grace)))
	defer cancel()
	var err error
	if w.fast != nil {
		err = w.fast.Shutdown(ctx) // first, so that it hands over no more
	}
	if err == nil {
		err = w.srv.Shutdown(ctx)
	}
	if err != nil {
		w.log.Warn().Int64(logkey.Connections, w.conns.Load()).Msg("drain timeout: closing the remaining connections")
		if w.fast != nil {
			_ = w.fast.Close()
		}
		_ = w.srv.Close()
	}
	w.log.Info().Dur(logkey.TookMS, time.Since(start)).Uint64(logkey.Requests, w.requests.Load()).Msg("drained")
}
