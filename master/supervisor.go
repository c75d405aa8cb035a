package master

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/internal/logkey"
	"github.com/mgw-gateway/mgw/ipc"
)

// event is something that happened to a worker. Events are handled one at
// a time by the goroutine that owns the supervisor.
type event struct {
	id    int
	inc   uint64 // incarnation: events of a replaced process are stale
	frame *ipc.Frame
	err   error // with frame == nil: the channel failed or the process exited
	exit  bool  // the process has exited
	retry bool  // a backoff timer fired
}

// slot is one entry of the worker table.
type slot struct {
	id        int
	inc       uint64
	proc      Process
	conn      *ipc.Conn
	state     string
	started   time.Time
	revision  uint64
	requests  uint64
	active    int64
	restarts  int
	backoff   backoff
	exited    bool
	hello     bool
	stopRetry func() bool
	metrics   *ipc.Metrics // the worker's last report
	lastBeat  time.Time    // when the worker last sent a frame
}

// A serving worker sends a stats frame every second. One that has sent
// nothing for UnresponsiveAfter (stopped, or stuck) is shown as
// unresponsive; after ReplaceAfter it is killed and replaced. The master
// checks the beats every BeatCheckEvery; a check that comes
// StalledAfter or more after the one before finds that the master itself
// did not run (stopped, starved, a paused VM): the workers are not
// blamed for that time, whose beats wait unread in their sockets.
const (
	UnresponsiveAfter = 3 * time.Second
	ReplaceAfter      = 10 * time.Second
	BeatCheckEvery    = time.Second
	StalledAfter      = 3 * BeatCheckEvery
)

// supervisor owns the worker table. Its methods must only be called from
// the goroutine that reads Events, so it needs no locks.
type supervisor struct {
	spawner Spawner
	clock   Clock
	log     zerolog.Logger
	events  chan event
	slots   []*slot
	snap    *configs.Snapshot
	frame   ipc.Frame // snap, encoded once
	inc     uint64

	// starting is set until the generation serves: then a worker that
	// exits is a failed start, not something to restart.
	starting bool
	startErr error

	draining     bool
	drainOrder   ipc.Drain
	drainStarted time.Time

	// lastCheck is when checkBeats last ran, or when the workers were
	// first started (the owner's checks begin then).
	lastCheck time.Time

	// askKey answers a worker's API key question. It may block on Edge,
	// so it runs on its own goroutine, never on the owner's.
	askKey func(ipc.KeyAsk) ipc.KeyTell
	// records takes the analytics records a worker sends. It is called on
	// the worker's reader goroutine, so that every record a worker wrote
	// before it exited is taken before its reader ends.
	records func(lines []byte)
	// recordsBuffer gives the memory a records frame of n bytes is read
	// into (nil: allocated as it arrives).
	recordsBuffer func(n int) []byte
	// quotaWatch takes a worker's quota-watch (edge quota backend).
	quotaWatch func(ipc.QuotaWatch)
	// retired sums the metrics of workers that have exited, so that the
	// instance's counters never go down.
	retired ipc.Metrics
	// readers counts the goroutines still reading a worker's channel.
	readers sync.WaitGroup
}

func newSupervisor(n int, sp Spawner, clock Clock, log zerolog.Logger) *supervisor {
	s := &supervisor{spawner: sp, clock: clock, log: log, events: make(chan event, 64), starting: true}
	for i := range n {
		s.slots = append(s.slots, &slot{id: i, backoff: newBackoff(), exited: true})
	}
	return s
}

// Events is the channel the owner reads and passes to handle.
func (s *supervisor) Events() <-chan event { return s.events }

// setConfig makes snap the configuration of every worker, present and future.
func (s *supervisor) setConfig(snap *configs.Snapshot) error {
	b, err := snap.Encode()
	if err != nil {
		return err
	}
	f, err := ipc.Marshal(ipc.KindConfig, ipc.Config{Revision: snap.Revision, Snapshot: b})
	if err != nil {
		return err
	}
	s.snap, s.frame = snap, f
	for _, sl := range s.slots {
		if sl.hello && !sl.exited && sl.state != ipc.StateDraining {
			s.send(sl, f)
		}
	}
	return nil
}

// startAll spawns every worker slot. The beat checks start with it.
func (s *supervisor) startAll() {
	s.lastCheck = s.clock.Now()
	for _, sl := range s.slots {
		s.spawn(sl)
	}
}

func (s *supervisor) spawn(sl *slot) {
	s.inc++
	inc := s.inc
	sl.inc, sl.hello, sl.revision, sl.requests, sl.active = inc, false, 0, 0, 0
	sl.state = ipc.StateStarting
	sl.started = s.clock.Now()
	sl.lastBeat = sl.started
	proc, conn, err := s.spawner.Spawn(sl.id, func(err error) {
		s.events <- event{id: sl.id, inc: inc, exit: true, err: err}
	})
	if err != nil {
		s.log.Error().Err(err).Int(logkey.WorkerID, sl.id).Msg("spawning worker")
		sl.exited = true
		s.scheduleRestart(sl, 0)
		return
	}
	sl.proc, sl.conn, sl.exited = proc, conn, false
	s.log.Info().Int(logkey.WorkerID, sl.id).Int(logkey.WorkerPID, proc.Pid()).Msg("worker started")
	s.readers.Add(1)
	records, recordsBuffer := s.records, s.recordsBuffer
	into := func(k ipc.Kind, n int) []byte {
		if k != ipc.KindRecords || records == nil || recordsBuffer == nil {
			return nil
		}
		return recordsBuffer(n)
	}
	go func() {
		defer s.readers.Done()
		defer conn.Close()
		for {
			f, err := conn.RecvInto(into)
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				s.events <- event{id: sl.id, inc: inc, err: err}
				return
			}
			if f.Kind == ipc.KindRecords {
				if records != nil {
					records(f.Payload)
				}
				continue
			}
			s.events <- event{id: sl.id, inc: inc, frame: &f}
		}
	}()
}

func (s *supervisor) send(sl *slot, f ipc.Frame) {
	if err := sl.conn.SendFrame(f); err != nil {
		s.log.Warn().Err(err).Int(logkey.WorkerID, sl.id).Int(logkey.WorkerPID, sl.proc.Pid()).Msg("sending to worker")
	}
}

// handle applies one event to the table.
func (s *supervisor) handle(ev event) {
	if ev.id < 0 || ev.id >= len(s.slots) {
		return
	}
	sl := s.slots[ev.id]
	if ev.inc != sl.inc {
		return // about a process this slot no longer runs
	}
	switch {
	case ev.retry:
		sl.stopRetry = nil
		if sl.exited && !s.draining {
			sl.restarts++
			s.spawn(sl)
		}
	case ev.exit:
		s.onExit(sl, ev.err)
	case ev.frame != nil:
		s.onFrame(sl, *ev.frame)
	case ev.err != nil:
		s.log.Warn().Err(ev.err).Int(logkey.WorkerID, sl.id).Msg("worker channel failed")
	}
}

func (s *supervisor) onFrame(sl *slot, f ipc.Frame) {
	log := s.log.With().Int(logkey.WorkerID, sl.id).Int(logkey.WorkerPID, sl.proc.Pid()).Logger()
	sl.lastBeat = s.clock.Now()
	if sl.state == ipc.StateUnresponsive {
		sl.state = ipc.StateServing
		log.Info().Msg("worker answers again")
	}
	switch f.Kind {
	case ipc.KindHello:
		s.onHello(sl, f, log)
	case ipc.KindAck:
		s.onAck(sl, f, log)
	case ipc.KindReady:
		if sl.state == ipc.StateStarting {
			sl.state = ipc.StateServing
			log.Info().Uint64(logkey.Revision, sl.revision).Msg("worker ready")
		}
	case ipc.KindKeyAsk:
		s.onKeyAsk(sl, f, log)
	case ipc.KindQuota:
		var w ipc.QuotaWatch
		if err := f.Decode(&w); err != nil || s.quotaWatch == nil {
			log.Warn().AnErr(logkey.Error, err).Msg("quota-watch ignored")
			return
		}
		s.quotaWatch(w)
	case ipc.KindStats:
		var st ipc.Stats
		if err := f.Decode(&st); err == nil {
			sl.requests, sl.active = st.Requests, st.Active
			if st.Metrics != nil {
				sl.metrics = st.Metrics
			}
			if st.Draining && sl.state == ipc.StateServing {
				// SIGTERM sent to the worker itself: it finishes its
				// requests, beating on, and is replaced when it exits.
				sl.state = ipc.StateDraining
				log.Info().Msg("worker draining on its own")
			}
		}
	default:
		log.Debug().Stringer(logkey.Kind, f.Kind).Msg("ignoring unknown message")
	}
}

// onHello takes a worker's hello: one that speaks another protocol is
// killed, one that speaks ours gets the configuration.
func (s *supervisor) onHello(sl *slot, f ipc.Frame, log zerolog.Logger) {
	var h ipc.Hello
	if err := f.Decode(&h); err != nil || h.Protocol != ipc.ProtocolVersion {
		log.Error().Err(err).Int(logkey.Protocol, h.Protocol).Msg("bad hello: stopping worker")
		_ = sl.proc.Signal(syscall.SIGKILL)
		return
	}
	sl.hello = true
	if s.snap != nil {
		s.send(sl, s.frame)
	}
}

// onAck takes the revision a worker now serves, and says so once every
// worker serves the newest.
func (s *supervisor) onAck(sl *slot, f ipc.Frame, log zerolog.Logger) {
	var a ipc.Ack
	if err := f.Decode(&a); err != nil {
		log.Warn().Err(err).Msg("bad ack")
		return
	}
	sl.revision = a.Revision
	if a.Error != "" {
		log.Error().Str(logkey.Error, a.Error).Uint64(logkey.ServingRevision, a.Revision).Msg("worker rejected config")
		return
	}
	if s.snap != nil && s.allAt(s.snap.Revision) {
		log.Info().Uint64(logkey.Revision, s.snap.Revision).Msg("config revision applied by every worker")
	}
}

// onKeyAsk answers a worker's API key question on a goroutine of its
// own: the answer may wait on Edge.
func (s *supervisor) onKeyAsk(sl *slot, f ipc.Frame, log zerolog.Logger) {
	var ask ipc.KeyAsk
	if err := f.Decode(&ask); err != nil {
		log.Warn().Err(err).Msg("bad key question")
		return
	}
	conn, answer := sl.conn, s.askKey
	go func() {
		tell := ipc.KeyTell{ID: ask.ID, Error: "API keys are not verified by the master in local mode"}
		if answer != nil {
			tell = answer(ask)
		}
		_ = conn.Send(ipc.KindKeyTell, tell)
	}()
}

func (s *supervisor) onExit(sl *slot, err error) {
	if sl.exited {
		return
	}
	sl.exited = true // its reader closes the channel once it has read all of it
	if sl.metrics != nil {
		addMetrics(&s.retired, sl.metrics)
		sl.metrics = nil
	}
	uptime := s.clock.Now().Sub(sl.started)
	log := s.log.With().Int(logkey.WorkerID, sl.id).Int(logkey.WorkerPID, sl.proc.Pid()).Dur(logkey.UptimeMS, uptime).Logger()
	if s.draining {
		log.Info().AnErr(logkey.Exit, err).Msg("worker exited")
		return
	}
	if s.starting {
		log.Error().AnErr(logkey.Exit, err).Msg("worker exited before the generation served")
		if s.startErr == nil {
			cause := err
			if cause == nil {
				cause = errors.New("exit status 0")
			}
			s.startErr = fmt.Errorf("worker %d exited before it served (see its log): %w", sl.id, cause)
		}
		return
	}
	delay := sl.backoff.next(uptime)
	switch {
	case sl.state == ipc.StateDraining:
		log.Info().AnErr(logkey.Exit, err).Dur(logkey.RestartInMS, delay).Msg("worker drained on its own: replacing it")
	case sl.backoff.crashLooping():
		log.Error().AnErr(logkey.Exit, err).Dur(logkey.RestartInMS, delay).Int(logkey.Restarts, sl.restarts).Msg("worker crash-looping: restarting with backoff")
	default:
		log.Warn().AnErr(logkey.Exit, err).Msg("worker died: replacing it")
	}
	sl.state = ipc.StateBackoff
	s.scheduleRestart(sl, delay)
}

func (s *supervisor) scheduleRestart(sl *slot, delay time.Duration) {
	inc := sl.inc
	if delay <= 0 {
		sl.restarts++
		s.spawn(sl)
		return
	}
	sl.stopRetry = s.clock.AfterFunc(delay, func() {
		s.events <- event{id: sl.id, inc: inc, retry: true}
	})
}

// checkBeats marks the serving workers that have gone silent, and kills
// those silent for ReplaceAfter (their exit replaces them), a worker
// draining on its own too (it beats while it drains). The owner calls it
// every BeatCheckEvery. When this check comes StalledAfter or more after
// the one before, the master's own loop did not run in between: the
// beats the workers sent meanwhile are still unread, so it judges no
// worker, and moves every silence clock forward by the time the master
// lost; a worker already silent before keeps the silence the master saw,
// and is replaced when it stays silent.
func (s *supervisor) checkBeats() {
	now := s.clock.Now()
	gap := now.Sub(s.lastCheck)
	stalled := !s.lastCheck.IsZero() && gap >= StalledAfter
	s.lastCheck = now
	if s.draining {
		return
	}
	if stalled {
		s.log.Warn().Dur(logkey.StalledMS, gap).Msg("the master did not run: no worker is judged on the silence it missed")
		lost := gap - BeatCheckEvery
		for _, sl := range s.slots {
			if sl.lastBeat = sl.lastBeat.Add(lost); sl.lastBeat.After(now) {
				sl.lastBeat = now
			}
		}
		return
	}
	for _, sl := range s.slots {
		if sl.exited || (sl.state != ipc.StateServing && sl.state != ipc.StateUnresponsive && sl.state != ipc.StateDraining) {
			continue
		}
		silent := now.Sub(sl.lastBeat)
		log := s.log.With().Int(logkey.WorkerID, sl.id).Int(logkey.WorkerPID, sl.proc.Pid()).Dur(logkey.SilentMS, silent).Logger()
		switch {
		case silent >= ReplaceAfter:
			log.Error().Msg("worker unresponsive: killing and replacing it")
			_ = sl.proc.Signal(syscall.SIGKILL)
			sl.lastBeat = now // one kill per silence; the exit replaces it
		case silent >= UnresponsiveAfter && sl.state == ipc.StateServing:
			sl.state = ipc.StateUnresponsive
			log.Warn().Msg("worker missed its stats beats: unresponsive")
		}
	}
}

// allServing reports whether every worker serves.
func (s *supervisor) allServing() bool {
	for _, sl := range s.slots {
		if sl.exited || sl.state != ipc.StateServing {
			return false
		}
	}
	return true
}

// allAt reports whether every live worker has applied revision rev.
func (s *supervisor) allAt(rev uint64) bool {
	for _, sl := range s.slots {
		if !sl.exited && sl.hello && sl.revision < rev {
			return false
		}
	}
	return true
}

// startFailure returns why the generation cannot start: a worker that
// exited before it served.
func (s *supervisor) startFailure() error { return s.startErr }

// drainAll orders every worker to drain; workers that exit from now on
// are not replaced.
func (s *supervisor) drainAll(d ipc.Drain) {
	s.draining = true
	s.drainOrder = d
	s.drainStarted = s.clock.Now()
	f, _ := ipc.Marshal(ipc.KindDrain, d)
	for _, sl := range s.slots {
		if sl.stopRetry != nil {
			sl.stopRetry()
			sl.stopRetry = nil
		}
		if !sl.exited {
			sl.state = ipc.StateDraining
			s.send(sl, f)
		}
	}
}

// signalAll sends sig to every live worker that has said hello (by then
// it has its signal handlers).
func (s *supervisor) signalAll(sig syscall.Signal) {
	for _, sl := range s.slots {
		if !sl.exited && sl.hello {
			_ = sl.proc.Signal(sig)
		}
	}
}

// killAll sends SIGKILL to every live worker and returns how many there were.
func (s *supervisor) killAll() int {
	n := 0
	for _, sl := range s.slots {
		if !sl.exited {
			n++
			s.log.Warn().Int(logkey.WorkerID, sl.id).Int(logkey.WorkerPID, sl.proc.Pid()).Msg("killing worker")
			_ = sl.proc.Signal(syscall.SIGKILL)
		}
	}
	return n
}

// waitReaders waits, up to d, until every worker's channel has been read
// to its end.
func (s *supervisor) waitReaders(d time.Duration) bool {
	done := make(chan struct{})
	go func() { s.readers.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// allExited reports whether no worker process is left.
func (s *supervisor) allExited() bool {
	for _, sl := range s.slots {
		if !sl.exited {
			return false
		}
	}
	return true
}

// status returns the worker table for `mgw status`.
func (s *supervisor) status() []ipc.WorkerStatus {
	now := s.clock.Now()
	out := make([]ipc.WorkerStatus, 0, len(s.slots))
	for _, sl := range s.slots {
		ws := ipc.WorkerStatus{ID: sl.id, State: sl.state, Revision: sl.revision, Requests: sl.requests, Active: sl.active, Restarts: sl.restarts}
		if !sl.exited {
			ws.PID = sl.proc.Pid()
			ws.UptimeS = now.Sub(sl.started).Seconds()
		}
		out = append(out, ws)
	}
	return out
}
