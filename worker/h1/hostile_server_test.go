package h1

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// hostileServer runs a Server with MaxHeaderBytes and body timeouts, its
// fallback net/http behind GuardBodies, and an ErrorResponse that marks
// the server's own answers. handled counts the requests a handler saw.
func hostileServer(t *testing.T, h http.Handler, idle time.Duration) (string, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var handled atomic.Int32
	counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handled.Add(1)
		h.ServeHTTP(w, r)
	})
	fb := NewFallbackListener(ln.Addr())
	srv := &Server{
		Handler:           counted,
		Fallback:          fb.Give,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       5 * time.Second,
		MaxHeaderBytes:    4096,
		BodyIdleTimeout:   idle,
		// Sending 16 MiB under -race on a loaded machine can take longer
		// than a lingering close's bounds: the test is of the linger, not
		// of its bounds.
		lingerFor:  time.Minute,
		lingerIdle: 20 * time.Second,
		ErrorResponse: func(w http.ResponseWriter, code int, msg string) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			fmt.Fprintf(w, `{"message":%q,"status":%d}`, msg, code)
		},
	}
	hs := &http.Server{Handler: OneRequest(GuardBodies(counted, idle, 0)), MaxHeaderBytes: 4096}
	go func() { _ = srv.Serve(ln) }()
	go func() { _ = hs.Serve(fb) }()
	t.Cleanup(func() { _ = srv.Close(); _ = hs.Close() })
	return ln.Addr().String(), &handled
}

// sendAll writes the whole of raw before reading anything, as Python's
// http.client does, then reads one answer and reports whether the
// connection was then closed cleanly (end of stream, not a reset).
func sendAll(t *testing.T, addr, raw string) (*http.Response, string, bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatalf("writing the request: %v", err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the answer's body: %v", err)
	}
	_, err = br.ReadByte()
	return resp, string(b), errors.Is(err, io.EOF)
}

func TestServerRefusesBadFraming(t *testing.T) {
	addr, handled := hostileServer(t, http.HandlerFunc(echo), 0)
	for _, tt := range []struct {
		desc, raw string
		code      int
	}{
		{"CL and TE", "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"TE and CL", "POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n", 400},
		{"CL and TE, lower case", "POST /a HTTP/1.1\r\nhost: h\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"CL and TE, bare LF", "POST /a HTTP/1.1\nHost: h\nContent-Length: 3\nTransfer-Encoding: chunked\n\n0\r\n\r\n", 400},
		{"CL and TE, HTTP/1.0", "POST /a HTTP/1.0\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc", 400},
		{"CL and TE, long head", "POST /a HTTP/1.1\r\nHost: h\r\nX: " + strings.Repeat("x", 3000) + "\r\nY: " + strings.Repeat("y", 6000) + "\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 431},
		{"CL and TE after a fast request", "GET /a HTTP/1.1\r\nHost: h\r\n\r\nPOST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 200},
		{"CONNECT", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 405},
		{"CONNECT with a path", "CONNECT /x HTTP/1.1\r\nHost: h\r\n\r\n", 405},
	} {
		t.Run(tt.desc, func(t *testing.T) {
			before := handled.Load()
			resp, body, closed := sendAll(t, addr, tt.raw)
			if resp.StatusCode != tt.code {
				t.Fatalf("status %d %q, want %d", resp.StatusCode, body, tt.code)
			}
			if tt.code == 200 {
				return // the second answer is the subject of the next case
			}
			if !closed || !resp.Close {
				t.Errorf("no clean close (closed=%v, Connection: close=%v)", closed, resp.Close)
			}
			if resp.Header.Get("Content-Type") != "application/json" {
				t.Errorf("answer %q of type %q, want the JSON of ErrorResponse", body, resp.Header.Get("Content-Type"))
			}
			if n := handled.Load() - before; n != 0 {
				t.Errorf("the handler saw %d requests, want none", n)
			}
		})
	}
	t.Run("CL and TE after a fast request, second answer", func(t *testing.T) {
		_, resps, _ := exchange(t, addr, "GET /a HTTP/1.1\r\nHost: h\r\n\r\nPOST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 2, "GET")
		if resps[1].StatusCode != 400 || !resps[1].Close {
			t.Errorf("second answer %d close=%v, want 400 and close", resps[1].StatusCode, resps[1].Close)
		}
	})
}

// TestServerBigHeads: a head over MaxHeaderBytes gets the ErrorResponse
// 431 at every size, and a client that sends all of its request before
// reading (body included) reads it.
func TestServerBigHeads(t *testing.T) {
	addr, handled := hostileServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.Header.Get("X-Big")) > 4000 { // as the worker checks a head that net/http parsed
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Connection", "close")
			w.WriteHeader(431)
			return
		}
		echo(w, r)
	}), 0)
	for _, size := range []int{4100, 6000, 8200, 9000, 20000, 200 << 10} {
		for _, body := range []int{0, 256 << 10} {
			t.Run(fmt.Sprintf("head %d body %d", size, body), func(t *testing.T) {
				before := handled.Load()
				raw := fmt.Sprintf("POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\nX-Big: %s\r\n\r\n%s", body, strings.Repeat("b", size), strings.Repeat("z", body))
				resp, _, closed := sendAll(t, addr, raw)
				if resp.StatusCode != 431 || resp.Header.Get("Content-Type") != "application/json" {
					t.Fatalf("answer %d %q, want the JSON 431", resp.StatusCode, resp.Header.Get("Content-Type"))
				}
				if !closed {
					t.Error("no clean close after 431")
				}
				if size > readBufferSize && handled.Load() != before {
					t.Error("a handler saw a head over MaxHeaderBytes+4")
				}
			})
		}
	}
}

// TestServerUnreadBodyLingers: an answer given without reading a large
// body (a 413) reaches a client that sends its whole body first.
func TestServerUnreadBodyLingers(t *testing.T) {
	addr, _ := hostileServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "8")
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		_, _ = io.WriteString(w, "too big\n")
	}), 0)
	raw := fmt.Sprintf("POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n%s", 16<<20, strings.Repeat("z", 16<<20))
	resp, body, closed := sendAll(t, addr, raw)
	if resp.StatusCode != 413 || body != "too big\n" || !closed {
		t.Errorf("answer %d %q closed=%v", resp.StatusCode, body, closed)
	}
}

// TestServerBodyIdleTimeout: a body that stops arriving fails the read
// with a timing-out RequestBodyError, on the fast path and on the
// fallback, and the connection is closed after the answer.
func TestServerBodyIdleTimeout(t *testing.T) {
	addr, _ := hostileServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		var be *RequestBodyError
		switch {
		case errors.As(err, &be) && be.Timeout:
			w.Header().Set("Connection", "close")
			w.WriteHeader(http.StatusRequestTimeout)
		case err != nil:
			w.WriteHeader(http.StatusTeapot)
		}
	}), 50*time.Millisecond)
	for _, head := range []string{
		"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc",
		"POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.WriteString(c, head) // and nothing more
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%q: %v", head, err)
		}
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Errorf("%q: status %d, want 408", head, resp.StatusCode)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
			t.Errorf("%q: connection not closed: %v", head, err)
		}
		_ = c.Close()
	}
}

// TestServerMalformedChunkedBody: the fallback's chunked body that does
// not parse is a RequestBodyError, not a timeout.
func TestServerMalformedChunkedBody(t *testing.T) {
	addr, _ := hostileServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		var be *RequestBodyError
		if errors.As(err, &be) && !be.Timeout {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusTeapot)
	}), time.Minute)
	for _, size := range []string{"+3", " 3", "0x3", "zz", "3 ;x"} {
		resp, _, _ := sendAll(t, addr, "POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"+size+"\r\nabc\r\n0\r\n\r\n")
		if resp.StatusCode != 400 {
			t.Errorf("chunk size %q: status %d, want 400", size, resp.StatusCode)
		}
	}
}

// TestServerFallbackServesOneRequest: a connection handed to net/http
// carries only that request, so that no later request on it escapes the
// screen (here, both lengths after an HTTP/1.0 keep-alive request).
func TestServerFallbackServesOneRequest(t *testing.T) {
	addr, handled := hostileServer(t, http.HandlerFunc(echo), 0)
	for _, first := range []string{
		"GET /old HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n",
		"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
	} {
		before := handled.Load()
		resp, body, closed := sendAll(t, addr, first+"POST /smuggled HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
		if resp.StatusCode != 200 || !resp.Close || !closed || strings.Contains(body, "smuggled") {
			t.Errorf("%q: %d %q close=%v closed=%v", first, resp.StatusCode, body, resp.Close, closed)
		}
		if n := handled.Load() - before; n != 1 {
			t.Errorf("%q: the handler saw %d requests, want 1", first, n)
		}
	}
}
