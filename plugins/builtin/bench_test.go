package builtin

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"syscall"
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

// header is a ResponseWriter that keeps nothing but its header map, which
// the benchmark clears between requests, so that a link's cost is not
// hidden under httptest's.
type header struct {
	h      http.Header
	status int
}

func (w *header) Header() http.Header         { return w.h }
func (w *header) Write(b []byte) (int, error) { return len(b), nil }
func (w *header) WriteHeader(c int)           { w.status = c }
func (w *header) Status() int                 { return w.status }

// reportCPU starts counting the process's CPU time (user and system); the
// function it returns reports it per operation as cpu-ns/op. On a shared
// machine, wall time per operation counts the time other processes held
// the core; CPU time does not.
func reportCPU(b *testing.B) func() {
	cpu := func() time.Duration {
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	start := cpu()
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64(cpu()-start)/float64(b.N), "cpu-ns/op")
		}
	}
}

// BenchmarkLinks measures each link of the full chain on its own, with
// one request reused per goroutine: the worker's exchange per request,
// the target's side set by a stand-in for the proxy (three clock reads,
// as the proxy makes), and a record sink that drops the record. Subtract
// "none" to get what a link adds: analytics is the record and its
// encoding, oauth the token cache lookup and claims header, and
// spikearrest and quota their shared-memory words.
//
//	go test -run '^$' -bench Links -benchmem -cpu 1 ./plugins/builtin
func BenchmarkLinks(b *testing.B) {
	key := testKey(b)
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"api_product_list": []any{"p"}, "application_name": "app", "client_id": "c",
		"developer_email": "dev@example.com", "access_token": "opaque", "iss": "https://example.com/token",
		"aud": "microgateway", "jti": "0123456789abcdef", "iat": time.Now().Unix(),
		"exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString(key)
	target, _ := url.Parse("http://127.0.0.1:8080/x")
	for _, tc := range []struct {
		name, seq string
		analytics bool
	}{
		{"none", `[]`, false},
		{"analytics", `[]`, true},
		{"oauth", `["oauth"]`, false},
		{"oauth+spikearrest", `["oauth", "spikearrest"]`, false},
		{"oauth+quota", `["oauth", "quota"]`, false},
		{"oauth+spikearrest+quota", `["oauth", "spikearrest", "quota"]`, false},
		{"full", `["oauth", "spikearrest", "quota"]`, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			src := `
[edgemicro.plugins]
sequence = ` + tc.seq + `
[spikearrest]
timeUnit = "second"
allow = 1000000000
[[proxies]]
name = "p"
base_path = "/p"
url = "http://127.0.0.1:8080"
[[products]]
name = "p"
proxies = ["p"]
apiResources = ["/**"]
quota = 1000000000
quotaInterval = 1
quotaTimeUnit = "minute"
`
			if tc.analytics {
				src += "[analytics]\n"
			}
			snap, err := configs.Parse([]byte(src), func(string) (string, bool) { return "", false })
			if err != nil {
				b.Fatal(err)
			}
			snap.Keys.PublicKeys = []string{publicPEM(key)}
			env := plugins.Env{Logger: zerolog.Nop(), Now: time.Now, Zone: zone.New(1024), Analytics: discard{}}
			h, err := plugins.Chain(env, snap, &snap.Config.Proxies[0], http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if x := plugins.ExchangeOf(r); x != nil {
					x.Target, x.TargetStatus = target, 200
					x.TargetSentStart = time.Now()
					x.TargetReceivedStart = time.Now()
					x.TargetReceivedEnd = time.Now()
				}
				w.WriteHeader(200)
			}))
			if err != nil {
				b.Fatal(err)
			}
			authz := []string{"Bearer " + tok}
			b.ReportAllocs()
			defer reportCPU(b)()
			b.RunParallel(func(pb *testing.PB) {
				base := httptest.NewRequest("GET", "/p/x?a=1", nil)
				base.Header.Set("User-Agent", "wrk")
				base.Header.Set("X-Request-Id", "b7c2e1d0-5f3a-4c8e-9a61-2d4f8b0e7c13")
				w := &header{h: http.Header{}}
				for pb.Next() {
					base.Header["Authorization"] = authz
					clear(w.h)
					w.status = 0
					r := plugins.WithExchange(base, &plugins.Exchange{Start: time.Now()})
					h.ServeHTTP(w, r)
					if w.status != 200 {
						b.Fatalf("status %d", w.status)
					}
				}
			})
		})
	}
}
