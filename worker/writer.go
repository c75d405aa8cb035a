package worker

import (
	"net/http"
	"strconv"
	"sync"
	"time"
)

// responseWriter is the outermost ResponseWriter of every request. It
// records the status and adds the headers mgw writes on every response:
// X-Response-Time, and Connection: close once the worker drains.
type responseWriter struct {
	http.ResponseWriter
	start        time.Time
	status       int
	responseTime bool
	closeConn    bool
	// abort is set when the target's answer broke off after its head
	// went out: the connection must end without the answer's end.
	abort bool
}

var writerPool = sync.Pool{New: func() any { return new(responseWriter) }}

func (w *responseWriter) WriteHeader(code int) {
	if w.status != 0 {
		return
	}
	w.status = code
	h := w.Header()
	if w.responseTime {
		h["X-Response-Time"] = []string{millis(time.Since(w.start).Milliseconds())}
	}
	if w.closeConn {
		h["Connection"] = []string{"close"}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Flush sends buffered data to the client.
func (w *responseWriter) Flush() {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Status is the status written so far, 0 before the header.
func (w *responseWriter) Status() int { return w.status }

// smallMillis holds the decimal strings of 0 to 999, so that the
// X-Response-Time of nearly every answer costs no formatting.
var smallMillis = func() (t [1000]string) {
	for i := range t {
		t[i] = strconv.Itoa(i)
	}
	return t
}()

func millis(ms int64) string {
	if ms >= 0 && ms < int64(len(smallMillis)) {
		return smallMillis[ms]
	}
	return strconv.FormatInt(ms, 10)
}
