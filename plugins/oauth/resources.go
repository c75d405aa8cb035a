package oauth

import (
	"regexp"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/mgw-gateway/mgw/configs"
)

// Product rules follow edgemicro's validateResourcePath: "/" (or no
// resource at all) allows everything; otherwise the pattern is base path
// + resource (unless the resource holds the base path already), ** matches
// anything, * one segment, anchored, an optional trailing "/",
// case-insensitive; and when the request path ends in "/" and the
// resource starts with a single "/", a "/" is appended.
//
// edgemicro compiles that pattern for every proxy × product pair, and so
// did mgw: 2 regexps per pair, which made an org of 600 proxies × 600
// products take 1.7 GB per worker. Here each product's resources are
// compiled once per configuration revision (a ruleSet, shared by every
// proxy's plugin through plugins.Shared), without the base path: since
// the base path is a literal, "^base+resource/?$" matches a path exactly
// when the path starts with the base path (case-insensitively, rune by
// rune, as (?i) does) and the rest matches "^resource/?$". A request
// path ending in "/" that may end in "//" is matched by the same regexp
// with its last "/" cut, which is what "//?$" means. Only the rare
// resource that holds the base path (matched without it) and the rare base
// path holding a "*" (a glob, not a literal) compile per proxy, lazily.

// ruleSet is the rules of every product of a revision, by name.
type ruleSet struct {
	byName map[string]*productRules
}

// productRules is one product's resources, compiled once.
type productRules struct {
	name    string
	all     bool // no resources, or "/"
	proxies []string
	listed  map[string]bool // the proxies as a set, for long lists
	res     []*resourceRule
}

// resourceRule is one apiResources entry other than "/".
type resourceRule struct {
	res string
	// slashed: a request path ending in "/" may end in "//" (the
	// resource starts with a single "/").
	slashed bool
	// suffix matches the request path after the base path.
	suffix *regexp.Regexp
	// lit is, for a resource of the form <literal>/** (the common /**),
	// the literal and its "/": a rest that starts with it under case
	// folding and goes on without a newline (which "." does not match)
	// matches suffix for sure, without running it. "" for other resources.
	lit string
	// full matches the whole request path, for proxies whose base path
	// the resource holds; compiled on first use.
	fullOnce sync.Once
	full     *regexp.Regexp
}

// longList is the length of a product's proxy list from which a set
// answers "does it list this proxy" instead of a scan.
const longList = 16

// newRuleSet compiles every product's resources once.
func newRuleSet(products []configs.Product) *ruleSet {
	s := &ruleSet{byName: make(map[string]*productRules, len(products))}
	for i := range products {
		p := &products[i]
		pr := &productRules{name: p.Name, proxies: p.Proxies, all: len(p.APIResources) == 0}
		if len(p.Proxies) > longList {
			pr.listed = make(map[string]bool, len(p.Proxies))
			for _, px := range p.Proxies {
				pr.listed[px] = true
			}
		}
		for _, res := range p.APIResources {
			if res == "/" {
				pr.all = true
				continue
			}
			suffix := res
			if !strings.HasPrefix(res, "/") {
				suffix = "/" + res
			}
			pr.res = append(pr.res, &resourceRule{
				res:     res,
				slashed: strings.HasPrefix(res, "/") && !strings.HasPrefix(res, "//"),
				suffix:  anchored(suffix),
				lit:     literalPrefix(suffix),
			})
		}
		s.byName[p.Name] = pr // a later product of the same name wins
	}
	return s
}

// anchored compiles pat as "(?i)^glob/?$". Every character but * is
// quoted, so only a pattern that is not UTF-8 fails; it then matches
// nothing.
func anchored(pat string) *regexp.Regexp {
	re, err := regexp.Compile("(?i)^" + globToRegexp(pat) + "/?$")
	if err != nil {
		return nil
	}
	return re
}

func (r *resourceRule) fullRegexp() *regexp.Regexp {
	r.fullOnce.Do(func() { r.full = anchored(r.res) })
	return r.full
}

// lists reports whether the product names proxy.
func (p *productRules) lists(proxy string) bool {
	if p.listed != nil {
		return p.listed[proxy]
	}
	for _, px := range p.proxies {
		if px == proxy {
			return true
		}
	}
	return false
}

// proxyRules is what one proxy's plugin needs: the revision's ruleSet and
// the proxy's name and base path. It holds nothing per product.
type proxyRules struct {
	set         *ruleSet
	name        string
	base        string // as configured
	trimmed     string // base without its trailing "/": what is prefixed
	productOnly bool
	// glob holds, for a base path with a "*", each resource's regexp
	// with the base path in it (base path + resource as one glob).
	glob sync.Map // *resourceRule → *regexp.Regexp
}

func newProxyRules(set *ruleSet, proxy *configs.Proxy, productOnly bool) *proxyRules {
	return &proxyRules{set: set, name: proxy.Name, base: proxy.BasePath,
		trimmed: strings.TrimSuffix(proxy.BasePath, "/"), productOnly: productOnly}
}

// allows reports whether the product named name lets a request for path
// through this proxy.
func (v *proxyRules) allows(name, path string) bool {
	p := v.set.byName[name]
	if p == nil || !(v.productOnly || p.lists(v.name)) {
		return false
	}
	if p.all {
		return true
	}
	endsInSlash := strings.HasSuffix(path, "/")
	for _, r := range p.res {
		subject := path
		if endsInSlash && r.slashed {
			subject = path[:len(path)-1]
		}
		if v.matches(r, subject) {
			return true
		}
	}
	return false
}

// matches reports whether subject matches "^pattern/?$" for resource r on
// this proxy.
func (v *proxyRules) matches(r *resourceRule, subject string) bool {
	var re *regexp.Regexp
	switch {
	case strings.Contains(r.res, v.base) && v.base != "/":
		re = r.fullRegexp()
	case strings.Contains(v.trimmed, "*"):
		re = v.globRegexp(r)
	default:
		rest, ok := cutPrefixFold(subject, v.trimmed)
		if !ok || r.suffix == nil {
			return false
		}
		if r.lit != "" {
			if tail, ok := cutPrefixFold(rest, r.lit); ok && !strings.Contains(tail, "\n") {
				return true
			}
		}
		return r.suffix.MatchString(rest)
	}
	return re != nil && re.MatchString(subject)
}

// globRegexp compiles base path + resource as one glob, once per proxy
// and resource: the base path holds a "*".
func (v *proxyRules) globRegexp(r *resourceRule) *regexp.Regexp {
	if re, ok := v.glob.Load(r); ok {
		return re.(*regexp.Regexp)
	}
	pat := v.trimmed + r.res
	if !strings.HasPrefix(r.res, "/") {
		pat = v.trimmed + "/" + r.res
	}
	re := anchored(pat)
	v.glob.Store(r, re)
	return re
}

// literalPrefix returns the part of pat before a final "**" when that
// part ends in "/" and holds no "*", else "".
func literalPrefix(pat string) string {
	lit, ok := strings.CutSuffix(pat, "**")
	if !ok || !strings.HasSuffix(lit, "/") || strings.Contains(lit, "*") {
		return ""
	}
	return lit
}

// cutPrefixFold returns s without prefix when s starts with prefix under
// the simple case folding of (?i): rune by rune, each rune of s in the
// fold orbit of prefix's, a byte that is not UTF-8 read as U+FFFD.
func cutPrefixFold(s, prefix string) (string, bool) {
	for prefix != "" {
		if s == "" {
			return "", false
		}
		if c, d := prefix[0], s[0]; c < utf8.RuneSelf && d < utf8.RuneSelf {
			if c != d && !asciiFold(c, d) {
				return "", false
			}
			prefix, s = prefix[1:], s[1:]
			continue
		}
		pr, pn := utf8.DecodeRuneInString(prefix)
		sr, sn := utf8.DecodeRuneInString(s)
		if pr != sr && !sameFold(pr, sr) {
			return "", false
		}
		prefix, s = prefix[pn:], s[sn:]
	}
	return s, true
}

func asciiFold(c, d byte) bool {
	c |= 0x20
	return c == d|0x20 && c >= 'a' && c <= 'z'
}

// sameFold reports whether r and s are in one simple fold orbit.
func sameFold(r, s rune) bool {
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if f == s {
			return true
		}
	}
	return false
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

// productRule is one product's rule seen from one proxy.
type productRule struct {
	v    *proxyRules
	name string
}

// allows reports whether r lets a request for path through.
func (r *productRule) allows(path string) bool { return r.v.allows(r.name, path) }

// compileRules returns, for proxy, every product's rule. The plugin keeps
// a proxyRules instead, which holds nothing per product.
func compileRules(products []configs.Product, proxy *configs.Proxy, productOnly bool) map[string]*productRule {
	v := newProxyRules(newRuleSet(products), proxy, productOnly)
	rules := make(map[string]*productRule, len(products))
	for i := range products {
		rules[products[i].Name] = &productRule{v: v, name: products[i].Name}
	}
	return rules
}
