package integration

import (
	"strings"
	"testing"

	"github.com/mgw-gateway/mgw/internal/testutil"
)

// TestCustomPluginExample: the header-uppercase example, built into the
// binary and named in sequence, works in a running gateway, next to the
// bundled cors, accesscontrol and healthcheck.
func TestCustomPluginExample(t *testing.T) {
	tgt, _ := countingTarget(t)
	in := newInstance(t, testutil.PreambleWith(`trusted_proxies = ["127.0.0.1"] # the tests' X-Forwarded-For is believed`)+`[edgemicro.plugins]
sequence = ["accesscontrol", "healthcheck", "cors", "header-uppercase"]
[accesscontrol]
deny = ["10.*.*.*"]
[healthcheck]
healthcheck_url = "/api/healthcheck"
[[proxies]]
name = "api"
base_path = "/api"
url = "`+tgt.URL+`"
`)
	in.start(2)
	a := call(t, "GET", in.url("/api/hello"), map[string]string{"Origin": "https://app.example"}, "")
	if a.status != 200 || !strings.Contains(a.body, `"PATH":"/HELLO"`) || a.header.Get("X-Foo-Response-Id") == "" {
		t.Fatalf("header-uppercase: %d %v %s", a.status, a.header, a.body)
	}
	if a.header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Fatalf("cors: %v", a.header)
	}
	if a := call(t, "GET", in.url("/api/hello"), map[string]string{"X-Forwarded-For": "10.0.0.7"}, ""); a.status != 403 {
		t.Fatalf("accesscontrol: %d %s", a.status, a.body)
	}
	if a := call(t, "GET", in.url("/api/healthcheck"), nil, ""); a.status != 200 || !strings.Contains(a.body, `"pid"`) {
		t.Fatalf("healthcheck: %d %s", a.status, a.body)
	}
}
