package oauth

import (
	"testing"

	"github.com/mgw-gateway/mgw/configs"
)

// TestResourceRules follows edgemicro's apiResources rules, including the net
// effects seen when edgemicro's own function was run (docs/COMPATIBILITY.md).
func TestResourceRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		base      string
		resources []string
		allowed   []string
		denied    []string
	}{
		{"/hello", []string{"/**"}, []string{"/hello/x", "/hello/x/y", "/hello/x/"}, []string{"/hello", "/hello/"}},
		{"/hello", []string{"/"}, []string{"/hello", "/hello/", "/hello/x/y"}, nil},
		{"/hello", nil, []string{"/hello", "/hello/x"}, nil},
		{"/hello", []string{"/*"}, []string{"/hello/x", "/hello/x/"}, []string{"/hello/x/y", "/hello"}},
		{"/hello", []string{"/a/*/c"}, []string{"/hello/a/b/c", "/HELLO/A/B/C"}, []string{"/hello/a/c", "/hello/a/b/c/d"}},
		{"/hello", []string{"/hello/**"}, []string{"/hello/x", "/hello/hello/x"}, []string{"/hello", "/hellox/y"}},
		{"/hello", []string{"/a"}, []string{"/hello/a", "/hello/a/"}, []string{"/hello/ab", "/hello/b"}},
		{"/hello", []string{"/a.b"}, []string{"/hello/a.b"}, []string{"/hello/aXb"}},
		{"/", []string{"/v1/**"}, []string{"/v1/x"}, []string{"/v2/x"}},
	}
	for _, tc := range tests {
		products := []configs.Product{{Name: "p", Proxies: []string{"px"}, APIResources: tc.resources}}
		rule := compileRules(products, &configs.Proxy{Name: "px", BasePath: tc.base}, false)["p"]
		for _, path := range tc.allowed {
			if !rule.allows(path) {
				t.Errorf("base %s resources %v: %s denied, want allowed", tc.base, tc.resources, path)
			}
		}
		for _, path := range tc.denied {
			if rule.allows(path) {
				t.Errorf("base %s resources %v: %s allowed, want denied", tc.base, tc.resources, path)
			}
		}
	}
}

func TestProductMustListTheProxy(t *testing.T) {
	t.Parallel()
	products := []configs.Product{{Name: "p", Proxies: []string{"other"}, APIResources: []string{"/"}}}
	proxy := &configs.Proxy{Name: "px", BasePath: "/x"}
	if compileRules(products, proxy, false)["p"].allows("/x/y") {
		t.Error("a product that does not list the proxy allowed it")
	}
	if !compileRules(products, proxy, true)["p"].allows("/x/y") {
		t.Error("productOnly: the product's proxies must not matter")
	}
}

// resourcePaths probe the edges of the <literal>/** fast path: case, a
// newline, trailing slashes, the base path alone, runes that fold to
// ASCII (the Kelvin sign folds to k, ſ to s), bytes that are not UTF-8.
var resourcePaths = []string{
	"/hello", "/hello/", "/hello//", "/hello/x", "/hello/x/", "/HELLO/X", "/Hello/a/b/c/", "/hello/\n", "/hello/x\ny",
	"/hello/a/", "/hello/a", "/hello/a/x", "/hello/A/x/", "/hello/ab/x", "/hellox/y", "/h\u212Allo/x", "/hello/\u212A/",
	"/hello/\u017F/x", "/hello/s/x", "/hello/\xff/x", "/v1/x", "/V1/", "/v1/", "/v1", "/v2/x", "/x/y", "/", "",
}

// resourceSets are resources with and without the fast path.
var resourceSets = [][]string{
	{"/**"}, {"/a/**"}, {"/hello/**"}, {"/v1/**"}, {"/a/**", "/b"}, {"/*/**"}, {"**"}, {"/**/x"}, {"/k/**"}, {"/s/**"}, {"a/**"}, {"//**"},
}

// checkAgainstExpressions compares allows with its fast path to allows
// with every resource's regular expression alone.
func checkAgainstExpressions(t *testing.T, base string, resources, paths []string) {
	t.Helper()
	set := newRuleSet([]configs.Product{{Name: "p", Proxies: []string{"px"}, APIResources: resources}})
	v := newProxyRules(set, &configs.Proxy{Name: "px", BasePath: base}, false)
	got := make([]bool, len(paths))
	for i, path := range paths {
		got[i] = v.allows("p", path)
	}
	for _, r := range set.byName["p"].res {
		r.lit = ""
	}
	for i, path := range paths {
		if want := v.allows("p", path); got[i] != want {
			t.Errorf("base %s resources %q: allows(%q) = %t, the expressions say %t", base, resources, path, got[i], want)
		}
	}
}

// TestLiteralPrefixAgreesWithTheExpression checks the fast path for
// resources of the form <literal>/** against their regular expressions.
func TestLiteralPrefixAgreesWithTheExpression(t *testing.T) {
	t.Parallel()
	for _, base := range []string{"/hello", "/", "/v1", "/HeLLo/"} {
		for _, res := range resourceSets {
			checkAgainstExpressions(t, base, res, resourcePaths)
		}
	}
}

// FuzzLiteralPrefix checks the fast path against the expressions on any path.
func FuzzLiteralPrefix(f *testing.F) {
	for _, p := range resourcePaths {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, path string) {
		for _, res := range resourceSets {
			checkAgainstExpressions(t, "/hello", res, []string{path})
		}
	})
}
