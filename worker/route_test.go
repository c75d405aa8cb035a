package worker

import (
	"fmt"
	"sort"
	"strings"
	"testing"
)

// scanOracle is the linear match the router replaced (what scan does
// for small orgs), kept as the oracle of the tree.
func scanOracle(routes []*route, path string) *route {
	for _, r := range routes {
		bp := r.proxy.basePath
		if bp == "/" {
			return r
		}
		if strings.HasPrefix(path, bp) && (len(path) == len(bp) || path[len(bp)] == '/') {
			return r
		}
	}
	return nil
}

// routesOf builds routes for base paths, in configuration order, sorted
// as compile sorts them.
func routesOf(bases ...string) []*route {
	routes := make([]*route, len(bases))
	for i, bp := range bases {
		routes[i] = &route{name: fmt.Sprintf("r%d:%s", i, bp), proxy: &proxy{basePath: bp}}
	}
	sort.SliceStable(routes, func(i, j int) bool {
		return len(routes[i].proxy.basePath) > len(routes[j].proxy.basePath)
	})
	return routes
}

func nameOf(r *route) string {
	if r == nil {
		return "404"
	}
	return r.name
}

func TestRouterMatchesAsTheScan(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc  string
		bases []string
		path  string
		want  string
	}{
		{"exact", []string{"/hello"}, "/hello", "r0:/hello"},
		{"trailing slash", []string{"/hello"}, "/hello/", "r0:/hello"},
		{"below", []string{"/hello"}, "/hello/x", "r0:/hello"},
		{"not a segment boundary", []string{"/hello"}, "/helloworld", "404"},
		{"longest wins", []string{"/a", "/a/b", "/a/b/c"}, "/a/b/x", "r1:/a/b"},
		{"longest wins whatever the order", []string{"/a/b/c", "/a/b", "/a"}, "/a/b/c/d", "r0:/a/b/c"},
		{"root catches the rest", []string{"/", "/a"}, "/b", "r0:/"},
		{"root loses to a longer one", []string{"/", "/a"}, "/a/x", "r1:/a"},
		{"root takes a path without slash", []string{"/"}, "*", "r0:/"},
		{"no root, no slash", []string{"/a"}, "a", "404"},
		{"empty path", []string{"/a"}, "", "404"},
		{"empty path, root", []string{"/a", "/"}, "", "r1:/"},
		{"doubled slash", []string{"/a"}, "/a//b", "r0:/a"},
		{"inner doubled slash", []string{"/a/b"}, "/a//b", "404"},
		{"case matters", []string{"/Hello"}, "/hello", "404"},
		{"first of two equal base paths", []string{"/a", "/a"}, "/a", "r0:/a"},
		{"base path with trailing slash", []string{"/x/"}, "/x/", "r0:/x/"},
		{"base path with trailing slash, deeper", []string{"/x/"}, "/x/y", "404"},
		{"base path with trailing slash, doubled", []string{"/x/"}, "/x//y", "r0:/x/"},
		{"prefix of a segment", []string{"/ab/c"}, "/a", "404"},
		{"dots are bytes", []string{"/a.b"}, "/a.b/c", "r0:/a.b"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			routes := routesOf(tc.bases...)
			if got := nameOf(scanOracle(routes, tc.path)); got != tc.want {
				t.Fatalf("the oracle says %s for %q, the table %s: fix the table", got, tc.path, tc.want)
			}
			if got := nameOf(newTree(routes).match(tc.path)); got != tc.want {
				t.Errorf("tree %v: %q → %s, want %s", tc.bases, tc.path, got, tc.want)
			}
			if got := nameOf(newRouter(routes).match(tc.path)); got != tc.want {
				t.Errorf("router %v: %q → %s, want %s", tc.bases, tc.path, got, tc.want)
			}
		})
	}
}

// FuzzRouter compares the router with the scan: base paths are the
// "|"-separated fields of bases that start with "/" (as validation
// requires), the path anything.
func FuzzRouter(f *testing.F) {
	f.Add("/a|/a/b|/|/x/", "/a/b/c")
	f.Add("/hello|/hello/world", "/helloworld")
	f.Add("/a//b|/a", "/a//b/")
	f.Fuzz(func(t *testing.T, bases, path string) {
		var bps []string
		for _, bp := range strings.Split(bases, "|") {
			if strings.HasPrefix(bp, "/") {
				bps = append(bps, bp)
			}
		}
		routes := routesOf(bps...)
		want, got := scanOracle(routes, path), newTree(routes).match(path)
		if got != want {
			t.Errorf("%q: %q → %s, the scan says %s", bps, path, nameOf(got), nameOf(want))
		}
	})
}

// org builds n proxies, /api/v1/proxy-<i>, as compile sorts them.
func orgRoutes(n int) []*route {
	bases := make([]string, n)
	for i := range bases {
		bases[i] = fmt.Sprintf("/api/v1/proxy-%d", i)
	}
	return routesOf(bases...)
}

// BenchmarkMatch is the routing cost for the first and last configured
// proxy and a 404, with 1 and 10k proxies, for the router (a scan for 1,
// the tree for 10k) and the scan it replaced.
func BenchmarkMatch(b *testing.B) {
	for _, n := range []int{1, 10000} {
		routes := orgRoutes(n)
		rt := newRouter(routes)
		paths := map[string]string{
			"first": "/api/v1/proxy-0/orders/42",
			"last":  fmt.Sprintf("/api/v1/proxy-%d/orders/42", n-1),
			"404":   "/api/v2/nothing/here",
		}
		for _, which := range []string{"first", "last", "404"} {
			path := paths[which]
			b.Run(fmt.Sprintf("router/%d/%s", n, which), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					rt.match(path)
				}
			})
			b.Run(fmt.Sprintf("scan/%d/%s", n, which), func(b *testing.B) {
				for b.Loop() {
					scanOracle(routes, path)
				}
			})
		}
	}
}
