package h1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// maxResponseHead bounds a target's status line and headers.
const maxResponseHead = 1 << 20

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

// CloseIdleConnections closes the pooled connections.
func (t *Transport) CloseIdleConnections() {
	t.init()
	for {
		select {
		case cc := <-t.idle:
			cc.close()
		default:
			return
		}
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

// get returns a pooled connection that has not been idle too long, or
// dials a new one; at MaxConns it waits for either.
func (t *Transport) get(ctx context.Context) (*clientConn, bool, error) {
	for {
		var cc *clientConn
		select {
		case cc = <-t.idle:
		default:
			if t.tokens == nil {
				cc, err := t.dial(ctx)
				return cc, false, err
			}
			var err error
			if cc, err = t.take(ctx); err != nil {
				return nil, false, err
			}
			if cc == nil { // a token was taken for a new connection
				cc, err := t.dial(ctx)
				if err != nil {
					<-t.tokens
				}
				return cc, false, err
			}
		}
		if !cc.stale() && cc.quiet() {
			return cc, true, nil
		}
		cc.close()
	}
}

// ErrConnWait is a request that waited ConnWait for a connection to the
// target, all MaxConns of them busy.
var ErrConnWait = errors.New("all connections to the target are busy")

// take returns an idle connection, or nil once it has taken a token for
// a new one. At MaxConns it waits for either, no longer than ConnWait;
// only that wait costs a timer.
func (t *Transport) take(ctx context.Context) (*clientConn, error) {
	select {
	case cc := <-t.idle:
		return cc, nil
	case t.tokens <- struct{}{}:
		return nil, nil
	default:
	}
	var wait <-chan time.Time
	if t.ConnWait > 0 {
		timer := time.NewTimer(t.ConnWait)
		defer timer.Stop()
		wait = timer.C
	}
	select {
	case cc := <-t.idle:
		return cc, nil
	case t.tokens <- struct{}{}:
		return nil, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-wait:
		return nil, ErrConnWait
	}
}

func (t *Transport) dial(ctx context.Context) (*clientConn, error) {
	nc, err := t.Dial(ctx, "tcp", t.Addr)
	if err != nil {
		return nil, err
	}
	cc := &clientConn{t: t, nc: nc, br: bufio.NewReaderSize(nc, 8<<10), bw: bufio.NewWriterSize(nc, 8<<10)}
	if s, ok := nc.(syscall.Conn); ok {
		if sc, err := s.SyscallConn(); err == nil {
			cc.sc = sc
			cc.peekFn = cc.peek
		}
	}
	return cc, nil
}

// quiet reports whether nothing has arrived on the pooled connection
// since its last answer ended: no byte the target sent past that
// answer's framing (a body after the head of a HEAD, 204 or 304 answer,
// bytes past its Content-Length, anything after it) and no end of
// stream. Such bytes would otherwise be read as the answer to the next
// request, from whichever client sends it, and every later answer on
// the connection would go to the request after its own; a closed
// connection would cost a failed attempt. It costs one non-blocking
// recv(MSG_PEEK) per reuse, which is cheaper than keeping a read
// pending on every idle connection as net/http does. A connection that
// is not a socket is taken as quiet.
func (cc *clientConn) quiet() bool {
	if cc.sc == nil {
		return true
	}
	cc.peekN, cc.peekErr = 0, 0
	if err := cc.sc.Control(cc.peekFn); err != nil {
		return false
	}
	return cc.peekErr == syscall.EAGAIN || cc.peekErr == syscall.EWOULDBLOCK
}

// peek looks, without waiting and without consuming, for one byte or the
// end of stream on fd.
func (cc *clientConn) peek(fd uintptr) {
	for {
		cc.peekN, _, cc.peekErr = syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&cc.peekBuf[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		if cc.peekErr != syscall.EINTR {
			return
		}
	}
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

func (cc *clientConn) stale() bool {
	return cc.t.IdleTimeout > 0 && time.Since(cc.idleAt) > cc.t.IdleTimeout
}

// put returns cc to the pool, or closes it when the pool is full.
func (cc *clientConn) put() {
	t := cc.t
	cc.idleAt = time.Now()
	select {
	case t.idle <- cc:
		t.armSweep()
	default:
		cc.close()
	}
}

func (cc *clientConn) close() {
	_ = cc.nc.Close()
	if cc.t.tokens != nil {
		<-cc.t.tokens
	}
}

// armSweep makes sure a timer will close connections left idle past
// IdleTimeout, so an unused pool does not hold sockets the target has
// closed.
func (t *Transport) armSweep() {
	if t.IdleTimeout <= 0 {
		return
	}
	t.sweep.Lock()
	defer t.sweep.Unlock()
	if t.armed {
		return
	}
	t.armed = true
	time.AfterFunc(t.IdleTimeout, t.sweepIdle)
}

func (t *Transport) sweepIdle() {
	t.sweep.Lock()
	t.armed = false
	t.sweep.Unlock()
	var keep []*clientConn
	for n := len(t.idle); n > 0; n-- {
		select {
		case cc := <-t.idle:
			if cc.stale() {
				cc.close()
			} else {
				keep = append(keep, cc)
			}
		default:
		}
	}
	for _, cc := range keep { // back with the idle time they had
		select {
		case t.idle <- cc:
		default:
			cc.close()
		}
	}
	if len(keep) > 0 {
		t.armSweep()
	}
}

// roundTrip writes req and reads the head of the answer.
func (cc *clientConn) roundTrip(req *http.Request) (*http.Response, error) {
	if err := cc.writeRequest(req); err != nil {
		var be errBody
		if errors.As(err, &be) {
			return nil, err
		}
		return nil, errStale{err}
	}
	if d := cc.t.ResponseHeaderTimeout; d > 0 {
		cc.setReadDeadline(time.Now().Add(d))
		cc.deadline = true
	}
	budget := maxResponseHead // for the final head and every 1xx before it, as net/http
	for {
		resp, err := cc.readResponse(req, &budget)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			if !asksUpgrade(req) {
				return nil, ErrUnsolicitedSwitch
			}
			resp.Close = true // the connection is the new protocol's now
			return resp, nil
		}
		if resp.StatusCode >= 200 {
			return resp, nil
		}
		// 1xx: the final answer follows
	}
}

// ErrUnsolicitedSwitch is a 101 Switching Protocols answer to a request
// that asked for no upgrade. Relaying it would hand the client a
// connection in a protocol it did not ask for; the connection is closed.
var ErrUnsolicitedSwitch = errors.New("the target switched protocols (101) although the request asked for no upgrade")

// asksUpgrade reports whether req asks the target to switch protocols.
func asksUpgrade(req *http.Request) bool {
	return len(req.Header["Upgrade"]) > 0 && headerHasToken(req.Header["Connection"], "upgrade")
}

func (cc *clientConn) writeRequest(req *http.Request) error {
	w := cc.bw
	uri := req.URL.RequestURI()
	if !validTarget(uri) {
		// A space or control byte would end or split the request line.
		return errBody{errors.New("the request target has bytes a request line cannot carry")}
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	_, _ = w.WriteString(req.Method)
	_ = w.WriteByte(' ')
	_, _ = w.WriteString(uri)
	_, _ = w.WriteString(" HTTP/1.1\r\nHost: ")
	_, _ = w.Write(appendClean(nil, host))
	_, _ = w.WriteString("\r\n")
	var scratch [256]byte
	for k, vv := range req.Header {
		switch len(k) { // the framing is the client's own, whatever the key's case
		case len("Host"), len("Content-Length"), len("Transfer-Encoding"):
			if strings.EqualFold(k, "Host") || strings.EqualFold(k, "Content-Length") || strings.EqualFold(k, "Transfer-Encoding") {
				continue
			}
		}
		for _, v := range vv {
			_, _ = w.Write(appendField(scratch[:0], k, v))
		}
	}
	hasBody := req.Body != nil && req.Body != http.NoBody
	switch {
	case hasBody && req.ContentLength <= 0: // unknown length, as in net/http
		_, _ = w.WriteString("Transfer-Encoding: chunked\r\n")
	case req.ContentLength > 0:
		_, _ = w.WriteString("Content-Length: ")
		_, _ = w.WriteString(strconv.FormatInt(max(req.ContentLength, 0), 10))
		_, _ = w.WriteString("\r\n")
	case req.Method == http.MethodPost || req.Method == http.MethodPut || req.Method == http.MethodPatch:
		_, _ = w.WriteString("Content-Length: 0\r\n")
	}
	_, _ = w.WriteString("\r\n")
	if hasBody {
		if err := cc.writeBody(req); err != nil {
			return err
		}
	}
	return w.Flush()
}

// errBody marks a failure to read the request body, which is the
// client's, not the target's; it is never retried.
type errBody struct{ err error }

func (e errBody) Error() string { return e.err.Error() }
func (e errBody) Unwrap() error { return e.err }

func (cc *clientConn) writeBody(req *http.Request) error {
	chunked := req.ContentLength <= 0
	defer req.Body.Close()
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	var sent int64
	for {
		n, rerr := req.Body.Read(buf)
		if n > 0 {
			if chunked {
				_, _ = fmt.Fprintf(cc.bw, "%x\r\n", n)
			}
			if _, err := cc.bw.Write(buf[:n]); err != nil {
				return err
			}
			if chunked {
				_, _ = cc.bw.WriteString("\r\n")
			}
			sent += int64(n)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return errBody{rerr}
		}
	}
	if chunked {
		_, _ = cc.bw.WriteString("0\r\n\r\n")
	} else if sent != req.ContentLength {
		return errBody{fmt.Errorf("request body: %d bytes, announced %d", sent, req.ContentLength)}
	}
	return nil
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// readResponse reads one answer's head and sets up its body. budget is
// what is left of maxResponseHead for the heads of this request's
// answers: the interim (1xx) ones count, so that a target cannot keep a
// round trip reading 1xx heads for as long as its timeout allows.
func (cc *clientConn) readResponse(req *http.Request, budget *int) (*http.Response, error) {
	if _, err := cc.br.Peek(1); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isReset(err) {
			return nil, errStale{io.ErrUnexpectedEOF}
		}
		return nil, err
	}
	ls := cc.lines()
	line, err := ls.next()
	if err != nil {
		return nil, err
	}
	if *budget -= len(line) + 2; *budget < 0 {
		return nil, errHeadTooLarge
	}
	resp := &http.Response{Request: req, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' || (line[7] != '0' && line[7] != '1') {
		return nil, errors.New("the answer's status line is malformed")
	}
	if line[7] == '0' {
		resp.Proto, resp.ProtoMinor = "HTTP/1.0", 0
	}
	code, err := strconv.Atoi(string(line[9:12]))
	if err != nil || code < 100 || code > 999 || len(line) > 12 && line[12] != ' ' {
		return nil, errors.New("the answer's status line is malformed")
	}
	resp.StatusCode = code
	resp.Status = ls.str(line[9:])

	header, err := readHeader(&ls, budget)
	if err != nil {
		return nil, err
	}
	ls.done()
	resp.Header = header
	return resp, cc.setBody(req, resp)
}

// errHeadTooLarge is an answer whose heads, its 1xx ones included, pass
// maxResponseHead.
var errHeadTooLarge = errors.New("the answer's header is too large")

// readHeader reads header lines up to the blank line, within budget.
func readHeader(ls *lineSource, budget *int) (http.Header, error) {
	h := make(http.Header, 8)
	var values []string // one backing array for single values, when the head is buffered
	if ls.head != nil {
		values = make([]string, ls.count)
	}
	for {
		line, err := ls.next()
		if err != nil {
			return nil, err
		}
		if *budget -= len(line) + 2; *budget < 0 {
			return nil, errHeadTooLarge
		}
		if len(line) == 0 {
			return h, nil
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !validToken(line[:colon]) {
			return nil, errors.New("the answer has a malformed header line")
		}
		v := trimOWS(line[colon+1:])
		if !validValue(v) {
			return nil, errors.New("the answer has a malformed header value")
		}
		name := line[:colon]
		k, common := commonKeys[string(name)]
		switch {
		case common:
		case isCanonical(name):
			k = ls.str(name)
		default:
			k = canonicalKey(name)
		}
		val := ls.str(v)
		if vv, ok := h[k]; ok || len(values) == 0 {
			h[k] = append(vv, val)
			continue
		}
		values[0] = val
		h[k] = values[:1:1]
		values = values[1:]
	}
}

// lineSource gives the lines of an answer's head. When the whole head is
// already in the reader's buffer, as it nearly always is, its lines are
// slices of the buffer and its strings pieces of one copy of the head;
// otherwise it reads line by line.
type lineSource struct {
	cc    *clientConn
	head  []byte // the buffered head, or nil
	count int    // its lines
	all   string // one copy of head
	pos   int
	long  []byte
}

func (cc *clientConn) lines() lineSource {
	ls := lineSource{cc: cc}
	buf, _ := cc.br.Peek(cc.br.Buffered())
	for pos := 0; ; {
		i := bytes.IndexByte(buf[pos:], '\n')
		if i < 0 {
			return ls // not all here
		}
		line := buf[pos : pos+i]
		pos += i + 1
		ls.count++
		if len(line) == 0 || len(line) == 1 && line[0] == '\r' {
			ls.head = buf[:pos]
			ls.all = string(ls.head)
			return ls
		}
	}
}

func (ls *lineSource) next() ([]byte, error) {
	if ls.head == nil {
		return ls.cc.readLine(ls.long[:0])
	}
	rest := ls.head[ls.pos:]
	i := bytes.IndexByte(rest, '\n')
	if i < 0 {
		return nil, io.ErrUnexpectedEOF // cannot happen: lines() saw the blank line
	}
	ls.pos += i + 1
	line := rest[:i]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, nil
}

// str returns x, a line or a piece of one, as a string.
func (ls *lineSource) str(x []byte) string {
	if ls.head == nil {
		return string(x)
	}
	off := cap(ls.head) - cap(x)
	return ls.all[off : off+len(x)]
}

// done consumes the buffered head.
func (ls *lineSource) done() {
	if ls.head != nil {
		_, _ = ls.cc.br.Discard(len(ls.head))
	}
}

// readLine returns the next line without its CRLF (or bare LF). A line
// longer than the reader's buffer is gathered in long.
func (cc *clientConn) readLine(long []byte) ([]byte, error) {
	for {
		b, err := cc.br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if len(long)+len(b) > maxResponseHead {
				return nil, errors.New("the answer's header is too large")
			}
			long = append(long, b...)
			continue
		}
		if err != nil {
			return nil, err
		}
		if long != nil {
			b = append(long, b...)
		}
		b = b[:len(b)-1]
		if len(b) > 0 && b[len(b)-1] == '\r' {
			b = b[:len(b)-1]
		}
		return b, nil
	}
}

func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// setBody chooses the framing of the answer's body (RFC 9112 §6.3) as
// net/http's ReadResponse does, refusing what it refuses: a
// Transfer-Encoding other than chunked alone, Content-Length values that
// differ or are not a number (whatever the status), a Trailer header
// naming a framing field.
func (cc *clientConn) setBody(req *http.Request, resp *http.Response) error {
	h := resp.Header
	// The Connection header stays, close or not (net/http drops it when
	// it says close): the fields it names are hop-by-hop, and a proxy
	// needs it to remove them; without it, "Connection: close, X-Secret"
	// would hand X-Secret to the client.
	var keep bool
	if conn := h["Connection"]; resp.ProtoMinor == 0 {
		keep = headerHasToken(conn, "keep-alive") && !headerHasToken(conn, "close")
	} else {
		keep = !headerHasToken(conn, "close")
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		keep = false // what follows is not HTTP
	}
	chunked := false
	if te, ok := h["Transfer-Encoding"]; ok {
		delete(h, "Transfer-Encoding")
		if resp.ProtoMinor == 1 { // HTTP/1.0 has no transfer codings
			// As net/http and nginx: chunked alone, or the answer is
			// refused; anything else leaves the body's end unknown.
			if len(te) != 1 || !strings.EqualFold(te[0], "chunked") {
				return errors.New("the answer has a Transfer-Encoding other than chunked")
			}
			chunked = true
			resp.TransferEncoding = chunkedValue
		}
	}
	length := int64(-1)
	if cl := h["Content-Length"]; len(cl) > 0 {
		for _, v := range cl[1:] {
			if v != cl[0] {
				return errors.New("the answer has differing Content-Length values")
			}
		}
		n, ok := parseLength([]byte(cl[0]))
		if !ok {
			return errors.New("the answer has a malformed Content-Length")
		}
		h["Content-Length"] = cl[:1]
		length = n
	}
	noBody := req.Method == http.MethodHead || resp.StatusCode < 200 ||
		resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified
	if chunked && !noBody {
		delete(h, "Content-Length")
	}
	if tr, ok := h["Trailer"]; ok && chunked {
		delete(h, "Trailer")
		for _, v := range tr {
			if hasToken([]byte(v), "Transfer-Encoding") || hasToken([]byte(v), "Content-Length") || hasToken([]byte(v), "Trailer") {
				return errors.New("the answer's Trailer header names a framing field")
			}
		}
	}
	resp.Close = !keep
	switch {
	case req.Method == http.MethodHead:
		resp.ContentLength = length
	case noBody:
		resp.ContentLength = 0
	case chunked:
		resp.ContentLength = -1
		resp.Body = &clientBody{cc: cc, keep: keep, chunked: true}
		return nil
	case length >= 0:
		resp.ContentLength = length
		resp.Body = &clientBody{cc: cc, keep: keep, remaining: length}
		return nil
	default:
		resp.ContentLength = -1 // until the target closes
		resp.Close = true
		resp.Body = &clientBody{cc: cc, remaining: -1}
		return nil
	}
	resp.Body = &clientBody{cc: cc, keep: keep}
	return nil
}

// clientBody reads an answer's body. At its end the connection goes back
// to the pool when it can carry another request; closed early, it closes
// the connection.
type clientBody struct {
	cc        *clientConn
	remaining int64 // -1: until EOF (unless chunked)
	chunked   bool
	chunkLeft int64 // bytes left in the current chunk
	excess    int64 // chunk overhead beyond what the data allows
	keep      bool
	done      bool // cc was released
	err       error
}

func (b *clientBody) Read(p []byte) (int, error) {
	if b.done {
		if b.err != nil {
			return 0, b.err
		}
		return 0, io.EOF
	}
	cc := b.cc
	if cc.deadline && (b.chunked || b.remaining < 0 || int64(cc.br.Buffered()) < b.remaining) {
		// The header timeout ends with the header; a body that is not
		// already here may take as long as the target takes.
		cc.setReadDeadline(time.Time{})
		cc.deadline = false
	}
	var n int
	var err error
	switch {
	case b.chunked:
		n, err = b.readChunked(p)
	case b.remaining == 0:
		err = io.EOF
	case b.remaining > 0:
		if int64(len(p)) > b.remaining {
			p = p[:b.remaining]
		}
		n, err = cc.br.Read(p)
		b.remaining -= int64(n)
		if b.remaining == 0 {
			err = io.EOF
		} else if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
	default:
		n, err = cc.br.Read(p)
	}
	if err != nil {
		b.release(err)
		if !errors.Is(err, io.EOF) {
			return n, err
		}
	}
	return n, err
}

func (b *clientBody) readChunked(p []byte) (int, error) {
	cc := b.cc
	if b.chunkLeft == 0 {
		size, err := b.chunkSize()
		if err != nil {
			return 0, err
		}
		if size == 0 {
			return 0, b.readTrailer()
		}
		b.chunkLeft = size
	}
	if int64(len(p)) > b.chunkLeft {
		p = p[:b.chunkLeft]
	}
	n, err := cc.br.Read(p)
	b.chunkLeft -= int64(n)
	if err != nil {
		return n, unexpected(err)
	}
	if b.chunkLeft == 0 {
		var end [2]byte
		if _, err := io.ReadFull(cc.br, end[:]); err != nil {
			return n, unexpected(err)
		}
		if end != [2]byte{'\r', '\n'} {
			return n, &ChunkError{"a chunk does not end with CRLF"}
		}
	}
	return n, nil
}

// ChunkError is a malformed chunked body: in an answer, the target's
// fault; in a request, the client's.
type ChunkError struct{ What string }

func (e *ChunkError) Error() string { return "malformed chunked body: " + e.What }

// maxChunkLine bounds a chunk-size line, extensions included, as net/http
// does.
const maxChunkLine = 4096

// chunkSize reads a chunk-size line as strictly as net/http: CRLF only,
// hex digits only (no sign, space or 0x before them; spaces and tabs
// after them), at most 16 of them and within int64, extensions dropped,
// and no more than 16 KiB of overhead beyond 16 bytes per chunk plus
// twice the chunk's data.
func (b *clientBody) chunkSize() (int64, error) {
	line, err := b.cc.br.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return 0, &ChunkError{"chunk-size line too long"}
	case err != nil:
		return 0, unexpected(err)
	}
	if i := bytes.IndexByte(line, '\r'); i < 0 || i != len(line)-2 {
		return 0, &ChunkError{"chunk-size line does not end with CRLF"}
	}
	line = line[:len(line)-2]
	if len(line) >= maxChunkLine {
		return 0, &ChunkError{"chunk-size line too long"}
	}
	b.excess += int64(len(line)) + 2
	for len(line) > 0 && (line[len(line)-1] == ' ' || line[len(line)-1] == '\t') {
		line = line[:len(line)-1]
	}
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	size, ok := parseChunkSize(line)
	if !ok {
		return 0, &ChunkError{"bad chunk size"}
	}
	b.excess = max(b.excess-16-2*size, 0)
	if b.excess > 16<<10 {
		return 0, &ChunkError{"too much besides data"}
	}
	return size, nil
}

// parseChunkSize reads 1 to 16 hex digits whose value fits an int64.
func parseChunkSize(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 16 {
		return 0, false
	}
	var n uint64
	for _, c := range v {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		n = n<<4 | uint64(c)
	}
	if n > 1<<63-1 {
		return 0, false
	}
	return int64(n), true
}

// maxTrailer bounds the trailer section after the last chunk.
const maxTrailer = 2 << 10

// readTrailer reads the trailer section after the last chunk, checks
// each field as a header's and drops it; it returns io.EOF at its end.
// Its lines must end with CRLF (net/http looks for a CRLF CRLF ahead
// before it reads a trailer), and it is bounded well within what
// net/http looks ahead.
func (b *clientBody) readTrailer() error {
	total := 0
	for {
		line, err := b.cc.br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			return &ChunkError{"trailer too large"}
		case err != nil:
			return unexpected(err)
		case len(line) < 2 || line[len(line)-2] != '\r':
			return &ChunkError{"a trailer line does not end with CRLF"}
		}
		line = line[:len(line)-2]
		if len(line) == 0 {
			return io.EOF
		}
		if total += len(line) + 2; total > maxTrailer {
			return &ChunkError{"trailer too large"}
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !validToken(line[:colon]) || !validValue(trimOWS(line[colon+1:])) {
			return &ChunkError{"malformed trailer field"}
		}
	}
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// release gives the connection back after the body ended with err.
func (b *clientBody) release(err error) {
	if b.done {
		return
	}
	b.done = true
	if !errors.Is(err, io.EOF) {
		b.err = err
	}
	if b.cc.unwatchCtx() {
		b.cc.close()
		return
	}
	if errors.Is(err, io.EOF) && b.keep && b.cc.br.Buffered() == 0 {
		b.cc.put()
		return
	}
	b.cc.close()
}

// Close releases the connection: to the pool when the body was read to
// its end or was empty, else by closing it.
func (b *clientBody) Close() error {
	if b.done {
		return nil
	}
	if !b.chunked && b.remaining == 0 {
		b.release(io.EOF)
		return nil
	}
	b.release(errors.New("body closed before its end"))
	return nil
}
