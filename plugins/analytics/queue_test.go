package analytics

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// recs returns the records from to to as JSON lines, as a worker sends them.
func recs(from, to int) []byte {
	var out []byte
	for i := from; i <= to; i++ {
		out = fmt.Appendf(out, "{\"n\":%d}\n", i)
	}
	return out
}

func settings(buffer, batch int) Settings {
	return Settings{BufferSize: buffer, BatchSize: batch, FlushInterval: 10}
}

func TestQueueDropsTheOldestAndCounts(t *testing.T) {
	t.Parallel()
	var got []string
	q := NewQueue(settings(5, 2), func(_ context.Context, b Batch) (int, error) {
		for _, r := range b.Records() {
			got = append(got, string(r))
		}
		return 0, nil
	}, "", zerolog.Nop())
	q.Add(recs(1, 3))
	q.Add(recs(4, 8))
	if n, d, _ := q.Stats(); n != 5 || d != 3 {
		t.Fatalf("queued %d dropped %d", n, d)
	}
	if err := q.upload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != `[{"n":4} {"n":5} {"n":6} {"n":7} {"n":8}]` {
		t.Fatalf("sent %v", got)
	}
	if _, _, sent := q.Stats(); sent != 5 {
		t.Fatalf("sent count %d", sent)
	}
}

func TestQueueDropsABatchRefusedAsMalformed(t *testing.T) {
	t.Parallel()
	calls := 0
	q := NewQueue(settings(100, 2), func(context.Context, Batch) (int, error) {
		calls++
		if calls == 1 {
			return 0, fmt.Errorf("%w: 400", ErrBadBatch)
		}
		return 0, nil
	}, "", zerolog.Nop())
	q.Add(recs(1, 4))
	if err := q.upload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, d, s := q.Stats(); n != 0 || d != 2 || s != 2 {
		t.Fatalf("queued %d dropped %d sent %d", n, d, s)
	}
}

func TestQueueRequeuesFailuresAndRejections(t *testing.T) {
	t.Parallel()
	calls := 0
	q := NewQueue(settings(100, 4), func(_ context.Context, b Batch) (int, error) {
		calls++
		switch calls {
		case 1:
			return 0, errors.New("edge down")
		case 2:
			return 1, nil // the last record of the batch is rejected
		}
		return 0, nil
	}, "", zerolog.Nop())
	q.Add(recs(1, 4))
	if err := q.upload(context.Background()); err == nil {
		t.Fatal("a failed upload reported success")
	}
	if n, _, _ := q.Stats(); n != 4 {
		t.Fatalf("a failed batch was not put back: %d queued", n)
	}
	_ = q.upload(context.Background())
	if n, _, sent := q.Stats(); n != 1 || sent != 3 {
		t.Fatalf("after a rejection: %d queued, %d sent", n, sent)
	}
	if err := q.upload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, _, sent := q.Stats(); n != 0 || sent != 4 {
		t.Fatalf("finally: %d queued, %d sent", n, sent)
	}
}

func TestQueueSpoolsWhatItCannotSendAndTheNextOneAdoptsIt(t *testing.T) {
	t.Parallel()
	spool := t.TempDir()
	down := NewQueue(settings(100, 10), func(context.Context, Batch) (int, error) {
		return 0, errors.New("edge down")
	}, spool, zerolog.Nop())
	down.Add(recs(1, 25))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	down.Flush(ctx)
	if n, _, _ := down.Stats(); n != 0 {
		t.Fatalf("%d records left in memory after Flush", n)
	}
	var got int
	next := NewQueue(settings(100, 10), func(_ context.Context, b Batch) (int, error) {
		got += b.N
		return 0, nil
	}, spool, zerolog.Nop())
	entries, _ := os.ReadDir(spool)
	if len(entries) != 1 || !strings.HasPrefix(entries[0].Name(), spoolPrefix) {
		t.Fatalf("spool dir holds %v", entries)
	}
	next.adoptSpool()
	next.adoptSpool() // the file is gone: nothing twice
	if err := next.upload(context.Background()); err != nil || got != 25 {
		t.Fatalf("the next generation sent %d of 25 spooled records (%v)", got, err)
	}
}

// TestRecordJSONMatchesEncodingJSON: the hand-written encoder writes what
// encoding/json writes, for every field and for strings that need escapes.
func TestRecordJSONMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, r := range []Record{
		{RecordType: "APIAnalytics", ResponseStatusCode: 200},
		{
			ClientReceivedStart: 1795689452541, ClientReceivedEnd: 1795689452541, RecordType: "APIAnalytics",
			APIProxy: "edgemicro_hello", RequestURI: "http://h/hello/foo?a=1&b=<2>", RequestPath: "/hello/foo",
			RequestVerb: "GET", ClientIP: "127.0.0.1", UserAgent: "curl \"quoted\" \\ \t\n\x01 é \xff \u2028",
			APIProxyRevision: "1", ResponseStatusCode: 404, ClientSentStart: 1, ClientSentEnd: 2,
			DeveloperEmail: "dev@example.com", DeveloperApp: "app", AccessToken: "tok", ClientID: "cid",
			APIProduct: "prod", TargetSentStart: 3, TargetReceivedStart: 4, TargetReceivedEnd: 5,
			TargetBasepath: "/foo?a=1", TargetHost: "t", TargetURL: "http://t/foo?a=1", TargetResponseCode: 404,
			GatewayFlowID: "id",
		},
	} {
		want, _ := json.Marshal(&r)
		if got := r.appendJSON(nil); string(got) != string(want) {
			t.Errorf("hand-written\n %s\nencoding/json\n %s", got, want)
		}
	}
}

// FuzzRecordJSON: any strings give valid JSON equal to encoding/json's.
func FuzzRecordJSON(f *testing.F) {
	f.Add("/a?b=c", "curl/8", "\x00<&>\"\\\u2028\xff")
	f.Add("\b", "\f", "\x7f")
	f.Fuzz(func(t *testing.T, path, agent, other string) {
		r := Record{RequestPath: path, UserAgent: agent, ClientID: other, RecordType: "APIAnalytics"}
		want, _ := json.Marshal(&r)
		if got := r.appendJSON(nil); string(got) != string(want) {
			t.Fatalf("hand-written %s, encoding/json %s", got, want)
		}
	})
}

// TestQueueReconfigureKeepsWhatItHolds: new settings and a new sender
// take over the records already queued: they go out with the new sender,
// in the new batch size, and a smaller buffer drops the oldest.
func TestQueueReconfigureKeepsWhatItHolds(t *testing.T) {
	t.Parallel()
	var old, got []string
	collect := func(to *[]string) Sender {
		return func(_ context.Context, b Batch) (int, error) {
			*to = append(*to, fmt.Sprint(b.N))
			return 0, nil
		}
	}
	q := NewQueue(settings(100, 10), collect(&old), "", zerolog.Nop())
	q.Add(recs(1, 6))
	q.Reconfigure(settings(5, 2), collect(&got))
	if n, d, _ := q.Stats(); n != 5 || d != 1 {
		t.Fatalf("after a smaller buffer: queued %d, dropped %d; want 5 and 1", n, d)
	}
	if err := q.upload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(old) != 0 || fmt.Sprint(got) != "[2 2 1]" {
		t.Fatalf("old sender got batches %v, new one %v; want none, and [2 2 1]", old, got)
	}
	select {
	case <-q.changed:
	default:
		t.Fatal("Run was not told of the new settings")
	}
}

// TestQueueCutsFramesAtRecords: frames of any size are cut into batches
// of exactly batchSize records, in order, each record once; a full
// buffer drops whole records from the oldest frame; records rejected
// from the middle of a frame go out again first.
func TestQueueCutsFramesAtRecords(t *testing.T) {
	t.Parallel()
	var got []string
	calls := 0
	q := NewQueue(settings(12, 4), func(_ context.Context, b Batch) (int, error) {
		calls++
		got = append(got, strings.TrimSpace(string(b.Lines)))
		if calls == 2 {
			return 1, nil
		}
		return 0, nil
	}, "", zerolog.Nop())
	q.Add(recs(1, 3))
	q.Add(recs(4, 9))
	q.Add(recs(10, 14)) // 14 > 12: records 1 and 2 are dropped
	if n, d, _ := q.Stats(); n != 12 || d != 2 {
		t.Fatalf("queued %d dropped %d, want 12 and 2", n, d)
	}
	_ = q.upload(context.Background()) // stops at the rejection
	_ = q.upload(context.Background())
	want := []string{
		string(recs(3, 6)), string(recs(7, 10)), // 10 is rejected
		string(recs(10, 13)), string(recs(14, 14)),
	}
	for i := range want {
		want[i] = strings.TrimSpace(want[i])
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("batches\n%q\nwant\n%q", got, want)
	}
	if n, _, sent := q.Stats(); n != 0 || sent != 12 {
		t.Fatalf("queued %d, sent %d; want 0 and 12", n, sent)
	}
}

// TestQueueCountsLinesAsRecords: a payload's last record needs no
// newline, and empty lines are no records (they would make the upload
// invalid JSON).
func TestQueueCountsLinesAsRecords(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in    string
		n     int
		lines string
	}{
		{"", 0, ""},
		{"\n\n", 0, ""},
		{`{"a":1}`, 1, "{\"a\":1}\n"},
		{"{\"a\":1}\n\n{\"b\":2}", 2, "{\"a\":1}\n{\"b\":2}\n"},
		{"\n{\"a\":1}\n\n\n{\"b\":2}\n\n", 2, "{\"a\":1}\n{\"b\":2}\n"},
	} {
		c := newChunk([]byte(tc.in))
		if c.n != tc.n || string(c.lines) != tc.lines {
			t.Errorf("%q: %d records %q, want %d %q", tc.in, c.n, c.lines, tc.n, tc.lines)
		}
	}
}

// TestRecordsBodyJoinsLines: the upload body is {"records":[…]} of the
// batch's records, valid JSON, whatever the records hold.
func TestRecordsBodyJoinsLines(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ lines, want string }{
		{"", `{"records":[]}`},
		{"{\"a\":1}\n", `{"records":[{"a":1}]}`},
		{"{\"a\":\"x,y\"}\n{}\n{\"b\":[1,2]}\n", `{"records":[{"a":"x,y"},{},{"b":[1,2]}]}`},
	} {
		c := newChunk([]byte(tc.lines))
		got := recordsBody(Batch{Lines: c.lines, N: c.n})
		if string(got) != tc.want || !json.Valid(got) {
			t.Errorf("%q: body %s, want %s", tc.lines, got, tc.want)
		}
	}
}

// FuzzQueue: whatever frames arrive and whatever the batch size, the
// batches hold every record once, in order, at most batchSize each, and
// as JSON they are the records' array.
func FuzzQueue(f *testing.F) {
	f.Add([]byte{3, 1, 4, 1, 5, 9, 2, 6}, uint8(4))
	f.Add([]byte{0, 0, 7}, uint8(1))
	f.Fuzz(func(t *testing.T, frames []byte, batch uint8) {
		size := int(batch%16) + 1
		var sent []string
		q := NewQueue(settings(1<<20, size), func(_ context.Context, b Batch) (int, error) {
			if b.N > size || b.N != len(b.Records()) {
				t.Fatalf("a batch of %d records (%d lines), limit %d", b.N, len(b.Records()), size)
			}
			var arr struct{ Records []json.RawMessage }
			if err := json.Unmarshal(recordsBody(b), &arr); err != nil || len(arr.Records) != b.N {
				t.Fatalf("body of %d records: %v, %d in the array", b.N, err, len(arr.Records))
			}
			for _, r := range b.Records() {
				sent = append(sent, string(r))
			}
			return 0, nil
		}, "", zerolog.Nop())
		next := 1
		for _, n := range frames {
			k := int(n % 32)
			q.Add(append(Buffer(0), recs(next, next+k-1)...))
			next += k
		}
		if err := q.upload(context.Background()); err != nil {
			t.Fatal(err)
		}
		if len(sent) != next-1 {
			t.Fatalf("%d records sent, want %d", len(sent), next-1)
		}
		for i, r := range sent {
			if r != fmt.Sprintf(`{"n":%d}`, i+1) {
				t.Fatalf("record %d is %s", i+1, r)
			}
		}
	})
}

// TestQueueAllocatesNothingPerFrame: a frame read into the pool's
// memory, queued, taken as a batch and uploaded, allocates nothing once
// the pool holds its buffers.
func TestQueueAllocatesNothingPerFrame(t *testing.T) {
	frame := bytes.Repeat([]byte(`{"recordType":"APIAnalytics","apiproxy":"p","response_status_code":200}`+"\n"), 500)
	q := NewQueue(settings(10000, 500), func(context.Context, Batch) (int, error) { return 0, nil }, "", zerolog.Nop())
	round := func() {
		q.Add(append(Buffer(len(frame)), frame...))
		if err := q.upload(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	round()
	if n := testing.AllocsPerRun(100, round); n != 0 {
		t.Fatalf("%.1f allocations per frame, want 0", n)
	}
}

// TestBufferPool: a buffer given back is handed out again for a size it
// fits, the smallest that fits first; one over poolMaxBytes (a frame a
// stalled master let grow) is not kept.
func TestBufferPool(t *testing.T) {
	pool.Lock()
	saved := pool.free
	pool.free = nil
	pool.Unlock()
	defer func() { pool.Lock(); pool.free = saved; pool.Unlock() }()
	small, large, huge := Buffer(100<<10), Buffer(300<<10), Buffer(poolMaxBytes+1)
	putBuffer(large)
	putBuffer(small)
	putBuffer(huge)
	if got := Buffer(90 << 10); cap(got) != cap(small) {
		t.Fatalf("90 KiB got a buffer of %d bytes, want the %d of the smallest that fits", cap(got), cap(small))
	}
	if got := Buffer(200 << 10); cap(got) != cap(large) {
		t.Fatalf("200 KiB got a buffer of %d bytes, want %d", cap(got), cap(large))
	}
	pool.Lock()
	left := len(pool.free)
	pool.Unlock()
	if left != 0 {
		t.Fatalf("%d buffers left in the pool; the one over poolMaxBytes was kept", left)
	}
}

// TestAppendStringEveryByte: each byte value, alone and inside runs of
// plain bytes on either side, is encoded as encoding/json encodes it.
func TestAppendStringEveryByte(t *testing.T) {
	for c := 0; c < 256; c++ {
		for _, s := range []string{string(rune(c)), string([]byte{byte(c)}), "ab" + string([]byte{byte(c)}) + "cd", string([]byte{byte(c), byte(c)}) + "x"} {
			want, _ := json.Marshal(s)
			if got := appendString(nil, s); string(got) != string(want) {
				t.Fatalf("appendString(%q) = %s, encoding/json %s", s, got, want)
			}
		}
	}
}

func BenchmarkAppendString(b *testing.B) {
	s := "/api/bench/some/longer/path?with=a&query=string" + strings.Repeat("x", 100)
	buf := make([]byte, 0, 1024)
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		buf = appendString(buf[:0], s)
	}
}
