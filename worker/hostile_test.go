package worker

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mgw-gateway/mgw/internal/testutil"
)

// TestRequestHeaderHygiene: what a client cannot make a target believe.
func TestRequestHeaderHygiene(t *testing.T) {
	t.Parallel()
	tg := echoTarget(t)
	_, srv := newTestWorker(t, routes, tg.URL)
	req, _ := http.NewRequest("GET", srv.URL+"/hello/x", nil)
	req.Header["Transfer_Encoding"] = []string{"chunked"}
	req.Header["Content_Length"] = []string{"5"}
	req.Header["X_Forwarded_For"] = []string{"10.9.8.7"}
	req.Header["X_Real_IP"] = []string{"10.9.8.7"}
	req.Header["Forwarded"] = []string{"for=10.9.8.7;proto=https"}
	req.Header["X-Forwarded-Ssl"] = []string{"on"}
	req.Header["X-Real-Ip"] = []string{"10.9.8.7"}
	req.Header["x_authorization_claims"] = []string{"forged"}
	req.Header.Set("X-Authorization-Claims", "forged")
	req.Header.Set("X-My_Header", "kept")
	req.Header.Set("X-Request-Id", "abc")
	req.Header.Set("Via", "1.0 edge")
	req.Header.Set("X-Secret", "hop")
	req.Header.Set("Connection", "X-Forwarded-For, X-Request-Id, Via, X-Forwarded-Host, X-Secret")
	_, body := do(t, req)
	var s seen
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatal(err, string(body))
	}
	for k := range s.Headers {
		if strings.Contains(k, "_") && k != "X-My_header" {
			t.Errorf("target got %s: %q", k, s.Headers[k])
		}
	}
	want := map[string]string{
		"X-Authorization-Claims": "",
		"X-My_header":            "kept",
		"X-Forwarded-For":        "127.0.0.1",
		"X-Request-Id":           "abc",
		"Via":                    "1.0 edge, 1.1 " + strings.Split(strings.TrimPrefix(srv.URL, "http://"), ":")[0],
		"X-Forwarded-Host":       strings.TrimPrefix(srv.URL, "http://"),
		"X-Secret":               "",
		"Forwarded":              "", // claims from a peer that is not a trusted proxy
		"X-Forwarded-Ssl":        "",
		"X-Real-Ip":              "",
	}
	for k, v := range want {
		if got := s.Headers.Get(k); got != v {
			t.Errorf("target got %s = %q, want %q", k, got, v)
		}
	}
}

// TestMalformedChunkedBodyIs400: a client's broken chunked body is the
// client's fault (400, connection closed), not the target's (502).
func TestMalformedChunkedBodyIs400(t *testing.T) {
	t.Parallel()
	tg := echoTarget(t)
	_, srv := newTestWorker(t, routes, tg.URL)
	c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "POST /hello/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 400 || !strings.Contains(string(b), "request body") || !resp.Close {
		t.Fatalf("got %d close=%t %s", resp.StatusCode, resp.Close, b)
	}
}

// TestTargetErrorsInMgwWords: 502 bodies never quote the target.
func TestTargetErrorsInMgwWords(t *testing.T) {
	t.Parallel()
	garbage, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer garbage.Close()
	go func() {
		for {
			c, err := garbage.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = bufio.NewReader(c).ReadString('\n')
				_, _ = io.WriteString(c, "HTTP/1.1 2OO SECRET-INTERNAL-BANNER\r\n\r\n")
			}()
		}
	}()
	cfg := `
[[proxies]]
name = "garbage"
base_path = "/garbage"
url = "http://` + garbage.Addr().String() + `"
[[proxies]]
name = "refused"
base_path = "/refused"
url = "http://127.0.0.1:1"
`
	_, srv := newTestWorker(t, cfg, "")
	for path, want := range map[string]string{
		"/garbage": `{"message":"the target's answer could not be read","status":502}`,
		"/refused": `{"message":"the target refused the connection","status":502}`,
	} {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		resp, body := do(t, req)
		if resp.StatusCode != 502 || string(body) != want {
			t.Errorf("%s: %d %s, want 502 %s", path, resp.StatusCode, body, want)
		}
	}
}

// TestBusyTargetIs503: at a proxy's max_connections, a request waits a
// bounded time for a connection, then gets 503; once the busy request
// ends, the next one goes through.
func TestBusyTargetIs503(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	arrived := make(chan struct{}, 1)
	tg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" { // the head at once, the body when released
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			arrived <- struct{}{}
			<-release
		}
		_, _ = io.WriteString(w, "ok")
	}))
	defer tg.Close()
	// Plain HTTP (h1's transport); https targets go through the same
	// limitedTransport in front of net/http's.
	for _, scheme := range []string{"http"} {
		target := tg.URL
		cfg := `
[[proxies]]
name = "busy"
base_path = "/busy"
url = "TARGET"
max_connections = 1
timeout = 1000
`
		_, srv := newTestWorker(t, cfg, target)
		held := make(chan int)
		go func() {
			resp, err := http.Get(srv.URL + "/busy/hold")
			if err != nil {
				held <- 0
				return
			}
			_, _ = io.ReadAll(resp.Body) // held open until released
			resp.Body.Close()
			held <- resp.StatusCode
		}()
		select {
		case <-arrived:
		case st := <-held:
			t.Fatalf("%s: the held request ended at once: %d", scheme, st)
		}
		req, _ := http.NewRequest("GET", srv.URL+"/busy/x", nil)
		resp, body := do(t, req)
		if resp.StatusCode != 503 || string(body) != `{"message":"all connections to the target are busy","status":503}` {
			close(release)
			t.Fatalf("%s: at max_connections: %d %s", scheme, resp.StatusCode, body)
		}
		release <- struct{}{}
		if st := <-held; st != 200 {
			t.Fatalf("%s: the held request got %d", scheme, st)
		}
		if resp, body := do(t, req); resp.StatusCode != 200 {
			t.Fatalf("%s: after the busy one ended: %d %s", scheme, resp.StatusCode, body)
		}
	}
}

// TestLimitedTransport: the limit in front of net/http's transport (https
// targets) holds a slot until the answer's body closes and refuses after
// its wait.
func TestLimitedTransport(t *testing.T) {
	t.Parallel()
	inner := roundTripFunc(func(*http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader("ok"))}, nil
	})
	lt := newLimitedTransport(inner, 1, time.Millisecond)
	req, _ := http.NewRequest("GET", "https://target.example/", nil)
	resp, err := lt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lt.RoundTrip(req); !errors.Is(err, errConnWait) {
		t.Fatalf("second request while the first is open: %v, want errConnWait", err)
	}
	resp.Body.Close()
	resp.Body.Close() // twice gives back one slot
	if resp, err := lt.RoundTrip(req); err != nil {
		t.Fatalf("after the first closed: %v", err)
	} else {
		resp.Body.Close()
	}
	if len(lt.sem) != 0 {
		t.Fatalf("%d slots held after every body closed", len(lt.sem))
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestUnmatchedRequestsCounted: requests that reach no proxy (404, a
// refused path) are in the access log and the metrics as proxy (none).
func TestUnmatchedRequestsCounted(t *testing.T) {
	t.Parallel()
	tg := echoTarget(t)
	w, srv := newTestWorker(t, "[edgemicro.logging]\naccess_log = true\n"+routes, tg.URL)
	var buf testutil.Buffer
	w.alog = zerolog.New(&buf)
	for _, path := range []string{"/nothing", "/hello/a%2fb", "/hello/x"} {
		req, _ := http.NewRequest("GET", srv.URL, nil)
		req.URL.Opaque = path
		_, _ = do(t, req)
	}
	m := w.metrics.snapshot()
	if got := m.Requests[NoProxy]["4xx"]; got != 2 {
		t.Fatalf("metrics count %d 4xx answers of %s, want 2: %v", got, NoProxy, m.Requests)
	}
	log := buf.String()
	for _, want := range []string{`"proxy":"(none)","method":"GET","path":"/nothing","status":404`, `"proxy":"(none)","method":"GET","path":"/hello/a%2fb","status":400`, `"proxy":"hello"`} {
		if !strings.Contains(log, want) {
			t.Errorf("access log lacks %s:\n%s", want, log)
		}
	}
}
