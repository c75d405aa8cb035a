package builtin

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/plugins"
)

// chain builds the first proxy's chain of a local config around a target
// that echoes the request headers it saw.
func chain(t *testing.T, toml string) http.Handler {
	t.Helper()
	snap, err := configs.Parse([]byte(toml+`
[[proxies]]
name = "p"
base_path = "/p"
url = "mock://echo"
`), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	h, err := plugins.Chain(plugins.Env{Logger: zerolog.Nop()}, snap, &snap.Config.Proxies[0], http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Target-Saw", r.Header.Get("X-Foo-Request-Id"))
		_, _ = w.Write([]byte("hello from the target"))
	}))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func serve(h http.Handler, method, path string, hdr map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, nil)
	r.RemoteAddr = "192.168.1.20:5555"
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

func TestBundledPlugins(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc, toml, method, path string
		hdr                      map[string]string
		check                    func(*httptest.ResponseRecorder) string
	}{
		{"header-uppercase stamps both ways and upper-cases the body",
			"[edgemicro.plugins]\nsequence = [\"header-uppercase\"]\n", "GET", "/p/x", nil,
			func(r *httptest.ResponseRecorder) string {
				if r.Body.String() != "HELLO FROM THE TARGET" || r.Header().Get("X-Target-Saw") == "" ||
					r.Header().Get("X-Foo-Response-Id") == "" || r.Header().Get("X-Foo-Response-Time") == "" {
					return "body " + r.Body.String()
				}
				return ""
			}},
		{"header-uppercase reads its section",
			"[edgemicro.plugins]\nsequence = [\"header-uppercase\"]\n[header-uppercase]\nuppercase_body = false\n", "GET", "/p/x", nil,
			func(r *httptest.ResponseRecorder) string {
				if r.Body.String() != "hello from the target" {
					return "body " + r.Body.String()
				}
				return ""
			}},
		{"cors preflight answers without the target",
			"[edgemicro.plugins]\nsequence = [\"cors\"]\n", "OPTIONS", "/p/x", map[string]string{"Origin": "https://app.example"},
			func(r *httptest.ResponseRecorder) string {
				if r.Code != 200 || r.Header().Get("Access-Control-Allow-Origin") != "https://app.example" ||
					r.Header().Get("Access-Control-Max-Age") != "3628800" || r.Body.Len() != 0 {
					return "preflight " + r.Header().Get("Access-Control-Allow-Origin")
				}
				return ""
			}},
		{"cors on a plain request",
			"[edgemicro.plugins]\nsequence = [\"cors\"]\n[cors]\ncors-origin = \"https://only.example\"\n", "GET", "/p/x", map[string]string{"Origin": "https://app.example"},
			func(r *httptest.ResponseRecorder) string {
				if r.Header().Get("Access-Control-Allow-Origin") != "https://only.example" || r.Body.String() != "hello from the target" {
					return "origin " + r.Header().Get("Access-Control-Allow-Origin")
				}
				return ""
			}},
		{"accesscontrol denies by the client address",
			"[edgemicro.plugins]\nsequence = [\"accesscontrol\"]\n[accesscontrol]\ndeny = [\"192.168.*.*\"]\n", "GET", "/p/x", map[string]string{"X-Forwarded-For": "10.1.2.3"},
			func(r *httptest.ResponseRecorder) string {
				if r.Code != 403 || r.Body.String() != `{"code":403,"message":"Forbidden"}` {
					return "got " + r.Body.String()
				}
				return ""
			}},
		{"accesscontrol does not believe X-Forwarded-For",
			"[edgemicro.plugins]\nsequence = [\"accesscontrol\"]\n[accesscontrol]\ndeny = [\"10.*.*.*\"]\n", "GET", "/p/x", map[string]string{"X-Forwarded-For": "10.1.2.3"},
			func(r *httptest.ResponseRecorder) string {
				if r.Code != 200 {
					return "refused by a forged X-Forwarded-For"
				}
				return ""
			}},
		{"accesscontrol allow list with deny by default",
			"[edgemicro.plugins]\nsequence = [\"accesscontrol\"]\n[accesscontrol]\nallow = [\"192.168.1.*\"]\nnoRuleMatchAction = \"deny\"\n", "GET", "/p/x", nil,
			func(r *httptest.ResponseRecorder) string {
				if r.Code != 200 {
					return "refused an allowed address"
				}
				return ""
			}},
		{"healthcheck answers itself",
			"[edgemicro.plugins]\nsequence = [\"healthcheck\"]\n[healthcheck]\nhealthcheck_url = \"/p/health\"\n", "GET", "/p/health", nil,
			func(r *httptest.ResponseRecorder) string {
				if r.Code != 200 || !strings.Contains(r.Body.String(), `"pid":`) {
					return "got " + r.Body.String()
				}
				if strings.Contains(r.Body.String(), "hello from the target") {
					return "reached the target"
				}
				return ""
			}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			if msg := tc.check(serve(chain(t, tc.toml), tc.method, tc.path, tc.hdr)); msg != "" {
				t.Fatal(msg)
			}
		})
	}
}

func TestEveryBuiltinIsRegistered(t *testing.T) {
	t.Parallel()
	want := "accesscontrol analytics apikeys cors header-uppercase healthcheck oauth oauthv2 quota spikearrest"
	if got := strings.Join(plugins.Names(), " "); got != want {
		t.Fatalf("registered %q, want %q", got, want)
	}
}

func testKey(tb testing.TB) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func publicPEM(k *rsa.PrivateKey) string {
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}
