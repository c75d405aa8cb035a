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
	conn *ipc.Conn
	mu   sync.Mutex
	buf  []byte
}

// Record implements plugins.RecordSink.
func (s *recordSink) Record(rec []byte) {
	s.mu.Lock()
	s.buf = append(append(s.buf, rec...), '\n')
	if len(s.buf) >= recordFlushBytes {
		s.sendLocked()
	}
	s.mu.Unlock()
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
