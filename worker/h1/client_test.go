package h1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http/httpguts"
)

// scripted is a target on 127.0.0.1 that reads each request head (and a
// Content-Length body) and answers with the next of its answers; an
// answer "CLOSE" closes the connection instead, and one ending in
// "|close" closes it after writing the rest.
type scripted struct {
	addr    string
	accepts atomic.Int32
	closed  atomic.Int32 // connections the client closed
}

func newScripted(t *testing.T, answers ...string) *scripted {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	s := &scripted{addr: ln.Addr().String()}
	next := make(chan string, len(answers))
	for _, a := range answers {
		next <- a
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepts.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						if errors.Is(err, io.EOF) {
							s.closed.Add(1)
						}
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					var a string
					select {
					case a = <-next:
					default:
						return
					}
					if a == "CLOSE" {
						return
					}
					a, closing := strings.CutSuffix(a, "|close")
					if _, err := io.WriteString(c, a); err != nil || closing {
						return
					}
				}
			}()
		}
	}()
	return s
}

func testTransport(addr string) *Transport {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &Transport{Addr: addr, Dial: d.DialContext, IdleTimeout: time.Minute}
}

func get(t *testing.T, tr *Transport, method string, body io.Reader) (*http.Response, string, error) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+tr.Addr+"/p?q=1", body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	return resp, string(b), err
}

func TestTransportFraming(t *testing.T) {
	s := newScripted(t,
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nTrailer: x\r\n\r\n",
		"HTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.1 200 OK\r\n\r\nuntil the end|close",
	)
	tr := testTransport(s.addr)
	want := []struct {
		code int
		body string
		cl   int64
	}{{200, "hello", 5}, {201, "abcde", -1}, {204, "", 0}, {200, "until the end", -1}}
	for i, w := range want {
		resp, body, err := get(t, tr, http.MethodGet, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if resp.StatusCode != w.code || body != w.body || resp.ContentLength != w.cl {
			t.Errorf("request %d: %d %q len %d, want %d %q len %d", i, resp.StatusCode, body, resp.ContentLength, w.code, w.body, w.cl)
		}
	}
	if n := s.accepts.Load(); n != 1 {
		t.Errorf("%d connections for four keep-alive answers, want 1", n)
	}
}

func TestTransportRetriesStaleConnection(t *testing.T) {
	s := newScripted(t, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na", "CLOSE", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb")
	tr := testTransport(s.addr)
	if _, body, err := get(t, tr, http.MethodGet, nil); err != nil || body != "a" {
		t.Fatalf("first: %q %v", body, err)
	}
	if _, body, err := get(t, tr, http.MethodGet, nil); err != nil || body != "b" {
		t.Fatalf("second, after the target closed the pooled connection: %q %v", body, err)
	}
	if n := s.accepts.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

func TestTransportDoesNotRetryBody(t *testing.T) {
	s := newScripted(t, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na", "CLOSE", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb")
	tr := testTransport(s.addr)
	if _, _, err := get(t, tr, http.MethodGet, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := get(t, tr, http.MethodPost, strings.NewReader("payload")); err == nil {
		t.Fatal("a POST with a body was sent twice")
	}
}

func TestTransportHeaderTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // reads and never answers
		c, err := ln.Accept()
		if err == nil {
			_, _ = io.Copy(io.Discard, c)
		}
	}()
	tr := testTransport(ln.Addr().String())
	tr.ResponseHeaderTimeout = 50 * time.Millisecond
	_, _, err = get(t, tr, http.MethodGet, nil)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("err = %v, want a timeout", err)
	}
}

func TestTransportMalformed(t *testing.T) {
	for _, answer := range []string{
		"HTTP/2 200 OK\r\n\r\n",
		"HTTP/1.1 2x0 OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
		"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
	} {
		s := newScripted(t, answer)
		if _, _, err := get(t, testTransport(s.addr), http.MethodGet, nil); err == nil {
			t.Errorf("%q: no error", answer)
		}
	}
}

func TestTransportMaxConns(t *testing.T) {
	s := newScripted(t, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb")
	tr := testTransport(s.addr)
	tr.MaxConns = 1
	req, _ := http.NewRequest(http.MethodGet, "http://"+s.addr+"/", nil)
	resp, err := tr.RoundTrip(req) // holds the only connection until its body is read
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := tr.RoundTrip(req.WithContext(ctx)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second request while the first holds the connection: %v", err)
	}
	_, _ = io.ReadAll(resp.Body)
	if _, body, err := get(t, tr, http.MethodGet, nil); err != nil || body != "b" {
		t.Fatalf("after release: %q %v", body, err)
	}
	if n := s.accepts.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

// fakeConn is a net.Conn over fixed bytes, for the fuzz target.
type fakeConn struct {
	net.Conn
	r io.Reader
}

func (c fakeConn) Read(p []byte) (int, error)             { return c.r.Read(p) }
func (c fakeConn) Write(p []byte) (int, error)            { return len(p), nil }
func (c fakeConn) Close() error                           { return nil }
func (c fakeConn) SetReadDeadline(time.Time) error        { return nil }
func (c fakeConn) SetWriteDeadline(time.Time) error       { return nil }
func (c fakeConn) SetDeadline(time.Time) error            { return nil }
func (c fakeConn) RemoteAddr() net.Addr                   { return &net.TCPAddr{} }
func (c fakeConn) LocalAddr() net.Addr                    { return &net.TCPAddr{} }
func (c fakeConn) CloseWrite() error                      { return nil }
func (c fakeConn) SetKeepAlive(bool) error                { return nil }
func (c fakeConn) SetKeepAlivePeriod(time.Duration) error { return nil }

// FuzzResponse reads a target's answer, to a GET or a HEAD, with the
// client and with net/http. An answer net/http refuses, in its head or
// its body, the client refuses too; the client may refuse more, but when
// both accept it they agree on the status, the header, the framing
// (Content-Length, chunked), the keep-alive decision, the body and the
// bytes consumed.
func FuzzResponse(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n0\r\nT: 1\r\n\r\nextra",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n+3\r\nabc\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"HTTP/1.0 404 Not Found\r\n\r\nrest",
		"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nab",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n",
		"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nConnection: close, X-Secret\r\nX-Secret: s\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\nX: a\r\nx: b\r\n\r\nok",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		diffResponse(t, b, http.MethodGet)
		diffResponse(t, b, http.MethodHead)
	})
}

func diffResponse(t *testing.T, b []byte, method string) {
	{
		req, _ := http.NewRequest(method, "http://h/", nil)

		src := bytes.NewReader(b)
		wbr := bufio.NewReader(src)
		var want *http.Response
		var werr error
		for {
			want, werr = http.ReadResponse(wbr, req)
			if werr != nil || want.StatusCode >= 200 {
				break
			}
		}
		var wantBody []byte
		if werr == nil {
			wantBody, werr = io.ReadAll(want.Body)
		}
		wantUsed := len(b) - src.Len() - wbr.Buffered()

		tr := &Transport{}
		tr.init()
		mine := bytes.NewReader(b)
		nc := fakeConn{r: mine}
		cc := &clientConn{t: tr, nc: nc, br: bufio.NewReader(nc), bw: bufio.NewWriter(io.Discard)}
		var resp *http.Response
		var err error
		budget := maxResponseHead
		for {
			resp, err = cc.readResponse(req, &budget)
			if err != nil || resp.StatusCode >= 200 {
				break
			}
		}
		if err == nil && resp.StatusCode == http.StatusSwitchingProtocols {
			return // net/http hands the connection over; the client refuses unasked ones (roundTrip)
		}
		var body []byte
		if err == nil {
			body, err = io.ReadAll(resp.Body)
		}
		used := len(b) - mine.Len() - cc.br.Buffered()
		if werr != nil {
			if err == nil {
				t.Fatalf("net/http refuses (%v), h1 accepts: %d %q", werr, resp.StatusCode, body)
			}
			return
		}
		if err != nil {
			return // stricter than net/http
		}
		if resp.StatusCode != want.StatusCode || !bytes.Equal(body, wantBody) {
			t.Fatalf("h1 %d %q, net/http %d %q", resp.StatusCode, body, want.StatusCode, wantBody)
		}
		if _, ok := want.Header["Connection"]; !ok && resp.Close && resp.ProtoMinor == 1 {
			// h1 keeps the Connection: close that net/http drops, so
			// that a proxy can remove the fields it names.
			delete(resp.Header, "Connection")
		}
		if !reflect.DeepEqual(resp.Header, want.Header) {
			t.Fatalf("header: h1 %v, net/http %v", resp.Header, want.Header)
		}
		if resp.ContentLength != want.ContentLength || !reflect.DeepEqual(resp.TransferEncoding, want.TransferEncoding) {
			t.Fatalf("framing: h1 %d %v, net/http %d %v", resp.ContentLength, resp.TransferEncoding, want.ContentLength, want.TransferEncoding)
		}
		if resp.Close != want.Close {
			t.Fatalf("keep-alive: h1 close=%v, net/http close=%v", resp.Close, want.Close)
		}
		if used != wantUsed {
			t.Fatalf("consumed: h1 %d bytes, net/http %d", used, wantUsed)
		}
	}
}

func TestTransportClosesIdleConnections(t *testing.T) {
	s := newScripted(t, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na")
	tr := testTransport(s.addr)
	tr.IdleTimeout = 20 * time.Millisecond
	if _, _, err := get(t, tr, http.MethodGet, nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.closed.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the idle connection was never closed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if len(tr.idle) != 0 {
		t.Errorf("%d connections still pooled", len(tr.idle))
	}
}

func TestTransportUploads(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		_, _ = io.WriteString(w, strings.Join(r.TransferEncoding, ",")+":"+string(b))
	})}
	go func() { _ = srv.Serve(ln) }()
	defer func() { _ = srv.Close() }()
	tr := testTransport(ln.Addr().String())
	for _, tt := range []struct {
		name   string
		length int64
		want   string
	}{
		{"known length", 5, ":hello"},
		{"unknown length (-1)", -1, "chunked:hello"},
		{"unknown length (0 with a body)", 0, "chunked:hello"},
	} {
		req, _ := http.NewRequest(http.MethodPost, "http://"+tr.Addr+"/", io.NopCloser(strings.NewReader("hello")))
		req.ContentLength = tt.length
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if string(b) != tt.want {
			t.Errorf("%s: target saw %q, want %q", tt.name, b, tt.want)
		}
	}
}

// FuzzWriteRequest: a request the client writes is read by net/http's
// server parser as exactly that request (method, target, host, the
// field, the body) and ends where the client's bytes end, so that a
// target never sees a request split or joined differently.
func FuzzWriteRequest(f *testing.F) {
	f.Add("GET", "/a?b=c", "X-A", "v", []byte(nil), int64(0))
	f.Add("POST", "/p", "Content-Type", "text/plain", []byte("hello"), int64(5))
	f.Add("PUT", "/p", "X-B", "w", []byte("chunked please"), int64(-1))
	f.Add("POST", "/p", "Transfer-Encoding", "chunked", []byte("x"), int64(1))
	f.Add("PATCH", "/p", "Content-Length", "7", []byte{}, int64(0))
	f.Add("POST", "/p", "transfer-encoding", "chunked", []byte("x"), int64(1))
	f.Fuzz(func(t *testing.T, method, target, key, value string, body []byte, length int64) {
		if !httpguts.ValidHeaderFieldName(key) || !httpguts.ValidHeaderFieldValue(value) || !validToken([]byte(method)) {
			return
		}
		req, err := http.NewRequest(method, "http://h"+target, nil)
		if err != nil || req.URL.Host != "h" || !strings.HasPrefix(req.URL.RequestURI(), "/") {
			return
		}
		req.Header[key] = []string{value} // as a plugin may set it, in any case
		switch {
		case length > 0:
			length = int64(len(body)) // an announced length is the body's
			req.Body = io.NopCloser(bytes.NewReader(body))
		case len(body) > 0:
			req.Body = io.NopCloser(bytes.NewReader(body)) // unknown length: chunked
		}
		req.ContentLength = length
		var out bytes.Buffer
		cc := &clientConn{bw: bufio.NewWriter(&out)}
		if err := cc.writeRequest(req); err != nil {
			if validTarget(req.URL.RequestURI()) {
				t.Fatalf("writing: %v", err)
			}
			return // refused: it cannot be written
		}
		wire := out.Bytes()
		src := bytes.NewReader(wire)
		br := bufio.NewReader(src)
		got, err := http.ReadRequest(br)
		if err != nil {
			t.Fatalf("net/http refuses what the client wrote (%v): %q", err, wire)
		}
		gotBody, err := io.ReadAll(got.Body)
		if err != nil {
			t.Fatalf("net/http refuses the body (%v): %q", err, wire)
		}
		if got.Method != method || got.RequestURI != req.URL.RequestURI() || got.Host != "h" || !bytes.Equal(gotBody, body) && req.Body != nil {
			t.Fatalf("net/http read %s %s host=%q body=%q from %q", got.Method, got.RequestURI, got.Host, gotBody, wire)
		}
		switch key = http.CanonicalHeaderKey(key); key {
		case "Host", "Content-Length", "Transfer-Encoding":
		default:
			if v := got.Header[key]; len(v) != 1 || v[0] != strings.Trim(value, " \t") {
				t.Fatalf("field %s: net/http read %q, sent %q", key, v, value)
			}
		}
		if src.Len()+br.Buffered() != 0 {
			t.Fatalf("%d bytes after the request: %q", src.Len()+br.Buffered(), wire)
		}
	})
}

// TestTransportBoundsInterimHeads: the 1xx heads before an answer count
// toward maxResponseHead with the answer's own, as net/http counts them
// toward its limit, so a target cannot keep a round trip reading them
// until its timeout.
func TestTransportBoundsInterimHeads(t *testing.T) {
	interim := "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
	final := "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	for _, tt := range []struct {
		n  int
		ok bool
	}{{5, true}, {maxResponseHead/len(interim) + 1, false}} {
		s := newScripted(t, strings.Repeat(interim, tt.n)+final)
		resp, body, err := get(t, testTransport(s.addr), http.MethodGet, nil)
		if tt.ok != (err == nil) {
			t.Fatalf("%d interim heads: %v %q %v", tt.n, resp, body, err)
		}
		if !tt.ok && !errors.Is(err, errHeadTooLarge) {
			t.Errorf("%d interim heads: %v, want errHeadTooLarge", tt.n, err)
		}
	}
}
