package edge

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mgw-gateway/mgw/configs"
)

const pemKey = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

func download(boot, products string) *Download {
	return &Download{Bootstrap: []byte(boot), Products: []byte(products), PublicKey: pemKey}
}

func edgeSnap(t *testing.T) *configs.Snapshot {
	t.Helper()
	s, err := configs.Parse([]byte(`[edge_config]
bootstrap = "http://e/b"
jwt_public_key = "http://e/edgemicro-auth/publicKey"
products = "http://e/p"
`), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestMergeKeepsWhatAGatewayCanServe(t *testing.T) {
	t.Parallel()
	boot := `{"apiProxies":[
 {"apiProxyName":"edgemicro_hello","revision":"1","proxyEndpoint":{"name":"default","basePath":"/hello/"},"targetEndpoint":{"name":"default","url":"http://t:8080/v1","timeout":"30000"},"maxConnections":1000},
 {"apiProxyName":"edgemicro_num","proxyEndpoint":{"basePath":"/num"},"targetEndpoint":{"url":"https://t","timeout":1500},"maxConnections":"10"},
 {"apiProxyName":"edgemicro-auth","proxyEndpoint":{"basePath":"/edgemicro-auth"},"targetEndpoint":{"url":"http://a"}},
 {"apiProxyName":"edgemicro_nourl","proxyEndpoint":{"basePath":"/nourl"},"targetEndpoint":{"url":"null"}},
 {"apiProxyName":"edgemicro_nobase","proxyEndpoint":{},"targetEndpoint":{"url":"http://t"}},
 {"apiProxyName":"edgemicro_dup","proxyEndpoint":{"basePath":"/hello"},"targetEndpoint":{"url":"http://t"}},
 {"apiProxyName":"edgemicro_mock","proxyEndpoint":{"basePath":"/mock"},"targetEndpoint":{"url":"mock://echo"}}
]}`
	products := `{"apiProduct":[
 {"name":"p1","proxies":["edgemicro_hello"],"apiResources":["/**"],"quota":"1000","quotaInterval":"1","quotaTimeUnit":"minute","scopes":[]},
 {"name":"p2","proxies":["edgemicro_num"],"quota":"null","quotaInterval":"null","quotaTimeUnit":"null"},
 {"name":"p3","proxies":[],"quota":"5","quotaInterval":"","quotaTimeUnit":"Hour"},
 {"name":"p4","proxies":[],"quota":"5","quotaInterval":"1","quotaTimeUnit":"fortnight"}
]}`
	snap := edgeSnap(t)
	before := snap.Checksum
	if err := Merge(snap, download(boot, products), zerolog.Nop()); err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(snap.Config.Proxies)
	want := "[{edgemicro_hello /hello http://t:8080/v1 30000 1000 1} {edgemicro_num /num https://t 1500 10 }]"
	if got != want {
		t.Errorf("proxies\n got %s\nwant %s", got, want)
	}
	got = fmt.Sprint(snap.Config.Products)
	want = "[{p1 [edgemicro_hello] [/**] [] 1000 1 minute} {p2 [edgemicro_num] [] [] 0 0 } {p3 [] [] [] 5 1 hour} {p4 [] [] [] 0 0 }]"
	if got != want {
		t.Errorf("products\n got %s\nwant %s", got, want)
	}
	if len(snap.Keys.PublicKeys) != 1 || snap.Checksum == before {
		t.Errorf("keys %v, checksum unchanged: %v", snap.Keys.PublicKeys, snap.Checksum == before)
	}
}

func TestDownloadRejectsWhatIsNotEdge(t *testing.T) {
	t.Parallel()
	for desc, d := range map[string]*Download{
		"bootstrap not JSON": download(`<html>`, `{}`),
		"products not JSON":  download(`{}`, `nope`),
		"bad quota":          download(`{}`, `{"apiProduct":[{"name":"p","quota":"lots"}]}`),
		"key not PEM":        {Bootstrap: []byte(`{}`), Products: []byte(`{}`), PublicKey: "<html>"},
	} {
		if err := Merge(edgeSnap(t), d, zerolog.Nop()); err == nil {
			t.Errorf("%s: merged", desc)
		}
	}
}

func TestWildcard(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pattern, name string
		want          bool
	}{
		{"edgemicro_*", "edgemicro_hello", true},
		{"edgemicro_*", "edgemicro-auth", false},
		{"edgemicro_*", "xedgemicro_hello", false},
		{"*", "anything", true},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXcYYb", false},
		{"exact", "exact", true},
		{"exact", "exactly", false},
	} {
		if got := Wildcard(tc.pattern, tc.name); got != tc.want {
			t.Errorf("Wildcard(%q, %q) = %v", tc.pattern, tc.name, got)
		}
	}
}

func TestCacheRoundTripLeavesNoTemporaryFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := CachePath(dir, "org", "env")
	if filepath.Base(path) != "org-env-cache-config.json" {
		t.Fatalf("cache file %s", path)
	}
	d := download(`{"apiProxies":[]}`, `{"apiProduct":[]}`)
	if err := WriteCache(path, d); err != nil {
		t.Fatal(err)
	}
	back, err := ReadCache(path)
	if err != nil {
		t.Fatal(err)
	}
	if back.Checksum() != d.Checksum() {
		t.Fatal("cache round trip changed the download")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
}

func token(exp time.Time) string {
	payload := base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf(`{"exp":%d}`, exp.Unix())))
	return "h." + payload + ".s"
}

func TestKeyCacheAsksEdgeOncePerKeyAndToken(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	var calls atomic.Int32
	release := make(chan struct{})
	k := &KeyCache{
		Now: func() time.Time { return now },
		Verify: func(_ context.Context, key string) (string, error) {
			calls.Add(1)
			<-release
			if key == "bad" {
				return "", fmt.Errorf("%w: %w", ErrKeyRejected, &StatusError{Status: 401})
			}
			return token(now.Add(time.Minute)), nil
		},
	}
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := k.Get(context.Background(), "good"); err != nil {
				t.Error(err)
			}
		}()
	}
	for calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Fatalf("50 concurrent asks made %d calls", n)
	}
	now = now.Add(59 * time.Second)
	_, _ = k.Get(context.Background(), "good")
	if n := calls.Load(); n != 1 {
		t.Fatalf("a live token was asked for again (%d calls)", n)
	}
	now = now.Add(2 * time.Second)
	_, _ = k.Get(context.Background(), "good")
	if n := calls.Load(); n != 2 {
		t.Fatalf("an expired token was not renewed (%d calls)", n)
	}
	if _, err := k.Get(context.Background(), "bad"); !errors.Is(err, ErrKeyRejected) {
		t.Fatalf("bad key: %v", err)
	}
	_, _ = k.Get(context.Background(), "bad")
	if n := calls.Load(); n != 3 {
		t.Fatalf("a refusal was not kept for RejectTTL (%d calls)", n)
	}
}

func TestKeyCacheDoesNotKeepFailures(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	k := &KeyCache{Verify: func(context.Context, string) (string, error) {
		calls.Add(1)
		return "", errors.New("connection refused")
	}}
	for range 3 {
		if _, err := k.Get(context.Background(), "k"); err == nil || strings.Contains(err.Error(), "rejected") {
			t.Fatalf("err = %v", err)
		}
	}
	if calls.Load() != 3 {
		t.Fatalf("a failure to reach Edge was cached: %d calls", calls.Load())
	}
}

// FuzzMerge feeds arbitrary Edge answers to Merge: an error or a valid
// configuration, never a panic.
func FuzzMerge(f *testing.F) {
	f.Add(`{"apiProxies":[{"apiProxyName":"edgemicro_a","proxyEndpoint":{"basePath":"/a"},"targetEndpoint":{"url":"http://t","timeout":"5"}}]}`,
		`{"apiProduct":[{"name":"p","proxies":["edgemicro_a"],"quota":"null"}]}`)
	f.Add(`{"apiProxies":[{"apiProxyName":"edgemicro_a","proxyEndpoint":{"basePath":"a"},"targetEndpoint":{"url":"ftp://t"}}]}`, `{"apiProduct":[{}]}`)
	f.Add(`{}`, `{"apiProduct":[{"name":"p","quota":1,"quotaTimeUnit":"week"}]}`)
	f.Fuzz(func(t *testing.T, boot, products string) {
		snap := edgeSnap(t)
		if err := Merge(snap, download(boot, products), zerolog.Nop()); err != nil {
			return
		}
		if err := snap.Config.Validate(); err != nil {
			t.Fatalf("Merge returned an invalid config: %v", err)
		}
	})
}

// TestMgmtRetriesOnlyGets: a GET is retried after a 5xx, a POST is not,
// and a 4xx carries Edge's message and a hint.
func TestMgmtRetriesOnlyGets(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		if r.URL.Path == "/missing" {
			w.WriteHeader(404)
			_, _ = w.Write([]byte(`{"code":"x","message":"KeyValueMap microgateway does not exist"}`))
			return
		}
		if n%2 == 1 {
			w.WriteHeader(503)
			return
		}
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	defer srv.Close()
	m := NewMgmt(MgmtAuth{Token: "t"})
	m.Pause = time.Millisecond
	var out struct{ OK bool }
	if err := m.Do(context.Background(), "GET", srv.URL+"/x", nil, &out); err != nil || !out.OK || calls.Load() != 2 {
		t.Fatalf("GET after a 503: %v, ok %v, %d calls", err, out.OK, calls.Load())
	}
	calls.Store(0)
	if err := m.Do(context.Background(), "POST", srv.URL+"/x", map[string]string{}, nil); !IsStatus(err, 503) || calls.Load() != 1 {
		t.Fatalf("POST after a 503: %v, %d calls", err, calls.Load())
	}
	err := m.Do(context.Background(), "GET", srv.URL+"/missing", nil, nil)
	if !IsStatus(err, 404) || !strings.Contains(err.Error(), "HTTP 404: KeyValueMap microgateway does not exist (check the org") {
		t.Fatalf("404: %v", err)
	}
}

// TestVerifyRefusesWhatStartRefuses holds verify to start's reading of
// Edge's answers: a bootstrap or products answer without its list fails
// both (a {} from a broken proxy in front of Edge is not an empty org),
// while empty lists pass both, and the public key check passes on a PEM
// key whatever the other answers hold.
func TestVerifyRefusesWhatStartRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		desc, boot, products string
		failed               []string
	}{
		{desc: "empty lists", boot: `{"apiProxies":[]}`, products: `{"apiProduct":[]}`},
		{desc: "bootstrap {}", boot: `{}`, products: `{"apiProduct":[]}`, failed: []string{"bootstrap"}},
		{desc: "products {}", boot: `{"apiProxies":[]}`, products: `{}`, failed: []string{"products"}},
		{desc: "null lists", boot: `{"apiProxies":null}`, products: `{"apiProduct":null}`, failed: []string{"bootstrap", "products"}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/b":
					_, _ = w.Write([]byte(tc.boot))
				case "/p":
					_, _ = w.Write([]byte(tc.products))
				default:
					_, _ = w.Write([]byte(pemKey))
				}
			}))
			defer srv.Close()
			c, err := NewClient(configs.EdgeConfig{Bootstrap: srv.URL + "/b", Products: srv.URL + "/p", JWTPublicKey: srv.URL + "/k"}, Credentials{Key: "k", Secret: "s"})
			if err != nil {
				t.Fatal(err)
			}
			var failed []string
			for _, ch := range c.Verify(context.Background(), "") {
				if ch.Err != nil {
					failed = append(failed, ch.Name)
					if !errors.Is(ch.Err, ErrIncomplete) {
						t.Errorf("%s: %v, want ErrIncomplete", ch.Name, ch.Err)
					}
				}
			}
			if fmt.Sprint(failed) != fmt.Sprint(tc.failed) {
				t.Fatalf("failed checks %v, want %v", failed, tc.failed)
			}
		})
	}
}
