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
	// phaseDraining: the worker no longer accepts, every answer closes
	// its connection, and Run returns once the connections are gone.
	phaseDraining
)

// phaseVar holds the worker's phase: the loop moves it, requests read it.
type phaseVar struct{ v atomic.Int32 }

func (p *phaseVar) load() phase    { return phase(p.v.Load()) }
func (p *phaseVar) store(ph phase) { p.v.Store(int32(ph)) }

// loopState is what the loop owns besides the worker: its timers and the
// counters it last sent.
type loopState struct {
	// beat is the stats beat, every StatsInterval.
	beat <-chan time.Time
	// flush fires recordFlush after records or access-log lines began
	// to wait; it runs only while armed.
	flush      *time.Timer
	flushArmed bool
	// last is the stats last sent with counters.
	last ipc.Stats
}

// loop waits for the worker's events and hands each to its method, until
// a drain has ended. It returns an error only when a server failed.
func (w *Worker) loop(ctx context.Context) error {
	l := &loopState{beat: w.opts.statsBeat, flush: time.NewTimer(recordFlush)}
	l.flush.Stop()
	defer l.flush.Stop()
	if l.beat == nil {
		t := time.NewTicker(w.opts.StatsInterval)
		defer t.Stop()
		l.beat = t.C
	}
	for w.phase.load() == phaseServing {
		select {
		case <-ctx.Done():
			w.onStop()
		case err := <-w.recvErr:
			w.onMasterGone(err)
		case f := <-w.frames:
			w.onFrame(f)
		case err := <-w.serveErr:
			if err := w.onServeError(err); err != nil {
				return err
			}
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
// revision's settings.
func (w *Worker) onStop() {
	w.log.Info().Msg("signal: draining")
	c := &w.rt.Load().snap.Config
	w.drain(c.DrainGrace(), c.DrainTimeout())
}

// onMasterGone is the end of the master's channel: EOF when the master
// exited, else an error or garbage. Nobody is left to order a drain, so
// the worker drains with the serving revision's settings.
func (w *Worker) onMasterGone(err error) {
	if !errors.Is(err, io.EOF) {
		w.log.Error().Err(err).Msg("reading from the master")
	}
	w.log.Warn().Msg("master gone: draining")
	c := &w.rt.Load().snap.Config
	w.drain(c.DrainGrace(), c.DrainTimeout())
}

// onFrame hands a frame from the master to the method of its kind.
func (w *Worker) onFrame(f ipc.Frame) {
	switch f.Kind {
	case ipc.KindConfig:
		w.onConfig(f)
	case ipc.KindDrain:
		w.onDrainOrder(f)
	default:
		w.log.Debug().Stringer(logkey.Kind, f.Kind).Msg("ignoring unknown message")
	}
}

// onConfig is a config revision pushed by the master: it is applied and
// acknowledged (through the outbox: a master that does not read holds
// no event).
func (w *Worker) onConfig(f ipc.Frame) {
	ack, _ := w.applyConfig(f)
	w.out.sendAck(ack)
}

// onDrainOrder is the master's order to drain, with its grace and
// timeout; an order that does not decode drains with the serving
// revision's settings.
func (w *Worker) onDrainOrder(f ipc.Frame) {
	var d ipc.Drain
	if err := f.Decode(&d); err != nil {
		w.log.Error().Err(err).Msg("bad drain order; draining with defaults")
		c := &w.rt.Load().snap.Config
		d = ipc.Drain{Grace: c.DrainGrace(), Timeout: c.DrainTimeout()}
	}
	w.log.Info().Dur(logkey.GraceMS, d.Grace).Dur(logkey.TimeoutMS, d.Timeout).Msg("draining")
	w.drain(d.Grace, d.Timeout)
}

// onServeError is a server that stopped: outside a drain, the end of the
// worker.
func (w *Worker) onServeError(err error) error {
	if w.phase.load() != phaseDraining {
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

// onStatsBeat sends the stats, every StatsInterval, changed or not: the
// master takes a worker that stops sending for unresponsive. The
// counters go only when they changed. The frame goes through the outbox,
// so that a master that does not read holds no event.
func (w *Worker) onStatsBeat(l *loopState) {
	s := ipc.Stats{Requests: w.requests.Load(), Active: w.conns.Load()}
	if s.Requests != l.last.Requests || s.Active != l.last.Active {
		s.Metrics = w.metrics.snapshot()
		s.Metrics.RecordsDropped = w.sink.droppedCount()
		l.last = s
	}
	w.out.sendStats(s)
}

// drain stops accepting, lets keep-alive clients make one more request
// (answered with Connection: close) for up to grace, then closes idle
// connections and waits for active ones until timeout.
func (w *Worker) drain(grace, timeout time.Duration) {
	start := time.Now()
	w.phase.store(phaseDraining)
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
