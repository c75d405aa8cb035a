package integration

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mgw-gateway/mgw/integration/fakeedge"
	"github.com/mgw-gateway/mgw/internal/redisserver"
	"github.com/mgw-gateway/mgw/internal/testutil"
)

// localAuthConfig is local mode with the oauth plugin, one product and
// one app (key "limits-key"), plus extra.
func localAuthConfig(targetURL, sequence, product, extra string) string {
	return testutil.Preamble + `[edgemicro.plugins]
sequence = ` + sequence + `
[[proxies]]
name = "api"
base_path = "/api"
url = "` + targetURL + `"
[[products]]
name = "limited"
proxies = ["api"]
` + product + `
[[apps]]
name = "limits-app"
developer_email = "dev@example.com"
key = "limits-key"
secret = "limits-secret"
products = ["limited"]
` + extra
}

// TestQuotaHoldsForTheInstance: 4 workers, a 5/minute product, rounds
// of 20 requests on separate connections until two workers have served:
// exactly 5 pass in all.
func TestQuotaHoldsForTheInstance(t *testing.T) {
	tgt, reached := countingTarget(t)
	in := newInstance(t, "")
	if out, code := in.mgw("init"); code != 0 {
		t.Fatal(out)
	}
	in.writeConfig(localAuthConfig(tgt.URL, `["oauth", "quota"]`, "quota = 5\nquotaInterval = 1\nquotaTimeUnit = \"minute\"", ""))
	in.start(4)
	counts := map[int]int{}
	rounds := in.spread(20, func() {
		for range 20 {
			a := call(t, "GET", in.url("/api/x"), map[string]string{"x-api-key": "limits-key"}, "")
			counts[a.status]++
			if a.header.Get("X-RateLimit-Limit") != "5" || a.header.Get("X-RateLimit-Reset") == "" {
				t.Fatalf("request %d: rate-limit headers %v", counts[200]+counts[403], a.header)
			}
			if a.status == 403 {
				if a.body != `{"message":"exceeded quota","status":403}` || a.header.Get("X-RateLimit-Remaining") != "0" {
					t.Fatalf("request %d: %s, remaining %q", counts[200]+counts[403], a.body, a.header.Get("X-RateLimit-Remaining"))
				}
			}
		}
	})
	if counts[200] != 5 || counts[403] != 20*rounds-5 || reached.Load() != 5 {
		t.Fatalf("statuses %v over %d requests, target reached %d times; want exactly 5 × 200, the rest 403",
			counts, 20*rounds, reached.Load())
	}
}

// TestSpikeArrestHoldsForTheInstance: allow 20/second across 4 workers
// under 200 requests/second for 3 s admits one request per 50 ms for the
// instance (per-worker schedules would admit four times as many); allow
// 100000/second admits every one of 300 requests sent one after the
// other (its interval is 10 µs).
func TestSpikeArrestHoldsForTheInstance(t *testing.T) {
	tgt, _ := countingTarget(t)
	for _, tc := range []struct {
		allow, rate int
	}{
		{allow: 20, rate: 200},
		{allow: 100000},
	} {
		in := newInstance(t, spikeConfig(tgt.URL, "timeUnit = \"second\"\nallow = "+itoa(tc.allow)))
		in.start(4)
		if tc.rate > 0 {
			start := time.Now()
			ok, refused, other := burst(in.url("/api/x"), tc.rate, 3*time.Second)
			// A whole 50 ms passes between two admissions: over the time
			// the requests took, at most elapsed/50ms + 1 pass, whatever
			// the box's load.
			most := int(time.Since(start)/(time.Second/time.Duration(tc.allow))) + 1
			if ok+refused != 3*tc.rate || other != 0 || ok > most || ok < most/4 {
				t.Errorf("allow %d/s at %d req/s for 3 s: %d admitted, %d refused, %d other; want at most %d admitted (and some)",
					tc.allow, tc.rate, ok, refused, other, most)
			}
		} else {
			// One after the other, each on a new connection (any worker):
			// each is admitted after the one before was answered, far more
			// than 10 µs later.
			admitted := 0
			for range 300 {
				if status, _ := get(t, in.url("/api/x")); status == 200 {
					admitted++
				}
			}
			if admitted != 300 {
				t.Errorf("allow %d/s: %d of 300 sequential requests admitted", tc.allow, admitted)
			}
		}
		st, _ := in.status()
		in.mgw("stop")
		in.eventually(10*time.Second, "stop", func() bool { return !alive(st.MasterPID) })
	}
}

// burst sends rate requests per second for d, each on its own goroutine
// so a slow answer does not slow the sending, and counts 200s and 503s.
func burst(url string, rate int, d time.Duration) (ok, refused, other int) {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var nOK, nRefused, nOther atomic.Int64
	var wg sync.WaitGroup
	n := int(d.Seconds() * float64(rate))
	start := time.Now()
	for i := range n {
		time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))))
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.Get(url)
			if err != nil {
				nOther.Add(1)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			switch {
			case resp.StatusCode == 200:
				nOK.Add(1)
			case resp.StatusCode == 503 && resp.Header.Get("Content-Type") == "application/json":
				nRefused.Add(1)
			default:
				nOther.Add(1)
			}
		}()
	}
	wg.Wait()
	return int(nOK.Load()), int(nRefused.Load()), int(nOther.Load())
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestQuotaSharedThroughRedis: two instances (2 workers each) sharing one
// Redis, a 10/minute product: exactly 10 of 30 requests pass.
func TestQuotaSharedThroughRedis(t *testing.T) {
	redisURL := redisserver.Start(t)
	tgt, reached := countingTarget(t)
	var ins []*instance
	for range 2 {
		in := newInstance(t, "")
		if out, code := in.mgw("init"); code != 0 {
			t.Fatal(out)
		}
		ins = append(ins, in)
	}
	// The same app in both: its API key is verified by each instance's
	// own config, and its quota counted in the shared Redis.
	for _, in := range ins {
		in.writeConfig(localAuthConfig(tgt.URL, `["oauth", "quota"]`,
			"quota = 10\nquotaInterval = 1\nquotaTimeUnit = \"minute\"",
			"[quotas]\nbackend = \"redis\"\nredis_url = \""+redisURL+"\"\n"))
		in.start(2)
	}
	counts := map[int]int{}
	for i := range 30 {
		a := call(t, "GET", ins[i%2].url("/api/x"), map[string]string{"x-api-key": "limits-key"}, "")
		counts[a.status]++
	}
	if counts[200] != 10 || counts[403] != 20 || reached.Load() != 10 {
		t.Fatalf("statuses %v, target reached %d; want exactly 10 × 200 across both instances", counts, reached.Load())
	}
}

// TestQuotaEdgeBackend: the edge backend counts exactly for the instance
// (4 workers, 5/minute: 5 of 12 pass), sends the weight to Apigee's
// quotas/apply, and learns there what another instance used.
func TestQuotaEdgeBackend(t *testing.T) {
	fe, _ := helloEdge(t)
	fe.SetProducts(fakeedge.Product{Name: "hello-product", Proxies: []string{"edgemicro_hello"}, APIResources: []string{"/**"}, Quota: "5", QuotaInterval: "1", QuotaTimeUnit: "minute"})
	// edge_instances = 1: each instance may use all that is left, so the
	// counts below are exact whatever the timing of the exchanges.
	cfg := edgeConfig(fe, "[analytics]\nenabled = false\n[quotas]\nbackend = \"edge\"\nedge_instances = 1\n")
	cfg = strings.Replace(cfg, `sequence = ["oauth"]`, `sequence = ["oauth", "quota"]`, 1)
	a, b := newInstance(t, cfg), newInstance(t, cfg)
	a.start(4, edgeFlags(fe)...)
	key := fe.Apps()[0].Key
	id := "myorg.test.mgw-app.hello-product"
	status := func(in *instance) int {
		return call(t, "GET", in.url("/hello/x"), map[string]string{"x-api-key": key}, "").status
	}
	for range 3 {
		if st := status(a); st != 200 {
			t.Fatalf("instance A, within the quota: %d", st)
		}
	}
	a.eventually(10*time.Second, "the weight to reach Edge", func() bool { return fe.QuotaUsed(id) == 3 })
	b.start(2, edgeFlags(fe)...)
	b.eventually(10*time.Second, "instance B to learn Edge's count", func() bool { return fe.Calls(fakeedge.Quota) > 2 })
	counts := map[int]int{}
	for range 6 {
		counts[status(b)]++
	}
	if counts[200] != 2 || counts[403] != 4 {
		t.Fatalf("instance B after A used 3 of 5: %v, want 2 × 200 and 4 × 403", counts)
	}
	b.eventually(10*time.Second, "Edge to count 5", func() bool { return fe.QuotaUsed(id) == 5 })
	// Every instance exchanges with Edge each second: after two more
	// exchanges of each, A knows the window is used up.
	calls := fe.Calls(fakeedge.Quota)
	a.eventually(10*time.Second, "instance A's next exchanges", func() bool { return fe.Calls(fakeedge.Quota) >= calls+4 })
	if st := status(a); st != 403 {
		t.Fatalf("instance A after the quota is used up: %d", st)
	}
}
