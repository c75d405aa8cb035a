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
// the record and allocates nothing once the buffers have grown.
//
// A request only ever appends to the buffer under a lock that nothing
// holds for longer than an append or a swap: the frames are written by
// the sink's own goroutine (run), which swaps the full buffer for its
// empty one and writes with no lock held. While the master does not read
// (stopped, stalled, busy), that write blocks, the buffer fills up to
// recordMaxBytes, and later records are dropped and counted; requests
// go on as before.
type recordSink struct {
	conn    *ipc.Conn
	mu      sync.Mutex
	buf     []byte // filled by requests
	spare   []byte // the writer's buffer, empty, when it is idle
	dropped uint64
	// kick asks the worker's loop to send now.
	kick chan struct{}
	// pending tells the worker's loop that the buffer is no longer
	// empty, so that it sends within recordFlush; an idle worker has no
	// timer running.
	pending chan<- struct{}
	// send wakes the writer; done is closed when it has ended.
	send chan struct{}
	stop chan struct{}
	done chan struct{}
}

// recordMaxBytes bounds what a worker holds when the master does not
// read: past it, records are dropped (and counted) rather than held.
const recordMaxBytes = 8 << 20

func newRecordSink(conn *ipc.Conn, pending chan<- struct{}) *recordSink {
	s := &recordSink{conn: conn, kick: make(chan struct{}, 1), pending: pending,
		send: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go s.run()
	return s
}

// signal sends on c without waiting: one signal pending is enough.
func signal(c chan<- struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Record implements plugins.RecordSink. It never waits for the master.
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

// flush asks the writer to send what is collected; it does not wait.
func (s *recordSink) flush() { signal(s.send) }

// close sends what is left and ends the writer. It waits for the master
// to take the last frame: the records of the last requests, before the
// channel closes.
func (s *recordSink) close() {
	close(s.stop)
	<-s.done
}

// run writes the collected records to the master, one frame per wake-up.
func (s *recordSink) run() {
	defer close(s.done)
	for {
		select {
		case <-s.send:
			s.write()
		case <-s.stop:
			s.write()
			return
		}
	}
}

// write swaps the buffers and writes the full one as one frame; the
// frame is copied into the channel's own buffer, so the writer keeps
// the buffer and reuses it.
func (s *recordSink) write() {
	s.mu.Lock()
	b := s.buf
	s.buf, s.spare = s.spare[:0], nil
	s.mu.Unlock()
	if len(b) > 0 {
		_ = s.conn.SendFrame(ipc.Frame{Kind: ipc.KindRecords, Payload: b})
	}
	s.mu.Lock()
	s.spare = b[:0]
	s.mu.Unlock()
}

// droppedCount is how many records the sink has dropped.
func (s *recordSink) droppedCount() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}
