package worker

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestResolveClient(t *testing.T) {
	trusted, err := parseTrustedProxies([]string{"10.0.0.0/8", "192.168.1.1", " ::1 "})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		desc, peer string
		xff        []string
		wantAddr   string
		wantXFF    []string // nil: no header
	}{
		{desc: "untrusted peer: its header is not believed", peer: "203.0.113.9:1000", xff: []string{"10.9.8.7"},
			wantAddr: "203.0.113.9:1000", wantXFF: []string{"10.9.8.7"}},
		{desc: "trusted peer without header", peer: "10.0.0.2:1000",
			wantAddr: "10.0.0.2:1000"},
		{desc: "trusted peer: right-most untrusted", peer: "10.0.0.2:1000", xff: []string{"6.6.6.6, 198.51.100.7, 10.1.1.1"},
			wantAddr: "198.51.100.7:0", wantXFF: []string{"6.6.6.6"}},
		{desc: "several header lines", peer: "192.168.1.1:1000", xff: []string{"6.6.6.6", "198.51.100.7,10.1.1.1"},
			wantAddr: "198.51.100.7:0", wantXFF: []string{"6.6.6.6"}},
		{desc: "all trusted: the left-most", peer: "10.0.0.2:1000", xff: []string{"10.3.3.3, 10.1.1.1"},
			wantAddr: "10.3.3.3:0"},
		{desc: "garbage stops the walk at the last trusted", peer: "10.0.0.2:1000", xff: []string{"1.2.3.4, nonsense, 10.1.1.1"},
			wantAddr: "10.1.1.1:0", wantXFF: []string{"1.2.3.4, nonsense"}},
		{desc: "port and mapped forms", peer: "[::ffff:10.0.0.2]:1000", xff: []string{"198.51.100.7:555"},
			wantAddr: "198.51.100.7:0"},
		{desc: "IPv6 client", peer: "[::1]:1000", xff: []string{"2001:db8::1"},
			wantAddr: "[2001:db8::1]:0"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.peer
		if tc.xff != nil {
			r.Header["X-Forwarded-For"] = tc.xff
		}
		trusted.resolveClient(r)
		if r.RemoteAddr != tc.wantAddr || len(r.Header["X-Forwarded-For"]) != len(tc.wantXFF) ||
			len(tc.wantXFF) > 0 && r.Header["X-Forwarded-For"][0] != tc.wantXFF[0] {
			t.Errorf("%s: client %q, X-Forwarded-For %q; want %q, %q", tc.desc, r.RemoteAddr, r.Header["X-Forwarded-For"], tc.wantAddr, tc.wantXFF)
		}
	}
	for _, tc := range []struct {
		desc, peer string
		proxies    trustedProxies
		want       string
	}{
		{desc: "no trusted proxies", peer: "203.0.113.9:1000", want: ""},
		{desc: "untrusted peer", peer: "203.0.113.9:1000", proxies: trusted, want: ""},
		{desc: "trusted peer", peer: "10.0.0.2:1000", proxies: trusted, want: "https"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.peer
		claims := map[string]string{
			"X-Forwarded-Proto": "https", "Forwarded": "for=6.6.6.6;proto=https", "X-Forwarded-Ssl": "on",
			"Front-End-Https": "on", "X-Forwarded-Scheme": "https", "X-Url-Scheme": "https",
			"X-Forwarded-Port": "443", "X-Real-Ip": "6.6.6.6",
		}
		for k, v := range claims {
			r.Header.Set(k, v)
		}
		r.Header.Set("X-Other", "kept")
		tc.proxies.resolveClient(r)
		for k, v := range claims {
			want := ""
			if tc.want != "" {
				want = v
			}
			if got := r.Header.Get(k); got != want {
				t.Errorf("%s: %s %q kept as %q, want %q", tc.desc, k, v, got, want)
			}
		}
		if r.Header.Get("X-Other") != "kept" {
			t.Errorf("%s: a header that claims nothing was removed", tc.desc)
		}
	}
	if len(forwardingClaims) != 8 {
		t.Errorf("the test covers 8 forwarding claims, there are %d", len(forwardingClaims))
	}
	if _, err := parseTrustedProxies([]string{"10.0.0.0/33"}); err == nil {
		t.Error("a bad CIDR was accepted")
	}
}

// TestTrustedProxyForwarding: through a worker, the target's
// X-Forwarded-For ends with the client address mgw decided on.
func TestTrustedProxyForwarding(t *testing.T) {
	t.Parallel()
	tg := echoTarget(t)
	for _, tc := range []struct {
		trusted, xff, want string
	}{
		{trusted: "", xff: "10.9.8.7", want: "10.9.8.7, 127.0.0.1"},
		{trusted: `"127.0.0.0/8"`, xff: "6.6.6.6, 198.51.100.7, 127.0.0.5", want: "6.6.6.6, 198.51.100.7"},
		{trusted: `"127.0.0.1"`, xff: "", want: "127.0.0.1"},
	} {
		_, srv := newTestWorker(t, "[edgemicro]\ntrusted_proxies = ["+tc.trusted+"]\n"+routes, tg.URL)
		req, _ := http.NewRequest("GET", srv.URL+"/hello/x", nil)
		if tc.xff != "" {
			req.Header.Set("X-Forwarded-For", tc.xff)
		}
		_, body := do(t, req)
		var s seen
		_ = json.Unmarshal(body, &s)
		if got := s.Headers.Get("X-Forwarded-For"); got != tc.want {
			t.Errorf("trusted [%s], client sent %q: target got %q, want %q", tc.trusted, tc.xff, got, tc.want)
		}
	}
}
