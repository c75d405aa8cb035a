package integration

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// hostileTarget is a target on a raw socket that misbehaves on purpose.
// It reads each request with net/http's parser and answers with what its
// script returns for the path: answer, written at once, then extra,
// written 5 ms later in a second write (or in the same write when
// sameWrite), then the connection is closed if hangUp; the answer to a
// path ending in /hold waits for hold to be closed before its extra
// bytes. It records each
// request it read whole, and on which connection.
type hostileTarget struct {
	t      *testing.T
	ln     net.Listener
	script func(path string) (answer, extra string, sameWrite, hangUp bool)

	mu    sync.Mutex
	got   []received
	conns int
	sent  chan string   // the path whose extra bytes were written
	hold  chan struct{} // releases the answers to .../hold
}

// received is one request the target read whole.
type received struct {
	conn   int
	method string
	path   string
	body   string
	header http.Header
}

func newHostileTarget(t *testing.T, script func(path string) (answer, extra string, sameWrite, hangUp bool)) *hostileTarget {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ht := &hostileTarget{t: t, ln: ln, script: script, sent: make(chan string, 64), hold: make(chan struct{})}
	t.Cleanup(func() { _ = ln.Close() })
	go ht.accept()
	return ht
}

func (ht *hostileTarget) url() string { return "http://" + ht.ln.Addr().String() }

func (ht *hostileTarget) accept() {
	for {
		c, err := ht.ln.Accept()
		if err != nil {
			return
		}
		ht.mu.Lock()
		ht.conns++
		id := ht.conns
		ht.mu.Unlock()
		go ht.serve(c, id)
	}
}

func (ht *hostileTarget) serve(c net.Conn, id int) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return // not a whole request: not recorded
		}
		ht.mu.Lock()
		ht.got = append(ht.got, received{conn: id, method: req.Method, path: req.URL.Path, body: string(body), header: req.Header})
		ht.mu.Unlock()
		answer, extra, same, hangUp := ht.script(req.URL.Path)
		if strings.HasSuffix(req.URL.Path, "/hold") {
			// The head and part of the body now, the rest once released.
			_, _ = io.WriteString(c, answer)
			select {
			case <-ht.hold:
			case <-time.After(30 * time.Second):
			}
			_, _ = io.WriteString(c, extra)
			continue
		}
		if same {
			_, _ = io.WriteString(c, answer+extra)
		} else {
			_, _ = io.WriteString(c, answer)
			if extra != "" {
				time.Sleep(5 * time.Millisecond) // a later segment, on purpose
				_, _ = io.WriteString(c, extra)
			}
		}
		if extra != "" {
			ht.sent <- req.URL.Path
		}
		if hangUp {
			return
		}
	}
}

// received returns the requests read whole so far.
func (ht *hostileTarget) received() []received {
	ht.mu.Lock()
	defer ht.mu.Unlock()
	return append([]received(nil), ht.got...)
}

// waitSent waits until the extra bytes of the answer to path are written.
func (ht *hostileTarget) waitSent(path string) {
	ht.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case p := <-ht.sent:
			if p == path {
				return
			}
		case <-timeout:
			ht.t.Fatalf("the target never sent the extra bytes for %s", path)
		}
	}
}

// ownAnswer is how the hostile target answers a well-behaved request:
// with its path, so that a client can tell its answer from another's.
func ownAnswer(path string) string {
	body := "own " + path
	return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: text/plain\r\n\r\n%s", len(body), body)
}

// rawSend writes all of raw on a new connection before reading anything,
// as Python's http.client does, and returns the first answer, its body
// (with the error that ended it), and whether the connection then ended
// cleanly (EOF, not a reset).
func rawSend(t *testing.T, addr, raw string, method string) (*http.Response, string, error, bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatalf("writing the request: %v", err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	b, berr := io.ReadAll(resp.Body)
	clean := false
	if berr == nil {
		_, err = br.ReadByte()
		clean = errors.Is(err, io.EOF)
	}
	return resp, string(b), berr, clean
}

func hostAddr(in *instance) string { return strings.TrimPrefix(in.url(""), "http://") }
