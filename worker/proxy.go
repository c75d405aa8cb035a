package worker

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/internal/logkey"
	"github.com/mgw-gateway/mgw/plugins"
	"github.com/mgw-gateway/mgw/worker/h1"
)

// proxy forwards a request to one target and copies the answer back.
// It is the last handler of a route's chain.
type proxy struct {
	basePath   string
	target     *url.URL
	targetPath string // target.Path without a trailing slash
	targetEsc  string // target's escaped path without a trailing slash
	headers    configs.Headers
	transport  http.RoundTripper
	maxBody    int64
	metrics    *proxyMetrics
	log        zerolog.Logger // tagged with the proxy's name
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	x := plugins.ExchangeOf(r)
	if x != nil {
		x.Plugin = "" // whatever answers from here on, no plugin did
	}
	if p.maxBody > 0 && r.ContentLength > p.maxBody {
		plugins.WriteError(w, http.StatusRequestEntityTooLarge, "request body too large")
		return
	}
	out := p.outgoing(r)
	if x != nil {
		x.Target = out.URL
		x.TargetSentStart = time.Now()
		if id := out.Header["X-Request-Id"]; len(id) > 0 {
			x.RequestID = id[0]
		}
	}
	resp, err := p.transport.RoundTrip(out)
	if err != nil {
		p.fail(w, r, err, clientBodyError(out))
		return
	}
	defer resp.Body.Close()
	if x != nil {
		x.TargetReceivedStart = time.Now()
		x.TargetStatus = resp.StatusCode
		defer func() { x.TargetReceivedEnd = time.Now() }()
	}

	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	// The body's first bytes are read before the head is passed on. Until
	// then the client has been sent nothing, so an answer that breaks off
	// before any of its body gets mgw's 502, not a connection closed with
	// no answer, which a client may take for an idle connection's close
	// and send the request again.
	var first int
	if r.Method != http.MethodHead {
		first, err = readSome(resp.Body, *bp)
		if first == 0 && err != nil && !errors.Is(err, io.EOF) {
			p.fail(w, r, err, nil)
			return
		}
	}
	h := w.Header()
	copyEndToEnd(h, resp.Header)
	if _, ok := h["Content-Type"]; !ok {
		// The target sent no type; a nil value keeps the server from
		// guessing one from the body.
		h["Content-Type"] = nil
	}
	w.WriteHeader(resp.StatusCode)
	if r.Method == http.MethodHead {
		return
	}
	if first > 0 {
		if _, werr := w.Write((*bp)[:first]); werr != nil {
			return // the client stopped reading
		}
		if resp.ContentLength == -1 {
			_ = http.NewResponseController(w).Flush()
		}
	}
	switch {
	case errors.Is(err, io.EOF):
		err = nil
	case err != nil:
	case resp.ContentLength == -1:
		err = copyFlushing(w, resp.Body, *bp)
	default:
		err = copyBody(w, resp.Body, *bp)
	}
	if err != nil {
		// The target's answer broke off (it died, or sent a bad chunk):
		// the client's connection ends without the end of the body, so
		// that the client sees the cut, as net/http and nginx do. The
		// worker aborts it once the plugins' response hooks, the access
		// log and the metrics have seen the request (see abortAfter).
		p.metrics.errors.Add(1)
		p.log.Warn().Err(err).Str(logkey.Path, r.URL.Path).Msg("the target's answer broke off; aborting the client connection")
		abortAfter(w)
	}
}

// abortAfter marks the request whose outermost writer w wraps, so that
// the worker ends its connection without the end of the answer once the
// request has been logged, counted and recorded. A writer that is not
// the worker's (a test's) is aborted at once.
func abortAfter(w http.ResponseWriter) {
	for {
		switch ww := w.(type) {
		case *responseWriter:
			ww.abort = true
			return
		case interface{ Unwrap() http.ResponseWriter }:
			w = ww.Unwrap()
		default:
			panic(http.ErrAbortHandler)
		}
	}
}

// readSome reads into buf until it has some bytes or an error: a Reader
// may return neither, though not forever.
func readSome(r io.Reader, buf []byte) (int, error) {
	for range 100 {
		if n, err := r.Read(buf); n > 0 || err != nil {
			return n, err
		}
	}
	return 0, io.ErrNoProgress
}

// copyBody copies an answer of known length and returns the error of
// reading the target's body, if any; a client that stops reading is not
// an error here.
func copyBody(w io.Writer, body io.Reader, buf []byte) error {
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return nil
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// outgoing builds the request to the target.
func (p *proxy) outgoing(r *http.Request) *http.Request {
	// The path is the normal form the worker made (see normalizePath):
	// the target gets exactly what routing and the plugins matched, after
	// the target's own path.
	u := *p.target
	cut := min(len(p.basePath), len(r.URL.Path))
	if p.basePath == "/" {
		cut = 0 // the rest keeps its leading slash
	}
	rest := r.URL.Path[cut:]
	u.Path = p.targetPath + rest
	u.RawPath = ""
	if r.URL.RawPath != "" || p.targetEsc != p.targetPath {
		esc := escapedPath(r.URL)
		u.RawPath = p.targetEsc + esc[escapedLen(esc, cut):]
	}
	if u.Path == "" {
		u.Path, u.RawPath = "/", ""
	}
	u.RawQuery = r.URL.RawQuery

	h := make(http.Header, len(r.Header)+6)
	copyRequestHeaders(h, r.Header)

	clientHost := r.Host
	// The values mgw adds share one backing array: one allocation, not one each.
	added := make([]string, 0, 5)
	set := func(key, v string) {
		added = append(added, v)
		h[key] = added[len(added)-1 : len(added) : len(added)]
	}
	if p.headers.XForwardedFor {
		if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			set("X-Forwarded-For", joinList(h["X-Forwarded-For"], ip))
		}
	}
	if p.headers.XForwardedHost && clientHost != "" {
		set("X-Forwarded-Host", joinList(h["X-Forwarded-Host"], clientHost))
	}
	if p.headers.XForwardedProto && h.Get("X-Forwarded-Proto") == "" {
		proto := "http"
		if r.TLS != nil {
			proto = "https"
		}
		set("X-Forwarded-Proto", proto)
	}
	if p.headers.Via {
		host := clientHost
		if hh, _, err := net.SplitHostPort(host); err == nil {
			host = hh
		}
		if host == "" {
			host = "mgw" // a request with no Host: Via needs a received-by name (RFC 9110 §7.6.3)
		}
		set("Via", joinList(h["Via"], "1.1 "+host))
	}
	if p.headers.XRequestID && h.Get("X-Request-Id") == "" {
		set("X-Request-Id", newRequestID())
	}
	host := u.Host
	if !p.headers.Host {
		host = clientHost
	}

	// The request carries the client's context, so that the round trip
	// ends when the client goes away; WithContext copies the literal,
	// which stays on the stack.
	out := (&http.Request{
		Method:        r.Method,
		URL:           &u,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Host:          host,
		ContentLength: r.ContentLength,
	}).WithContext(r.Context())
	if r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
		var body io.ReadCloser = r.Body
		if p.maxBody > 0 {
			body = http.MaxBytesReader(nil, body, p.maxBody)
		}
		out.Body = &clientBody{ReadCloser: body}
	}
	return out
}

// clientBody is the client's request body on its way to the target. It
// keeps the error reading it failed with, so that a failed round trip is
// blamed on the client (a malformed chunk, a body cut short or too slow)
// when the client, not the target, is at fault.
type clientBody struct {
	io.ReadCloser
	err error
}

func (b *clientBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

// clientBodyError is the error the client's body failed with, if it did.
func clientBodyError(out *http.Request) error {
	if b, ok := out.Body.(*clientBody); ok {
		return b.err
	}
	return nil
}

// fail answers for a request the target did not answer. bodyErr is the
// error reading the client's body failed with, if it did.
func (p *proxy) fail(w http.ResponseWriter, r *http.Request, err, bodyErr error) {
	var ne net.Error
	var mbe *http.MaxBytesError
	var rbe *h1.RequestBodyError
	switch {
	case errors.As(err, &mbe) || errors.As(bodyErr, &mbe):
		plugins.WriteError(w, http.StatusRequestEntityTooLarge, "request body too large")
	case errors.Is(err, h1.ErrConnWait), errors.Is(err, errConnWait):
		// The proxy's max_connections are all busy, and stayed so for its
		// timeout: a bounded wait, then 503, not a hang.
		plugins.WriteError(w, http.StatusServiceUnavailable, "all connections to the target are busy")
	case errors.As(err, &rbe) || bodyErr != nil:
		// The client's body failed, not the target: 408 or 400, and the
		// connection closes, as its framing is lost.
		w.Header()["Connection"] = []string{"close"}
		if rbe != nil && rbe.Timeout || errors.As(bodyErr, &ne) && ne.Timeout() {
			plugins.WriteError(w, http.StatusRequestTimeout, "request body timed out")
		} else {
			plugins.WriteError(w, http.StatusBadRequest, "malformed or incomplete request body")
		}
	case r.Context().Err() != nil:
		// The client went away; there is nobody to answer. 499 is what
		// edgemicro logs for it.
		w.WriteHeader(499)
	case errors.As(err, &ne) && ne.Timeout():
		p.metrics.timeouts.Add(1)
		p.log.Warn().Err(err).Msg("target timed out")
		plugins.WriteError(w, http.StatusGatewayTimeout, "Gateway timed out trying to reach target")
	default:
		p.metrics.errors.Add(1)
		p.log.Warn().Err(err).Msg("target failed")
		plugins.WriteError(w, http.StatusBadGateway, targetErrorMessage(err))
	}
}

// targetErrorMessage says what went wrong with a target in mgw's own
// words: never the target's bytes (a malformed status line), nor
// internal addresses (the resolver's, the target's IP).
func targetErrorMessage(err error) string {
	var dnsErr *net.DNSError
	var oe *net.OpError
	switch {
	case errors.Is(err, h1.ErrUnsolicitedSwitch):
		return "the target switched protocols (101) although the request asked for no upgrade"
	case errors.As(err, &dnsErr):
		return "the target's host name could not be resolved"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "the target refused the connection"
	case errors.As(err, &oe) && oe.Op == "dial":
		return "the target could not be reached"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "the target closed the connection before answering"
	case errors.As(err, new(*tls.CertificateVerificationError)), errors.As(err, new(tls.RecordHeaderError)), errors.As(err, new(tls.AlertError)):
		return "the TLS handshake with the target failed"
	}
	return "the target's answer could not be read"
}

// copyRequestHeaders copies a client's headers into dst, the request to
// the target, except: the hop-by-hop ones (RFC 9110 §7.6.1); names that
// only differ from a framing, hop-by-hop or mgw-set header by "_" (a
// target behind CGI, PHP or WSGI reads Content_Length as Content-Length);
// and those the client's Connection header names, unless mgw sets them
// itself (X-Forwarded-*, Via, X-Request-Id, X-Authorization-Claims),
// which a client cannot remove that way.
func copyRequestHeaders(dst, src http.Header) {
	for k, vv := range src {
		if isHop(k) || strings.IndexByte(k, '_') >= 0 && lookalike(k) {
			continue
		}
		dst[k] = vv
	}
	for _, v := range src["Connection"] {
		for name := range strings.SplitSeq(v, ",") {
			if name = http.CanonicalHeaderKey(strings.TrimSpace(name)); name != "" && !mgwSets[name] {
				if _, ok := src[name]; ok {
					delete(dst, name)
				}
			}
		}
	}
}

// mgwSets are the request headers mgw writes or vouches for.
var mgwSets = map[string]bool{
	"X-Forwarded-For": true, "X-Forwarded-Host": true, "X-Forwarded-Proto": true,
	"Via": true, "X-Request-Id": true, "X-Authorization-Claims": true,
	"Host": true, "Content-Length": true,
}

// lookalike reports whether a header name with "_" in it names, with
// "-" instead, a header that frames the request, is hop-by-hop, that mgw
// sets, or that makes a forwarding claim.
func lookalike(k string) bool {
	c := http.CanonicalHeaderKey(strings.ReplaceAll(k, "_", "-"))
	return isHop(c) || mgwSets[c] || isForwardingClaim[c]
}

// copyEndToEnd copies src's headers into dst, except the hop-by-hop
// ones (RFC 9110 §7.6.1) and those src's Connection header names, which
// are removed from dst too.
func copyEndToEnd(dst, src http.Header) {
	for k, vv := range src {
		if !isHop(k) {
			dst[k] = vv
		}
	}
	for _, v := range src["Connection"] {
		for name := range strings.SplitSeq(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				dst.Del(name)
			}
		}
	}
}

// isHop reports whether a canonical header name is hop-by-hop.
func isHop(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// joinList returns v after whatever the client sent in a comma-separated
// header (one value, joined with ", ").
func joinList(prior []string, v string) string {
	if len(prior) == 0 {
		return v
	}
	return strings.Join(prior, ", ") + ", " + v
}

// newRequestID returns a random UUID (version 4).
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

// copyFlushing copies a response of unknown length, flushing after each
// read so that streams reach the client as they come. It returns the
// error of reading the target's body, as copyBody.
func copyFlushing(w http.ResponseWriter, body io.Reader, buf []byte) error {
	rc := http.NewResponseController(w)
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return nil
			}
			_ = rc.Flush()
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
