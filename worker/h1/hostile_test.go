package h1

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// overrun is a target that answers its first request
// with answer and then, in a second write after the first one is out,
// with extra: bytes the answer's framing does not allow. Every later
// request gets "HTTP/1.1 200 OK ... own". sent is
// signaled once extra has been written.
type overrun struct {
	addr     string
	accepts  atomic.Int32
	requests atomic.Int32
	sent     chan struct{}
}

func newOverrun(t *testing.T, answer, extra string, sameWrite bool) *overrun {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	o := &overrun{addr: ln.Addr().String(), sent: make(chan struct{}, 8)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			o.accepts.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					if o.requests.Add(1) > 1 {
						_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nown")
						continue
					}
					if sameWrite {
						_, _ = io.WriteString(c, answer+extra)
					} else {
						_, _ = io.WriteString(c, answer)
						time.Sleep(5 * time.Millisecond) // a later segment, on purpose
						_, _ = io.WriteString(c, extra)
					}
					o.sent <- struct{}{}
				}
			}()
		}
	}()
	return o
}

// TestTransportNeverReusesOverrunConnection: bytes a target sends past
// the framing of its answer, in the same segment or a later one, never
// become the answer to the next request: that request goes on a new
// connection and gets its own answer.
func TestTransportNeverReusesOverrunConnection(t *testing.T) {
	const smuggled = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nWRONG"
	for _, tt := range []struct {
		desc, method, answer, extra, body string
		status                            int
	}{
		{"body after a HEAD answer", http.MethodHead, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "hello", "", 200},
		{"answer after a HEAD answer", http.MethodHead, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", smuggled, "", 200},
		{"body after a 204", http.MethodGet, "HTTP/1.1 204 No Content\r\n\r\n", smuggled, "", 204},
		{"body after a 304", http.MethodGet, "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", smuggled, "", 304},
		{"bytes past Content-Length", http.MethodGet, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", smuggled, "ok", 200},
		{"bytes after a chunked body", http.MethodGet, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", smuggled, "ok", 200},
	} {
		for _, same := range []bool{false, true} {
			name := tt.desc + ", later segment"
			if same {
				name = tt.desc + ", same segment"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				o := newOverrun(t, tt.answer, tt.extra, same)
				tr := testTransport(o.addr)
				resp, body, err := get(t, tr, tt.method, nil)
				if err != nil || resp.StatusCode != tt.status || body != tt.body {
					t.Fatalf("first answer: %v %q %v, want %d %q", resp, body, err, tt.status, tt.body)
				}
				<-o.sent // the extra bytes are on the connection
				resp, body, err = get(t, tr, http.MethodGet, nil)
				if err != nil || resp.StatusCode != 200 || body != "own" {
					t.Fatalf("next request got %v %q %v, want its own answer \"own\"", resp, body, err)
				}
				if n := o.accepts.Load(); n != 2 {
					t.Errorf("target saw %d connections, want 2 (the overrun one closed)", n)
				}
			})
		}
	}
}

// TestTransportRefusesUnsolicitedSwitch: a 101 to a request that asked
// for no upgrade is an error, and its connection is not reused.
func TestTransportRefusesUnsolicitedSwitch(t *testing.T) {
	o := newOverrun(t, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n", smuggledAfterSwitch, false)
	tr := testTransport(o.addr)
	if _, _, err := get(t, tr, http.MethodGet, nil); !errors.Is(err, ErrUnsolicitedSwitch) {
		t.Fatalf("err = %v, want ErrUnsolicitedSwitch", err)
	}
	<-o.sent
	if _, body, err := get(t, tr, http.MethodGet, nil); err != nil || body != "own" {
		t.Fatalf("next request: %q %v", body, err)
	}
	if n := o.accepts.Load(); n != 2 {
		t.Errorf("target saw %d connections, want 2", n)
	}
}

const smuggledAfterSwitch = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nWRONG"

// TestTransportChunkSizeStrict: chunk sizes net/http refuses are refused.
func TestTransportChunkSizeStrict(t *testing.T) {
	for _, size := range []string{"+3", " 3", "0x3", "3 ;x", "3 ;", "-3", "", "12345678901234567", "8000000000000000", "3\n"} {
		t.Run(strings.TrimSpace(size), func(t *testing.T) {
			t.Parallel()
			answer := "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + size + "\r\nabc\r\n0\r\n\r\n"
			s := newScripted(t, answer)
			_, _, err := get(t, testTransport(s.addr), http.MethodGet, nil)
			var ce *ChunkError
			if !errors.As(err, &ce) {
				t.Fatalf("chunk size %q: err = %v, want a ChunkError", size, err)
			}
		})
	}
	for _, size := range []string{"3", "03", "3 ", "3\t", "3;ext=1", "3;", "0000000000000003"} {
		answer := "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + size + "\r\nabc\r\n0\r\n\r\n"
		s := newScripted(t, answer)
		if _, body, err := get(t, testTransport(s.addr), http.MethodGet, nil); err != nil || body != "abc" {
			t.Errorf("chunk size %q: %q %v, want abc", size, body, err)
		}
	}
}

// cancelingBody fails its read after canceling the request's context,
// as net/http's server does when its client's body read fails.
type cancelingBody struct {
	cancel func()
	err    error
}

func (b *cancelingBody) Read([]byte) (int, error) { b.cancel(); return 0, b.err }
func (b *cancelingBody) Close() error             { return nil }

// TestTransportBodyErrorWins: when the client's body fails, RoundTrip
// returns that failure even if it also ended the context, so that the
// worker answers 400 or 408, not 499.
func TestTransportBodyErrorWins(t *testing.T) {
	s := newScripted(t, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na")
	tr := testTransport(s.addr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	want := &RequestBodyError{Timeout: true, Err: errors.New("i/o timeout")}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+s.addr+"/", &cancelingBody{cancel: cancel, err: want})
	req.ContentLength = 10
	_, err := tr.RoundTrip(req)
	var be *RequestBodyError
	if !errors.As(err, &be) || !be.Timeout {
		t.Fatalf("err = %v, want the body's RequestBodyError", err)
	}
}

// TestTransportConnWait: at MaxConns, a request waits for a connection
// no longer than ConnWait, then fails with ErrConnWait.
func TestTransportConnWait(t *testing.T) {
	s := newScripted(t, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na")
	tr := testTransport(s.addr)
	tr.MaxConns, tr.ConnWait = 1, 20*time.Millisecond
	req, _ := http.NewRequest(http.MethodGet, "http://"+s.addr+"/", nil)
	resp, err := tr.RoundTrip(req) // holds the only connection until its body is read
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := tr.RoundTrip(req); !errors.Is(err, ErrConnWait) {
		t.Fatalf("second request while the first holds the connection: %v, want ErrConnWait", err)
	}
}

// TestTransportErrorsQuoteNothing: the errors of a malformed answer,
// which the worker puts in its 502, say what is wrong in the client's
// words, never with the target's bytes.
func TestTransportErrorsQuoteNothing(t *testing.T) {
	const secret = "s3cr3t-internal-10.1.2.3"
	for _, answer := range []string{
		"HTTP/1.1 2x0 " + secret + "\r\n\r\n",
		"HTTP/1.1 200 OK\r\n" + secret + "\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX: " + secret + "\x01\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: " + secret + "\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: " + secret + "\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2" + secret + "\r\n\r\n",
	} {
		s := newScripted(t, answer)
		_, _, err := get(t, testTransport(s.addr), http.MethodGet, nil)
		if err == nil || strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("%q: err = %v", answer, err)
		}
	}
}
