// The client: Transport, the RoundTripper for a plain-HTTP target, and
// one exchange on a connection, from taking the connection to ending the
// exchange early when the request's context ends. The pool of
// connections is in clientpool.go, writing the request and reading the
// answer's head in clientwire.go, the answer's body in clientbody.go.

package h1

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Transport is an http.RoundTripper for one plain-HTTP target. The
// goroutine that calls RoundTrip writes the request and reads the answer
// itself, on a pooled keep-alive connection, where net/http's transport
// hands every request to two more goroutines per connection.
type Transport struct {
	// Addr is the target's host:port.
	Addr string
	// Dial opens a connection to Addr.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// MaxConns bounds the connections open at once; 0 means no limit.
	MaxConns int
	// ConnWait bounds a request's wait for a connection at MaxConns;
	// past it, RoundTrip fails with ErrConnWait. Zero: no bound but the
	// request's context.
	ConnWait time.Duration
	// ResponseHeaderTimeout bounds the wait for the answer's head after
	// the request was written; 0 means no limit.
	ResponseHeaderTimeout time.Duration
	// IdleTimeout closes a pooled connection idle this long.
	IdleTimeout time.Duration

	once   sync.Once
	idle   chan *clientConn
	tokens chan struct{} // one per open connection when MaxConns > 0
	sweep  sync.Mutex
	armed  bool
}

func (t *Transport) init() {
	t.once.Do(func() {
		n := 1024 // idle connections kept
		if t.MaxConns > 0 {
			n = t.MaxConns
			t.tokens = make(chan struct{}, t.MaxConns)
		}
		t.idle = make(chan *clientConn, n)
	})
}

// clientConn is one connection to the target.
type clientConn struct {
	t        *Transport
	nc       net.Conn
	br       *bufio.Reader
	bw       *bufio.Writer
	idleAt   time.Time
	deadline bool // a read deadline is set

	// While an exchange runs: what ends it early (see watchCtx).
	guard     *conn       // the fast-path client connection it runs for
	stopAfter func() bool // or the context.AfterFunc that aborts it
	aborted   atomic.Bool

	// The reuse check (see quiet): the socket, and its one peek, bound
	// once so that a check allocates nothing.
	sc      syscall.RawConn
	peekFn  func(fd uintptr)
	peekN   uintptr
	peekErr syscall.Errno
	peekBuf [1]byte
}

// RoundTrip sends req and returns the target's answer, whose Body must
// be read to its end or closed. A request without a body that fails on a
// reused connection before any answer arrives is sent once more on a
// new one, as net/http does for idempotent requests. The exchange, body
// included, ends at once when req's context is canceled; for a request
// of this package's Server (or a context derived from one), when its
// client goes away.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.init()
	ctx := req.Context()
	for attempt := 0; ; attempt++ {
		cc, reused, err := t.get(ctx)
		if err != nil {
			closeBody(req)
			return nil, err
		}
		cc.watchCtx(ctx)
		resp, err := cc.roundTrip(req)
		if err == nil {
			return resp, nil // the body ends the watch when it releases cc
		}
		aborted := cc.unwatchCtx()
		cc.close()
		var be errBody
		if errors.As(err, &be) {
			// The client's body failed, which may also have ended its
			// context; the body's error says why.
			closeBody(req)
			return nil, err
		}
		if aborted {
			closeBody(req)
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			return nil, context.Canceled
		}
		if reused && attempt == 0 && retryable(req, err) {
			continue
		}
		closeBody(req)
		return nil, err
	}
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// errStale is a reused connection the target closed before answering.
type errStale struct{ err error }

func (e errStale) Error() string { return e.err.Error() }
func (e errStale) Unwrap() error { return e.err }

// retryable reports whether req may be sent again after err: it carried
// no body, is idempotent, and no byte of an answer had arrived.
func retryable(req *http.Request, err error) bool {
	var s errStale
	if !errors.As(err, &s) || req.Body != nil && req.Body != http.NoBody {
		return false
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return req.Header.Get("Idempotency-Key") != "" || req.Header.Get("X-Idempotency-Key") != ""
}

// watchCtx has cc's exchange aborted if ctx is canceled before
// unwatchCtx. A fast-path request's context is watched through its
// server connection, which costs no goroutine and no allocation; any
// other cancelable context through context.AfterFunc.
func (cc *clientConn) watchCtx(ctx context.Context) {
	if sc := serverConn(ctx); sc != nil && sc.guard(cc) {
		cc.guard = sc
		return
	}
	if ctx.Done() != nil {
		cc.stopAfter = context.AfterFunc(ctx, cc.abort)
	}
}

// unwatchCtx ends watchCtx and reports whether the exchange was aborted;
// an aborted connection must be closed, not pooled.
func (cc *clientConn) unwatchCtx() bool {
	if cc.guard != nil {
		cc.guard.unguard(cc)
		cc.guard = nil
	}
	if cc.stopAfter != nil {
		if !cc.stopAfter() { // abort has run, or is running
			cc.aborted.Store(true)
		}
		cc.stopAfter = nil
	}
	return cc.aborted.Load()
}

// abort ends the connection's pending and later reads and writes at once.
func (cc *clientConn) abort() {
	cc.aborted.Store(true)
	_ = cc.nc.SetDeadline(aLongTimeAgo)
}

// setReadDeadline sets the read deadline, unless the exchange was
// aborted: abort marks cc before it sets its deadline, so whichever of
// the two comes last, an aborted exchange keeps a deadline in the past.
func (cc *clientConn) setReadDeadline(t time.Time) {
	_ = cc.nc.SetReadDeadline(t)
	if cc.aborted.Load() {
		_ = cc.nc.SetDeadline(aLongTimeAgo)
	}
}
