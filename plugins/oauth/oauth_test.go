package oauth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/rs/zerolog"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/plugins"
)

var (
	keyOnce sync.Once
	testKey *rsa.PrivateKey
	pubPEM  string
)

func key(t testing.TB) *rsa.PrivateKey {
	keyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
		testKey, pubPEM = k, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	})
	return testKey
}

// clock is a settable time.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func claims(products ...string) jwt.MapClaims {
	list := make([]any, len(products))
	for i, p := range products {
		list[i] = p
	}
	return jwt.MapClaims{
		"api_product_list": list, "application_name": "app", "client_id": "cid",
		"developer_email": "dev@example.com", "aud": "microgateway",
		"iat": t0.Unix(), "nbf": t0.Unix(), "exp": t0.Add(30 * time.Minute).Unix(),
	}
}

func sign(t testing.TB, c jwt.MapClaims) string {
	s, err := jwt.NewWithClaims(jwt.SigningMethodRS256, c).SignedString(key(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// keys is a KeyVerifier over a fixed table.
type keys struct {
	tokens map[string]string
	down   bool
}

func (k keys) VerifyAPIKey(_ context.Context, key string) (plugins.KeyResult, error) {
	if k.down {
		return plugins.KeyResult{}, errors.New("connection refused")
	}
	tok, ok := k.tokens[key]
	if !ok {
		return plugins.KeyResult{}, plugins.ErrKeyRejected
	}
	return plugins.KeyResult{Token: tok}, nil
}

type fixture struct {
	snap  *configs.Snapshot
	clock *clock
	keys  keys
}

func newFixture(t testing.TB, mode Mode, auth *configs.Auth) (*fixture, http.Handler) {
	key(t)
	f := &fixture{clock: &clock{t0}}
	cfg := configs.Defaults()
	cfg.Proxies = []configs.Proxy{{Name: "edgemicro_hello", BasePath: "/hello", URL: "http://127.0.0.1:1"}}
	cfg.Products = []configs.Product{
		{Name: "hello-product", Proxies: []string{"edgemicro_hello"}, APIResources: []string{"/**"}},
		{Name: "other-product", Proxies: []string{"edgemicro_other"}},
	}
	switch mode {
	case ModeOAuth:
		cfg.OAuth = auth
		cfg.Edgemicro.Plugins.Sequence = []string{"oauth"}
	case ModeAPIKeys:
		cfg.APIKeys = auth
	case ModeOAuthV2:
		cfg.OAuthV2 = auth
	}
	f.snap = &configs.Snapshot{Config: cfg, Keys: configs.Keys{PublicKeys: []string{pubPEM}}}
	f.keys = keys{tokens: map[string]string{"good-key": sign(t, claims("hello-product")), "other-key": sign(t, claims("other-product"))}}
	h, err := f.chain(mode)
	if err != nil {
		t.Fatal(err)
	}
	return f, h
}

func (f *fixture) chain(mode Mode) (http.Handler, error) {
	env := plugins.Env{Logger: zerolog.Nop(), APIKeys: &f.keys, Now: f.clock.now, Shared: plugins.NewShared()}
	p, err := newPlugin(mode, env, f.snap, &f.snap.Config.Proxies[0])
	if err != nil {
		return nil, err
	}
	target := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Reached", "yes")
		w.Header().Set("X-Saw-Authorization", r.Header.Get("Authorization"))
		w.Header().Set("X-Saw-Api-Key", r.Header.Get("X-Api-Key"))
		w.Header().Set("X-Saw-Claims", r.Header.Get("X-Authorization-Claims"))
		if pr := plugins.PrincipalOf(r); pr != nil {
			w.Header().Set("X-Product", pr.Product)
		}
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { p.ServeHTTP(w, r, target) }), nil
}

func do(h http.Handler, path string, hdr map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("GET", path, nil)
	for k, v := range hdr {
		r.Header[http.CanonicalHeaderKey(k)] = []string{v}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

const (
	missing      = `{"error":"missing_authorization","error_description":"Missing Authorization header"}`
	badHeader    = `{"error":"invalid_request","error_description":"Invalid Authorization header"}`
	badToken     = `{"error":"invalid_token","error_description":"invalid_token"}`
	unparsable   = `{"error":"invalid_token","error_description":"token could not be parsed"}`
	badKey       = `{"error":"access_denied","error_description":"Unauthorized"}`
	notInProduct = `{"error":"access_denied","error_description":"access_denied"}`
)

// TestAuthTable checks every auth row of docs/COMPATIBILITY.md and its
// rule that Authorization decides before an API key, through the oauth plugin.
func TestAuthTable(t *testing.T) {
	t.Parallel()
	_, h := newFixture(t, ModeOAuth, nil)
	good := sign(t, claims("hello-product"))
	tests := []struct {
		desc   string
		path   string
		hdr    map[string]string
		status int
		body   string
	}{
		{"no credentials", "/hello/x", nil, 401, missing},
		{"empty api key counts as absent", "/hello/x", map[string]string{"x-api-key": ""}, 401, missing},
		{"Basic is not Bearer", "/hello/x", map[string]string{"Authorization": "Basic dTpw"}, 400, badHeader},
		{"Bearer with nothing after it", "/hello/x", map[string]string{"Authorization": "Bearer "}, 400, badHeader},
		{"bearer is case-sensitive", "/hello/x", map[string]string{"Authorization": "bearer " + good}, 400, badHeader},
		{"not a JWS at all", "/hello/x", map[string]string{"Authorization": "Bearer garbage"}, 401, unparsable},
		{"good token", "/hello/x", map[string]string{"Authorization": "Bearer " + good}, 200, ""},
		{"good token, path outside the product's resources", "/hello", map[string]string{"Authorization": "Bearer " + good}, 403, notInProduct},
		{"token of a product without this proxy", "/hello/x", map[string]string{"Authorization": "Bearer " + sign(t, claims("other-product"))}, 403, notInProduct},
		{"token without products", "/hello/x", map[string]string{"Authorization": "Bearer " + sign(t, claims())}, 403, notInProduct},
		{"good api key", "/hello/x", map[string]string{"x-api-key": "good-key"}, 200, ""},
		{"api key in the query", "/hello/x?x-api-key=good-key", nil, 200, ""},
		{"unknown api key", "/hello/x", map[string]string{"x-api-key": "nope"}, 403, badKey},
		{"api key of another product", "/hello/x", map[string]string{"x-api-key": "other-key"}, 403, notInProduct},
		{"Authorization decides over a good key: Basic", "/hello/x", map[string]string{"Authorization": "Basic dTpw", "x-api-key": "good-key"}, 400, badHeader},
		{"Authorization decides over a good key: bad Bearer", "/hello/x", map[string]string{"Authorization": "Bearer " + good + "x", "x-api-key": "good-key"}, 401, badToken},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			rec := do(h, tc.path, tc.hdr)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d (body %s)", rec.Code, tc.status, rec.Body)
			}
			reached := rec.Header().Get("X-Reached") == "yes"
			if reached != (tc.status == 200) {
				t.Fatalf("reached the target: %v with status %d", reached, rec.Code)
			}
			if tc.body != "" {
				if got := rec.Body.String(); got != tc.body {
					t.Fatalf("body %s, want %s", got, tc.body)
				}
				if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
					t.Fatalf("Content-Type %q", ct)
				}
			}
		})
	}
}

func TestGoodTokenReachesTheTargetWithClaims(t *testing.T) {
	t.Parallel()
	_, h := newFixture(t, ModeOAuth, nil)
	c := claims("other-product", "hello-product")
	c["access_token"] = "opaque"
	c["scopes"] = []any{"read"}
	rec := do(h, "/hello/x", map[string]string{"Authorization": "Bearer " + sign(t, c), "x-api-key": "kept"})
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if got := rec.Header().Get("X-Saw-Authorization"); got != "" {
		t.Errorf("the target saw Authorization %q; it is removed unless keep-authorization-header", got)
	}
	if got := rec.Header().Get("X-Saw-Api-Key"); got != "kept" {
		t.Errorf("oauth must forward x-api-key, the target saw %q", got)
	}
	if got := rec.Header().Get("X-Product"); got != "hello-product" {
		t.Errorf("product %q, want the first that covers the request", got)
	}
	raw, err := base64.StdEncoding.DecodeString(rec.Header().Get("X-Saw-Claims"))
	if err != nil {
		t.Fatal(err)
	}
	var seen map[string]any
	if err := json.Unmarshal(raw, &seen); err != nil {
		t.Fatal(err)
	}
	for _, hidden := range []string{"application_name", "client_id", "api_product_list", "iat", "exp", "access_token"} {
		if _, ok := seen[hidden]; ok {
			t.Errorf("x-authorization-claims carries %s", hidden)
		}
	}
	if seen["developer_email"] != "dev@example.com" || seen["aud"] != "microgateway" || seen["scopes"] == nil {
		t.Errorf("x-authorization-claims lacks claims: %v", seen)
	}
}

// TestBadTokensNeverReachTheTarget: no forged, expired or malformed token gets a request to the target.
func TestBadTokensNeverReachTheTarget(t *testing.T) {
	t.Parallel()
	_, h := newFixture(t, ModeOAuth, &configs.Auth{GracePeriod: 10})
	good := sign(t, claims("hello-product"))
	parts := strings.Split(good, ".")

	none := jwt.NewWithClaims(jwt.SigningMethodNone, claims("hello-product"))
	noneTok, _ := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	hs, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claims("hello-product")).SignedString([]byte(pubPEM))
	rs512, _ := jwt.NewWithClaims(jwt.SigningMethodRS512, claims("hello-product")).SignedString(key(t))
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	foreign, _ := jwt.NewWithClaims(jwt.SigningMethodRS256, claims("hello-product")).SignedString(other)
	expired := claims("hello-product")
	expired["exp"] = t0.Add(-11 * time.Second).Unix()
	future := claims("hello-product")
	future["nbf"] = t0.Add(time.Minute).Unix()
	issuedLater := claims("hello-product")
	issuedLater["iat"] = t0.Add(time.Minute).Unix()
	tampered := claims("hello-product", "admin-product")
	tamperedPayload, _ := json.Marshal(tampered)
	kid := jwt.NewWithClaims(jwt.SigningMethodRS256, claims("hello-product"))
	kid.Header["kid"] = "no-such-kid"
	kidTok, _ := kid.SignedString(key(t))

	tests := map[string]string{
		"alg none":                         noneTok,
		"HS256 keyed with the public key":  hs,
		"RS512":                            rs512,
		"signed by another key":            foreign,
		"expired past the grace period":    sign(t, expired),
		"nbf in the future":                sign(t, future),
		"iat in the future":                sign(t, issuedLater),
		"tampered payload":                 parts[0] + "." + base64.RawURLEncoding.EncodeToString(tamperedPayload) + "." + parts[2],
		"signature cut off":                parts[0] + "." + parts[1] + ".",
		"garbage":                          "!!!",
		"two parts":                        parts[0] + "." + parts[1],
		"base64 of nothing in each part":   "..",
		"header that is not JSON":          "bm90IGpzb24." + parts[1] + "." + parts[2],
		"unknown kid with no JWKS (PEM)":   kidTok, // PEM keys verify it: allowed below
		"good token with trailing garbage": good + "x",
	}
	for desc, tok := range tests {
		t.Run(desc, func(t *testing.T) {
			rec := do(h, "/hello/x", map[string]string{"Authorization": "Bearer " + tok})
			if desc == "unknown kid with no JWKS (PEM)" {
				if rec.Code != 200 {
					t.Fatalf("a kid is only looked up in a JWKS; with PEM keys the signature decides: %d", rec.Code)
				}
				return
			}
			if rec.Code != 401 || rec.Header().Get("X-Reached") != "" {
				t.Fatalf("status %d, reached %q: %s", rec.Code, rec.Header().Get("X-Reached"), rec.Body)
			}
			var body struct{ Error string }
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error != "invalid_token" {
				t.Fatalf("body %s", rec.Body)
			}
		})
	}
}

func TestJWKSelectsTheKeyByKid(t *testing.T) {
	t.Parallel()
	f, _ := newFixture(t, ModeOAuth, nil)
	pub := key(t).PublicKey
	jwks, _ := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "kid": "k1", "n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()), "e": "AQAB",
	}}})
	f.snap.Keys.JWKS = jwks
	h, err := f.chain(ModeOAuth)
	if err != nil {
		t.Fatal(err)
	}
	for kid, want := range map[string]int{"k1": 200, "k2": 401} {
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims("hello-product"))
		tok.Header["kid"] = kid
		s, _ := tok.SignedString(key(t))
		if rec := do(h, "/hello/x", map[string]string{"Authorization": "Bearer " + s}); rec.Code != want {
			t.Errorf("kid %s: status %d, want %d", kid, rec.Code, want)
		}
	}
}

func TestGracePeriodAndCachedTokensExpire(t *testing.T) {
	t.Parallel()
	f, h := newFixture(t, ModeOAuth, &configs.Auth{GracePeriod: 10})
	c := claims("hello-product")
	c["exp"] = t0.Add(time.Minute).Unix()
	tok := "Bearer " + sign(t, c)
	if rec := do(h, "/hello/x", map[string]string{"Authorization": tok}); rec.Code != 200 {
		t.Fatalf("fresh token: %d", rec.Code)
	}
	f.clock.t = t0.Add(time.Minute + 5*time.Second) // expired, inside the grace period
	if rec := do(h, "/hello/x", map[string]string{"Authorization": tok}); rec.Code != 200 {
		t.Fatalf("inside the grace period: %d", rec.Code)
	}
	f.clock.t = t0.Add(time.Minute + 11*time.Second) // the cached token must not outlive it
	if rec := do(h, "/hello/x", map[string]string{"Authorization": tok}); rec.Code != 401 {
		t.Fatalf("past the grace period: %d", rec.Code)
	}
}

func TestOptions(t *testing.T) {
	t.Parallel()
	good := "Bearer " + sign(t, claims("hello-product"))
	tests := []struct {
		desc   string
		mode   Mode
		auth   *configs.Auth
		hdr    map[string]string
		status int
		check  func(*httptest.ResponseRecorder) string
	}{
		{"allowNoAuthorization", ModeOAuth, &configs.Auth{AllowNoAuthorization: true}, nil, 200, nil},
		{"allowInvalidAuthorization", ModeOAuth, &configs.Auth{AllowInvalidAuthorization: true}, map[string]string{"Authorization": "Bearer junk"}, 200, nil},
		{"allowOAuthOnly refuses a key", ModeOAuth, &configs.Auth{AllowOAuthOnly: true}, map[string]string{"x-api-key": "good-key"}, 401, nil},
		{"allowAPIKeyOnly ignores Authorization", ModeOAuth, &configs.Auth{AllowAPIKeyOnly: true}, map[string]string{"Authorization": "Basic x", "x-api-key": "good-key"}, 200, nil},
		{"api-key-header", ModeOAuth, &configs.Auth{APIKeyHeader: "X-Key"}, map[string]string{"x-key": "good-key"}, 200, nil},
		{"keep-authorization-header", ModeOAuth, &configs.Auth{KeepAuthorizationHeader: true}, map[string]string{"Authorization": good}, 200,
			func(r *httptest.ResponseRecorder) string {
				if r.Header().Get("X-Saw-Authorization") == "" {
					return "Authorization was removed"
				}
				return ""
			}},
		{"productOnly ignores the product's proxies", ModeOAuth, &configs.Auth{ProductOnly: true}, map[string]string{"x-api-key": "other-key"}, 200, nil},
		{"apikeys: no key", ModeAPIKeys, nil, nil, 401, func(r *httptest.ResponseRecorder) string {
			if r.Body.String() != `{"error":"missing_authorization","error_description":"Missing API Key header"}` {
				return "body " + r.Body.String()
			}
			return ""
		}},
		{"apikeys: a Bearer token is not a key", ModeAPIKeys, nil, map[string]string{"Authorization": good}, 401, nil},
		{"apikeys strips the key", ModeAPIKeys, nil, map[string]string{"x-api-key": "good-key"}, 200, func(r *httptest.ResponseRecorder) string {
			if r.Header().Get("X-Saw-Api-Key") != "" {
				return "the target saw the key"
			}
			return ""
		}},
		{"apikeys keep-api-key", ModeAPIKeys, &configs.Auth{KeepAPIKey: true}, map[string]string{"x-api-key": "good-key"}, 200, func(r *httptest.ResponseRecorder) string {
			if r.Header().Get("X-Saw-Api-Key") != "good-key" {
				return "the key was removed"
			}
			return ""
		}},
		{"oauthv2: a key is not a token", ModeOAuthV2, nil, map[string]string{"x-api-key": "good-key"}, 401, nil},
		{"oauthv2: token", ModeOAuthV2, nil, map[string]string{"Authorization": good}, 200, nil},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			_, h := newFixture(t, tc.mode, tc.auth)
			rec := do(h, "/hello/x", tc.hdr)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if tc.check != nil {
				if msg := tc.check(rec); msg != "" {
					t.Fatal(msg)
				}
			}
		})
	}
}

func TestEdgeUnreachableForAKeyIs504(t *testing.T) {
	t.Parallel()
	f, _ := newFixture(t, ModeOAuth, nil)
	f.keys.down = true
	h, _ := f.chain(ModeOAuth)
	rec := do(h, "/hello/x", map[string]string{"x-api-key": "good-key"})
	if rec.Code != 504 || !strings.Contains(rec.Body.String(), `"error":"gateway_timeout"`) {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
}

func TestNoPublicKeyIsAConfigErrorForTokensOnly(t *testing.T) {
	t.Parallel()
	f, _ := newFixture(t, ModeOAuthV2, nil)
	f.snap.Keys = configs.Keys{}
	if _, err := f.chain(ModeOAuthV2); err == nil || !strings.Contains(err.Error(), "mgw init") {
		t.Fatalf("oauthv2 without a key pair: err = %v", err)
	}
	// oauth in local mode without a key pair still serves API keys
	// (the embedded default's demo app); a Bearer token cannot verify.
	f, _ = newFixture(t, ModeOAuth, nil)
	f.snap.Keys = configs.Keys{}
	h, err := f.chain(ModeOAuth)
	if err != nil {
		t.Fatal(err)
	}
	if rec := do(h, "/hello/x", map[string]string{"Authorization": "Bearer " + sign(t, claims("hello-product"))}); rec.Code != 401 {
		t.Fatalf("a token with no key to verify it: %d", rec.Code)
	}
}

// FuzzAuthHeaders sends arbitrary Authorization and API key values: the
// plugin never panics, answers with one of its statuses and a JSON body,
// and only a token it signed gets through.
func FuzzAuthHeaders(f *testing.F) {
	good := sign(f, claims("hello-product"))
	for _, s := range []string{"", "Bearer ", "Bearer " + good, "Bearer a.b.c", "Basic x", "Bearer " + good[:len(good)-3], "Bearer ..", "Bearer \x00"} {
		f.Add(s, "")
		f.Add(s, "good-key")
	}
	_, h := newFixture(f, ModeOAuth, nil)
	f.Fuzz(func(t *testing.T, authz, apiKey string) {
		r := httptest.NewRequest("GET", "/hello/x", nil)
		if authz != "" {
			r.Header["Authorization"] = []string{authz}
		}
		if apiKey != "" {
			r.Header["X-Api-Key"] = []string{apiKey}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		switch rec.Code {
		case 200:
			if authz != "" && authz != "Bearer "+good {
				t.Fatalf("Authorization %q got through", authz)
			}
			if authz == "" && apiKey != "good-key" {
				t.Fatalf("api key %q got through", apiKey)
			}
		case 400, 401, 403:
			if !json.Valid(rec.Body.Bytes()) {
				t.Fatalf("body is not JSON: %q", rec.Body)
			}
		default:
			t.Fatalf("status %d", rec.Code)
		}
	})
}
