package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/internal/testutil"
	"github.com/mgw-gateway/mgw/ipc"
	"github.com/mgw-gateway/mgw/worker/h1"
)

func env(string) (string, bool) { return "", false }

// newTestWorker returns a worker serving the TOML config (with TARGET
// replaced by target) through an httptest server.
func newTestWorker(t *testing.T, config, target string) (*Worker, *httptest.Server) {
	t.Helper()
	w := &Worker{pool: newTransportPool(), log: zerolog.Nop(), metrics: newMetrics()}
	w.applyTOML(t, 1, config, target)
	srv := httptest.NewServer(w)
	t.Cleanup(srv.Close)
	return w, srv
}

func (w *Worker) applyTOML(t testing.TB, rev uint64, config, target string) {
	t.Helper()
	snap, err := configs.Parse([]byte(strings.ReplaceAll(config, "TARGET", target)), env)
	if err != nil {
		t.Fatal(err)
	}
	snap.Revision = rev
	b, _ := snap.Encode()
	if err := w.apply(b); err != nil {
		t.Fatal(err)
	}
}

// echoTarget answers with the method, path, query and headers it saw.
func echoTarget(t *testing.T) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/sleep" {
			time.Sleep(300 * time.Millisecond)
		}
		h := r.Header.Clone()
		h.Set("Host", r.Host)
		_ = json.NewEncoder(w).Encode(map[string]any{"path": r.URL.Path, "uri": r.RequestURI, "query": r.URL.RawQuery, "headers": h})
	}))
	t.Cleanup(s.Close)
	return s
}

const routes = `
[[proxies]]
name = "hello"
base_path = "/hello"
url = "TARGET/v1"
[[proxies]]
name = "deeper"
base_path = "/hello/deep"
url = "TARGET/v2/"
[[proxies]]
name = "slow"
base_path = "/slow"
url = "TARGET/v1"
timeout = 100
`

type seen struct {
	Path    string      `json:"path"`
	URI     string      `json:"uri"`
	Query   string      `json:"query"`
	Headers http.Header `json:"headers"`
}

func do(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestRouting(t *testing.T) {
	t.Parallel()
	tg := echoTarget(t)
	_, srv := newTestWorker(t, routes, tg.URL)
	tests := []struct {
		desc, path, wantPath, wantQuery string
		wantStatus                      int
	}{
		{desc: "base path alone", path: "/hello", wantPath: "/v1", wantStatus: 200},
		{desc: "base path with slash", path: "/hello/", wantPath: "/v1/", wantStatus: 200},
		{desc: "rest and query kept", path: "/hello/a/b?x=1&y=2", wantPath: "/v1/a/b", wantQuery: "x=1&y=2", wantStatus: 200},
		{desc: "double slashes collapse", path: "/hello//a///b", wantPath: "/v1/a/b", wantStatus: 200},
		{desc: "longest prefix wins", path: "/hello/deep/x", wantPath: "/v2/x", wantStatus: 200},
		{desc: "segment boundary", path: "/helloworld", wantStatus: 404},
		{desc: "no match", path: "/nothing", wantStatus: 404},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			req, _ := http.NewRequest("GET", srv.URL+tc.path, nil)
			resp, body := do(t, req)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status = %d, want %d (%s)", resp.StatusCode, tc.wantStatus, body)
			}
			if tc.wantStatus == 404 {
				if string(body) != `{"message":"no match found","status":404}` || resp.Header.Get("Content-Type") != "application/json" {
					t.Fatalf("404 body %q type %q", body, resp.Header.Get("Content-Type"))
				}
				return
			}
			var s seen
			if err := json.Unmarshal(body, &s); err != nil {
				t.Fatal(err)
			}
			if s.Path != tc.wantPath || s.Query != tc.wantQuery {
				t.Fatalf("target saw %q ? %q, want %q ? %q", s.Path, s.Query, tc.wantPath, tc.wantQuery)
			}
		})
	}
}

func TestForwardingHeaders(t *testing.T) {
	t.Parallel()
	tg := echoTarget(t)
	_, srv := newTestWorker(t, routes, tg.URL)
	req, _ := http.NewRequest("GET", srv.URL+"/hello/x", nil)
	req.Host = "client.example:8080"
	req.Header.Set("X-Forwarded-For", "10.0.0.1")
	req.Header.Set("X-Forwarded-Proto", "https")
	req.Header.Set("X-Request-Id", "abc")
	req.Header.Set("Via", "1.0 edge")
	req.Header.Set("Connection", "keep-alive, X-Secret")
	req.Header.Set("X-Secret", "hop")
	req.Header.Set("Proxy-Authorization", "Basic x")
	resp, body := do(t, req)
	var s seen
	_ = json.Unmarshal(body, &s)
	h := s.Headers
	want := map[string]string{
		"X-Forwarded-For":     "10.0.0.1, 127.0.0.1",
		"X-Forwarded-Host":    "client.example:8080",
		"X-Forwarded-Proto":   "http", // the client's is believed only from a trusted proxy
		"X-Request-Id":        "abc",
		"Via":                 "1.0 edge, 1.1 client.example",
		"Host":                strings.TrimPrefix(tg.URL, "http://"),
		"X-Secret":            "",
		"Proxy-Authorization": "",
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("target got %s = %q, want %q", k, got, v)
		}
	}
	if resp.Header.Get("X-Response-Time") == "" {
		t.Error("no X-Response-Time to the client")
	}

	// Without a client request id, one is made.
	req, _ = http.NewRequest("GET", srv.URL+"/hello/x", nil)
	_, body = do(t, req)
	_ = json.Unmarshal(body, &s)
	if id := s.Headers.Get("X-Request-Id"); len(id) != 36 {
		t.Errorf("generated request id %q is not a UUID", id)
	}
}

func TestHeaderSwitchesOff(t *testing.T) {
	t.Parallel()
	tg := echoTarget(t)
	cfg := "[headers]\nx-forwarded-for = false\nvia = false\nx-request-id = false\nx-response-time = false\nhost = false\n" + routes
	_, srv := newTestWorker(t, cfg, tg.URL)
	req, _ := http.NewRequest("GET", srv.URL+"/hello", nil)
	req.Host = "client.example"
	resp, body := do(t, req)
	var s seen
	_ = json.Unmarshal(body, &s)
	for _, k := range []string{"X-Forwarded-For", "Via", "X-Request-Id"} {
		if v := s.Headers.Get(k); v != "" {
			t.Errorf("%s = %q sent although switched off", k, v)
		}
	}
	if s.Headers.Get("Host") != "client.example" {
		t.Errorf("host = false should keep the client's Host, target got %q", s.Headers.Get("Host"))
	}
	if resp.Header.Get("X-Response-Time") != "" {
		t.Error("X-Response-Time sent although switched off")
	}
}

func TestTargetErrors(t *testing.T) {
	t.Parallel()
	tg := echoTarget(t)
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadURL := "http://" + dead.Addr().String()
	dead.Close()
	cfg := routes + `
[[proxies]]
name = "dead"
base_path = "/dead"
url = "` + deadURL + `"
`
	_, srv := newTestWorker(t, cfg, tg.URL)
	tests := []struct {
		desc, path string
		status     int
		body       string
	}{
		{"unreachable target", "/dead/x", 502, `"status":502`},
		{"target timeout", "/slow/sleep", 504, `{"message":"Gateway timed out trying to reach target","status":504}`},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			req, _ := http.NewRequest("GET", srv.URL+tc.path, nil)
			resp, body := do(t, req)
			if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.body) || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("got %d %q (%s), want %d containing %q", resp.StatusCode, body, resp.Header.Get("Content-Type"), tc.status, tc.body)
			}
		})
	}
}

func TestHeaderLimitIsExact(t *testing.T) {
	t.Parallel()
	tg := echoTarget(t)
	_, srv := newTestWorker(t, "[edgemicro]\nmax_header_bytes = 1024\n"+routes, tg.URL)
	addr := strings.TrimPrefix(srv.URL, "http://")
	send := func(size int) int {
		// Build a request whose request line and headers are exactly size bytes.
		head := "GET /hello HTTP/1.1\r\nHost: " + addr + "\r\nX-Pad: "
		pad := size - len(head) - len("\r\n\r\n")
		raw := head + strings.Repeat("a", pad) + "\r\n\r\n"
		if len(raw) != size {
			t.Fatalf("built %d bytes, want %d", len(raw), size)
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, _ = io.WriteString(c, raw)
		resp, err := http.ReadResponse(bufioReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode
	}
	if got := send(1024); got != 200 {
		t.Errorf("exactly max_header_bytes: %d, want 200", got)
	}
	if got := send(1025); got != 431 {
		t.Errorf("one byte over max_header_bytes: %d, want 431", got)
	}
}

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	tg := echoTarget(t)
	_, srv := newTestWorker(t, "[edgemicro]\nmax_body_bytes = 10\n"+routes, tg.URL)
	req, _ := http.NewRequest("POST", srv.URL+"/hello", strings.NewReader(strings.Repeat("x", 11)))
	if resp, body := do(t, req); resp.StatusCode != 413 {
		t.Fatalf("11-byte body with a 10-byte limit: %d %s", resp.StatusCode, body)
	}
	req, _ = http.NewRequest("POST", srv.URL+"/hello", strings.NewReader(strings.Repeat("x", 10)))
	if resp, _ := do(t, req); resp.StatusCode != 200 {
		t.Fatalf("10-byte body: %d", resp.StatusCode)
	}
}

// TestConcurrentApplyAndServe serves while revisions are applied: under
// -race, every request sees exactly one revision's routes, and requests
// are answered between applies (their target path flips back and forth
// with the revisions), so the two did overlap.
func TestConcurrentApplyAndServe(t *testing.T) {
	t.Parallel()
	tg := echoTarget(t)
	w, srv := newTestWorker(t, routes, tg.URL)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan string, 100)
	var flips atomic.Int64 // answers whose path differs from the goroutine's previous one
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := ""
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := http.Get(srv.URL + "/hello/x")
				if err != nil {
					errs <- err.Error()
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				var s seen
				_ = json.Unmarshal(b, &s)
				if resp.StatusCode != 200 || (s.Path != "/v1/x" && s.Path != "/v3/x") {
					errs <- fmt.Sprintf("%d %s", resp.StatusCode, b)
					return
				}
				if last != "" && s.Path != last {
					flips.Add(1)
				}
				last = s.Path
			}
		}()
	}
	// Apply at least 58 revisions, and on until the requests have seen
	// the routes change under them a few times.
	rev := uint64(2)
	for deadline := time.Now().Add(30 * time.Second); rev < 60 || flips.Load() < 4; rev++ {
		if time.Now().After(deadline) {
			t.Errorf("after %d revisions the answers changed only %d times: requests were not served between applies", rev-2, flips.Load())
			break
		}
		cfg := routes
		if rev%2 == 0 {
			cfg = strings.Replace(routes, "url = \"TARGET/v1\"", "url = \"TARGET/v3\"", 1)
		}
		w.applyTOML(t, rev, cfg, tg.URL)
	}
	close(stop)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if got := w.revision(); got != rev-1 {
		t.Fatalf("revision = %d, want %d", got, rev-1)
	}
}

func TestStaleRevisionIgnored(t *testing.T) {
	t.Parallel()
	tg := echoTarget(t)
	w, _ := newTestWorker(t, routes, tg.URL)
	w.applyTOML(t, 5, routes, tg.URL)
	w.applyTOML(t, 3, "", tg.URL)
	if w.revision() != 5 || len(w.rt.Load().routes) != 3 {
		t.Fatalf("revision %d with %d routes after a stale push", w.revision(), len(w.rt.Load().routes))
	}
}

func TestMockTargetEchoes(t *testing.T) {
	t.Parallel()
	_, srv := newTestWorker(t, "[[proxies]]\nname = \"echo\"\nbase_path = \"/echo\"\nurl = \"mock://echo\"\n", "")
	req, _ := http.NewRequest("POST", srv.URL+"/echo/a?b=c", strings.NewReader("payload"))
	resp, body := do(t, req)
	var e echo
	if err := json.Unmarshal(body, &e); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %s: %v", resp.StatusCode, body, err)
	}
	if e.Method != "POST" || e.Path != "/a" || e.Query != "b=c" || e.Body != "payload" || e.Headers["X-Forwarded-For"] == nil {
		t.Fatalf("echo = %+v", e)
	}
}

// startRun runs a whole worker over a socketpair and returns the master's
// end after the worker reported ready, with the address it serves.
func startRun(t *testing.T, target string) (master *ipc.Conn, addr string, done chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	master, child, err := ipc.Pair()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { master.Close() })
	workerConn, err := ipc.FileConn(child)
	if err != nil {
		t.Fatal(err)
	}
	done = make(chan error, 1)
	go func() {
		done <- Run(context.Background(), Options{Logger: zerolog.Nop(), Listener: ln, Conn: workerConn, StatsInterval: time.Hour})
	}()
	if f, err := master.Recv(); err != nil || f.Kind != ipc.KindHello {
		t.Fatalf("first frame %v %v", f.Kind, err)
	}
	snap, _ := configs.Parse([]byte(strings.ReplaceAll(routes, "TARGET", target)), env)
	snap.Revision = 1
	b, _ := snap.Encode()
	_ = master.Send(ipc.KindConfig, ipc.Config{Revision: 1, Snapshot: b})
	for _, want := range []ipc.Kind{ipc.KindAck, ipc.KindReady} {
		if f, err := master.Recv(); err != nil || f.Kind != want {
			t.Fatalf("got %v %v, want %s", f.Kind, err, want)
		}
	}
	return master, ln.Addr().String(), done
}

// TestDrainClosesKeepAliveAfterOneMoreAnswer: a client on a keep-alive
// connection gets its next request answered, with Connection: close,
// during the grace period; then the worker exits.
func TestDrainClosesKeepAliveAfterOneMoreAnswer(t *testing.T) {
	t.Parallel()
	tg := echoTarget(t)
	master, addr, done := startRun(t, tg.URL)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufioReader(c)
	ask := func() *http.Response {
		t.Helper()
		_, _ = io.WriteString(c, "GET /hello/x HTTP/1.1\r\nHost: a\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request on the kept-alive connection: %v", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if resp := ask(); resp.StatusCode != 200 || resp.Close {
		t.Fatalf("before drain: %d close=%v", resp.StatusCode, resp.Close)
	}
	if err := master.Send(ipc.KindDrain, ipc.Drain{Grace: 5 * time.Second, Timeout: 10 * time.Second}); err != nil {
		t.Fatal(err)
	}
	// The drain is asynchronous: poll until the listener is closed.
	deadline := time.Now().Add(5 * time.Second)
	for {
		nc, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		nc.Close()
		if time.Now().After(deadline) {
			t.Fatal("the worker still accepts after a drain order")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if resp := ask(); resp.StatusCode != 200 || !resp.Close {
		t.Fatalf("during drain: %d close=%v, want 200 with Connection: close", resp.StatusCode, resp.Close)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("worker did not exit after its last connection closed")
	}
}

// TestRunLifecycle: a worker refuses a bad snapshot in its Ack and keeps
// serving the last good one, and treats garbage from the master as the
// master being gone: it drains and exits without a panic.
func TestRunLifecycle(t *testing.T) {
	t.Parallel()
	tg := echoTarget(t)
	master, addr, done := startRun(t, tg.URL)
	var ack ipc.Ack
	expectAck := func() {
		t.Helper()
		f, err := master.Recv()
		if err != nil || f.Kind != ipc.KindAck {
			t.Fatalf("got %v %v, want ack", f.Kind, err)
		}
		_ = f.Decode(&ack)
	}

	// A bad snapshot is refused in the Ack and the old one serves on.
	_ = master.Send(ipc.KindConfig, ipc.Config{Revision: 5, Snapshot: []byte(`{"revision":5,"config":{"edgemicro":{"port":0}}}`)})
	expectAck()
	if ack.Revision != 1 || ack.Error == "" {
		t.Fatalf("ack of a bad snapshot = %+v", ack)
	}

	url := "http://" + addr + "/hello/x"
	resp, err := http.Get(url)
	if err != nil || resp.StatusCode != 200 || resp.Close {
		t.Fatalf("before drain: %v %v", resp, err)
	}
	resp.Body.Close()

	// Garbage on the channel: the worker drains and exits, no panic.
	_, _ = master.NetConn().Write([]byte("this is not a frame at all"))
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil after a drain", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("worker did not exit after garbage from the master")
	}
	if _, err := http.Get(url); err == nil {
		t.Fatal("the worker still accepts after draining")
	}
}

// TestContentTypeIsTheTargets: an answer carries the target's
// Content-Type, and none when the target sent none, on both servers a
// worker runs (the h1 fast path and net/http behind it).
func TestContentTypeIsTheTargets(t *testing.T) {
	t.Parallel()
	tg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/typed" {
			w.Header().Set("Content-Type", "application/xml")
		} else {
			w.Header()["Content-Type"] = nil
		}
		_, _ = io.WriteString(w, "<hello/>")
	}))
	t.Cleanup(tg.Close)
	w, viaNetHTTP := newTestWorker(t, routes, tg.URL)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fast := &h1.Server{Handler: w}
	go func() { _ = fast.Serve(ln) }()
	t.Cleanup(func() { _ = fast.Close() })

	for _, base := range []string{viaNetHTTP.URL, "http://" + ln.Addr().String()} {
		for path, want := range map[string][]string{"/hello/typed": {"application/xml"}, "/hello/untyped": nil} {
			req, _ := http.NewRequest("GET", base+path, nil)
			resp, body := do(t, req)
			if got := resp.Header["Content-Type"]; resp.StatusCode != 200 || string(body) != "<hello/>" || !slices.Equal(got, want) {
				t.Errorf("%s%s: %d %q, Content-Type %q, want %q", base, path, resp.StatusCode, body, got, want)
			}
		}
	}
}

// TestClientGoneIs499: a client that goes away while the target is slow
// to answer ends the target request and is logged with 499, as
// edgemicro does, on both servers a worker runs.
func TestClientGoneIs499(t *testing.T) {
	t.Parallel()
	saw := make(chan struct{}, 2)
	canceled := make(chan struct{}, 2)
	tg := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		saw <- struct{}{}
		select {
		case <-r.Context().Done():
			canceled <- struct{}{}
		case <-time.After(10 * time.Second):
		}
	}))
	t.Cleanup(tg.Close)
	w, viaNetHTTP := newTestWorker(t, "[edgemicro.logging]\naccess_log = true\n"+routes, tg.URL)
	var logs testutil.Buffer
	w.alog = zerolog.New(&logs)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fast := &h1.Server{Handler: w}
	go func() { _ = fast.Serve(ln) }()
	t.Cleanup(func() { _ = fast.Close() })

	for i, addr := range []string{viaNetHTTP.Listener.Addr().String(), ln.Addr().String()} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(c, "GET /hello/wait HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		<-saw
		_ = c.Close()
		select {
		case <-canceled:
		case <-time.After(10 * time.Second):
			t.Fatalf("server %d: the target's request went on after the client left", i)
		}
		deadline := time.Now().Add(10 * time.Second)
		for strings.Count(logs.String(), `"status":499`) <= i {
			if time.Now().After(deadline) {
				t.Fatalf("server %d: no 499 in the access log:\n%s", i, logs.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// TestHopByHopHeadersStay: hop-by-hop headers, and those a Connection
// header names, are not passed on in either direction (docs/COMPATIBILITY.md); every
// other header is.
func TestHopByHopHeadersStay(t *testing.T) {
	t.Parallel()
	tg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "X-Hop-Answer")
		w.Header().Set("X-Hop-Answer", "1")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-End-Answer", "1")
		_ = json.NewEncoder(w).Encode(r.Header)
	}))
	t.Cleanup(tg.Close)
	_, srv := newTestWorker(t, routes, tg.URL)
	req, _ := http.NewRequest("GET", srv.URL+"/hello/x", nil)
	for k, v := range map[string]string{
		"Connection": "X-Hop-Request", "X-Hop-Request": "1", "Keep-Alive": "timeout=5",
		"Te": "trailers", "Proxy-Authorization": "Basic eA==", "Proxy-Connection": "keep-alive",
		"Upgrade": "h2c", "X-End-Request": "1",
	} {
		req.Header.Set(k, v)
	}
	resp, body := do(t, req)
	var saw http.Header
	if err := json.Unmarshal(body, &saw); err != nil {
		t.Fatalf("%d %s: %v", resp.StatusCode, body, err)
	}
	for _, k := range []string{"X-Hop-Request", "Keep-Alive", "Te", "Proxy-Authorization", "Proxy-Connection", "Upgrade"} {
		if v, ok := saw[k]; ok {
			t.Errorf("the target got %s: %q", k, v)
		}
	}
	if saw.Get("X-End-Request") != "1" {
		t.Errorf("the target did not get X-End-Request: %v", saw)
	}
	for _, k := range []string{"X-Hop-Answer", "Keep-Alive"} {
		if v, ok := resp.Header[k]; ok {
			t.Errorf("the client got %s: %q", k, v)
		}
	}
	if resp.Header.Get("X-End-Answer") != "1" {
		t.Errorf("the client did not get X-End-Answer: %v", resp.Header)
	}
}
