package worker

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"
)

// Why a request path is refused (400). The messages go to the client.
var (
	errPathAboveRoot = errors.New("the path climbs above its base path")
	errPathSlash     = errors.New("the path holds an encoded slash (%2F), which mgw does not forward")
	errPathNUL       = errors.New("the path holds an encoded NUL (%00)")
	errPathEscape    = errors.New("the path holds a malformed percent-escape")
	errPathDotParams = errors.New("the path holds a dot segment with parameters (..;)")
	errPathForm      = errors.New("the request target has no path")
	errPathBackslash = errors.New("the path holds a backslash, which some targets read as a separator")
	errPathUTF8      = errors.New("the path does not decode to valid UTF-8 (an overlong or broken sequence)")
)

// cleanPath is a request path after normalization: the one form that
// routing, excludeUrls, the plugins and the target all see.
type cleanPath struct {
	// escaped is the path as sent to the target (after its base path).
	escaped string
	// path is escaped, decoded: what routing and plugins match.
	path string
	// climbed is set when a ".." segment removed a segment; within is
	// then the decoded path before the first removal and low the fewest
	// segments the path held after any removal. A request climbed out
	// of the base path that within falls under when low is less than
	// that base path's segments.
	climbed bool
	within  string
	low     int
}

// normalizePath normalizes esc, the escaped path of a request target,
// in one pass: percent-escapes of unreserved characters (%2e, %41, …)
// are decoded and other escapes upper-cased (RFC 3986 §6.2.2); bytes
// that a path may not hold raw are escaped; "." and ".." segments are
// removed as RFC 3986 §5.2.4 says; runs of "/" collapse into one. It
// refuses a path that climbs above the root, holds %2F (an escaped "/"
// that some targets decode into a separator and others not, so no one
// reading would agree with every target's), a backslash raw or escaped
// (a separator on Windows targets), bytes that do not decode to valid
// UTF-8 (an overlong %C0%AE is "." to a lenient decoder), %00, a
// malformed escape,
// or a dot segment with ";" parameters (which servlet containers
// resolve as "..").
//
// The common path, of unreserved characters and single slashes with no
// dot segment, is returned as it is, without allocating.
func normalizePath(esc string) (cleanPath, error) {
	if esc == "" || esc[0] != '/' {
		return cleanPath{}, errPathForm
	}
	if plainPath(esc) {
		return cleanPath{escaped: esc, path: esc}, nil
	}
	out := make([]byte, 0, len(esc)+8)
	cp := cleanPath{}
	depth := 0
	seg := make([]byte, 0, 32)
	rest := esc[1:]
	for {
		part, more := rest, false
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			part, rest, more = rest[:i], rest[i+1:], true
		}
		seg = seg[:0]
		for i := 0; i < len(part); i++ {
			c := part[i]
			if c == '%' {
				if i+2 >= len(part) || !isHex(part[i+1]) || !isHex(part[i+2]) {
					return cleanPath{}, errPathEscape
				}
				v := unhex(part[i+1])<<4 | unhex(part[i+2])
				i += 2
				switch {
				case v == '/':
					return cleanPath{}, errPathSlash
				case v == 0:
					return cleanPath{}, errPathNUL
				case v == '\\':
					return cleanPath{}, errPathBackslash
				case unreserved(v):
					seg = append(seg, v)
				default:
					seg = append(seg, '%', upperHex[v>>4], upperHex[v&15])
				}
				continue
			}
			if c == 0 {
				return cleanPath{}, errPathNUL
			}
			if c == '\\' {
				return cleanPath{}, errPathBackslash
			}
			if pathChar(c) {
				seg = append(seg, c)
			} else {
				seg = append(seg, '%', upperHex[c>>4], upperHex[c&15])
			}
		}
		s := string(seg)
		dir := false // the segment leaves a trailing slash when last
		switch {
		case s == ".":
			dir = true
		case s == "..":
			if depth == 0 {
				return cleanPath{}, errPathAboveRoot
			}
			if !cp.climbed {
				cp.climbed = true
				cp.within = string(out)
				cp.low = depth
			}
			out = out[:strings.LastIndexByte(string(out), '/')]
			depth--
			cp.low = min(cp.low, depth)
			dir = true
		case strings.HasPrefix(s, ".;") || strings.HasPrefix(s, "..;"):
			return cleanPath{}, errPathDotParams
		case s == "":
			dir = true // "//" collapses; a trailing "/" stays
		default:
			out = append(append(out, '/'), s...)
			depth++
		}
		if !more {
			if dir || len(out) == 0 {
				out = append(out, '/')
			}
			break
		}
	}
	cp.escaped = string(out)
	p, err := url.PathUnescape(cp.escaped)
	if err != nil { // cannot happen: every escape was checked
		return cleanPath{}, errPathEscape
	}
	if !utf8.ValidString(p) {
		// %C0%AE is an overlong ".": a target that decodes leniently
		// would resolve what was checked here as a plain segment.
		return cleanPath{}, errPathUTF8
	}
	cp.path = p
	if cp.climbed {
		if cp.within == "" {
			cp.within = "/"
		}
		if cp.within, err = url.PathUnescape(cp.within); err != nil {
			return cleanPath{}, errPathEscape
		}
	}
	return cp, nil
}

// plainPath reports whether p, which starts with "/", is already
// normal: unreserved characters and single slashes, no dot segment.
func plainPath(p string) bool {
	for i := 1; i < len(p); i++ {
		c := p[i]
		if plainChars[c] {
			continue
		}
		switch c {
		case '/':
			if p[i-1] == '/' {
				return false
			}
		case '.':
			if p[i-1] == '/' && (i+1 == len(p) || p[i+1] == '/' || p[i+1] == '.') {
				return false // ".", "..", or a segment starting ".." (checked the slow way)
			}
		default:
			return false
		}
	}
	return true
}

// plainChars marks the unreserved characters but ".".
var plainChars = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = c != '.' && unreserved(byte(c))
	}
	return t
}()

// requestPath is the escaped path of r's target as the client sent it.
func requestPath(r *http.Request) string {
	if u := r.RequestURI; strings.HasPrefix(u, "/") {
		if i := strings.IndexByte(u, '?'); i >= 0 {
			u = u[:i]
		}
		return u
	}
	return r.URL.EscapedPath() // absolute-form: net/url kept its encoding in RawPath
}

// withCleanPath returns r with its URL's path replaced by cp (a shallow
// copy when it changes), so that everything after sees the normal form:
// URL.Path decoded, URL.RawPath escaped as the target will get it.
func withCleanPath(r *http.Request, cp cleanPath) *http.Request {
	if r.URL.Path == cp.path && (r.URL.RawPath == "" && cp.escaped == cp.path || r.URL.RawPath == cp.escaped) {
		return r
	}
	u := *r.URL
	u.Path = cp.path
	u.RawPath = ""
	if cp.escaped != cp.path {
		u.RawPath = cp.escaped
	}
	r2 := *r
	r2.URL = &u
	return &r2
}

// escapedPath is the path of a request after withCleanPath, escaped.
func escapedPath(u *url.URL) string {
	if u.RawPath != "" {
		return u.RawPath
	}
	return u.Path
}

// escapedLen is how many bytes of the escaped path esc hold its first n
// decoded bytes: each decoded byte is one raw byte or one %XX.
func escapedLen(esc string, n int) int {
	i := 0
	for ; n > 0 && i < len(esc); n-- {
		if esc[i] == '%' {
			i += 3
		} else {
			i++
		}
	}
	return min(i, len(esc))
}

// segments counts the segments of a base path: 0 for "/", 2 for "/a/b".
func segments(basePath string) int {
	n := 0
	for s := range strings.SplitSeq(basePath, "/") {
		if s != "" {
			n++
		}
	}
	return n
}

const upperHex = "0123456789ABCDEF"

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// unreserved reports whether c is an RFC 3986 unreserved character.
func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// pathChar reports whether c may appear raw in a path segment (RFC 3986
// pchar without pct-encoded).
func pathChar(c byte) bool {
	if unreserved(c) {
		return true
	}
	switch c {
	case '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=', ':', '@':
		return true
	}
	return false
}
