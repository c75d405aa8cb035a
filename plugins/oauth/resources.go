package oauth

import (
	"regexp"
	"strings"

	"github.com/mgw-gateway/mgw/configs"
)

// productRule is what one product allows on one proxy.
type productRule struct {
	name    string
	covers  bool // the product lists the proxy (or productOnly)
	all     bool // no resources, or "/"
	plain   []*regexp.Regexp
	slashed []*regexp.Regexp // for request paths ending in "/"
}

// compileRules prepares, for proxy, every product's rule, following
// edgemicro's validateResourcePath: "/" allows everything; otherwise the
// pattern is base path + resource (unless the resource holds the base
// path already), ** matches anything, * one segment, anchored, an
// optional trailing "/", case-insensitive; and when the request path ends
// in "/" and the resource starts with a single "/", a "/" is appended.
func compileRules(products []configs.Product, proxy *configs.Proxy, productOnly bool) map[string]*productRule {
	rules := make(map[string]*productRule, len(products))
	for i := range products {
		p := &products[i]
		r := &productRule{name: p.Name, covers: productOnly}
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
		rules[p.Name] = r
	}
	return rules
}

func globToRegexp(pat string) string {
	var b strings.Builder
	for i := 0; i < len(pat); i++ {
		switch {
		case strings.HasPrefix(pat[i:], "**"):
			b.WriteString(".*")
			i++
		case pat[i] == '*':
			b.WriteString("[^/]+")
		default:
			b.WriteString(regexp.QuoteMeta(pat[i : i+1]))
		}
	}
	return b.String()
}

// allows reports whether r lets a request for path through.
func (r *productRule) allows(path string) bool {
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
