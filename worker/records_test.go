package worker

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/mgw-gateway/mgw/ipc"
)

// TestRecordSinkNeverWaitsForTheMaster: with a master that reads
// nothing, recording and flushing never block; once it reads again,
// every record is either received or counted as dropped.
func TestRecordSinkNeverWaitsForTheMaster(t *testing.T) {
	t.Parallel()
	worker, master := net.Pipe() // synchronous: a write waits for a read
	defer master.Close()
	s := newRecordSink(ipc.NewConn(worker), make(chan struct{}, 1))
	rec := bytes.Repeat([]byte("x"), 1000)
	const n = 10000 // 10 MB of records: more than recordMaxBytes
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range n {
			s.Record(rec)
			s.flush()
		}
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("recording waited for a master that does not read")
	}
	dropped := s.droppedCount()
	if dropped == 0 {
		t.Fatal("nothing dropped although the master read nothing")
	}
	got := make(chan int)
	go func() {
		c, lines := ipc.NewConn(master), 0
		for {
			f, err := c.Recv()
			if err != nil {
				got <- lines
				return
			}
			lines += bytes.Count(f.Payload, []byte("\n"))
		}
	}()
	s.close()
	_ = worker.Close()
	if lines := <-got; uint64(lines)+dropped != n {
		t.Fatalf("received %d + dropped %d != recorded %d", lines, dropped, n)
	}
}
