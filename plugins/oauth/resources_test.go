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
