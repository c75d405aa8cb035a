package analytics

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/plugins"
)

// keep is a record sink that keeps a copy of each record.
type keep struct{ recs [][]byte }

func (k *keep) Record(rec []byte) { k.recs = append(k.recs, append([]byte(nil), rec...)) }

// TestRecordRequestURI checks the request URI and the target URL of
// records made one after another, which share the plugin's scratch
// buffers: each has its own scheme, host, path and query, and none shows
// a byte of another.
func TestRecordRequestURI(t *testing.T) {
	snap, err := configs.Parse([]byte("[[proxies]]\nname = \"p\"\nbase_path = \"/p\"\nurl = \"http://127.0.0.1:1\"\n"), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	sink := &keep{}
	clock := time.Unix(1_700_000_000, 0)
	p, err := New(plugins.Env{Analytics: sink, Now: func() time.Time { return clock }}, snap, &snap.Config.Proxies[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		target, host string
		tls          bool
		want         string
		// the proxy's request to the target, and the target_url it makes
		upstream, wantTarget string
	}{
		{"/p/a/long/path/with/segments?x=1&y=two", "a-very-long-host-name.example.com:8443", false, "http://a-very-long-host-name.example.com:8443/p/a/long/path/with/segments?x=1&y=two",
			"http://a-long-target-host.internal:9000/base/a/long/path?x=1", "http://a-long-target-host.internal:9000/base/a/long/path?x=1"},
		{"/p/b", "h", true, "https://h/p/b", "https://t/b", "https://t/b"},
		{"/p/c?q=%C3%A9<&>", "h", false, "http://h/p/c?q=%C3%A9<&>", "http://t:1/c?q=%C3%A9", "http://t:1/c?q=%C3%A9"},
		{"/p/", "h2", false, "http://h2/p/", "", ""},
	} {
		r := httptest.NewRequest("GET", tc.target, nil)
		r.Host = tc.host
		if tc.tls {
			r.TLS = &tls.ConnectionState{}
		}
		r = plugins.WithExchange(r, &plugins.Exchange{})
		next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if tc.upstream != "" {
				u, err := url.Parse(tc.upstream)
				if err != nil {
					t.Fatal(err)
				}
				plugins.ExchangeOf(r).Target = u
			}
			w.WriteHeader(200)
		})
		p.ServeHTTP(httptest.NewRecorder(), r, next)
		var rec Record
		if err := json.Unmarshal(sink.recs[len(sink.recs)-1], &rec); err != nil {
			t.Fatal(err)
		}
		if rec.RequestURI != tc.want {
			t.Errorf("%s on %s: request_uri %q, want %q", tc.target, tc.host, rec.RequestURI, tc.want)
		}
		if rec.TargetURL != tc.wantTarget {
			t.Errorf("%s: target_url %q, want %q", tc.upstream, rec.TargetURL, tc.wantTarget)
		}
	}
}
