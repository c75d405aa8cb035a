package worker

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/mgw-gateway/mgw/ipc"
)

// recordBatch is how many analytics records a worker sends in one frame
// at most; a smaller batch goes every recordFlush.
const recordBatch = 256

// recordFlush bounds how long a record waits in the worker.
const recordFlush = 50 * time.Millisecond

// recordSink collects the analytics plugin's records and sends them to
// the master, which uploads them for the instance. It never blocks a
// request for longer than one frame write.
type recordSink struct {
	conn  *ipc.Conn
	mu    sync.Mutex
	batch []json.RawMessage
}

// Record implements plugins.RecordSink.
func (s *recordSink) Record(rec []byte) {
	s.mu.Lock()
	s.batch = append(s.batch, rec)
	full := len(s.batch) >= recordBatch
	s.mu.Unlock()
	if full {
		s.flush()
	}
}

// flush sends what is collected.
func (s *recordSink) flush() {
	s.mu.Lock()
	b := s.batch
	s.batch = nil
	s.mu.Unlock()
	if len(b) > 0 {
		_ = s.conn.Send(ipc.KindRecords, ipc.Records{Records: b})
	}
}
