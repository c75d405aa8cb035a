package h1

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// readBufferSize bounds the request head the fast path reads itself; a
// longer head goes to the fallback server, which answers 431 or serves it.
const readBufferSize = 8 << 10

// watchAfter is how long a request runs before the server starts
// watching its connection for the client going away (Server.watchAfter
// overrides it). net/http keeps a read pending on every connection for
// that; this server does it only for the requests slow enough for it to
// matter.
const watchAfter = 100 * time.Millisecond

// maxDrainBody is how much of a request body the handler left unread the
// server reads and discards to keep the connection; beyond it, it closes.
const maxDrainBody = 256 << 10

// Server serves HTTP/1.1 connections with Handler. It does for the
// common request what net/http's server does, without its per-request
// goroutine and header rewriting, and passes each connection whose next
// request it does not serve itself to Fallback, with the bytes it has
// read, before answering anything on it.
//
// A request's context is canceled when its handler returns or, once the
// request has run for watchAfter, when the client goes away; a round trip
// of this package's Transport made with that context (or one derived from
// it) then ends at once.
type Server struct {
	Handler http.Handler
	// Fallback takes over a connection for the rest of its life; it is
	// called with a connection that replays what was read from it.
	Fallback func(net.Conn)
	// ReadHeaderTimeout bounds the reading of a request head, from its
	// first byte; IdleTimeout bounds the wait for the next request on a
	// kept-alive connection; WriteTimeout bounds the writing of each
	// answer. Zero means no limit.
	ReadHeaderTimeout, IdleTimeout, WriteTimeout time.Duration
	// MaxHeaderBytes bounds a request head the server hands to Fallback:
	// one that has not ended after this many bytes (and its blank line)
	// gets 431 from the server itself, with a lingering close. Zero
	// leaves every head that does not fit the fast path's buffer to
	// Fallback, however long.
	MaxHeaderBytes int
	// BodyIdleTimeout bounds the wait for each read of a request body,
	// BodyTimeout the reading of the whole body, from the end of its
	// head; zero means no limit. A body read that runs out of either
	// fails with a *RequestBodyError whose Timeout is true, and the
	// connection is closed after the answer. nginx's client_body_timeout
	// (60 s between reads) is a good BodyIdleTimeout; a BodyTimeout
	// bounds how long a client that trickles its body holds a target
	// connection (a few minutes suits most uploads).
	BodyIdleTimeout, BodyTimeout time.Duration
	// ErrorResponse writes the answers the server gives itself, before
	// any handler runs: 400 for a request with both Content-Length and
	// Transfer-Encoding, 405 for CONNECT, 431 for a head over
	// MaxHeaderBytes. Nil means a text/plain answer.
	ErrorResponse func(w http.ResponseWriter, code int, message string)
	// ConnState is told about each connection's state changes.
	ConnState func(net.Conn, http.ConnState)
	// ErrorLog receives the panics of handlers; nil means the log
	// package's standard logger.
	ErrorLog *log.Logger

	// watchAfter, when not zero, replaces the package's watchAfter: tests
	// watch at once instead of waiting for it.
	watchAfter time.Duration
	// lingerFor and lingerIdle, when not zero, replace lingerTime and
	// lingerTimeout: tests on a loaded machine give a client that sends
	// a large body longer.
	lingerFor, lingerIdle time.Duration

	mu       sync.Mutex
	ln       net.Listener
	conns    map[*conn]struct{}
	shutdown atomic.Bool
}

// watchDelay is how long a request runs before its connection is watched.
func (s *Server) watchDelay() time.Duration {
	if s.watchAfter > 0 {
		return s.watchAfter
	}
	return watchAfter
}

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = http.ErrServerClosed

// Serve accepts connections on ln until it fails or the server is shut
// down, serving each on its own goroutine.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.shutdown.Load() {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.ln = ln
	if s.conns == nil {
		s.conns = map[*conn]struct{}{}
	}
	s.mu.Unlock()
	var backoff time.Duration
	for {
		rwc, err := ln.Accept()
		if err != nil {
			if s.shutdown.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		c := &conn{srv: s, rwc: rwc}
		s.track(c, true)
		s.setState(c, http.StateNew)
		go c.serve()
	}
}

func (s *Server) track(c *conn, add bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		s.conns[c] = struct{}{}
		return
	}
	delete(s.conns, c)
}

func (s *Server) setState(c *conn, st http.ConnState) {
	c.state.Store(int32(st))
	if s.ConnState != nil {
		s.ConnState(c.rwc, st)
	}
}

// Shutdown stops accepting, closes idle connections and, as each active
// one finishes its request, closes it too; it returns when none is left
// or ctx ends, then with ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdown.Store(true)
	s.mu.Lock()
	if s.ln != nil {
		_ = s.ln.Close()
	}
	s.mu.Unlock()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if s.closeIdle() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// closeIdle closes the connections waiting for a request and reports
// whether none is left.
func (s *Server) closeIdle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if st := http.ConnState(c.state.Load()); (st == http.StateIdle || st == http.StateNew) && !c.reading.Load() {
			_ = c.rwc.Close()
		}
	}
	return len(s.conns) == 0
}

// Close closes the listener and every connection at once.
func (s *Server) Close() error {
	s.shutdown.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		_ = s.ln.Close()
	}
	for c := range s.conns {
		_ = c.rwc.Close()
	}
	return nil
}

func (s *Server) logf(format string, args ...any) {
	if s.ErrorLog != nil {
		s.ErrorLog.Printf(format, args...)
		return
	}
	log.Printf(format, args...)
}

// conn is one client connection and its buffers.
type conn struct {
	srv     *Server
	rwc     net.Conn
	remote  string
	state   atomic.Int32
	reading atomic.Bool // bytes of a request head have arrived

	buf        []byte // read buffer; buf[r:w] is read and unparsed
	r, w       int
	long       []byte // a head longer than buf, read before buf[r:w]
	out        []byte // write buffer
	resp       response
	closeAfter bool
	linger     bool // close with lingerClose: the client may still be sending
	werr       error

	// Watching for the client going away while a handler runs: see watch.
	base     context.Context // the connection's, under every request's
	watchT   *time.Timer
	bodyRead atomic.Bool // the running request's body has been read
	wmu      sync.Mutex  // guards the fields below, and c.w while running
	running  bool        // a handler runs
	cancel   context.CancelFunc
	watching chan struct{} // closed when the watch's read ends
	gone     bool          // the client went away
	guarded  *clientConn   // the round trip that ends if it does
}

// connKey finds the server connection under a request's context.
type connKey struct{}

// serverConn returns the connection a request context comes from, or nil.
func serverConn(ctx context.Context) *conn {
	c, _ := ctx.Value(connKey{}).(*conn)
	return c
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, readBufferSize); return &b }}

func (c *conn) serve() {
	bp := bufPool.Get().(*[]byte)
	ob := bufPool.Get().(*[]byte)
	c.buf, c.out = *bp, (*ob)[:0]
	c.remote = c.rwc.RemoteAddr().String()
	c.base = context.WithValue(context.Background(), connKey{}, c)
	handedOff := false
	defer func() {
		// After a panic the request's watch may be armed and its context live.
		c.end()
		p := recover()
		if p == http.ErrAbortHandler { //nolint:errorlint // a panic value, as net/http compares it
			// The handler gave up on its answer: what it wrote goes out,
			// without the end of its framing, and the connection closes.
			c.flush()
		}
		if p != nil && p != http.ErrAbortHandler { //nolint:errorlint // a panic value, as net/http compares it
			// As net/http does: the panic ends this request and its
			// connection, not the process.
			buf := make([]byte, 64<<10)
			buf = buf[:runtime.Stack(buf, false)]
			c.srv.logf("h1: panic serving %s: %v\n%s", c.remote, p, buf)
		}
		bufPool.Put(bp)
		bufPool.Put(ob)
		if handedOff {
			return
		}
		_ = c.rwc.Close()
		c.srv.track(c, false)
		c.srv.setState(c, http.StateClosed)
	}()

	for first := true; ; first = false {
		head, err := c.readHead(first)
		rf, isRefusal := err.(*refusal) //nolint:errorlint // readHead returns it unwrapped
		switch {
		case err == nil:
		case errors.Is(err, errUnusual) || errors.Is(err, errIncomplete):
			handedOff = c.handOff()
			return
		case isRefusal:
			c.srv.setState(c, http.StateActive)
			c.reject(rf.code, rf.msg)
			c.lingerClose()
			return
		default:
			return
		}
		c.srv.setState(c, http.StateActive)
		if !c.serveRequest(head) || c.srv.shutdown.Load() {
			if c.linger && c.werr == nil {
				c.lingerClose()
			}
			return
		}
		c.reading.Store(c.r < c.w) // before Idle: Shutdown must not close a pipelined request
		c.srv.setState(c, http.StateIdle)
	}
}

// readHead waits for a whole request head in the buffer. A head the
// fast path does not serve is returned with errUnusual, or with
// errIncomplete when it does not fit the buffer; either is left
// unconsumed (a longer one in c.long) for the fallback. A head the
// server refuses (see screenHead, MaxHeaderBytes) is a *refusal. It sets
// one read deadline in the common case: IdleTimeout while a kept-alive
// connection waits, ReadHeaderTimeout for a first request or a head that
// arrives in pieces.
func (c *conn) readHead(first bool) (requestHead, error) {
	s := c.srv
	if c.r == c.w {
		c.r, c.w = 0, 0
	}
	idle := c.w == c.r && !first && s.IdleTimeout > 0
	switch {
	case idle:
		_ = c.rwc.SetReadDeadline(time.Now().Add(s.IdleTimeout))
	case s.ReadHeaderTimeout > 0:
		_ = c.rwc.SetReadDeadline(time.Now().Add(s.ReadHeaderTimeout))
	}
	for {
		if c.w > c.r {
			b := c.buf[c.r:c.w]
			h, err := parseRequestHead(b)
			switch {
			case err == nil && h.method == http.MethodConnect:
				return h, refused(errConnect)
			case err == nil:
				return h, nil
			case errors.Is(err, errUnusual):
				if err := refused(screenHead(b[:headEnd(b)])); err != nil {
					return h, err
				}
				return h, errUnusual
			}
			if end := headEnd(b); end >= 0 { // ends with bare LFs: net/http's to judge
				if err := refused(screenHead(b[:end])); err != nil {
					return h, err
				}
				return h, errUnusual
			}
			if c.r > 0 { // make room at the end
				c.w = copy(c.buf, c.buf[c.r:c.w])
				c.r = 0
			}
			if c.w == len(c.buf) {
				return h, c.readLongHead()
			}
			if idle { // the head came in pieces: from now on, the header timeout
				idle = false
				if s.ReadHeaderTimeout > 0 {
					_ = c.rwc.SetReadDeadline(time.Now().Add(s.ReadHeaderTimeout))
				} else {
					_ = c.rwc.SetReadDeadline(time.Time{})
				}
			}
		}
		n, err := c.rwc.Read(c.buf[c.w:])
		if n > 0 {
			c.w += n
			c.reading.Store(true)
		}
		if err != nil {
			return requestHead{}, err
		}
	}
}

// readLongHead goes on reading a head that filled the buffer, into
// c.long, until it ends or passes MaxHeaderBytes. A head that ends is
// screened and left to the fallback (errIncomplete); one that does not
// is refused with 431, so that a client gets the same answer at every
// size (net/http's own, above its limit, is text/plain).
func (c *conn) readLongHead() error {
	limit := c.srv.MaxHeaderBytes
	if limit <= 0 {
		return errIncomplete
	}
	limit += 4 // the blank line after the fields
	c.long = append(make([]byte, 0, max(2*len(c.buf), min(limit, 64<<10))), c.buf[c.r:c.w]...)
	c.r, c.w = 0, 0
	for {
		if end := headEnd(c.long); end >= 0 {
			if err := refused(screenHead(c.long[:end])); err != nil {
				return err
			}
			return errIncomplete
		}
		if len(c.long) >= limit {
			return &refusal{http.StatusRequestHeaderFieldsTooLarge, "request header fields too large"}
		}
		if len(c.long) == cap(c.long) {
			c.long = append(c.long, 0)[:len(c.long)]
		}
		n, err := c.rwc.Read(c.long[len(c.long):min(cap(c.long), limit)])
		c.long = c.long[:len(c.long)+n]
		if err != nil {
			return err
		}
	}
}

// refusal is a request the server answers itself, with code.
type refusal struct {
	code int
	msg  string
}

func (r *refusal) Error() string { return r.msg }

// refused turns screenHead's verdict into a refusal; nil stays nil.
func refused(err error) error {
	switch {
	case errors.Is(err, errConnect):
		return &refusal{http.StatusMethodNotAllowed, "CONNECT is not supported"}
	case errors.Is(err, errBothLengths):
		return &refusal{http.StatusBadRequest, "request has both Content-Length and Transfer-Encoding"}
	case errors.Is(err, errTE10):
		return &refusal{http.StatusBadRequest, "an HTTP/1.0 request cannot have Transfer-Encoding"}
	case err != nil:
		return err
	}
	return nil
}

// reject answers the request at hand with code through ErrorResponse,
// and marks the connection to be closed.
func (c *conn) reject(code int, msg string) {
	s := c.srv
	if s.WriteTimeout > 0 {
		_ = c.rwc.SetWriteDeadline(time.Now().Add(s.WriteTimeout))
	}
	c.closeAfter = true
	w := &c.resp
	req := &http.Request{Method: http.MethodGet, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{}}
	*w = response{c: c, req: req, header: make(http.Header, 4), contentLength: -1}
	if s.ErrorResponse != nil {
		s.ErrorResponse(w, code, msg)
	} else {
		w.header["Content-Type"] = []string{"text/plain; charset=utf-8"}
		w.WriteHeader(code)
		_, _ = w.Write([]byte(msg + "\n"))
	}
	w.finish()
}

// Lingering close: before closing a connection whose client may still be
// sending (a request refused before its body was read), the server stops
// writing and reads and discards for a while, so that the client, which
// may send its whole request before reading, reads the answer instead of
// a reset. As nginx's lingering_close, bounded in time and bytes.
const (
	lingerTime    = 5 * time.Second
	lingerTimeout = time.Second // between reads
	lingerBytes   = 64 << 20
)

// lingerClose half-closes the connection and discards what the client
// still sends, within the bounds above; serve's deferred Close follows.
func (c *conn) lingerClose() {
	c.flush()
	cw, ok := c.rwc.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	total, idle := lingerTime, lingerTimeout
	if c.srv.lingerFor > 0 {
		total, idle = c.srv.lingerFor, c.srv.lingerIdle
	}
	end := time.Now().Add(total)
	buf := c.buf
	for n := 0; n < lingerBytes; {
		d := time.Now().Add(idle)
		if d.After(end) {
			d = end
		}
		_ = c.rwc.SetReadDeadline(d)
		m, err := c.rwc.Read(buf)
		n += m
		if err != nil {
			return
		}
	}
}

// handOff passes the connection, with the bytes read and not served, to
// the fallback server. It reports whether the fallback took it.
func (c *conn) handOff() bool {
	s := c.srv
	if s.Fallback == nil {
		return false
	}
	prefix := append(c.long, c.buf[c.r:c.w]...)
	c.long = nil
	_ = c.rwc.SetReadDeadline(time.Time{})
	s.track(c, false)
	s.setState(c, http.StateHijacked)
	s.Fallback(&replayConn{Conn: c.rwc, prefix: prefix})
	return true
}

// serveRequest runs the handler for one request and finishes its answer.
// It reports whether the connection can carry another request.
func (c *conn) serveRequest(h requestHead) bool {
	s := c.srv
	c.r += h.size
	var b *body
	if h.contentLength > 0 {
		b = &body{c: c, remaining: h.contentLength}
		if s.BodyIdleTimeout > 0 || s.BodyTimeout > 0 {
			b.timed = true
			if s.BodyTimeout > 0 {
				b.end = time.Now().Add(s.BodyTimeout)
			}
		} else {
			_ = c.rwc.SetReadDeadline(time.Time{}) // a body takes as long as the handler reads it
		}
	}
	c.bodyRead.Store(b == nil)
	ctx := c.begin()
	// WithContext copies the literal, which stays on the stack.
	req := (&http.Request{
		Method:        h.method,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h.header,
		Host:          h.host,
		RemoteAddr:    c.remote,
		RequestURI:    h.target,
		ContentLength: h.contentLength,
		Close:         h.close,
		URL:           h.url,
		Body:          http.NoBody,
	}).WithContext(ctx)
	if b != nil {
		req.Body = b
	}
	if s.WriteTimeout > 0 {
		_ = c.rwc.SetWriteDeadline(time.Now().Add(s.WriteTimeout))
	}
	c.closeAfter = h.close
	// One writer and one header map per connection, as a handler must not
	// keep either past its return.
	w := &c.resp
	hdr := w.header
	if hdr == nil {
		hdr = make(http.Header, 8)
	} else {
		clear(hdr)
	}
	*w = response{c: c, req: req, header: hdr, contentLength: -1, pre: w.pre[:0]}
	s.Handler.ServeHTTP(w, req)
	if c.end() {
		c.closeAfter = true
	}
	w.finish()
	if b != nil && b.remaining > 0 && b.err == nil {
		// Unread body: read it to keep the connection, if it is short;
		// else close, lingering so that the client reads the answer.
		if c.closeAfter || !b.discard() {
			c.closeAfter = true
			c.linger = b.err == nil
		}
	}
	if b != nil && b.err != nil {
		c.closeAfter = true
	}
	return !c.closeAfter && c.werr == nil
}

// begin returns the context of the request about to run and arms the
// watch for it.
func (c *conn) begin() context.Context {
	ctx, cancel := context.WithCancel(c.base)
	c.wmu.Lock()
	c.running, c.cancel = true, cancel
	c.wmu.Unlock()
	if c.watchT == nil {
		c.watchT = time.AfterFunc(c.srv.watchDelay(), c.watch)
	} else {
		c.watchT.Reset(c.srv.watchDelay())
	}
	return ctx
}

// end stops the watch of the request that ran, ending a read it has
// pending, cancels the request's context, and reports whether its client
// went away. Without a pending read it takes the lock once.
func (c *conn) end() bool {
	if c.watchT != nil {
		c.watchT.Stop()
	}
	c.wmu.Lock()
	c.running = false
	if pending := c.watching; pending != nil {
		_ = c.rwc.SetReadDeadline(aLongTimeAgo)
		c.wmu.Unlock()
		<-pending
		// Whatever reads next sets its own deadline, or has none.
		_ = c.rwc.SetReadDeadline(time.Time{})
		c.wmu.Lock()
	}
	cancel, gone := c.cancel, c.gone
	c.cancel = nil
	c.wmu.Unlock()
	if cancel != nil {
		cancel()
	}
	return gone
}

// aLongTimeAgo is a deadline that has passed: setting it ends a pending
// read or write at once.
var aLongTimeAgo = time.Unix(1, 0)

// watch runs on the timer's goroutine once a handler has run for
// watchAfter. It reads from the client, which leaves its connection
// silent while it waits for the answer. End of stream or an error means
// the client went away: the request's context is canceled and the round
// trip made for it is ended. Bytes that do arrive (a pipelined request)
// stay in the buffer for the next head. The request's body must have been
// read: until then the handler reads the connection.
func (c *conn) watch() {
	c.wmu.Lock()
	if !c.running || c.watching != nil || c.gone || !c.bodyRead.Load() || c.w == len(c.buf) {
		c.wmu.Unlock()
		return
	}
	done := make(chan struct{})
	c.watching = done
	_ = c.rwc.SetReadDeadline(time.Time{}) // under the lock: end's deadline comes after it
	c.wmu.Unlock()

	n, err := c.rwc.Read(c.buf[c.w:])
	c.wmu.Lock()
	c.w += n
	var ne net.Error
	if timeout := errors.As(err, &ne) && ne.Timeout(); n == 0 && err != nil && !timeout {
		c.gone = true
		if c.cancel != nil {
			c.cancel()
		}
		if c.guarded != nil {
			c.guarded.abort()
		}
	}
	c.watching = nil
	c.wmu.Unlock()
	close(done)
}

// guard has cc's round trip ended if the client goes away before
// unguard. It reports false when another round trip holds the guard.
func (c *conn) guard(cc *clientConn) bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	switch {
	case c.guarded != nil:
		return false
	case c.gone:
		cc.abort()
	default:
		c.guarded = cc
	}
	return true
}

// unguard ends guard; after it, cc.aborted says whether the client's
// going away ended the round trip.
func (c *conn) unguard(cc *clientConn) {
	c.wmu.Lock()
	if c.guarded == cc {
		c.guarded = nil
	}
	c.wmu.Unlock()
}

// write appends p to the write buffer, writing the buffer out when p
// does not fit.
func (c *conn) write(p []byte) {
	if c.werr != nil {
		return
	}
	if len(c.out)+len(p) > cap(c.out) {
		c.flush()
		if len(p) > cap(c.out) {
			_, c.werr = c.rwc.Write(p)
			return
		}
	}
	c.out = append(c.out, p...)
}

func (c *conn) flush() {
	if len(c.out) > 0 && c.werr == nil {
		_, c.werr = c.rwc.Write(c.out)
	}
	c.out = c.out[:0]
}

// body reads a request body of known length from the connection's
// buffer, then from the connection, within the server's body timeouts.
type body struct {
	c         *conn
	remaining int64
	err       error
	timed     bool      // BodyIdleTimeout or BodyTimeout is set
	end       time.Time // BodyTimeout's deadline, or zero
}

// RequestBodyError is a failure to read a request's body: the client's
// doing (a body cut short, malformed, or too slow), not the target's.
// Timeout reports that the body ran out of the server's BodyIdleTimeout
// or BodyTimeout; such an error is not a net.Error, so that no caller
// takes it for a target's timeout.
type RequestBodyError struct {
	Timeout bool
	Err     error
}

func (e *RequestBodyError) Error() string {
	if e.Timeout {
		return "reading the request body: timed out"
	}
	return "reading the request body: " + e.Err.Error()
}

func (e *RequestBodyError) Unwrap() error { return e.Err }

func (b *body) Read(p []byte) (int, error) {
	if b.remaining <= 0 {
		return 0, io.EOF
	}
	if b.err != nil {
		return 0, b.err
	}
	if int64(len(p)) > b.remaining {
		p = p[:b.remaining]
	}
	c := b.c
	var n int
	if c.r < c.w {
		n = copy(p, c.buf[c.r:c.w])
		c.r += n
	} else {
		if b.timed {
			b.setDeadline()
		}
		var err error
		n, err = c.rwc.Read(p)
		if err != nil {
			b.fail(err)
		}
	}
	b.remaining -= int64(n)
	if b.remaining == 0 {
		if b.timed {
			_ = c.rwc.SetReadDeadline(time.Time{}) // whatever reads next sets its own
		}
		c.bodyRead.Store(true)
		return n, io.EOF
	}
	return n, b.err
}

// setDeadline sets the read deadline of the next body read: the idle
// timeout from now, or the whole body's deadline if that comes first.
func (b *body) setDeadline() {
	s := b.c.srv
	var d time.Time
	if s.BodyIdleTimeout > 0 {
		d = time.Now().Add(s.BodyIdleTimeout)
	}
	if !b.end.IsZero() && (d.IsZero() || b.end.Before(d)) {
		d = b.end
	}
	_ = b.c.rwc.SetReadDeadline(d)
}

// fail records a read error as the body's; serveRequest closes the
// connection after the answer. (A handler may read the body on another
// goroutine, so fail touches nothing else.)
func (b *body) fail(err error) {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		b.err = &RequestBodyError{Timeout: true, Err: err}
	case errors.Is(err, io.EOF):
		b.err = &RequestBodyError{Err: io.ErrUnexpectedEOF}
	default:
		b.err = &RequestBodyError{Err: err}
	}
}

func (b *body) Close() error { return nil }

// discard reads what the handler left of the body, up to maxDrainBody,
// and reports whether it got to the end.
func (b *body) discard() bool {
	if b.remaining > maxDrainBody {
		return false
	}
	_, err := io.Copy(io.Discard, b)
	return err == nil && b.remaining == 0
}

// replayConn returns prefix before reading from Conn.
type replayConn struct {
	net.Conn
	prefix []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite half-closes the connection, as net/http does before closing
// one with unread input.
func (c *replayConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Unwrap returns the connection underneath.
func (c *replayConn) Unwrap() net.Conn { return c.Conn }
