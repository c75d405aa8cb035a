package worker

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestNormalizePath(t *testing.T) {
	for _, tc := range []struct {
		in, escaped, path string
		err               error
	}{
		{in: "/", escaped: "/", path: "/"},
		{in: "/a/b", escaped: "/a/b", path: "/a/b"},
		{in: "/a/b/", escaped: "/a/b/", path: "/a/b/"},
		{in: "//a///b//", escaped: "/a/b/", path: "/a/b/"},
		{in: "/a/./b", escaped: "/a/b", path: "/a/b"},
		{in: "/a/b/.", escaped: "/a/b/", path: "/a/b/"},
		{in: "/a/b/..", escaped: "/a/", path: "/a/"},
		{in: "/a/b/../c", escaped: "/a/c", path: "/a/c"},
		{in: "/app/public/%2e%2e/admin", escaped: "/app/admin", path: "/app/admin"},
		{in: "/app/public/%2E./admin", escaped: "/app/admin", path: "/app/admin"},
		{in: "/app/public/.%2e", escaped: "/app/", path: "/app/"},
		{in: "/a/%2e/b", escaped: "/a/b", path: "/a/b"},
		{in: "/%41%7e%5f", escaped: "/A~_", path: "/A~_"},
		{in: "/a%20b", escaped: "/a%20b", path: "/a b"},
		{in: "/a%3bb", escaped: "/a%3Bb", path: "/a;b"},
		{in: "/a;b=c/d!$&'()*+,:@", escaped: "/a;b=c/d!$&'()*+,:@", path: "/a;b=c/d!$&'()*+,:@"},
		{in: "/a|b\"[]", escaped: "/a%7Cb%22%5B%5D", path: "/a|b\"[]"},
		{in: "/a\\..\\admin", err: errPathBackslash},
		{in: "/a/%5c..%5cadmin", err: errPathBackslash},
		{in: "/a/%c0%ae%c0%ae/admin", err: errPathUTF8},
		{in: "/a/%ff", err: errPathUTF8},
		{in: "/caf%C3%A9", escaped: "/caf%C3%A9", path: "/café"},
		{in: "/a/..b/c..", escaped: "/a/..b/c..", path: "/a/..b/c.."},
		{in: "/a/.b", escaped: "/a/.b", path: "/a/.b"},
		{in: "/a/...", escaped: "/a/...", path: "/a/..."},
		{in: "/a/%252e%252e/b", escaped: "/a/%252e%252e/b", path: "/a/%2e%2e/b"},
		{in: "/a/b/../../..", err: errPathAboveRoot},
		{in: "/..", err: errPathAboveRoot},
		{in: "/%2e%2e/etc", err: errPathAboveRoot},
		{in: "/a%2fb", err: errPathSlash},
		{in: "/a%2Fb", err: errPathSlash},
		{in: "/a%00b", err: errPathNUL},
		{in: "/a%zz", err: errPathEscape},
		{in: "/a%2", err: errPathEscape},
		{in: "/a%", err: errPathEscape},
		{in: "/public/..;/admin", err: errPathDotParams},
		{in: "/public/.;x/admin", err: errPathDotParams},
		{in: "", err: errPathForm},
		{in: "*", err: errPathForm},
	} {
		cp, err := normalizePath(tc.in)
		if !errors.Is(err, tc.err) {
			t.Errorf("normalizePath(%q) error = %v, want %v", tc.in, err, tc.err)
			continue
		}
		if err == nil && (cp.escaped != tc.escaped || cp.path != tc.path) {
			t.Errorf("normalizePath(%q) = %q, %q; want %q, %q", tc.in, cp.escaped, cp.path, tc.escaped, tc.path)
		}
	}
}

func TestNormalizePathClimb(t *testing.T) {
	for _, tc := range []struct {
		in, within string
		low        int
		climbed    bool
	}{
		{in: "/api/public/../../admin", within: "/api/public", low: 0, climbed: true},
		{in: "/app/public/%2e%2e/admin", within: "/app/public", low: 1, climbed: true},
		{in: "/a/b/c/../../d/..", within: "/a/b/c", low: 1, climbed: true},
		{in: "/a/./b", climbed: false},
	} {
		cp, err := normalizePath(tc.in)
		if err != nil {
			t.Fatalf("normalizePath(%q): %v", tc.in, err)
		}
		if cp.climbed != tc.climbed || cp.within != tc.within || cp.low != tc.low {
			t.Errorf("normalizePath(%q) climbed %t within %q low %d; want %t %q %d", tc.in, cp.climbed, cp.within, cp.low, tc.climbed, tc.within, tc.low)
		}
	}
}

func TestEscapedLen(t *testing.T) {
	for _, tc := range []struct {
		esc  string
		n, w int
	}{
		{"/a%20b/c", 2, 2}, {"/a%20b/c", 3, 5}, {"/a%20b/c", 4, 6}, {"/a", 9, 2},
	} {
		if got := escapedLen(tc.esc, tc.n); got != tc.w {
			t.Errorf("escapedLen(%q, %d) = %d, want %d", tc.esc, tc.n, got, tc.w)
		}
	}
}

func BenchmarkNormalizePathPlain(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_, _ = normalizePath("/v1/hello/world-123")
	}
}

// FuzzNormalizePath checks the normalizer's promises on any input: the
// output is a path with no dot segment and no empty segment, normalizing
// it again changes nothing, it decodes to path, and it never climbs above
// the root (which Go's path resolution of the decoded output confirms).
func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"/", "/a/../b", "/app/public/%2e%2e/admin", "//a//b/", "/a%2fb", "/%41/./%2E", "/a/..;/b", "/a b/\xff", "/../x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		cp, err := normalizePath(in)
		if err != nil {
			return
		}
		if !strings.HasPrefix(cp.escaped, "/") {
			t.Fatalf("%q: output %q does not start with /", in, cp.escaped)
		}
		segs := strings.Split(cp.escaped[1:], "/")
		for i, s := range segs {
			if s == "." || s == ".." || s == "" && i != len(segs)-1 {
				t.Fatalf("%q: output %q has segment %q", in, cp.escaped, s)
			}
		}
		again, err := normalizePath(cp.escaped)
		if err != nil || again.escaped != cp.escaped || again.path != cp.path || again.climbed {
			t.Fatalf("%q: not idempotent: %q → %q, %v", in, cp.escaped, again.escaped, err)
		}
		dec, err := url.PathUnescape(cp.escaped)
		if err != nil || dec != cp.path {
			t.Fatalf("%q: %q decodes to %q, %v; path %q", in, cp.escaped, dec, err, cp.path)
		}
		for s := range strings.SplitSeq(cp.path, "/") {
			if s == "." || s == ".." {
				t.Fatalf("%q: decoded output %q has a dot segment", in, cp.path)
			}
		}
		if strings.Contains(cp.escaped, "%2F") || strings.Contains(cp.escaped, "%2f") || strings.Contains(cp.escaped, "%00") {
			t.Fatalf("%q: output %q holds a refused escape", in, cp.escaped)
		}
		for i := 0; i < len(cp.escaped); i++ {
			if c := cp.escaped[i]; c != '/' && c != '%' && !pathChar(c) {
				t.Fatalf("%q: output %q holds raw byte %q", in, cp.escaped, c)
			}
		}
		if cp.climbed && cp.low < 0 {
			t.Fatalf("%q: low %d", in, cp.low)
		}
	})
}

// TestPathThroughProxy sends odd paths through a worker and checks what
// the client got and the exact request target the target received.
func TestPathThroughProxy(t *testing.T) {
	t.Parallel()
	tg := echoTarget(t)
	_, srv := newTestWorker(t, routes+`
[[proxies]]
name = "root"
base_path = "/"
url = "TARGET/r%20oot/"
`, tg.URL)
	for _, tc := range []struct {
		path, wantURI string
		wantStatus    int
	}{
		{path: "/hello/a/%2e%2e/b", wantURI: "/v1/b", wantStatus: 200},
		{path: "/hello/a/../../hello/b", wantStatus: 400}, // climbed out of /hello, even if back in
		{path: "/hello/deep/../x", wantStatus: 400},       // out of /hello/deep
		{path: "/hello/a/b/./../c/", wantURI: "/v1/a/c/", wantStatus: 200},
		{path: "/hello/%7euser/a%20b%3b?q=%2e", wantURI: "/v1/~user/a%20b%3B?q=%2e", wantStatus: 200},
		{path: "/hello/a!b;c=d", wantURI: "/v1/a!b;c=d", wantStatus: 200},
		{path: "/hello/a%2fb", wantStatus: 400},
		{path: "/hello/..;/x", wantStatus: 400},
		{path: "/../hello", wantStatus: 400},
		{path: "/hello/..", wantStatus: 400},
		{path: "/x/../hello", wantURI: "/v1", wantStatus: 200}, // within the root proxy's "/"
		{path: "/x/%2E/y%20", wantURI: "/r%20oot/x/y%20", wantStatus: 200},
		{path: "/", wantURI: "/r%20oot/", wantStatus: 200},
	} {
		t.Run(tc.path, func(t *testing.T) {
			t.Parallel()
			req, _ := http.NewRequest("GET", srv.URL, nil)
			req.URL.Opaque = tc.path // sent as it is
			if p, q, ok := strings.Cut(tc.path, "?"); ok {
				req.URL.Opaque, req.URL.RawQuery = p, q
			}
			resp, body := do(t, req)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status = %d, want %d (%s)", resp.StatusCode, tc.wantStatus, body)
			}
			if tc.wantStatus == 400 {
				if !strings.HasPrefix(string(body), `{"message":"the path`) || !strings.HasSuffix(string(body), `,"status":400}`) {
					t.Fatalf("400 body %s", body)
				}
				return
			}
			var s seen
			if err := json.Unmarshal(body, &s); err != nil {
				t.Fatal(err)
			}
			if s.URI != tc.wantURI {
				t.Fatalf("target got %q, want %q", s.URI, tc.wantURI)
			}
		})
	}
}

// FuzzOutgoingPath: whatever the normal path, the request line the
// target gets is the target's path followed by exactly the escaped rest
// that was checked (never escaped again differently), and it decodes to
// the target's path plus the decoded rest.
func FuzzOutgoingPath(f *testing.F) {
	for _, s := range []string{"/api/a%20b;c", "/api", "/api/", "/x/y", "/api/%3B!'()*", "/api/a|b"} {
		f.Add(s)
	}
	target, _ := url.Parse("http://t.example/ba%20se;v=1/")
	f.Fuzz(func(t *testing.T, in string) {
		cp, err := normalizePath(in)
		if err != nil {
			return
		}
		for _, bp := range []string{"/", "/api"} {
			if bp != "/" && cp.path != bp && !strings.HasPrefix(cp.path, bp+"/") {
				continue
			}
			p := &proxy{basePath: bp, target: target, targetPath: strings.TrimSuffix(target.Path, "/"),
				targetEsc: strings.TrimSuffix(target.EscapedPath(), "/")}
			r := httptest.NewRequest("GET", "/", nil)
			r = withCleanPath(r, cp)
			out := p.outgoing(r)
			cut := len(bp)
			if bp == "/" {
				cut = 0
			}
			want := p.targetEsc + cp.escaped[escapedLen(cp.escaped, cut):]
			if want == "" {
				want = "/"
			}
			if got := out.URL.RequestURI(); got != want {
				t.Fatalf("%q under %s: the target gets %q, want %q", in, bp, got, want)
			}
			if dec, _ := url.PathUnescape(want); dec != out.URL.Path {
				t.Fatalf("%q under %s: %q decodes to %q, URL.Path %q", in, bp, want, dec, out.URL.Path)
			}
		}
	})
}
