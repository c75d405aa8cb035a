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
}

var writerPool = sync.Pool{New: func() any { return new(responseWriter) }}

func (w *responseWriter) WriteHeader(code int) {
	if w.status != 0 {
		return
	}
	w.status = code
	h := w.Header()
	if w.responseTime {
		h["X-Response-Time"] = []string{strconv.FormatInt(time.Since(w.start).Milliseconds(), 10)}
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
