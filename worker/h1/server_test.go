package h1

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// testServer runs an h1.Server on 127.0.0.1 whose fallback is net/http
// with the same handler, marking its answers with X-Served-By.
func testServer(t *testing.T, h http.Handler) (*Server, string) {
	t.Helper()
	return testServerWith(t, h, nil)
}

// testServerWith is testServer with set applied to the Server before it
// serves.
func testServerWith(t *testing.T, h http.Handler, set func(*Server)) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fb := NewFallbackListener(ln.Addr())
	srv := &Server{
		Handler:           h,
		Fallback:          fb.Give,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       5 * time.Second,
	}
	if set != nil {
		set(srv)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Served-By", "net/http")
		h.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(ln) }()
	go func() { _ = hs.Serve(fb) }()
	t.Cleanup(func() { _ = srv.Close(); _ = hs.Close() })
	return srv, ln.Addr().String()
}

// exchange writes raw to a new connection and reads n answers.
func exchange(t *testing.T, addr, raw string, n int, method string) (net.Conn, []*http.Response, []string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var resps []*http.Response
	var bodies []string
	for i := 0; i < n; i++ {
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("answer %d body: %v", i, err)
		}
		resps = append(resps, resp)
		bodies = append(bodies, string(b))
	}
	return c, resps, bodies
}

func echo(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	switch r.URL.Path {
	case "/big":
		_, _ = w.Write([]byte(strings.Repeat("x", 5000)))
	case "/none":
		w.WriteHeader(http.StatusNoContent)
	case "/ignore-body":
	case "/inject":
		w.Header().Set("X-Evil", "a\r\nSet-Cookie: b")
	default:
		fmt.Fprintf(w, "%s %s host=%s body=%s", r.Method, r.URL.RequestURI(), r.Host, b)
	}
}

func TestServerKeepAliveAndPipelining(t *testing.T) {
	_, addr := testServer(t, http.HandlerFunc(echo))
	_, resps, bodies := exchange(t, addr,
		"GET /a?x=1 HTTP/1.1\r\nHost: h\r\n\r\nPOST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcGET /c HTTP/1.1\r\nHost: h\r\n\r\n", 3, "GET")
	want := []string{"GET /a?x=1 host=h body=", "POST /b host=h body=abc", "GET /c host=h body="}
	for i, r := range resps {
		if bodies[i] != want[i] || r.ContentLength != int64(len(want[i])) || r.Header.Get("X-Served-By") != "" || r.Header.Get("Date") == "" {
			t.Errorf("answer %d: %q len=%d header=%v", i, bodies[i], r.ContentLength, r.Header)
		}
	}
}

func TestServerFraming(t *testing.T) {
	_, addr := testServer(t, http.HandlerFunc(echo))
	_, resps, bodies := exchange(t, addr, "GET /big HTTP/1.1\r\nHost: h\r\n\r\n", 1, "GET")
	if r := resps[0]; len(bodies[0]) != 5000 || len(r.TransferEncoding) != 1 || r.Header.Get("Content-Type") == "" {
		t.Errorf("big body: len %d, TE %v, header %v", len(bodies[0]), r.TransferEncoding, r.Header)
	}
	_, resps, bodies = exchange(t, addr, "HEAD /a HTTP/1.1\r\nHost: h\r\n\r\nGET /none HTTP/1.1\r\nHost: h\r\n\r\n", 1, "HEAD")
	if bodies[0] != "" || resps[0].StatusCode != 200 {
		t.Errorf("HEAD: %d %q", resps[0].StatusCode, bodies[0])
	}
	_, resps, bodies = exchange(t, addr, "GET /none HTTP/1.1\r\nHost: h\r\n\r\nGET /a HTTP/1.1\r\nHost: h\r\n\r\n", 2, "GET")
	if resps[0].StatusCode != 204 || bodies[0] != "" || bodies[1] != "GET /a host=h body=" {
		t.Errorf("204 then GET: %d %q %q", resps[0].StatusCode, bodies[0], bodies[1])
	}
	_, resps, _ = exchange(t, addr, "GET /inject HTTP/1.1\r\nHost: h\r\n\r\n", 1, "GET")
	if resps[0].Header.Get("Set-Cookie") != "" {
		t.Errorf("a handler split the answer: %v", resps[0].Header)
	}
}

func TestServerUnreadBodyKeepsConnection(t *testing.T) {
	_, addr := testServer(t, http.HandlerFunc(echo))
	_, _, bodies := exchange(t, addr,
		"POST /ignore-body HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789GET /after HTTP/1.1\r\nHost: h\r\n\r\n", 2, "GET")
	if bodies[1] != "GET /after host=h body=" {
		t.Errorf("second answer %q", bodies[1])
	}
}

func TestServerConnectionClose(t *testing.T) {
	_, addr := testServer(t, http.HandlerFunc(echo))
	c, resps, _ := exchange(t, addr, "GET /a HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", 1, "GET")
	if !resps[0].Close {
		t.Error("no Connection: close in the answer")
	}
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("connection still open: %d %v", n, err)
	}
}

func TestServerHandsOffWhatItDoesNotServe(t *testing.T) {
	_, addr := testServer(t, http.HandlerFunc(echo))
	tests := []struct{ name, raw, want string }{
		{"HTTP/1.0", "GET /old HTTP/1.0\r\nHost: h\r\n\r\n", "GET /old host=h body="},
		{"chunked body", "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "POST /c host=h body=abc"},
		{"head over 8 KiB", "GET /long HTTP/1.1\r\nHost: h\r\nX-Long: " + strings.Repeat("a", 9000) + "\r\n\r\n", "GET /long host=h body="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, resps, bodies := exchange(t, addr, tt.raw, 1, "GET")
			if bodies[0] != tt.want || resps[0].Header.Get("X-Served-By") != "net/http" {
				t.Errorf("got %q by %q", bodies[0], resps[0].Header.Get("X-Served-By"))
			}
		})
	}
	// After a fast answer, the connection's unusual request still goes over.
	_, resps, bodies := exchange(t, addr, "GET /fast HTTP/1.1\r\nHost: h\r\n\r\nGET /old HTTP/1.0\r\nHost: h\r\n\r\n", 2, "GET")
	if resps[0].Header.Get("X-Served-By") != "" || resps[1].Header.Get("X-Served-By") != "net/http" || bodies[1] != "GET /old host=h body=" {
		t.Errorf("mixed connection: %v %v %q", resps[0].Header, resps[1].Header, bodies[1])
	}
}

func TestServerShutdown(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{})
	srv, addr := testServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(started)
			<-release
		}
		_, _ = io.WriteString(w, "done")
	}))
	idle, _, _ := exchange(t, addr, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", 1, "GET")
	busy, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, _ = io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
	<-started

	var wg sync.WaitGroup
	wg.Add(1)
	var shutdownErr error
	go func() {
		defer wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shutdownErr = srv.Shutdown(ctx)
	}()
	// The idle connection is closed; the busy one gets its answer.
	_ = idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := idle.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("idle connection not closed: %d %v", n, err)
	}
	close(release)
	_ = busy.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(busy), nil)
	if err != nil {
		t.Fatalf("busy connection: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "done" {
		t.Errorf("busy answer %q", b)
	}
	wg.Wait()
	if shutdownErr != nil {
		t.Errorf("Shutdown: %v", shutdownErr)
	}
}

func TestServerSurvivesAPanic(t *testing.T) {
	var logged strings.Builder
	var mu sync.Mutex
	srv, addr := testServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/panic" {
			panic("plugin bug")
		}
		_, _ = io.WriteString(w, "fine")
	}))
	srv.ErrorLog = log.New(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logged.Write(p)
	}), "", 0)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(c, "GET /panic HTTP/1.1\r\nHost: h\r\n\r\n")
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("the panicking request's connection got %d bytes, %v; want it closed", n, err)
	}
	if _, _, bodies := exchange(t, addr, "GET /ok HTTP/1.1\r\nHost: h\r\n\r\n", 1, "GET"); bodies[0] != "fine" {
		t.Errorf("after the panic: %q", bodies[0])
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logged.String(), "plugin bug") {
		t.Errorf("panic not logged: %q", logged.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestServerHeaderDoesNotCarryOver: the header map a connection reuses
// starts empty for each request.
func TestServerHeaderDoesNotCarryOver(t *testing.T) {
	_, addr := testServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/first" {
			w.Header().Set("X-Only-First", "1")
		}
		_, _ = io.WriteString(w, r.URL.Path)
	}))
	_, resps, bodies := exchange(t, addr, "GET /first HTTP/1.1\r\nHost: x\r\n\r\nGET /second HTTP/1.1\r\nHost: x\r\n\r\n", 2, "GET")
	if resps[0].Header.Get("X-Only-First") != "1" || bodies[0] != "/first" {
		t.Fatalf("first answer: %v %q", resps[0].Header, bodies[0])
	}
	if v, ok := resps[1].Header["X-Only-First"]; ok || bodies[1] != "/second" {
		t.Fatalf("second answer carries X-Only-First %q (body %q)", v, bodies[1])
	}
}
