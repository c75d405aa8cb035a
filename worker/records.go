package worker

import (
	"sync"
	"time"

	"github.com/mgw-gateway/mgw/ipc"
)

// recordFlushBytes is the size at which a worker sends its records at
// once; a smaller batch goes every recordFlush.
const recordFlushBytes = 128 << 10

// recordFlush bounds how long a record waits in the worker.
const recordFlush = 50 * time.Millisecond

// recordSink collects the analytics plugin's records, as JSON lines in
// one buffer that becomes the payload of a records frame, and sends them
// to the master, which uploads them for the instance. Recording copies
// the record and allocates nothing once the buffer has grown.
type recordSink struct {
	conn    *ipc.Conn
	mu      sync.Mutex
	buf     []byte
	dropped uint64
	// kick asks the worker's loop to send now: a request never writes to
	// the channel itself, so a slow master never blocks one.
	kick chan struct{}
	// pending tells the worker's loop that the buffer is no longer
	// empty, so that it sends within recordFlush; an idle worker has no
	// timer running.
	pending chan<- struct{}
}

// recordMaxBytes bounds what a worker holds when the master does not
// read: past it, records are dropped (and counted) rather than held.
const recordMaxBytes = 8 << 20

func newRecordSink(conn *ipc.Conn, pending chan<- struct{}) *recordSink {
	return &recordSink{conn: conn, kick: make(chan struct{}, 1), pending: pending}
}

// signal sends on c without waiting: one signal pending is enough.
func signal(c chan<- struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Record implements plugins.RecordSink.
func (s *recordSink) Record(rec []byte) {
	s.mu.Lock()
	if len(s.buf)+len(rec) >= recordMaxBytes {
		s.dropped++
		s.mu.Unlock()
		return
	}
	first := len(s.buf) == 0
	s.buf = append(append(s.buf, rec...), '\n')
	full := len(s.buf) >= recordFlushBytes
	s.mu.Unlock()
	if first {
		signal(s.pending)
	}
	if full {
		signal(s.kick)
	}
}

// flush sends what is collected.
func (s *recordSink) flush() {
	s.mu.Lock()
	s.sendLocked()
	s.mu.Unlock()
}

// sendLocked writes the buffer as one frame; the frame is copied into the
// channel's own buffer, so the sink keeps and reuses its buffer.
func (s *recordSink) sendLocked() {
	if len(s.buf) == 0 {
		return
	}
	_ = s.conn.SendFrame(ipc.Frame{Kind: ipc.KindRecords, Payload: s.buf})
	s.buf = s.buf[:0]
}

// droppedCount is how many records the sink has dropped.
func (s *recordSink) droppedCount() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}
