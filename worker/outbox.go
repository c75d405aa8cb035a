package worker

import (
	"sync"

	"github.com/rs/zerolog"

	"github.com/mgw-gateway/mgw/internal/logkey"
	"github.com/mgw-gateway/mgw/ipc"
)

// maxAcks bounds the acks that wait for a master that does not read.
const maxAcks = 16

// outbox sends the loop's frames to the master (acks and stats) from a
// goroutine of its own, so that the loop never waits for a master that
// does not read (stopped, stalled, busy): the loop only leaves a frame
// and wakes the sender. A stats frame is a beat, so the newest replaces
// one not yet sent; acks go in order, at most maxAcks waiting, the oldest
// dropped past that (the newest says which revision the worker serves).
// It holds at most maxAcks acks and one stats frame, however long the
// master does not read.
type outbox struct {
	conn *ipc.Conn
	log  zerolog.Logger

	mu       sync.Mutex
	acks     []ipc.Ack
	stats    ipc.Stats
	hasStats bool

	wake chan struct{}
	stop chan struct{}
	done chan struct{}
}

func newOutbox(conn *ipc.Conn, log zerolog.Logger) *outbox {
	o := &outbox{conn: conn, log: log, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go o.run()
	return o
}

// sendAck leaves an ack for the sender; it never waits.
func (o *outbox) sendAck(a ipc.Ack) {
	o.mu.Lock()
	if len(o.acks) == maxAcks {
		o.log.Warn().Uint64(logkey.Revision, o.acks[0].Revision).Msg("the master reads nothing: an unsent ack is dropped")
		o.acks = append(o.acks[:0], o.acks[1:]...)
	}
	o.acks = append(o.acks, a)
	o.mu.Unlock()
	signal(o.wake)
}

// sendStats leaves a stats frame for the sender, in place of one not yet
// sent; it never waits.
func (o *outbox) sendStats(s ipc.Stats) {
	o.mu.Lock()
	if o.hasStats && s.Metrics == nil {
		// The counters of the unsent frame are still the latest.
		s.Metrics = o.stats.Metrics
	}
	o.stats, o.hasStats = s, true
	o.mu.Unlock()
	signal(o.wake)
}

// close ends the sender, without sending what waits. A send under way
// fails once the channel is closed, so close comes after that.
func (o *outbox) close() {
	close(o.stop)
	<-o.done
}

// run sends what waits, each time it is woken, until close.
func (o *outbox) run() {
	defer close(o.done)
	for {
		select {
		case <-o.wake:
			for o.sendOne() {
			}
		case <-o.stop:
			return
		}
	}
}

// sendOne sends the oldest ack waiting, else the stats frame, and
// reports whether it sent one.
func (o *outbox) sendOne() bool {
	o.mu.Lock()
	switch {
	case len(o.acks) > 0:
		a := o.acks[0]
		o.acks = append(o.acks[:0], o.acks[1:]...)
		o.mu.Unlock()
		if err := o.conn.Send(ipc.KindAck, a); err != nil {
			o.log.Error().Err(err).Msg("acknowledging config")
		}
		return true
	case o.hasStats:
		s := o.stats
		o.stats, o.hasStats = ipc.Stats{}, false
		o.mu.Unlock()
		_ = o.conn.Send(ipc.KindStats, s)
		return true
	}
	o.mu.Unlock()
	return false
}
