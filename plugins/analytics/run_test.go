package analytics

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// fakeTicker is Run's clock in tests: it ticks when the test says.
type fakeTicker struct{ c chan time.Time }

func (f *fakeTicker) C() <-chan time.Time { return f.c }
func (f *fakeTicker) Reset(time.Duration) {}
func (f *fakeTicker) Stop()               {}

// slowSink is an upload target that holds every upload until the test
// releases it, and fails the uploads it is told to.
type slowSink struct {
	started chan int     // the size of each batch, as its upload starts
	release chan error   // one per upload: its result
	got     atomic.Int64 // records received
	open    atomic.Int32 // uploads in progress
	most    atomic.Int32 // the most in progress at once
}

func newSlowSink() *slowSink {
	return &slowSink{started: make(chan int, 100), release: make(chan error)}
}

func (s *slowSink) send(_ context.Context, b Batch) (int, error) {
	n := s.open.Add(1)
	for m := s.most.Load(); n > m && !s.most.CompareAndSwap(m, n); m = s.most.Load() {
	}
	s.started <- b.N
	err := <-s.release
	s.open.Add(-1)
	if err == nil {
		s.got.Add(int64(b.N))
	}
	return 0, err
}

// expectStarts waits for n uploads to start and returns their sizes.
func (s *slowSink) expectStarts(t *testing.T, n int) []int {
	t.Helper()
	var sizes []int
	for range n {
		select {
		case b := <-s.started:
			sizes = append(sizes, b)
		case <-time.After(5 * time.Second):
			t.Fatalf("%d uploads started, want %d", len(sizes), n)
		}
	}
	return sizes
}

// waitLanded waits until Run has counted every upload as finished.
func waitLanded(t *testing.T, q *Queue) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, up := q.Load(); up == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("uploads still in flight")
		}
		time.Sleep(time.Millisecond)
	}
}

func runQueue(t *testing.T, q *Queue) (ft *fakeTicker, stop func()) {
	t.Helper()
	ft = &fakeTicker{c: make(chan time.Time)}
	q.newTicker = func(time.Duration) ticker { return ft }
	stopCh, done := make(chan struct{}), make(chan struct{})
	go func() { defer close(done); q.Run(stopCh) }()
	var once sync.Once
	stop = func() { once.Do(func() { close(stopCh); <-done }) }
	t.Cleanup(stop)
	return ft, stop
}

// TestRunUploadsFullBatchesAtOnceAndConcurrently: full batches go without
// a tick, at most concurrency at a time; what is left of a batch goes at
// the next tick; nothing is lost.
func TestRunUploadsFullBatchesAtOnceAndConcurrently(t *testing.T) {
	t.Parallel()
	sink := newSlowSink()
	s := settings(100, 10)
	s.Concurrency = 2
	q := NewQueue(s, sink.send, "", zerolog.Nop())
	ft, stop := runQueue(t, q)

	q.Add(recs(1, 45)) // 4 full batches and 5 records
	if got := sink.expectStarts(t, 2); fmt.Sprint(got) != "[10 10]" {
		t.Fatalf("first uploads %v, want two full batches", got)
	}
	if _, uploading := q.Load(); uploading != 2 {
		t.Fatalf("%d uploads in flight, want 2", uploading)
	}
	sink.release <- nil // one slot frees: the next full batch goes
	if got := sink.expectStarts(t, 1); got[0] != 10 {
		t.Fatalf("upload of %d, want a full batch", got[0])
	}
	sink.release <- nil
	sink.release <- nil
	if got := sink.expectStarts(t, 1); got[0] != 10 {
		t.Fatalf("upload of %d, want the last full batch", got[0])
	}
	sink.release <- nil
	waitLanded(t, q)
	// 5 records are left: no full batch, so nothing until the tick.
	select {
	case b := <-sink.started:
		t.Fatalf("an upload of %d records started without a tick", b)
	default:
	}
	ft.c <- time.Now()
	if got := sink.expectStarts(t, 1); got[0] != 5 {
		t.Fatalf("the tick sent %d records, want the 5 left", got[0])
	}
	sink.release <- nil
	stop()
	if sink.most.Load() != 2 {
		t.Fatalf("%d uploads at once, want 2", sink.most.Load())
	}
	if n, d, sent := q.Stats(); n != 0 || d != 0 || sent != 45 || sink.got.Load() != 45 {
		t.Fatalf("queued %d dropped %d sent %d received %d", n, d, sent, sink.got.Load())
	}
}

// TestRunBacksOffAndPutsBackFailedBatches: a failed upload puts its batch
// back and stops uploads (full batches too) for the backoff ticks; then
// everything goes.
func TestRunBacksOffAndPutsBackFailedBatches(t *testing.T) {
	t.Parallel()
	sink := newSlowSink()
	s := settings(100, 10)
	s.Concurrency = 1
	q := NewQueue(s, sink.send, "", zerolog.Nop())
	ft, stop := runQueue(t, q)

	q.Add(recs(1, 10))
	sink.expectStarts(t, 1)
	sink.release <- errors.New("edge down") // failing = 1: skip 2 ticks
	waitLanded(t, q)
	ft.c <- time.Now()  // first tick of the backoff: nothing
	q.Add(recs(11, 30)) // full batches while backing off: nothing
	ft.c <- time.Now()  // a tick is handled only after the Add's signal
	if got := sink.expectStarts(t, 1); got[0] != 10 {
		t.Fatalf("after the backoff: an upload of %d", got[0])
	}
	if n, _, _ := q.Stats(); n != 20 {
		t.Fatalf("%d queued during the retry, want 20 (the failed batch was put back)", n)
	}
	for range 2 { // the two full batches queued during the backoff
		sink.release <- nil
		sink.expectStarts(t, 1)
	}
	sink.release <- nil
	stop()
	if n, d, sent := q.Stats(); n != 0 || d != 0 || sent != 30 {
		t.Fatalf("queued %d dropped %d sent %d", n, d, sent)
	}
}

// TestRunStopWaitsForUploadsInFlight: stop returns only when the uploads
// it found in flight are done, so none is both received and spooled.
func TestRunStopWaitsForUploadsInFlight(t *testing.T) {
	t.Parallel()
	sink := newSlowSink()
	s := settings(100, 10)
	s.Concurrency = 3
	q := NewQueue(s, sink.send, "", zerolog.Nop())
	_, stop := runQueue(t, q)
	q.Add(recs(1, 30))
	sink.expectStarts(t, 3)
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	for range 3 {
		select {
		case <-stopped:
			t.Fatal("Run returned with uploads in flight")
		case sink.release <- nil:
		}
	}
	<-stopped
	if _, _, sent := q.Stats(); sent != 30 {
		t.Fatalf("sent %d, want 30", sent)
	}
}

// BenchmarkQueueAgainstASlowSink offers records at a fixed rate for a
// second to a queue whose sink takes 100 ms per upload, with the default
// settings, and reports the records per second received and dropped.
func BenchmarkQueueAgainstASlowSink(b *testing.B) {
	for _, offered := range []int{50000, 80000} {
		b.Run(fmt.Sprintf("offered=%d/s", offered), func(b *testing.B) {
			for b.Loop() {
				var got atomic.Int64
				s := Settings{BufferSize: 10000, BatchSize: 500, FlushInterval: 250, Concurrency: 16}
				q := NewQueue(s, func(_ context.Context, batch Batch) (int, error) {
					time.Sleep(100 * time.Millisecond)
					got.Add(int64(batch.N))
					return 0, nil
				}, "", zerolog.Nop())
				stop, done := make(chan struct{}), make(chan struct{})
				go func() { defer close(done); q.Run(stop) }()
				rec := `{"recordType":"APIAnalytics","apiproxy":"edgemicro_hello","response_status_code":200}` + "\n"
				const perFrame = 100
				start := time.Now()
				const d = time.Second
				for added := 0; time.Since(start) < d; {
					due := int(time.Since(start).Seconds() * float64(offered))
					for ; added+perFrame <= due; added += perFrame {
						q.Add(append(Buffer(perFrame*len(rec)), strings.Repeat(rec, perFrame)...))
					}
					time.Sleep(time.Millisecond)
				}
				for time.Since(start) < 3*d { // let the last uploads land
					if n, _, _ := q.Stats(); n == 0 {
						if _, up := q.Load(); up == 0 {
							break
						}
					}
					time.Sleep(10 * time.Millisecond)
				}
				close(stop)
				<-done
				_, dropped, _ := q.Stats()
				b.ReportMetric(float64(got.Load())/d.Seconds(), "received/s")
				b.ReportMetric(float64(dropped), "dropped")
			}
		})
	}
}

// BenchmarkMasterRecords is the master's work for one records frame of
// 300 records: it is read into memory (here copied), queued, cut into
// batches of 500 and made into upload bodies. Per record, for the
// analytics row of docs/PERFORMANCE.md.
func BenchmarkMasterRecords(b *testing.B) {
	rec := `{"client_received_start_timestamp":1795689452541,"client_received_end_timestamp":1795689452541,"recordType":"APIAnalytics","apiproxy":"api","request_uri":"http://127.0.0.1:18189/api/bench","request_path":"/api/bench","request_verb":"GET","client_ip":"127.0.0.1","useragent":"","apiproxy_revision":"1","response_status_code":200,"client_sent_start_timestamp":1795689452541,"client_sent_end_timestamp":1795689452541,"developer_email":"bench@example.com","developer_app":"bench-app","client_id":"bench-key"}` + "\n"
	frame := []byte(strings.Repeat(rec, 300))
	var bodies int
	q := NewQueue(Settings{BufferSize: 10000, BatchSize: 500, FlushInterval: 250, Concurrency: 16}, func(_ context.Context, batch Batch) (int, error) {
		body := recordsBody(batch)
		bodies += len(body)
		putBuffer(body)
		return 0, nil
	}, "", zerolog.Nop())
	b.ReportAllocs()
	for b.Loop() {
		q.Add(append(Buffer(len(frame)), frame...))
		q.mu.Lock()
		batch := q.takeLocked(true)
		q.mu.Unlock()
		if batch.N > 0 {
			_ = q.sendBatch(context.Background(), q.send, batch)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*300), "ns/record")
}
