package quota

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/internal/redisserver"
	"github.com/mgw-gateway/mgw/plugins"
	"github.com/mgw-gateway/mgw/plugins/zone"
)

func snapshot(t *testing.T, quotas string) *configs.Snapshot {
	t.Helper()
	configs.AllowSection(Section, Settings{})
	s, err := configs.Parse([]byte(`
[[proxies]]
name = "p"
base_path = "/p"
url = "mock://echo"
[[products]]
name = "small"
proxies = ["p"]
quota = 3
quotaInterval = 1
quotaTimeUnit = "minute"
[[products]]
name = "free"
proxies = ["p"]
`+quotas), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	s.Org, s.Env = "org", "env"
	return s
}

func request(p plugins.Plugin, products ...string) *httptest.ResponseRecorder {
	list := make([]any, len(products))
	for i, v := range products {
		list[i] = v
	}
	r := httptest.NewRequest("GET", "/p/x", nil)
	r = plugins.SetPrincipal(r, &plugins.Principal{Claims: map[string]any{"application_name": "app", "api_product_list": list}})
	rec := httptest.NewRecorder()
	p.ServeHTTP(rec, r, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) }))
	return rec
}

func TestQuotaWindow(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	z := zone.New(64)
	p, err := New(plugins.Env{Logger: zerolog.Nop(), Zone: z, Now: func() time.Time { return now }}, snapshot(t, ""), &configs.Proxy{Name: "p"})
	if err != nil || p == nil {
		t.Fatalf("New: %v %v", p, err)
	}
	for i, want := range []struct {
		status    int
		remaining string
	}{{200, "2"}, {200, "1"}, {200, "0"}, {403, "0"}, {403, "0"}} {
		now = now.Add(time.Second)
		rec := request(p, "free", "small")
		if rec.Code != want.status || rec.Header().Get("X-RateLimit-Remaining") != want.remaining ||
			rec.Header().Get("X-RateLimit-Limit") != "3" {
			t.Fatalf("request %d: %d remaining %q limit %q", i+1, rec.Code, rec.Header().Get("X-RateLimit-Remaining"), rec.Header().Get("X-RateLimit-Limit"))
		}
		if want.status == 403 && rec.Body.String() != `{"message":"exceeded quota","status":403}` {
			t.Fatalf("body %s", rec.Body)
		}
	}
	if reset := request(p, "small").Header().Get("X-RateLimit-Reset"); reset != "56" {
		t.Fatalf("reset %q, want the 56 s left of the window opened 4 s ago", reset)
	}
	now = now.Add(time.Minute)
	if rec := request(p, "small"); rec.Code != 200 {
		t.Fatalf("next window: %d", rec.Code)
	}
	if rec := request(p, "free"); rec.Code != 200 || rec.Header().Get("X-RateLimit-Limit") != "" {
		t.Fatalf("a product without quota: %d %v", rec.Code, rec.Header())
	}
}

func TestQuotaOptions(t *testing.T) {
	t.Parallel()
	p, err := New(plugins.Env{Logger: zerolog.Nop(), Now: time.Now}, snapshot(t, "[quotas]\nisHTTPStatusTooManyRequestEnabled = true\n"), &configs.Proxy{Name: "p"})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		request(p, "small")
	}
	if rec := request(p, "small"); rec.Code != 429 {
		t.Fatalf("status %d, want 429", rec.Code)
	}
	if p, _ := New(plugins.Env{Now: time.Now}, snapshot(t, ""), &configs.Proxy{Name: "other"}); p != nil {
		t.Fatal("a proxy no quota covers got a quota plugin")
	}
	if _, err := New(plugins.Env{Now: time.Now}, snapshot(t, "[quotas]\nbackend = \"carrier-pigeon\"\n"), &configs.Proxy{Name: "p"}); err == nil {
		t.Fatal("an unknown backend was accepted")
	}
}

// TestRedisBackendIsExact: concurrent requests through two plugin
// instances (two gateways) sharing one Redis admit exactly the quota.
func TestRedisBackendIsExact(t *testing.T) {
	url := redisserver.Start(t)
	section := "[quotas]\nbackend = \"redis\"\nredis_url = \"" + url + "\"\n"
	var ps []plugins.Plugin
	for range 2 {
		p, err := New(plugins.Env{Now: time.Now}, snapshot(t, section), &configs.Proxy{Name: "p"})
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				if request(ps[i%2], "small").Code == 200 {
					admitted.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := admitted.Load(); n != 3 {
		t.Fatalf("admitted %d of 40 against a quota of 3", n)
	}
	rec := request(ps[0], "small")
	if rec.Code != 403 || rec.Header().Get("X-RateLimit-Remaining") != "0" || rec.Header().Get("X-RateLimit-Reset") == "" {
		t.Fatalf("past the quota: %d %v", rec.Code, rec.Header())
	}
}

func TestRedisDownFailsOpenOrClosed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		failOpen bool
		status   int
	}{{true, 200}, {false, 500}} {
		section := fmt.Sprintf("[quotas]\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:1/0\"\nfailOpen = %t\n", tc.failOpen)
		p, err := New(plugins.Env{Now: time.Now}, snapshot(t, section), &configs.Proxy{Name: "p"})
		if err != nil {
			t.Fatal(err)
		}
		if rec := request(p, "small"); rec.Code != tc.status {
			t.Errorf("failOpen %t: %d", tc.failOpen, rec.Code)
		}
	}
}

// TestEdgeBackendCountsRemotePlusPending: a request passes while Edge's
// count plus the weight not yet sent stays under the quota, and an
// expired remote window counts as empty.
func TestEdgeBackendCountsRemotePlusPending(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	z := zone.New(64)
	var watched []string
	b := &edgeBackend{zone: z, watch: func(id string, allow uint32, _ int, _ string) { watched = append(watched, id) }}
	l := &limit{product: "p", allow: 5, interval: 1, unit: "minute", end: func(t time.Time) time.Time { return t.Add(time.Minute) }}
	remote, _ := z.Slot("id" + RemoteSuffix)
	remote.Store(zone.PackCount(3, now.Add(30*time.Second)))
	var got []bool
	for range 3 {
		w, err := b.take("id", l, now)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, w.Allowed)
	}
	if fmt.Sprint(got) != "[true true false]" || len(watched) != 1 {
		t.Fatalf("admitted %v, watched %v", got, watched)
	}
	if w, _ := b.take("id", l, now.Add(31*time.Second)); !w.Allowed {
		t.Fatal("the remote window closed, yet the pending weight alone refused")
	}
}

// TestHeaderValue: the X-RateLimit values are the numbers in decimal, a
// small one (the seconds left of a minute's window) without allocating
// and a large one (what is left of a large quota) in one allocation.
func TestHeaderValue(t *testing.T) {
	for _, n := range []uint64{0, 7, 59, 1023, 1024, 999_999_999, 1<<64 - 1} {
		if got := headerValue(n); len(got) != 1 || cap(got) != 1 || got[0] != strconv.FormatUint(n, 10) {
			t.Errorf("headerValue(%d) = %q (cap %d)", n, got, cap(got))
		}
	}
	var sink []string
	if n := testing.AllocsPerRun(100, func() { sink = headerValue(59) }); n != 0 {
		t.Errorf("a small value: %.0f allocations, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { sink = headerValue(999_999_999) }); n != 1 {
		t.Errorf("a large value: %.0f allocations, want 1", n)
	}
	_ = sink
}
