package integration

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mgw-gateway/mgw/internal/testutil"
)

// TestMetricsCountWhatWasSent: through 2 workers, in rounds until both
// have served, 6 answers from a target, 3 from a target that is down, 2
// refused by a plugin and one body too large per round show up in
// /metrics, summed over the workers, by status class; only the plugin's
// refusals count as rejections.
func TestMetricsCountWhatWasSent(t *testing.T) {
	tgt, _ := countingTarget(t)
	metricsPort := freePort(t)
	in := newInstance(t, testutil.PreambleWith(
		`trusted_proxies = ["127.0.0.1"] # the tests' X-Forwarded-For is believed`,
		"max_body_bytes = 100",
	)+`[edgemicro.plugins]
sequence = ["accesscontrol"]
[accesscontrol]
deny = ["10.*.*.*"]
[metrics]
port = `+fmt.Sprint(metricsPort)+`
[[proxies]]
name = "api"
base_path = "/api"
url = "`+tgt.URL+`"
[[proxies]]
name = "down"
base_path = "/down"
url = "http://127.0.0.1:1"
`)
	in.start(2)
	k := in.spread(12, func() {
		in.getEach(0, 5, "/api/%d", 200)
		in.getEach(1, 3, "/down/x", 502)
		for range 2 {
			if a := call(t, "GET", in.url("/api/x"), map[string]string{"X-Forwarded-For": "10.1.1.1"}, ""); a.status != 403 {
				t.Fatalf("denied: %d", a.status)
			}
		}
		// A body over max_body_bytes is the proxy's 413, not a plugin's refusal.
		if a := call(t, "POST", in.url("/api/big"), nil, strings.Repeat("x", 200)); a.status != 413 {
			t.Fatalf("oversize body: %d %s", a.status, a.body)
		}
	})
	want := []string{
		fmt.Sprintf(`mgw_requests_total{proxy="api",class="2xx"} %d`, 6*k),
		fmt.Sprintf(`mgw_requests_total{proxy="api",class="4xx"} %d`, 3*k),
		fmt.Sprintf(`mgw_requests_total{proxy="down",class="5xx"} %d`, 3*k),
		fmt.Sprintf(`mgw_upstream_errors_total{proxy="down",kind="error"} %d`, 3*k),
		fmt.Sprintf(`mgw_plugin_rejections_total{plugin="accesscontrol"} %d`, 2*k),
		fmt.Sprintf(`mgw_request_duration_seconds_count %d`, 12*k),
		`mgw_workers{state="serving"} 2`,
	}
	var body string
	in.eventually(10*time.Second, "/metrics to count every request", func() bool {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		for _, w := range want {
			if !strings.Contains(body, w+"\n") {
				return false
			}
		}
		return true
	})
}
