package builtin

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/rs/zerolog"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/plugins"
	"github.com/mgw-gateway/mgw/plugins/zone"
)

type discard struct{}

func (discard) Record([]byte) {}

// statusWriter stands for the worker's writer, which knows the status.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(c int) { w.status = c; w.ResponseWriter.WriteHeader(c) }
func (w *statusWriter) Status() int       { return w.status }

// BenchmarkChain measures what the plugins add to a request, without
// HTTP: no plugins, oauth with a cached token, and the full chain.
func BenchmarkChain(b *testing.B) {
	key := testKey(b)
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"api_product_list": []any{"p"}, "application_name": "app", "client_id": "c",
		"exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString(key)
	for _, tc := range []struct{ name, seq string }{
		{"none", `[]`},
		{"oauth", `["oauth"]`},
		{"full", `["oauth", "spikearrest", "quota"]`},
	} {
		b.Run(tc.name, func(b *testing.B) {
			src := `
[edgemicro.plugins]
sequence = ` + tc.seq + `
[spikearrest]
allow = 1000000000
[analytics]
[[proxies]]
name = "p"
base_path = "/p"
url = "mock://echo"
[[products]]
name = "p"
proxies = ["p"]
apiResources = ["/**"]
quota = 1000000000
quotaInterval = 1
quotaTimeUnit = "minute"
`
			if tc.name == "none" {
				src = "[[proxies]]\nname = \"p\"\nbase_path = \"/p\"\nurl = \"mock://echo\"\n"
			}
			snap, err := configs.Parse([]byte(src), func(string) (string, bool) { return "", false })
			if err != nil {
				b.Fatal(err)
			}
			snap.Keys.PublicKeys = []string{publicPEM(key)}
			env := plugins.Env{Logger: zerolog.Nop(), Now: time.Now, Zone: zone.New(1024), Analytics: discard{}}
			h, err := plugins.Chain(env, snap, &snap.Config.Proxies[0], http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(200)
			}))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r := httptest.NewRequest("GET", "/p/x", nil)
					r.Header.Set("Authorization", "Bearer "+tok)
					r = plugins.WithExchange(r, &plugins.Exchange{Start: time.Now()})
					rec := httptest.NewRecorder()
					h.ServeHTTP(&statusWriter{ResponseWriter: rec}, r)
					if rec.Code != 200 {
						b.Fatalf("status %d", rec.Code)
					}
				}
			})
		})
	}
}
