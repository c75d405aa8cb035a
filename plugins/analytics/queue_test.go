package analytics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

func recs(from, to int) [][]byte {
	var out [][]byte
	for i := from; i <= to; i++ {
		out = append(out, []byte(fmt.Sprintf(`{"n":%d}`, i)))
	}
	return out
}

func settings(buffer, batch int) Settings {
	return Settings{BufferSize: buffer, BatchSize: batch, FlushInterval: 10}
}

func TestQueueDropsTheOldestAndCounts(t *testing.T) {
	t.Parallel()
	var got []string
	q := NewQueue(settings(5, 2), func(_ context.Context, b [][]byte) (int, error) {
		for _, r := range b {
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
	q := NewQueue(settings(100, 2), func(context.Context, [][]byte) (int, error) {
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
	q := NewQueue(settings(100, 4), func(_ context.Context, b [][]byte) (int, error) {
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
	down := NewQueue(settings(100, 10), func(context.Context, [][]byte) (int, error) {
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
	next := NewQueue(settings(100, 10), func(_ context.Context, b [][]byte) (int, error) {
		got += len(b)
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
		return func(_ context.Context, b [][]byte) (int, error) {
			*to = append(*to, fmt.Sprint(len(b)))
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
