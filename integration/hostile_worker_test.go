package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mgw-gateway/mgw/internal/testutil"
)

// pathTarget answers with the exact request target it received and the
// claims header, and counts requests.
func pathTarget(t *testing.T) (string, *atomic.Int64, func() []string) {
	t.Helper()
	var n atomic.Int64
	var mu sync.Mutex
	var got []string
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		mu.Lock()
		got = append(got, r.RequestURI)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"uri": r.RequestURI, "claims": r.Header.Get("X-Authorization-Claims"),
			"proto": r.Header.Get("X-Forwarded-Proto")})
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String(), &n, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got...)
	}
}

// rawGet sends one GET with target exactly as written (no client
// library cleans it) and returns the status and body.
func rawGet(t *testing.T, in *instance, target string, hdr ...string) (int, string) {
	t.Helper()
	raw := "GET " + target + " HTTP/1.1\r\nHost: gw.example\r\nConnection: close\r\n"
	for _, h := range hdr {
		raw += h + "\r\n"
	}
	resp, body, err, _ := rawSend(t, hostAddr(in), raw+"\r\n", "GET")
	if err != nil {
		t.Fatalf("GET %s: body: %v", target, err)
	}
	return resp.StatusCode, body
}

// TestHostileWorkerDotSegments: `..` and its encodings neither skip
// excludeUrls nor a product's apiResources, nor climb out of the proxy's
// target path; what the target receives is exactly the path that was
// checked.
func TestHostileWorkerDotSegments(t *testing.T) {
	tgt, reached, seen := pathTarget(t)
	in := newInstance(t, "")
	if out, code := in.mgw("init"); code != 0 {
		t.Fatal(out)
	}
	in.writeConfig(localAuthConfig(tgt+"/base", `["oauth"]`, `apiResources = ["/public/**"]`,
		"[oauth]\nexcludeUrls = [\"/api/public/*\"]\n"))
	in.start(1)
	const key = "x-api-key: limits-key"
	for _, tc := range []struct {
		target string
		hdr    []string
		status int
		body   string // a prefix of the body; for 200, the target's request URI
	}{
		// excludeUrls "/api/public/*": the exclusion holds where it should…
		{target: "/api/public/x", status: 200, body: "/base/public/x"},
		// …and %2e%2e does not walk out of it with no key.
		{target: "/api/public/%2e%2e/admin", status: 401},
		{target: "/api/public/%2E%2e/%2e%2E/api/admin", status: 400, body: `{"message":"the path climbs above its base path","status":400}`},
		{target: "/api/public/.%2e/admin", status: 401},
		// A key whose product allows /public/** only: `..` does not reach /admin.
		{target: "/api/public/../admin", hdr: []string{key}, status: 403},
		{target: "/api/public/a/../b", hdr: []string{key}, status: 200, body: "/base/public/b"},
		{target: "/api/public//./c%7e", hdr: []string{key}, status: 200, body: "/base/public/c~"},
		// Climbing out of the proxy's base path (and so its target path).
		{target: "/api/public/../../admin", hdr: []string{key}, status: 400, body: `{"message":"the path climbs above its base path","status":400}`},
		{target: "/../etc/passwd", status: 400, body: `{"message":"the path climbs above its base path","status":400}`},
		// %2F is refused, never decoded into a separator nor passed on.
		{target: "/api/public/a%2f..%2f..%2fadmin", hdr: []string{key}, status: 400, body: `{"message":"the path holds an encoded slash`},
		// Servlet containers read "..;" as "..".
		{target: "/api/public/..;/admin", status: 400, body: `{"message":"the path holds a dot segment with parameters`},
		// Windows targets read a backslash as a separator; a lenient
		// decoder reads the overlong %c0%ae as ".".
		{target: `/api/public/\..\admin`, status: 400, body: `{"message":"the path holds a backslash`},
		{target: "/api/public/%5c..%5cadmin", status: 400, body: `{"message":"the path holds a backslash`},
		{target: "/api/public/%c0%ae%c0%ae/admin", status: 400, body: `{"message":"the path does not decode to valid UTF-8`},
	} {
		before := reached.Load()
		st, body := rawGet(t, in, tc.target, tc.hdr...)
		if st != tc.status {
			t.Errorf("GET %s: %d %s, want %d", tc.target, st, body, tc.status)
			continue
		}
		if st != 200 {
			if reached.Load() != before {
				t.Errorf("GET %s: %d, but the target was reached: %v", tc.target, st, seen())
			}
			if !strings.HasPrefix(body, tc.body) {
				t.Errorf("GET %s: body %s, want %s…", tc.target, body, tc.body)
			}
			continue
		}
		var got struct{ URI string }
		if err := json.Unmarshal([]byte(body), &got); err != nil || got.URI != tc.body {
			t.Errorf("GET %s: the target received %q, want %q", tc.target, got.URI, tc.body)
		}
	}
	for _, uri := range seen() {
		if strings.Contains(uri, "admin") || strings.Contains(uri, "..") || strings.Contains(strings.ToLower(uri), "%2e") {
			t.Errorf("the target received %q", uri)
		}
	}

	// A client on plain HTTP cannot make the target believe it came over
	// TLS: its X-Forwarded-Proto is replaced (no proxy is trusted here).
	if st, body := rawGet(t, in, "/api/public/x", "X-Forwarded-Proto: https"); st != 200 || !strings.Contains(body, `"proto":"http"`) {
		t.Errorf("forged X-Forwarded-Proto: %d, the target saw %s", st, body)
	}

	// A client's X-Authorization-Claims reaches no target, on an
	// excluded path (no oauth run) or a checked one.
	for _, hdr := range [][]string{{"X-Authorization-Claims: forged"}, {"X-Authorization-Claims: forged", key}} {
		st, body := rawGet(t, in, "/api/public/x", hdr...)
		var got struct{ Claims string }
		_ = json.Unmarshal([]byte(body), &got)
		if st != 200 || got.Claims == "forged" {
			t.Errorf("headers %q: %d, the target saw claims %q", hdr, st, got.Claims)
		}
	}
}

// TestHostileWorkerForwardedFor: accesscontrol judges the connection's
// peer; a client on the deny list cannot get in by naming another
// address in X-Forwarded-For. Behind a trusted proxy, the address it
// forwards is judged, and the target's X-Forwarded-For ends with it.
func TestHostileWorkerForwardedFor(t *testing.T) {
	tgt, reached, _ := pathTarget(t)
	base := testutil.PreambleWith("%s") + `[edgemicro.plugins]
sequence = ["accesscontrol"]
[accesscontrol]
deny = [%s]
[[proxies]]
name = "api"
base_path = "/api"
url = "` + tgt + `"
`
	// No trusted proxies: the peer (127.0.0.1) is denied whatever it says.
	in := newInstance(t, fmt.Sprintf(base, "", `"127.0.0.*"`))
	in.start(1)
	for _, xff := range []string{"", "X-Forwarded-For: 10.9.8.7", "X-Forwarded-For: 8.8.8.8, 10.9.8.7"} {
		hdr := []string{}
		if xff != "" {
			hdr = append(hdr, xff)
		}
		if st, body := rawGet(t, in, "/api/x", hdr...); st != 403 {
			t.Errorf("denied peer with %q: %d %s", xff, st, body)
		}
	}
	if reached.Load() != 0 {
		t.Fatalf("the target was reached %d times", reached.Load())
	}
	in.mgw("stop")

	// 127.0.0.1 is a trusted proxy: the right-most untrusted forwarded
	// address is the client.
	in2 := newInstance(t, fmt.Sprintf(base, `trusted_proxies = ["127.0.0.1"]`, `"10.*.*.*"`))
	in2.start(1)
	for _, tc := range []struct {
		xff    string
		status int
	}{
		{"X-Forwarded-For: 10.9.8.7", 403},
		{"X-Forwarded-For: 8.8.8.8, 10.9.8.7", 403}, // the left one is the client's own claim
		{"X-Forwarded-For: 10.9.8.7, 8.8.8.8", 200},
		{"X-Forwarded-For: 10.9.8.7, 8.8.8.8, 127.0.0.1", 200},
	} {
		if st, body := rawGet(t, in2, "/api/x", tc.xff); st != tc.status {
			t.Errorf("trusted peer with %q: %d %s, want %d", tc.xff, st, body, tc.status)
		}
	}
}

// TestHostileWorkerMasterStopped: a master stopped with SIGSTOP (Edge
// mode, analytics on) holds no request: requests keep completing while
// it is stopped, and once it runs again every record is either uploaded
// or counted as dropped.
func TestHostileWorkerMasterStopped(t *testing.T) {
	fe, _ := helloEdge(t)
	in := newInstance(t, edgeConfigNoAuth(fe)+"\n[analytics]\nflushInterval = 100\nbatchSize = 500\n")
	in.start(2, edgeFlags(fe)...)
	st, _ := in.status()

	c := &http.Client{Timeout: 10 * time.Second}
	load := testutil.StartLoad(4, func(i int) error {
		req, _ := http.NewRequest("GET", in.url("/hello/r"+strconv.Itoa(i)), nil)
		return testutil.DoOK(c, req)
	})
	ok, failed := &load.OK, &load.Failed
	in.eventually(20*time.Second, "requests flowing", func() bool { return ok.Load() >= 200 })
	if err := syscall.Kill(st.MasterPID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := ok.Load()
	// Records of 3,000 requests are far more than the socket to the
	// master holds: a worker that waited for the master would stall long
	// before.
	const during = 3000
	testutil.Poll(60*time.Second, func() bool { return ok.Load()-stopped >= during || failed.Load() != 0 })
	done := ok.Load() - stopped
	_ = syscall.Kill(st.MasterPID, syscall.SIGCONT)
	load.Stop()
	if done < during || failed.Load() != 0 {
		t.Fatalf("with the master stopped, %d requests completed (want %d) and %d failed", done, during, failed.Load())
	}
	total := uint64(ok.Load())
	in.eventually(60*time.Second, "every record uploaded or counted as dropped", func() bool {
		s, okst := in.status()
		return okst && s.Analytics != nil && uint64(len(fe.Records()))+s.Analytics.Dropped == total
	})
}

// TestHostileWorkerFDExhaustion: under `ulimit -n 64`, more connections
// than descriptors neither end nor restart the worker: it keeps serving
// the connections it has, warns once, and serves new ones after others
// close.
func TestHostileWorkerFDExhaustion(t *testing.T) {
	tgt, _ := countingTarget(t)
	in := newInstance(t, testutil.PreambleWith("headers_timeout = 60000")+`[[proxies]]
name = "api"
base_path = "/api"
url = "`+tgt.URL+`"
`)
	// mgw start under a descriptor limit, as in.start does otherwise.
	cmd := exec.Command("sh", append([]string{"-c", `ulimit -n 64 && exec "$0" "$@"`, mgwBin}, in.startArgs(1)...)...)
	cmd.Stdout, cmd.Stderr = in.logs, in.logs
	cmd.Env = in.startEnv()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	in.remember(cmd.Process.Pid)
	go func() { _ = cmd.Wait() }()
	before := in.waitServing(1)

	// One keep-alive connection, served before the exhaustion; it keeps
	// its target connection pooled.
	first := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxConnsPerHost: 1}}
	defer first.CloseIdleConnections()
	if resp, err := first.Get(in.url("/api/first")); err != nil || resp.StatusCode != 200 {
		t.Fatalf("first request: %v", err)
	} else {
		_, _ = io.Copy(io.Discard, resp.Body) // read whole, the connection stays
		resp.Body.Close()
	}

	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			_ = c.Close()
		}
	}()
	for range 150 {
		c, err := net.DialTimeout("tcp", hostAddr(in), 5*time.Second)
		if err != nil {
			break // the backlog is full too
		}
		idle = append(idle, c)
	}
	in.eventually(20*time.Second, "the out-of-descriptors warning", func() bool {
		return strings.Contains(in.logs.String(), "out of file descriptors")
	})

	// The connection already open is still served.
	resp, err := first.Get(in.url("/api/again"))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("open connection while out of descriptors: %v %v", err, resp)
	}
	resp.Body.Close()

	// Others close; a new connection is then served.
	for _, c := range idle {
		_ = c.Close()
	}
	idle = nil
	in.eventually(30*time.Second, "a new connection served", func() bool {
		c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Get(in.url("/api/new"))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	after, _ := in.status()
	if len(after.Workers) != 1 || after.Workers[0].PID != before.Workers[0].PID {
		t.Fatalf("the worker changed: %v before, %v after", pidsOf(before), pidsOf(after))
	}
	if n := strings.Count(in.logs.String(), "out of file descriptors"); n != 1 {
		t.Fatalf("warned %d times, want once", n)
	}
}
