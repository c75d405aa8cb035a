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
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestClientGoneEndsTheRoundTrip: a client that goes away while its
// request waits on a slow target cancels the request's context, and the
// round trip made with it ends and closes the target connection, so the
// target's own request is canceled too (edgemicro aborts the target
// request and logs 499).
func TestClientGoneEndsTheRoundTrip(t *testing.T) {
	targetSaw := make(chan struct{})
	targetDone := make(chan error, 1)
	target := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		close(targetSaw)
		select {
		case <-r.Context().Done():
			targetDone <- nil
		case <-time.After(10 * time.Second):
			targetDone <- errors.New("the target's request was never canceled")
		}
	}))
	defer target.Close()
	tr := &Transport{Addr: target.Listener.Addr().String(), Dial: (&net.Dialer{}).DialContext}

	proxyErr := make(chan error, 1)
	_, addr := testServer(t, http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		out := (&http.Request{
			Method: "GET", URL: &url.URL{Scheme: "http", Host: tr.Addr, Path: "/"}, Host: tr.Addr,
			Header: http.Header{}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		}).WithContext(r.Context())
		resp, err := tr.RoundTrip(out)
		switch {
		case err == nil:
			resp.Body.Close()
			proxyErr <- errors.New("the round trip succeeded")
		case !errors.Is(err, context.Canceled) || r.Context().Err() == nil:
			proxyErr <- fmt.Errorf("round trip: %w; request context: %w", err, r.Context().Err())
		default:
			proxyErr <- nil
		}
	}))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	<-targetSaw
	_ = c.Close()
	for _, ch := range []chan error{proxyErr, targetDone} {
		select {
		case err := <-ch:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no outcome 10 s after the client went away")
		}
	}
}

// watchNow makes a Server watch a request's connection at once.
func watchNow(s *Server) { s.watchAfter = time.Nanosecond }

// waitForWatch polls the connection under ctx until ready holds (checked
// under the watch's lock), for at most 10 s.
func waitForWatch(ctx context.Context, ready func(c *conn) bool) error {
	c := serverConn(ctx)
	if c == nil {
		return errors.New("no server connection under the request's context")
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		c.wmu.Lock()
		ok := ready(c)
		c.wmu.Unlock()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("the watch never got there in 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestSlowRequestKeepsItsContext: a request whose connection the watch
// reads, with its client still waiting, keeps a live context, and a
// request the client pipelines while it runs (read by the watch) is
// served after it.
func TestSlowRequestKeepsItsContext(t *testing.T) {
	started := make(chan struct{})
	_, addr := testServerWith(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(started)
			// The watch, not the serving loop, must read the pipelined request.
			if err := waitForWatch(r.Context(), func(c *conn) bool {
				return bytes.Contains(c.buf[c.r:c.w], []byte("GET /next"))
			}); err != nil {
				fmt.Fprintf(w, "%s: %v", r.URL.Path, err)
				return
			}
		}
		fmt.Fprintf(w, "%s ctx=%v", r.URL.Path, r.Context().Err())
	}), watchNow)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	<-started
	if _, err := io.WriteString(c, "GET /next HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for _, want := range []string{"/slow ctx=<nil>", "/next ctx=<nil>"} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if string(b) != want || resp.Header.Get("X-Served-By") != "" {
			t.Fatalf("answer %q (served by %q), want %q from the fast path", b, resp.Header.Get("X-Served-By"), want)
		}
	}
}

// TestContextEndsWithTheHandler: as with net/http, a request's context
// is canceled once its handler has returned.
func TestContextEndsWithTheHandler(t *testing.T) {
	ctxs := make(chan context.Context, 1)
	_, addr := testServer(t, http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		ctxs <- r.Context()
	}))
	_, resps, _ := exchange(t, addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 1, "GET")
	ctx := <-ctxs
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the context of a finished request is live")
	}
	if resps[0].StatusCode != 200 || !strings.Contains(fmt.Sprint(ctx.Err()), "canceled") {
		t.Fatalf("status %d, context %v", resps[0].StatusCode, ctx.Err())
	}
}

// TestWatchLeavesNoDeadline: on a server with no timeouts, a connection
// whose request was watched serves the next request too.
func TestWatchLeavesNoDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			if err := waitForWatch(r.Context(), func(c *conn) bool { return c.watching != nil }); err != nil {
				_, _ = io.WriteString(w, err.Error())
				return
			}
		}
		_, _ = io.WriteString(w, r.URL.Path)
	}), watchAfter: time.Nanosecond}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	for _, path := range []string{"/slow", "/next"} {
		if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if string(b) != path {
			t.Fatalf("%s: answer %q", path, b)
		}
	}
}
