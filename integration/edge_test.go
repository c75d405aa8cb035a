package integration

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mgw-gateway/mgw/integration/fakeedge"
	"github.com/mgw-gateway/mgw/internal/testutil"
)

// countingTarget answers 200 with the path and Authorization it saw and
// counts requests, so a test can tell that none got through.
func countingTarget(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{
			"path": r.URL.Path, "authorization": r.Header.Get("Authorization"),
			"claims": r.Header.Get("X-Authorization-Claims"),
		})
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func startFakeEdge(t *testing.T) *fakeedge.Server {
	t.Helper()
	fe, err := fakeedge.Start("myorg", "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fe.Close)
	return fe
}

// helloEdge starts a fake Edge that deploys one proxy, edgemicro_hello
// at /hello, to a target that answers every request, and returns the
// fake and the target's URL.
func helloEdge(t *testing.T) (*fakeedge.Server, string) {
	t.Helper()
	fe := startFakeEdge(t)
	tgt, _ := countingTarget(t)
	fe.SetProxies(fakeedge.Proxy{Name: "edgemicro_hello", BasePath: "/hello", URL: tgt.URL})
	return fe, tgt.URL
}

func edgeConfig(fe *fakeedge.Server, extra string) string {
	return fe.EdgeConfigTOML() + testutil.PreambleWith("config_change_poll_interval = 1") + `[edgemicro.plugins]
sequence = ["oauth"]
` + extra
}

// edgeConfigNoAuth is edgeConfig without plugins.
func edgeConfigNoAuth(fe *fakeedge.Server) string {
	return strings.Replace(edgeConfig(fe, ""), `sequence = ["oauth"]`, "sequence = []", 1)
}

func edgeFlags(fe *fakeedge.Server) []string {
	return []string{"-o", fe.Org, "-e", fe.Env, "-k", fe.Key, "-s", fe.Secret}
}

type answer struct {
	status int
	header http.Header
	body   string
}

// call does one request on a fresh connection.
func call(t *testing.T, method, url string, hdr map[string]string, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}
}

// edgeToken gets a token for app from the fake org's /token.
func edgeToken(t *testing.T, fe *fakeedge.Server, app fakeedge.App) string {
	t.Helper()
	a := call(t, "POST", fe.URL+"/edgemicro-auth/token", map[string]string{"Content-Type": "application/json"},
		fmt.Sprintf(`{"client_id":%q,"client_secret":%q,"grant_type":"client_credentials"}`, app.Key, app.Secret))
	var out struct{ Token string }
	if err := json.Unmarshal([]byte(a.body), &out); err != nil || out.Token == "" {
		t.Fatalf("token: %d %s", a.status, a.body)
	}
	return out.Token
}

// TestEdgeAuth runs every auth row of docs/COMPATIBILITY.md and the bad-token table of
// forged tokens (alg none, HS256, foreign keys …) through the real binary against the fake org.
func TestEdgeAuth(t *testing.T) {
	fe := startFakeEdge(t)
	tgt, reached := countingTarget(t)
	fe.SetProxies(fakeedge.Proxy{Name: "edgemicro_hello", BasePath: "/hello", URL: tgt.URL + "/v1"})
	in := newInstance(t, edgeConfig(fe, "[oauth]\ngracePeriod = 10\n"))
	in.start(2, edgeFlags(fe)...)

	apps := fe.Apps()
	good := edgeToken(t, fe, apps[0])
	otherProduct := edgeToken(t, fe, apps[2])
	parts := strings.Split(good, ".")
	forge := func(mutate func(jwt.MapClaims), method jwt.SigningMethod, key any, kid string) string {
		c := fe.Claims(apps[0], "forged")
		if mutate != nil {
			mutate(c)
		}
		tok := jwt.NewWithClaims(method, c)
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	var tampered string
	{
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		payload = []byte(strings.Replace(string(payload), `"hello-product"`, `"other-product"`, 1))
		tampered = parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2]
	}
	certPEM := call(t, "GET", fe.URL+"/edgemicro-auth/publicKey", nil, "").body

	const (
		missing   = `{"error":"missing_authorization","error_description":"Missing Authorization header"}`
		badHeader = `{"error":"invalid_request","error_description":"Invalid Authorization header"}`
		badToken  = `{"error":"invalid_token","error_description":"invalid_token"}`
		unparsed  = `{"error":"invalid_token","error_description":"token could not be parsed"}`
		badKey    = `{"error":"access_denied","error_description":"Unauthorized"}`
		denied    = `{"error":"access_denied","error_description":"access_denied"}`
	)
	bearer := func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }
	tests := []struct {
		desc   string
		hdr    map[string]string
		status int
		body   string
	}{
		{"no credentials", nil, 401, missing},
		{"Authorization not Bearer", map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}, 400, badHeader},
		{"Basic with a valid key: Authorization decides", map[string]string{"Authorization": "Basic dXNlcjpwYXNz", "x-api-key": apps[0].Key}, 400, badHeader},
		{"not a JWS at all", bearer("garbage"), 401, unparsed},
		{"unknown api key", map[string]string{"x-api-key": "no-such-key"}, 403, badKey},
		{"product does not cover the proxy (token)", bearer(otherProduct), 403, denied},
		{"product does not cover the proxy (key)", map[string]string{"x-api-key": apps[2].Key}, 403, denied},
		{"alg none", bearer(forge(nil, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "")), 401, badToken},
		{"HS256 keyed with the public key", bearer(forge(nil, jwt.SigningMethodHS256, []byte(certPEM), "")), 401, badToken},
		{"expired past the grace period", bearer(forge(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Minute).Unix() }, jwt.SigningMethodRS256, fe.PrivateKey(), "")), 401, badToken},
		{"nbf in the future", bearer(forge(func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(time.Hour).Unix() }, jwt.SigningMethodRS256, fe.PrivateKey(), "")), 401, badToken},
		{"tampered payload", bearer(tampered), 401, badToken},
		{"unknown kid", bearer(forge(nil, jwt.SigningMethodRS256, fe.PrivateKey(), "no-such-kid")), 401, badToken},
		{"bad Bearer with a valid key", map[string]string{"Authorization": "Bearer " + good + "x", "x-api-key": apps[0].Key}, 401, badToken},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			before := reached.Load()
			a := call(t, "GET", in.url("/hello/x"), tc.hdr, "")
			if a.status != tc.status || a.body != tc.body {
				t.Fatalf("got %d %s, want %d %s", a.status, a.body, tc.status, tc.body)
			}
			if ct := a.header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type %q", ct)
			}
			if reached.Load() != before {
				t.Fatal("the request reached the target")
			}
		})
	}
	for desc, hdr := range map[string]map[string]string{
		"good token":            bearer(good),
		"good api key":          {"x-api-key": apps[0].Key},
		"token signed with kid": bearer(forge(nil, jwt.SigningMethodRS256, fe.PrivateKey(), fe.Kid)),
	} {
		a := call(t, "GET", in.url("/hello/x"), hdr, "")
		if a.status != 200 || !strings.Contains(a.body, `"path":"/v1/x"`) {
			t.Errorf("%s: %d %s", desc, a.status, a.body)
		}
		if strings.Contains(a.body, `"authorization":"Bearer`) || !strings.Contains(a.body, `"claims":"ey`) {
			t.Errorf("%s: the target saw Authorization or no claims: %s", desc, a.body)
		}
	}
	if a := call(t, "GET", in.url("/hello/x?x-api-key="+apps[0].Key), nil, ""); a.status != 200 {
		t.Errorf("api key in the query: %d %s", a.status, a.body)
	}
}

// TestEdgeOneKeyOneCall: 1,000 requests with one key through 4 workers
// cost exactly one verifyApiKey call.
func TestEdgeOneKeyOneCall(t *testing.T) {
	fe, _ := helloEdge(t)
	in := newInstance(t, edgeConfig(fe, ""))
	in.start(4, edgeFlags(fe)...)
	key := fe.Apps()[0].Key

	// A new connection per request, so the 1,000 spread over the workers.
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	load := testutil.Repeat(8, 125, func(int) error {
		req, _ := http.NewRequest("GET", in.url("/hello/x"), nil)
		req.Header.Set("x-api-key", key)
		return testutil.DoOK(c, req)
	})
	if n := load.Failed.Load(); n != 0 || load.OK.Load() != 1000 {
		t.Fatalf("%d of 1000 requests failed (%d ok): %v", n, load.OK.Load(), load.Errors())
	}
	if n := fe.Calls(fakeedge.VerifyAPIKey); n != 1 {
		t.Fatalf("verifyApiKey was called %d times for one key", n)
	}
	if busy := in.waitRequests(1000); busy < 2 {
		t.Fatalf("only %d of 4 workers served: the test did not exercise the instance-wide cache", busy)
	}
}

// TestEdgePollAddsProxyInPlace: a proxy deployed at the org is served
// after the next poll by the same master and worker processes.
func TestEdgePollAddsProxyInPlace(t *testing.T) {
	fe, tgt := helloEdge(t)
	in := newInstance(t, edgeConfigNoAuth(fe))
	in.start(2, edgeFlags(fe)...)
	before, _ := in.status()
	if st, _ := get(t, in.url("/open/x")); st != 404 {
		t.Fatalf("/open before the deployment: %d", st)
	}
	fe.SetProxies(
		fakeedge.Proxy{Name: "edgemicro_hello", BasePath: "/hello", URL: tgt},
		fakeedge.Proxy{Name: "edgemicro_open", BasePath: "/open", URL: tgt + "/o"},
		fakeedge.Proxy{Name: "not_a_gateway_proxy", BasePath: "/skipped", URL: tgt},
	)
	in.eventually(10*time.Second, "the new proxy to be served", func() bool {
		st, _ := get(t, in.url("/open/x"))
		return st == 200
	})
	if st, body := get(t, in.url("/open/x")); st != 200 || !strings.Contains(body, `"path":"/o/x"`) {
		t.Fatalf("/open/x: %d %s", st, body)
	}
	if st, _ := get(t, in.url("/skipped/x")); st != 404 {
		t.Fatalf("a proxy outside proxyPattern is served: %d", st)
	}
	after, _ := in.status()
	if after.MasterPID != before.MasterPID || !slices.Equal(pidsOf(after), pidsOf(before)) {
		t.Fatalf("processes changed: master %d→%d, workers %v→%v", before.MasterPID, after.MasterPID, pidsOf(before), pidsOf(after))
	}
	if after.Mode != "edge" || after.Config.LastPoll == nil || after.Config.Revision <= before.Config.Revision {
		t.Fatalf("status: mode %q, last poll %v, revision %d→%d", after.Mode, after.Config.LastPoll, before.Config.Revision, after.Config.Revision)
	}
	// A failing org keeps the last good config serving.
	fe.Fail(fakeedge.Bootstrap, 503)
	in.eventually(10*time.Second, "a failed poll in status", func() bool {
		st, _ := in.status()
		return st.Config.LastError != nil
	})
	if st, _ := get(t, in.url("/open/x")); st != 200 {
		t.Fatalf("after a failed poll: %d", st)
	}
}

// TestEdgeDownAtStart: with a cache the gateway starts from it; without
// one, start fails with a message.
func TestEdgeDownAtStart(t *testing.T) {
	fe, _ := helloEdge(t)
	cfg := edgeConfigNoAuth(fe)

	in := newInstance(t, cfg)
	in.start(1, edgeFlags(fe)...)
	cache := filepath.Join(in.dir, "myorg-test-cache-config.json")
	b, err := os.ReadFile(cache)
	if err != nil {
		t.Fatalf("no cache after a good download: %v", err)
	}
	if strings.Contains(string(b), fe.Secret) || strings.Contains(string(b), fe.Key) {
		t.Fatal("the cache holds the key or secret")
	}
	in.stop()

	fe.Fail(fakeedge.Bootstrap, 503)
	in.start(1, edgeFlags(fe)...)
	if st, body := get(t, in.url("/hello/x")); st != 200 {
		t.Fatalf("started from the cache but /hello/x: %d %s", st, body)
	}
	if !strings.Contains(in.logs.String(), "starting from the cache") {
		t.Fatal("the log does not say the gateway started from the cache")
	}

	bare := newInstance(t, cfg)
	out, code := bare.mgw(append([]string{"start", "--processes", "1", "--port", fmt.Sprint(bare.port)}, edgeFlags(fe)...)...)
	if code != 1 || !strings.Contains(out, "no cache file") {
		t.Fatalf("start without Edge or cache: exit %d, output:\n%s", code, out)
	}
}

// TestLocalModeAuth: local products and apps, tokens issued by the
// gateway itself with the key pair `mgw init` writes.
func TestLocalModeAuth(t *testing.T) {
	tgt, _ := countingTarget(t)
	in := newInstance(t, "")
	if out, code := in.mgw("init"); code != 0 {
		t.Fatalf("init: %s", out)
	}
	in.writeConfig(testutil.Preamble + `[edgemicro.plugins]
sequence = ["oauth"]
[[proxies]]
name = "hello"
base_path = "/hello"
url = "` + tgt.URL + `"
[[products]]
name = "hello-product"
proxies = ["hello"]
apiResources = ["/**"]
[[apps]]
name = "app"
developer_email = "dev@example.com"
key = "local-key"
secret = "local-secret"
products = ["hello-product"]
`)
	in.start(2)
	a := call(t, "POST", in.url("/edgemicro-auth/token"), map[string]string{"Content-Type": "application/json"},
		`{"client_id":"local-key","client_secret":"local-secret","grant_type":"client_credentials"}`)
	var tok struct {
		Token, AccessToken, TokenType string
		ExpiresIn                     int `json:"expires_in"`
	}
	if err := json.Unmarshal([]byte(a.body), &tok); a.status != 200 || err != nil || tok.Token == "" || tok.TokenType != "" && tok.TokenType != "Bearer" {
		t.Fatalf("token: %d %s", a.status, a.body)
	}
	if !strings.Contains(a.body, `"token_type":"Bearer"`) || !strings.Contains(a.body, `"expires_in":1799`) {
		t.Fatalf("token answer differs from Edge's: %s", a.body)
	}
	if a := call(t, "GET", in.url("/hello/x"), map[string]string{"Authorization": "Bearer " + tok.Token}, ""); a.status != 200 {
		t.Fatalf("local token: %d %s", a.status, a.body)
	}
	if a := call(t, "GET", in.url("/hello/x"), map[string]string{"x-api-key": "local-key"}, ""); a.status != 200 {
		t.Fatalf("local key: %d %s", a.status, a.body)
	}
	if a := call(t, "GET", in.url("/hello/x"), map[string]string{"x-api-key": "wrong"}, ""); a.status != 403 {
		t.Fatalf("wrong key: %d %s", a.status, a.body)
	}
	if a := call(t, "POST", in.url("/edgemicro-auth/token"), map[string]string{"Content-Type": "application/json"},
		`{"client_id":"local-key","client_secret":"nope","grant_type":"client_credentials"}`); a.status != 401 {
		t.Fatalf("bad secret: %d %s", a.status, a.body)
	}
	if a := call(t, "GET", in.url("/edgemicro-auth/publicKey"), nil, ""); a.status != 200 || !strings.Contains(a.body, "BEGIN PUBLIC KEY") {
		t.Fatalf("publicKey: %d %s", a.status, a.body)
	}
}

// TestConfigImportStarts: `mgw config import` on the realistic edgemicro
// file testdata/edgemicro.yaml (pointed at the fake org) gives a config that
// mgw starts with and that authorizes like the original.
func TestConfigImportStarts(t *testing.T) {
	fe, _ := helloEdge(t)
	in := newInstance(t, "")
	src, err := os.ReadFile("testdata/edgemicro.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The [[targets]] client certificate is carried, so its files must be real.
	ca := newCA(t)
	clientCert, clientKey := ca.issue(t, "client", x509.ExtKeyUsageClientAuth)
	writeFile(t, in.dir, "client.crt", clientCert)
	writeFile(t, in.dir, "client.key", clientKey)
	writeFile(t, in.dir, "ca.pem", ca.pem)
	yaml := strings.NewReplacer(
		"https://edgemicroservices-us-east-1.apigee.net", fe.URL,
		"https://myorg-test.apigee.net", fe.URL,
		"dir: /var/tmp", "to_console: true",
		"/opt/apigee/certs/", in.dir+"/",
	).Replace(string(src))
	yamlPath := filepath.Join(in.dir, "myorg-test-config.yaml")
	if err := os.WriteFile(yamlPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	// The flags after the file, as README writes it.
	out, code := in.mgwRaw("config", "import", yamlPath, "--output", filepath.Join(in.dir, "myorg-test-config.toml"))
	if code != 0 {
		t.Fatalf("config import: %d %s", code, out)
	}
	for _, want := range []string{"dropped edgemicro.plugins.dir", "spikearrest.allow: edgemicro counted 6000 per worker"} {
		if !strings.Contains(out, want) {
			t.Errorf("import output does not say %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "targets") {
		t.Errorf("import dropped [[targets]]:\n%s", out)
	}
	in.start(2, edgeFlags(fe)...) // finds myorg-test-config.toml by -o and -e
	key := fe.Apps()[0].Key
	if a := call(t, "GET", in.url("/hello/x"), map[string]string{"x-api-key": key}, ""); a.status != 200 {
		t.Fatalf("with a key: %d %s", a.status, a.body)
	}
	if a := call(t, "GET", in.url("/hello/x"), nil, ""); a.status != 401 {
		t.Fatalf("without credentials: %d %s", a.status, a.body)
	}
}

// TestTokenAndVerifyCommands: token get/decode/verify and verify against
// the fake org.
func TestTokenAndVerifyCommands(t *testing.T) {
	fe := startFakeEdge(t)
	in := newInstance(t, strings.Replace(edgeConfigNoAuth(fe), "[edge_config]\n", "[edge_config]\nauthUri = \""+fe.URL+"/edgemicro-auth\"\n", 1))
	app := fe.Apps()[0]
	flags := []string{"-o", fe.Org, "-e", fe.Env}
	out, code := in.mgw(append([]string{"token", "get", "--json", "-i", app.Key, "-s", app.Secret}, flags...)...)
	var tok struct{ Token string }
	if code != 0 || json.Unmarshal([]byte(out), &tok) != nil || tok.Token == "" {
		t.Fatalf("token get --json: %d %s", code, out)
	}
	// Without --json, the token alone: TOKEN=$(mgw token get …) works.
	if out, code := in.mgw(append([]string{"token", "get", "-i", app.Key, "-s", app.Secret}, flags...)...); code != 0 || strings.Count(out, ".") != 2 || strings.ContainsAny(strings.TrimSpace(out), "{} \n") {
		t.Fatalf("token get prints %q (exit %d), want the token alone", out, code)
	}
	if out, code := in.mgwRaw("token", "decode", tok.Token); code != 0 || !strings.Contains(out, `"application_name": "mgw-app"`) {
		t.Fatalf("token decode: %d %s", code, out)
	}
	verify := func(tok string) (string, int) {
		return in.mgwRaw(append(append([]string{"token", "verify", "--config-dir", in.dir}, flags...), tok)...)
	}
	if out, code := verify(tok.Token); code != 0 || !strings.HasPrefix(out, "valid") {
		t.Fatalf("token verify: %d %s", code, out)
	}
	forged, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"a": 1}).SignedString([]byte("k"))
	if out, code := verify(forged); code != 1 || !strings.Contains(out, "invalid") {
		t.Fatalf("token verify of a forged token: %d %s", code, out)
	}

	out, code = in.mgw(append([]string{"verify"}, edgeFlags(fe)...)...)
	if code != 0 {
		t.Fatalf("verify: %d\n%s", code, out)
	}
	for _, name := range []string{"config", "bootstrap", "products", "jwt_public_key", "jwk_public_keys", "verifyApiKey"} {
		if !strings.Contains(out, "ok   "+name) {
			t.Errorf("verify does not report %s ok:\n%s", name, out)
		}
	}
	bad := []string{"verify", "-o", fe.Org, "-e", fe.Env, "-k", fe.Key, "-s", "wrong"}
	if out, code := in.mgw(bad...); code != 1 || !strings.Contains(out, "FAIL bootstrap") {
		t.Fatalf("verify with a wrong secret: %d\n%s", code, out)
	}
}

// TestEdgePollIntervalFollowsAnEdit: a config edit that shortens
// config_change_poll_interval takes effect in the running master.
func TestEdgePollIntervalFollowsAnEdit(t *testing.T) {
	fe, tgt := helloEdge(t)
	slow := strings.Replace(edgeConfigNoAuth(fe), "config_change_poll_interval = 1", "config_change_poll_interval = 3600", 1)
	in := newInstance(t, slow)
	in.start(1, edgeFlags(fe)...)
	fe.SetProxies(
		fakeedge.Proxy{Name: "edgemicro_hello", BasePath: "/hello", URL: tgt},
		fakeedge.Proxy{Name: "edgemicro_open", BasePath: "/open", URL: tgt},
	)
	if st, _ := get(t, in.url("/open/x")); st != 404 {
		t.Fatalf("/open before any poll: %d", st)
	}
	in.writeConfig(edgeConfigNoAuth(fe)) // every second
	in.eventually(10*time.Second, "a poll at the new interval to bring /open", func() bool {
		st, _ := get(t, in.url("/open/x"))
		return st == 200
	})
}
