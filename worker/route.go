package worker

import "strings"

// router finds a request's route in time independent of the number of
// proxies: a tree keyed by path chunk, where a path is cut before every
// "/" ("/hello/x" is "", "/hello", "/x"). A base path matches a path on a
// segment boundary (/hello matches /hello, /hello/ and /hello/x, not
// /helloworld) exactly when its chunks are the first chunks of the path,
// so the walk down the path's chunks meets every matching base path, the
// longest last. The base path "/" matches every path; it is kept aside.
//
// It decides exactly as the scan it replaced, kept in route_test.go as
// the oracle: the first route, longest base path first and then in
// configuration order, whose base path is "/" or a prefix of the path on
// a segment boundary.
type router struct {
	// small holds the routes of an org of at most smallOrg proxies, which
	// a scan matches faster than the tree (a few map lookups).
	small []*route
	root  node
	// slash is the first route whose base path is "/", or nil.
	slash *rank
}

type node struct {
	children map[string]*node
	route    *rank // the first route whose base path ends here
}

// rank is a route with its place in the scan order.
type rank struct {
	r     *route
	order int
}

// smallOrg is the number of proxies up to which a scan is the faster.
const smallOrg = 8

// newRouter indexes routes, sorted longest base path first.
func newRouter(routes []*route) *router {
	if len(routes) <= smallOrg {
		return &router{small: routes}
	}
	return newTree(routes)
}

// newTree builds the tree of routes, sorted longest base path first.
func newTree(routes []*route) *router {
	rt := &router{}
	for i, r := range routes {
		bp := r.proxy.basePath
		if bp == "/" {
			if rt.slash == nil {
				rt.slash = &rank{r, i}
			}
			continue
		}
		n := &rt.root
		for chunk, rest := cut(bp); ; chunk, rest = cut(rest) {
			c := n.children[chunk]
			if c == nil {
				if n.children == nil {
					n.children = map[string]*node{}
				}
				c = &node{}
				n.children[chunk] = c
			}
			n = c
			if rest == "" {
				break
			}
		}
		if n.route == nil {
			n.route = &rank{r, i}
		}
	}
	return rt
}

// cut returns s's first chunk, up to the first "/" after its first
// byte, and the rest.
func cut(s string) (chunk, rest string) {
	if s == "" {
		return "", ""
	}
	i := strings.IndexByte(s[1:], '/')
	if s[0] == '/' && i >= 0 {
		return s[:i+1], s[i+1:]
	}
	if s[0] != '/' {
		if i = strings.IndexByte(s, '/'); i >= 0 {
			return s[:i], s[i:]
		}
	}
	return s, ""
}

// match returns the route of path, or nil.
func (rt *router) match(path string) *route {
	if rt.small != nil {
		return scan(rt.small, path)
	}
	var best *rank
	n := &rt.root
	for chunk, rest := cut(path); ; chunk, rest = cut(rest) {
		if n = n.children[chunk]; n == nil {
			break
		}
		if n.route != nil {
			best = n.route
		}
		if rest == "" {
			break
		}
	}
	if rt.slash != nil && (best == nil || rt.slash.order < best.order) {
		best = rt.slash
	}
	if best == nil {
		return nil
	}
	return best.r
}

// scan is the first of routes, sorted longest base path first, whose base
// path is "/" or a prefix of path on a segment boundary.
func scan(routes []*route, path string) *route {
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
