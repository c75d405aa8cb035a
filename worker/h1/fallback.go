package h1

import (
	"net"
	"net/http"
	"sync"
)

// FallbackListener is how a Server hands connections to another server,
// net/http's: use its Give as the Server's Fallback, and serve the other
// server on it.
type FallbackListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

// NewFallbackListener returns a listener that reports addr as its address.
func NewFallbackListener(addr net.Addr) *FallbackListener {
	return &FallbackListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

// Give hands c to the server accepting on l, or closes c once l is closed.
func (l *FallbackListener) Give(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		_ = c.Close()
	}
}

// Accept returns the next connection given.
func (l *FallbackListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close makes Accept fail and Give close what it is given.
func (l *FallbackListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// Addr is the address given to NewFallbackListener.
func (l *FallbackListener) Addr() net.Addr { return l.addr }

// OneRequest returns h with every answer closing its connection. Serve
// the fallback server with it: a connection handed over then carries
// only the request it was handed over for, and the next request on it
// comes on a new connection, whose head the Server screens (CONNECT,
// Content-Length with Transfer-Encoding, MaxHeaderBytes) before anything
// else. Without it, the requests that follow on a handed-over connection
// would be net/http's alone, which takes a request with both lengths as
// chunked and keeps the connection. The cost is a new connection after
// each unusual request (HTTP/1.0, a chunked or Expect body, a long head).
func OneRequest(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&closingWriter{ResponseWriter: w}, r)
	})
}

// closingWriter adds Connection: close to the final answer's head, after
// the handler has set its own header, so that nothing it copies (a
// target's Connection header) can take it out.
type closingWriter struct {
	http.ResponseWriter
	final bool // the final head was written
}

func (w *closingWriter) WriteHeader(code int) {
	if !w.final && (code >= 200 || code < 100) {
		w.final = true
		w.Header()["Connection"] = []string{"close"}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *closingWriter) Write(p []byte) (int, error) {
	if !w.final {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

// Flush sends the head, if not yet sent, and what was written.
func (w *closingWriter) Flush() {
	if !w.final {
		w.WriteHeader(http.StatusOK)
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *closingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
