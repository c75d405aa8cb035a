package oauth

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/mgw-gateway/mgw/configs"
)

// oracleRule is the per proxy × product compilation mgw had before
// ruleSet, kept as the oracle the shared compilation must agree with.
type oracleRule struct {
	covers, all    bool
	plain, slashed []*regexp.Regexp
}

func oracleCompile(p *configs.Product, proxy *configs.Proxy, productOnly bool) *oracleRule {
	r := &oracleRule{covers: productOnly}
	for _, px := range p.Proxies {
		if px == proxy.Name {
			r.covers = true
		}
	}
	if len(p.APIResources) == 0 {
		r.all = true
	}
	for _, res := range p.APIResources {
		if res == "/" {
			r.all = true
			continue
		}
		pat := res
		if !strings.Contains(res, proxy.BasePath) || proxy.BasePath == "/" {
			if strings.HasPrefix(res, "/") {
				pat = strings.TrimSuffix(proxy.BasePath, "/") + res
			} else {
				pat = strings.TrimSuffix(proxy.BasePath, "/") + "/" + res
			}
		}
		re := globToRegexp(pat)
		r.plain = append(r.plain, regexp.MustCompile("(?i)^"+re+"/?$"))
		if strings.HasPrefix(res, "/") && !strings.HasPrefix(res, "//") {
			r.slashed = append(r.slashed, regexp.MustCompile("(?i)^"+re+"//?$"))
		} else {
			r.slashed = append(r.slashed, regexp.MustCompile("(?i)^"+re+"/?$"))
		}
	}
	return r
}

func (r *oracleRule) allows(path string) bool {
	if !r.covers {
		return false
	}
	if r.all {
		return true
	}
	res := r.plain
	if strings.HasSuffix(path, "/") {
		res = r.slashed
	}
	for _, re := range res {
		if re.MatchString(path) {
			return true
		}
	}
	return false
}

// agree checks the shared compilation against the oracle for one base
// path, one product and one request path.
func agree(t *testing.T, base string, resources []string, listed, productOnly bool, path string) {
	t.Helper()
	proxies := []string{"other"}
	if listed {
		proxies = append(proxies, "px")
	}
	product := configs.Product{Name: "p", Proxies: proxies, APIResources: resources}
	proxy := &configs.Proxy{Name: "px", BasePath: base}
	want := oracleCompile(&product, proxy, productOnly).allows(path)
	got := newProxyRules(newRuleSet([]configs.Product{product}), proxy, productOnly).allows("p", path)
	if got != want {
		t.Errorf("base %q resources %q listed %t productOnly %t: path %q allowed %t, the oracle says %t",
			base, resources, listed, productOnly, path, got, want)
	}
}

// TestRulesAgreeWithOracle compares every base path, resource and path
// built from a small alphabet of the tricky parts: case, Unicode folds,
// globs, doubled and trailing slashes, resources holding the base path.
func TestRulesAgreeWithOracle(t *testing.T) {
	t.Parallel()
	bases := []string{"/", "/hello", "/HeLLo", "/a/b", "/k", "/\u212a", "/s", "/x*", "/a.b"}
	resources := [][]string{nil, {"/"}, {"/**"}, {"/*"}, {"/a/*/c"}, {"/hello/**"}, {"a"}, {"//a"},
		{"/a", "/b/**"}, {"/a/b/**"}, {"**"}, {"/hello"}, {"hello/*"}, {"/a.b"}, {"/\u212a/*"}, {"/ſ"}}
	paths := []string{"", "/", "//", "/hello", "/hello/", "/hello//", "/HELLO/A/B/C", "/hello/a/b/c", "/hello/a",
		"/hello/a/", "/hello/a//", "/hello/hello/x", "/hellox/y", "/a/b", "/a/b/", "/a/b/x", "/k/a", "/K/a",
		"/\u212a/a", "/\u212a/a/", "/S/ſ", "/s/ſ/", "/x1/a", "/x*/a", "/a.b/a.b", "/aXb/a", "/\xff/a", "/hello/b/x"}
	for _, base := range bases {
		for _, res := range resources {
			for _, path := range paths {
				for _, listed := range []bool{true, false} {
					agree(t, base, res, listed, false, path)
				}
				agree(t, base, res, false, true, path)
			}
		}
	}
}

// FuzzRulesAgreeWithOracle lets the fuzzer pick the base path, one
// resource and the request path.
func FuzzRulesAgreeWithOracle(f *testing.F) {
	f.Add("/hello", "/a/*/c", "/HELLO/A/B/C")
	f.Add("/k", "/**", "/\u212a/x/")
	f.Add("/", "v1/*", "/v1/x//")
	f.Add("/a/b", "/a/b/**", "/a/b/x")
	f.Fuzz(func(t *testing.T, base, res, path string) {
		if !strings.HasPrefix(base, "/") || !validUTF8(base) || !validUTF8(res) {
			return // configurations are UTF-8 and base paths start with "/"
		}
		agree(t, base, []string{res}, true, false, path)
	})
}

func validUTF8(s string) bool {
	_, err := regexp.Compile(regexp.QuoteMeta(s))
	return err == nil && strings.ToValidUTF8(s, "\ufffd") == s
}

// org builds n proxies and m products; product j lists proxies j and
// j+1 (mod n) with two resources, as a mid-size org does.
func org(n, m int) ([]configs.Proxy, []configs.Product) {
	proxies := make([]configs.Proxy, n)
	for i := range proxies {
		proxies[i] = configs.Proxy{Name: fmt.Sprintf("proxy-%d", i), BasePath: fmt.Sprintf("/api/v1/proxy-%d", i)}
	}
	products := make([]configs.Product, m)
	for j := range products {
		products[j] = configs.Product{Name: fmt.Sprintf("product-%d", j),
			Proxies:      []string{proxies[j%n].Name, proxies[(j+1)%n].Name},
			APIResources: []string{"/**", "/orders/*/items"}}
	}
	return proxies, products
}

// BenchmarkCompileRules measures what one worker does at start for the
// oauth plugin: the revision's ruleSet once, then each proxy's view.
func BenchmarkCompileRules(b *testing.B) {
	for _, size := range []int{100, 1000} {
		proxies, products := org(size, size)
		b.Run(fmt.Sprintf("%dx%d", size, size), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				set := newRuleSet(products)
				for i := range proxies {
					_ = newProxyRules(set, &proxies[i], false)
				}
			}
		})
	}
}

// BenchmarkCompileRulesOracle is the per-pair compilation, for the
// before figure (100×100 only: 1k×1k takes minutes and gigabytes).
func BenchmarkCompileRulesOracle(b *testing.B) {
	proxies, products := org(100, 100)
	b.ReportAllocs()
	for b.Loop() {
		for i := range proxies {
			for j := range products {
				_ = oracleCompile(&products[j], &proxies[i], false)
			}
		}
	}
}

// BenchmarkAllows is the request-time cost of a product's decision.
func BenchmarkAllows(b *testing.B) {
	proxies, products := org(1000, 1000)
	v := newProxyRules(newRuleSet(products), &proxies[7], false)
	b.ReportAllocs()
	for b.Loop() {
		if !v.allows("product-7", "/api/v1/proxy-7/orders/42/items") {
			b.Fatal("denied")
		}
	}
}
