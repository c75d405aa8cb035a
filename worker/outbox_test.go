package worker

import (
	"net"
	"testing"

	"github.com/rs/zerolog"

	"github.com/mgw-gateway/mgw/ipc"
)

// TestOutboxHoldsLittleForAMasterThatDoesNotRead: while the master reads
// nothing, the outbox takes any number of stats and acks without
// waiting; once it reads, it gets the acks in order (the newest
// maxAcks at least), and at most two stats frames, the last the newest,
// with the newest counters sent.
func TestOutboxHoldsLittleForAMasterThatDoesNotRead(t *testing.T) {
	t.Parallel()
	workerEnd, masterEnd := net.Pipe() // synchronous: a write waits for a read
	o := newOutbox(ipc.NewConn(workerEnd), zerolog.Nop())
	const n = 1000
	for i := uint64(1); i <= n; i++ {
		s := ipc.Stats{Requests: i}
		if i == n/2 {
			s.Metrics = &ipc.Metrics{RecordsDropped: i}
		}
		o.sendStats(s)
		o.sendAck(ipc.Ack{Revision: i})
	}
	o.mu.Lock()
	held := len(o.acks)
	o.mu.Unlock()
	if held > maxAcks {
		t.Fatalf("%d acks held, want at most %d", held, maxAcks)
	}

	master := ipc.NewConn(masterEnd)
	var acks []uint64
	var stats []ipc.Stats
	for len(acks) == 0 || acks[len(acks)-1] != n || len(stats) == 0 || stats[len(stats)-1].Requests != n {
		f, err := master.Recv()
		if err != nil {
			t.Fatal(err)
		}
		switch f.Kind {
		case ipc.KindAck:
			var a ipc.Ack
			_ = f.Decode(&a)
			acks = append(acks, a.Revision)
		case ipc.KindStats:
			var s ipc.Stats
			_ = f.Decode(&s)
			stats = append(stats, s)
		}
	}
	for i := 1; i < len(acks); i++ {
		if acks[i] <= acks[i-1] {
			t.Fatalf("acks out of order: %v", acks)
		}
	}
	if len(acks) < maxAcks || len(acks) > maxAcks+1 {
		t.Fatalf("%d acks received, want the newest %d (and one in flight): %v", len(acks), maxAcks, acks)
	}
	if len(stats) > 2 {
		t.Fatalf("%d stats frames received, want the newest (and one in flight)", len(stats))
	}
	if m := stats[len(stats)-1].Metrics; m == nil || m.RecordsDropped != n/2 {
		t.Fatalf("the newest stats frame lost the counters of the one it replaced: %+v", m)
	}
	_ = workerEnd.Close()
	o.close()
}
