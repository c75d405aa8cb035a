package integration

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The hostile-input suite for mgw's HTTP/1.1 edge: raw clients against
// the real binary, and a target that misbehaves on purpose. Each case
// checks what the client got and what the target received.

const smuggledAnswer = "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nnot your own"

// hostileScript answers each path of the suite's target.
func hostileScript(path string) (answer, extra string, sameWrite, hangUp bool) {
	name := strings.TrimPrefix(path, "/v1/")
	same := strings.HasSuffix(name, "-same")
	switch strings.TrimSuffix(name, "-same") {
	case "head-body":
		return "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", smuggledAnswer, same, false
	case "204-body":
		return "HTTP/1.1 204 No Content\r\n\r\n", smuggledAnswer, same, false
	case "304-body":
		return "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", smuggledAnswer, same, false
	case "past-length":
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", smuggledAnswer, same, false
	case "switch":
		return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n", smuggledAnswer, same, false
	case "dies-chunked":
		return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", "", false, true
	case "bad-chunk":
		return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n+3\r\nabc\r\n0\r\n\r\n", "", false, false
	case "hold":
		return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", "5\r\nworld\r\n0\r\n\r\n", false, false
	case "dies-length":
		return "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhello", "", false, true
	case "dies-chunked-empty":
		return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "", false, true
	case "bad-chunk-empty":
		return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", "", false, false
	case "dies-length-empty":
		return "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nX-Target-Secret: s\r\n\r\n", "", false, true
	case "204-length":
		return "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", "", false, false
	case "304-length":
		return "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\nContent-Type: text/plain\r\nEtag: \"a\"\r\n\r\n", "", false, false
	case "hop-close":
		return "HTTP/1.1 200 OK\r\nConnection: close, X-Secret\r\nX-Secret: s3cr3t\r\nContent-Length: 2\r\n\r\nok", "", false, true
	case "hop-keep":
		return "HTTP/1.1 200 OK\r\nConnection: X-Secret\r\nX-Secret: s3cr3t\r\nContent-Length: 2\r\n\r\nok", "", false, false
	case "interim-flood":
		// 1.2 MiB of 103 heads before the answer: more head than mgw
		// reads for one answer (1 MiB), as net/http counts them.
		return strings.Repeat("HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n", 22000) + ownAnswer(path), "", false, false
	}
	return ownAnswer(path), "", false, false
}

// TestHostileTargetOverrun: bytes a target sends past the framing of its
// answer, in the answer's segment or a later one, never reach another
// client: the next request, from another client, goes on a new target
// connection and gets its own answer.
func TestHostileTargetOverrun(t *testing.T) {
	t.Parallel()
	ht := newHostileTarget(t, hostileScript)
	in := newInstance(t, proxyConfig(ht.url()))
	in.start(1) // one worker: one pool of target connections
	for _, tt := range []struct {
		path, method string
		status       int
		body         string
	}{
		{"head-body", http.MethodHead, 200, ""},
		{"204-body", http.MethodGet, 204, ""},
		{"304-body", http.MethodGet, 304, ""},
		{"past-length", http.MethodGet, 200, "ok"},
	} {
		for _, seg := range []string{"", "-same"} {
			path := tt.path + seg
			t.Run(path, func(t *testing.T) {
				before := len(ht.received())
				resp, body, err, _ := rawSend(t, hostAddr(in), tt.method+" /api/"+path+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", tt.method)
				if err != nil || resp.StatusCode != tt.status || body != tt.body {
					t.Fatalf("first client: %d %q %v, want %d %q", resp.StatusCode, body, err, tt.status, tt.body)
				}
				ht.waitSent("/v1/" + path)
				code, got := get(t, in.url("/api/next-"+path))
				if code != 200 || got != "own /v1/next-"+path {
					t.Fatalf("next client got %d %q, want its own answer", code, got)
				}
				rec := ht.received()[before:]
				if len(rec) != 2 || rec[0].path != "/v1/"+path || rec[1].path != "/v1/next-"+path || rec[0].method != tt.method {
					t.Fatalf("target received %+v, want the two requests", rec)
				}
				if rec[0].conn == rec[1].conn {
					t.Errorf("the next request went on the overrun connection %d", rec[0].conn)
				}
			})
		}
	}
}

// TestHostileTargetSwitch: an unsolicited 101 is a 502 in mgw's words,
// never relayed, and its connection is not reused.
func TestHostileTargetSwitch(t *testing.T) {
	t.Parallel()
	ht := newHostileTarget(t, hostileScript)
	in := newInstance(t, proxyConfig(ht.url()))
	in.start(1)
	before := len(ht.received())
	resp, body, _, _ := rawSend(t, hostAddr(in), "GET /api/switch HTTP/1.1\r\nHost: x\r\n\r\n", http.MethodGet)
	if resp.StatusCode != http.StatusBadGateway || resp.Header.Get("Content-Type") != "application/json" ||
		strings.Contains(body, "h2c") || !strings.Contains(body, "101") {
		t.Fatalf("client got %d %q %q, want mgw's JSON 502 naming the 101", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	ht.waitSent("/v1/switch")
	if code, got := get(t, in.url("/api/after-switch")); code != 200 || got != "own /v1/after-switch" {
		t.Fatalf("next client got %d %q", code, got)
	}
	rec := ht.received()[before:]
	if len(rec) != 2 || rec[0].path != "/v1/switch" || rec[1].conn == rec[0].conn {
		t.Fatalf("target received %+v, want the switch request, then the next on a new connection", rec)
	}
	if rec[0].header.Get("Upgrade") != "" || rec[0].header.Get("Connection") != "" {
		t.Errorf("target was asked to upgrade: %v", rec[0].header)
	}
}

// TestHostileTargetTruncated: an answer whose target dies mid-body or
// sends a bad chunk (a chunk size net/http refuses) reaches the client
// cut: no last chunk, the connection ended, so it can tell; mgw logs it
// with the proxy's name, and the request still has its access-log line.
func TestHostileTargetTruncated(t *testing.T) {
	t.Parallel()
	ht := newHostileTarget(t, hostileScript)
	in := newInstance(t, strings.Replace(proxyConfig(ht.url()), "to_console = true", "to_console = true\naccess_log = true", 1))
	in.start(1)
	for _, path := range []string{"dies-chunked", "bad-chunk", "dies-length"} {
		t.Run(path, func(t *testing.T) {
			before := len(ht.received())
			// Two requests on one connection: the second must not be served.
			resp, body, err, _ := rawSend(t, hostAddr(in), "GET /api/"+path+" HTTP/1.1\r\nHost: x\r\n\r\nGET /api/second HTTP/1.1\r\nHost: x\r\n\r\n", http.MethodGet)
			if resp.StatusCode != 200 || !errors.Is(err, io.ErrUnexpectedEOF) || !strings.HasPrefix(body, "hello") {
				t.Fatalf("client got %d %q, body error %v; want hello and an unexpected EOF", resp.StatusCode, body, err)
			}
			rec := ht.received()[before:]
			if len(rec) != 1 || rec[0].path != "/v1/"+path {
				t.Fatalf("target received %+v, want only the one request", rec)
			}
		})
	}
	in.eventually(10*time.Second, "the log names the proxy of the broken answer", func() bool {
		for _, l := range strings.Split(in.logs.String(), "\n") {
			if strings.Contains(l, "broke off") && strings.Contains(l, "proxy=api") {
				return true
			}
		}
		return false
	})
	for _, path := range []string{"dies-chunked", "bad-chunk", "dies-length"} {
		in.eventually(10*time.Second, "the access log has the broken answer to /api/"+path, func() bool {
			for _, l := range strings.Split(in.logs.String(), "\n") {
				if strings.Contains(l, "path=/api/"+path) && strings.Contains(l, "status=200") && strings.Contains(l, "proxy=api") {
					return true
				}
			}
			return false
		})
	}
}

// TestHostileTargetBrokeOffBeforeBody: an answer that breaks off before
// any of its body (the target dies after its head, or its first chunk
// size is bad) has sent the client nothing yet, so the client gets mgw's
// 502 and none of the target's head, not a connection closed with no
// answer, which a client may take for an idle connection's close and
// send again. The connection stays usable, and the access log says 502.
func TestHostileTargetBrokeOffBeforeBody(t *testing.T) {
	t.Parallel()
	ht := newHostileTarget(t, hostileScript)
	in := newInstance(t, strings.Replace(proxyConfig(ht.url()), "to_console = true", "to_console = true\naccess_log = true", 1))
	in.start(1)
	for _, path := range []string{"dies-chunked-empty", "bad-chunk-empty", "dies-length-empty"} {
		t.Run(path, func(t *testing.T) {
			before := len(ht.received())
			c, err := net.Dial("tcp", hostAddr(in))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(c)
			for _, p := range []string{path, "second"} {
				if _, err := io.WriteString(c, "GET /api/"+p+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
					t.Fatal(err)
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("%s: %v, want an answer", p, err)
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					t.Fatalf("%s: reading the body: %v", p, err)
				}
				if p == "second" {
					if resp.StatusCode != 200 {
						t.Fatalf("the next request on the connection got %d %q", resp.StatusCode, body)
					}
					continue
				}
				if resp.StatusCode != http.StatusBadGateway || resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("X-Target-Secret") != "" {
					t.Fatalf("client got %d %v %q; want mgw's JSON 502 and none of the target's head", resp.StatusCode, resp.Header, body)
				}
			}
			rec := ht.received()[before:]
			if len(rec) != 2 || rec[0].path != "/v1/"+path {
				t.Fatalf("target received %+v, want the request once, then the second", rec)
			}
		})
	}
	for _, path := range []string{"dies-chunked-empty", "bad-chunk-empty", "dies-length-empty"} {
		in.eventually(10*time.Second, "the access log has the 502 for /api/"+path, func() bool {
			for _, l := range strings.Split(in.logs.String(), "\n") {
				if strings.Contains(l, "path=/api/"+path) && strings.Contains(l, "status=502") && strings.Contains(l, "proxy=api") {
					return true
				}
			}
			return false
		})
	}
}

// TestHostileClientHeads: a head over max_header_bytes gets mgw's JSON
// 431 at every size, readable by a client that sends its whole request,
// body included, before reading; the target gets nothing.
func TestHostileClientHeads(t *testing.T) {
	t.Parallel()
	ht := newHostileTarget(t, hostileScript)
	in := newInstance(t, strings.Replace(proxyConfig(ht.url()), `address = "127.0.0.1"`, "address = \"127.0.0.1\"\nmax_header_bytes = 4096\nmax_body_bytes = 1024", 1))
	in.start(1)
	for _, size := range []int{4200, 4096 + 3000, 4096 + 5000, 9000, 64 << 10, 1 << 20} {
		for _, body := range []int{0, 512 << 10} {
			t.Run(fmt.Sprintf("head %d body %d", size, body), func(t *testing.T) {
				before := len(ht.received())
				raw := fmt.Sprintf("POST /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nX-Big: %s\r\n\r\n%s", body, strings.Repeat("b", size), strings.Repeat("z", body))
				resp, got, err, clean := rawSend(t, hostAddr(in), raw, http.MethodPost)
				if resp.StatusCode != 431 || resp.Header.Get("Content-Type") != "application/json" || err != nil || !strings.Contains(got, "431") {
					t.Fatalf("client got %d %q %q (%v), want the JSON 431", resp.StatusCode, resp.Header.Get("Content-Type"), got, err)
				}
				if !clean {
					t.Error("the connection was reset after the 431, not closed")
				}
				if rec := ht.received()[before:]; len(rec) != 0 {
					t.Errorf("target received %+v", rec)
				}
			})
		}
	}
	t.Run("413 with the body sent first", func(t *testing.T) {
		before := len(ht.received())
		raw := fmt.Sprintf("POST /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", 8<<20, strings.Repeat("z", 8<<20))
		resp, got, err, clean := rawSend(t, hostAddr(in), raw, http.MethodPost)
		if resp.StatusCode != 413 || resp.Header.Get("Content-Type") != "application/json" || err != nil || !clean {
			t.Fatalf("client got %d %q %q (%v), clean close %v; want the JSON 413 and a clean close", resp.StatusCode, resp.Header.Get("Content-Type"), got, err, clean)
		}
		if rec := ht.received()[before:]; len(rec) != 0 {
			t.Errorf("target received %+v", rec)
		}
	})
}

// TestHostileClientFraming: a request with both Content-Length and
// Transfer-Encoding gets 400 and its connection closes; CONNECT gets 405;
// a malformed chunked body gets 400, not 502. The target receives none of
// them whole.
func TestHostileClientFraming(t *testing.T) {
	t.Parallel()
	ht := newHostileTarget(t, hostileScript)
	in := newInstance(t, proxyConfig(ht.url()))
	in.start(1)
	for _, tt := range []struct {
		desc, raw string
		code      int
	}{
		{"CL and TE", "POST /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /api/smuggled HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"TE and CL, bare LF", "POST /api/x HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\nContent-Length: 5\n\n0\r\n\r\n", 400},
		{"CL and TE after a good request", "GET /api/good HTTP/1.1\r\nHost: x\r\n\r\nPOST /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 200},
		{"CL and TE after a handed-over request", "GET /api/old HTTP/1.0\r\nConnection: keep-alive\r\n\r\nPOST /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 0},
		{"CONNECT", "CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n", 405},
		{"malformed chunk size", "POST /api/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n+3\r\nabc\r\n0\r\n\r\n", 400},
		{"Transfer-Encoding in HTTP/1.0", "POST /api/x HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400},
		{"chunk size with a space", "POST /api/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n 3\r\nabc\r\n0\r\n\r\n", 400},
	} {
		t.Run(tt.desc, func(t *testing.T) {
			before := len(ht.received())
			resp, body, _, clean := rawSend(t, hostAddr(in), tt.raw, http.MethodGet)
			if tt.code == 0 { // net/http served the first; the connection ends there
				if resp.StatusCode != 200 || body != "own /v1/old" || !resp.Close || !clean {
					t.Fatalf("first answer %d %q, Connection: close %v, clean close %v", resp.StatusCode, body, resp.Close, clean)
				}
				if rec := ht.received()[before:]; len(rec) != 1 || rec[0].path != "/v1/old" {
					t.Fatalf("target received %+v, want only /v1/old", rec)
				}
				return
			}
			if tt.code == 200 { // then the second answer is the one checked
				if resp.StatusCode != 200 || body != "own /v1/good" {
					t.Fatalf("first answer %d %q", resp.StatusCode, body)
				}
				answers := rawExchange(t, in.url(""), tt.raw, 2)
				if !strings.HasPrefix(answers[1], "400 ") {
					t.Fatalf("second answer %q, want 400", answers[1])
				}
				for _, r := range ht.received()[before:] {
					if r.path != "/v1/good" {
						t.Errorf("target received %+v", r)
					}
				}
				return
			}
			if resp.StatusCode != tt.code || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("client got %d %q %q, want the JSON %d", resp.StatusCode, resp.Header.Get("Content-Type"), body, tt.code)
			}
			if !resp.Close || !clean {
				t.Errorf("connection not closed cleanly (Connection: close %v, clean %v)", resp.Close, clean)
			}
			if rec := ht.received()[before:]; len(rec) != 0 {
				t.Errorf("target received %+v", rec)
			}
		})
	}
}

// TestHostileSlowTargetPoolBusy: when a proxy's max_connections target
// connections are all held (here by a target that trickles its answer),
// the next request waits no longer than the proxy's timeout and gets 503,
// instead of hanging; the target never sees it.
func TestHostileSlowTargetPoolBusy(t *testing.T) {
	t.Parallel()
	ht := newHostileTarget(t, hostileScript)
	cfg := proxyConfig(ht.url()) + "timeout = 500\nmax_connections = 1\n"
	in := newInstance(t, cfg)
	in.start(1)
	c, err := net.Dial("tcp", hostAddr(in))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	_, _ = io.WriteString(c, "GET /api/hold HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil) // the head is here: the one connection is held
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("held request: %v %v", resp, err)
	}
	code, body := get(t, in.url("/api/next"))
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "busy") {
		t.Fatalf("request at max_connections got %d %q, want 503", code, body)
	}
	close(ht.hold)
	if b, err := io.ReadAll(resp.Body); err != nil || string(b) != "helloworld" {
		t.Fatalf("held answer: %q %v", b, err)
	}
	for _, r := range ht.received() {
		if r.path == "/v1/next" {
			t.Errorf("target received the request that got 503")
		}
	}
}

// TestHostileTargetHopHeaders: the fields a target's Connection header
// names are hop-by-hop and never reach the client, whether the header
// also says close (which the transport must not drop before the proxy
// reads it) or not.
func TestHostileTargetHopHeaders(t *testing.T) {
	t.Parallel()
	ht := newHostileTarget(t, hostileScript)
	in := newInstance(t, proxyConfig(ht.url()))
	in.start(1)
	for _, path := range []string{"hop-close", "hop-keep"} {
		t.Run(path, func(t *testing.T) {
			resp, body, err, _ := rawSend(t, hostAddr(in), "GET /api/"+path+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", http.MethodGet)
			if resp.StatusCode != 200 || body != "ok" || err != nil {
				t.Fatalf("client got %d %q %v", resp.StatusCode, body, err)
			}
			if v := resp.Header.Values("X-Secret"); len(v) != 0 {
				t.Errorf("client got X-Secret %q, a field the target's Connection header names", v)
			}
		})
	}
}

// TestHostileTargetInterimFlood: 1xx answers count toward the bound on
// an answer's head, as in net/http: a target that sends more 1xx heads
// than that gets a 502 in mgw's words, not a round trip held until its
// timeout, and its connection is not reused.
func TestHostileTargetInterimFlood(t *testing.T) {
	t.Parallel()
	ht := newHostileTarget(t, hostileScript)
	in := newInstance(t, proxyConfig(ht.url()))
	in.start(1)
	resp, body, _, _ := rawSend(t, hostAddr(in), "GET /api/interim-flood HTTP/1.1\r\nHost: x\r\n\r\n", http.MethodGet)
	if resp.StatusCode != http.StatusBadGateway || resp.Header.Get("Content-Type") != "application/json" || strings.Contains(body, "Early") {
		t.Fatalf("client got %d %q %q, want mgw's JSON 502", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if code, got := get(t, in.url("/api/after-flood")); code != 200 || got != "own /v1/after-flood" {
		t.Fatalf("next client got %d %q", code, got)
	}
}

// TestHostileTargetNoBodyLength: a 204 or 304 whose target gives it a
// Content-Length reaches the client without one (as net/http's server
// sends it): a client or proxy in front that believed it would read the
// next answer on the connection as this one's body.
func TestHostileTargetNoBodyLength(t *testing.T) {
	t.Parallel()
	ht := newHostileTarget(t, hostileScript)
	in := newInstance(t, proxyConfig(ht.url()))
	in.start(1)
	for _, tt := range []struct {
		path   string
		status int
	}{{"204-length", 204}, {"304-length", 304}} {
		t.Run(tt.path, func(t *testing.T) {
			c, err := net.Dial("tcp", hostAddr(in))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			_, _ = io.WriteString(c, "GET /api/"+tt.path+" HTTP/1.1\r\nHost: x\r\n\r\nGET /api/next HTTP/1.1\r\nHost: x\r\n\r\n")
			br := bufio.NewReader(c)
			var head []string
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					t.Fatalf("reading the head: %v (so far %q)", err, head)
				}
				if line == "\r\n" {
					break
				}
				head = append(head, line)
			}
			if !strings.HasPrefix(head[0], fmt.Sprintf("HTTP/1.1 %d ", tt.status)) {
				t.Fatalf("client got %q", head)
			}
			for _, l := range head[1:] {
				if k, _, _ := strings.Cut(l, ":"); strings.EqualFold(k, "Content-Length") || tt.status == 304 && strings.EqualFold(k, "Content-Type") {
					t.Errorf("the %d came with %q", tt.status, l)
				}
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("the next answer: %v", err)
			}
			if b, _ := io.ReadAll(resp.Body); string(b) != "own /v1/next" {
				t.Errorf("the next answer is %q", b)
			}
		})
	}
}
