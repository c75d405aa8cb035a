package worker

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/mgw-gateway/mgw/internal/logkey"
)

// pendingCount drains c and says how many signals were waiting.
func pendingCount(c chan struct{}) int {
	n := 0
	for {
		select {
		case <-c:
			n++
		default:
			return n
		}
	}
}

// TestLineBufferBatches: lines wait until a flush or a full buffer, and
// the loop is told once each time the buffer stops being empty.
func TestLineBufferBatches(t *testing.T) {
	var out bytes.Buffer
	pending := make(chan struct{}, 1)
	b := newLineBuffer(&out, pending)

	_, _ = b.Write([]byte("one\n"))
	_, _ = b.Write([]byte("two\n"))
	if out.Len() != 0 || pendingCount(pending) != 1 {
		t.Fatalf("before a flush: wrote %q, want nothing and one signal", out.String())
	}
	b.flush()
	if out.String() != "one\ntwo\n" {
		t.Fatalf("flush wrote %q", out.String())
	}
	_, _ = b.Write([]byte("three\n"))
	if pendingCount(pending) != 1 {
		t.Fatal("a line after a flush did not ask for the next one")
	}

	out.Reset()
	line := strings.Repeat("x", 1000) + "\n"
	for range accessLogBuffer / len(line) {
		_, _ = b.Write([]byte(line))
	}
	if out.Len() != 0 {
		t.Fatalf("wrote %d bytes before the buffer was full", out.Len())
	}
	_, _ = b.Write([]byte(line))
	if want := len("three\n") + accessLogBuffer/len(line)*len(line); out.Len() != want {
		t.Fatalf("a full buffer wrote %d bytes, want %d", out.Len(), want)
	}
	if pendingCount(pending) != 1 {
		t.Fatal("the line that started the next batch did not ask for a flush")
	}
}

// TestRecordSinkSignals: the first record asks for a timed flush, a full
// batch for one at once.
func TestRecordSinkSignals(t *testing.T) {
	pending := make(chan struct{}, 1)
	s := newRecordSink(nil, pending)
	s.Record([]byte(`{"a":1}`))
	s.Record([]byte(`{"a":2}`))
	if pendingCount(pending) != 1 || pendingCount(s.kick) != 0 {
		t.Fatal("two small records: want one timed flush asked for and no kick")
	}
	rec := []byte(strings.Repeat("r", 1023))
	for range recordFlushBytes / 1024 {
		s.Record(rec)
	}
	if pendingCount(s.kick) != 1 {
		t.Fatal("a full batch did not kick the loop")
	}
}

// TestAccessLogLineFields: an access log line names its fields from the
// log vocabulary, its duration in milliseconds under took_ms.
func TestAccessLogLineFields(t *testing.T) {
	tg := echoTarget(t)
	w, srv := newTestWorker(t, "[edgemicro.logging]\naccess_log = true\n"+routes, tg.URL)
	var out bytes.Buffer
	w.alog = zerolog.New(&out)
	req, _ := http.NewRequest("GET", srv.URL+"/hello/x?key=secret", nil)
	req.Header.Set("X-Request-Id", "r1")
	do(t, req)
	var line map[string]any
	if err := json.Unmarshal(out.Bytes(), &line); err != nil {
		t.Fatalf("access log %q: %v", out.String(), err)
	}
	for k, want := range map[string]any{
		logkey.Proxy: "hello", logkey.Method: "GET", logkey.Path: "/hello/x", logkey.Status: 200.0,
		logkey.ClientIP: "127.0.0.1", logkey.RequestID: "r1", logkey.Message: "request",
	} {
		if line[k] != want {
			t.Errorf("%s = %v, want %v (line %s)", k, line[k], want, out.String())
		}
	}
	if ms, ok := line[logkey.TookMS].(float64); !ok || ms <= 0 || ms > 60_000 {
		t.Errorf("%s = %v, want a duration in milliseconds", logkey.TookMS, line[logkey.TookMS])
	}
	if len(line) != 9 { // and level
		t.Errorf("the line has %d fields, want 9: %s", len(line), out.String())
	}
}
