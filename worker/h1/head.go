package h1

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// errUnusual marks a request head the fast path leaves to net/http: it is
// not wrong, or if it is, net/http's parser decides how to answer it.
var errUnusual = errors.New("h1: unusual request head")

// requestHead is what the fast path learned from a request head.
type requestHead struct {
	method, target string
	url            *url.URL
	header         http.Header
	host           string
	contentLength  int64
	close          bool // the client asked for Connection: close
	size           int  // bytes of the head, including the blank line
}

// parseRequestHead parses one HTTP/1.1 request head at the start of b.
// It returns errIncomplete when b holds no complete head, and errUnusual
// for anything it does not serve itself: HTTP/1.0 and other versions,
// Transfer-Encoding, Expect, Upgrade, folded or malformed lines, a
// request target that is not a path, and a missing or repeated Host or
// Content-Length. It accepts only what net/http would parse the same way.
func parseRequestHead(b []byte) (requestHead, error) {
	var h requestHead
	end := bytes.Index(b, crlfcrlf)
	if end < 0 {
		return h, errIncomplete
	}
	h.size = end + 4
	b = b[:end+2] // every line, each with its CRLF
	// Every string of the request is a piece of one copy of the head:
	// one allocation instead of one per value.
	all, base := string(b), cap(b)
	str := func(x []byte) string {
		off := base - cap(x)
		return all[off : off+len(x)]
	}

	line, b := cutLine(b)
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 {
		return h, errUnusual
	}
	method := line[:sp]
	line = line[sp+1:]
	sp = bytes.IndexByte(line, ' ')
	if sp <= 0 || string(line[sp+1:]) != "HTTP/1.1" {
		return h, errUnusual
	}
	target := line[:sp]
	if target[0] != '/' || !validToken(method) || !validTarget(target) {
		return h, errUnusual
	}
	h.method = internMethod(method)
	h.target = str(target)
	u, ok := plainURL(h.target)
	if !ok {
		var err error
		if u, err = url.ParseRequestURI(h.target); err != nil {
			return h, errUnusual
		}
	}
	h.url = u

	n := bytes.Count(b, crlf)
	h.header = make(http.Header, n)
	values := make([]string, n) // one backing array for all single values
	hosts, lengths := 0, 0
	for len(b) > 0 {
		line, b = cutLine(b)
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !validToken(line[:colon]) {
			return h, errUnusual // includes obs-fold, which starts with a space
		}
		v := trimOWS(line[colon+1:])
		if !validValue(v) {
			return h, errUnusual
		}
		name := line[:colon]
		key, common := commonKeys[string(name)]
		switch {
		case common:
		case isCanonical(name):
			key = str(name) // no copy of its own
		default:
			key = canonicalKey(name)
		}
		switch key {
		case "Host":
			hosts++
			h.host = str(v)
			continue // net/http keeps Host out of the header map
		case "Content-Length":
			lengths++
			cl, ok := parseLength(v)
			if !ok {
				return h, errUnusual
			}
			h.contentLength = cl
		case "Transfer-Encoding", "Expect", "Upgrade", "Te", "Trailer":
			return h, errUnusual
		case "Connection":
			switch {
			case hasToken(v, "upgrade"):
				return h, errUnusual
			case hasToken(v, "close"):
				h.close = true
			}
		}
		val := str(v)
		if vv, ok := h.header[key]; ok {
			h.header[key] = append(vv, val)
			continue
		}
		values[0] = val
		h.header[key] = values[:1:1]
		values = values[1:]
	}
	if hosts != 1 || lengths > 1 || !httpguts.ValidHostHeader(h.host) || h.host == "" {
		return h, errUnusual
	}
	return h, nil
}

// errBothLengths is a request head with both Content-Length and
// Transfer-Encoding (RFC 9112 §6.1): a smuggling attempt or a broken
// client, refused with 400 and the connection closed.
var errBothLengths = errors.New("h1: request has both Content-Length and Transfer-Encoding")

// errTE10 is an HTTP/1.0 request with Transfer-Encoding, which HTTP/1.0
// does not have: net/http ignores the header and reads no body, so the
// target would get the request without it. Refused with 400, as nginx
// does (RFC 9112, section 6.1: faulty framing).
var errTE10 = errors.New("h1: HTTP/1.0 request has Transfer-Encoding")

// errConnect is a CONNECT request: mgw is no tunnel; refused with 405.
var errConnect = errors.New("h1: CONNECT is not served")

// headEnd returns the length of the head at the start of b, up to and
// including the empty line that ends it, as net/http finds it (a bare
// LF ends a line too), or -1 when b holds no whole head.
func headEnd(b []byte) int {
	for pos := 0; ; {
		i := bytes.IndexByte(b[pos:], '\n')
		if i < 0 {
			return -1
		}
		line := b[pos : pos+i]
		pos += i + 1
		if len(line) == 0 || len(line) == 1 && line[0] == '\r' {
			return pos
		}
	}
}

// screenHead refuses, in a whole request head of any form, what no
// server here serves: CONNECT (errConnect), a message with both
// Content-Length and Transfer-Encoding (errBothLengths), which net/http
// would take as chunked and keep the connection, and an HTTP/1.0 message
// with Transfer-Encoding (errTE10), whose body net/http would not read.
// It looks at each line as net/http would split it; a continuation line
// (obs-fold) names no field.
func screenHead(head []byte) error {
	line, rest, _ := bytes.Cut(head, []byte("\n"))
	if m, _, ok := bytes.Cut(line, []byte(" ")); ok && string(m) == http.MethodConnect {
		return errConnect
	}
	v10 := bytes.HasSuffix(bytes.TrimSuffix(line, []byte("\r")), []byte(" HTTP/1.0"))
	var cl, te bool
	for len(rest) > 0 {
		line, rest, _ = bytes.Cut(rest, []byte("\n"))
		name, _, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			cl = true
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			te = true
		}
	}
	switch {
	case cl && te:
		return errBothLengths
	case te && v10:
		return errTE10
	}
	return nil
}

var (
	crlf          = []byte("\r\n")
	crlfcrlf      = []byte("\r\n\r\n")
	errIncomplete = errors.New("h1: incomplete head")
)

// cutLine splits b after its first CRLF; a bare LF or CR inside a line
// makes the line fail validation later.
func cutLine(b []byte) (line, rest []byte) {
	i := bytes.Index(b, crlf)
	if i < 0 {
		return b, nil
	}
	return b[:i], b[i+2:]
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// parseLength reads a Content-Length value: digits only, at most 18.
func parseLength(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// hasToken reports whether the comma-separated list v holds token,
// compared without case.
func hasToken(v []byte, token string) bool {
	for len(v) > 0 {
		var item []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			item, v = v[:i], v[i+1:]
		} else {
			item, v = v, nil
		}
		if bytes.EqualFold(trimOWS(item), []byte(token)) {
			return true
		}
	}
	return false
}

// headerHasToken reports whether any value of a comma-separated header
// holds token, compared without case.
func headerHasToken(values []string, token string) bool {
	for _, v := range values {
		if hasToken([]byte(v), token) {
			return true
		}
	}
	return false
}

// tokenChars marks the bytes of an RFC 9110 token.
var tokenChars = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func validToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tokenChars[c] {
			return false
		}
	}
	return true
}

// validTarget accepts the visible ASCII of an origin-form request target.
// plainURL builds the URL of the common request target, a path of
// unreserved characters and slashes with a non-empty query or none, as
// url.ParseRequestURI would, without parsing; ok is false for any other
// target. The target's bytes are already known to be printable.
func plainURL(target string) (u *url.URL, ok bool) {
	path, query, hasQuery := strings.Cut(target, "?")
	if hasQuery && query == "" { // ForceQuery, left to net/url
		return nil, false
	}
	for i := 0; i < len(path); i++ {
		switch c := path[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '/', c == '-', c == '.', c == '_', c == '~':
		default:
			return nil, false
		}
	}
	return &url.URL{Path: path, RawQuery: query}, true
}

func validTarget[T string | []byte](b T) bool {
	for i := 0; i < len(b); i++ {
		if c := b[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// validValue refuses control bytes other than HTAB, as net/http does.
// It tests eight bytes at a time: a bearer token or a cookie runs to
// hundreds of bytes, and every request's values pass through here. A
// word that may hold a refused byte (or a tab) is looked at byte by byte.
func validValue(b []byte) bool {
	for len(b) >= 8 {
		if w := binary.LittleEndian.Uint64(b); maybeControl(w) && !validValueBytes(b[:8]) {
			return false
		}
		b = b[8:]
	}
	return validValueBytes(b)
}

// validValueBytes is validValue one byte at a time.
func validValueBytes(b []byte) bool {
	for _, c := range b {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// maybeControl reports whether a byte of w may be below 0x20 or be 0x7f.
// It never misses one; it may report a word that holds none (past a
// byte it finds, a borrow can mark the next). Bit tricks from "Bit
// Twiddling Hacks": a byte x < n sets the high bit of (x - n) &^ x, and
// a byte equal to 0x7f is a zero byte of w ^ 0x7f7f…
func maybeControl(w uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	below := (w - ones*0x20) &^ w
	del := w ^ (ones * 0x7f)
	return (below|(del-ones)&^del)&highs != 0
}

// commonKeys interns the canonical form of the header names most
// requests and responses carry, so parsing them does not allocate.
var commonKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"Accept", "Accept-Encoding", "Accept-Language", "Accept-Ranges", "Authorization",
		"Cache-Control", "Connection", "Content-Encoding", "Content-Length", "Content-Type",
		"Cookie", "Date", "Etag", "Expect", "Expires", "Host", "If-Modified-Since",
		"If-None-Match", "Keep-Alive", "Last-Modified", "Location", "Origin", "Pragma",
		"Referer", "Server", "Set-Cookie", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
		"User-Agent", "Vary", "Via", "X-Api-Key", "X-Forwarded-For", "X-Forwarded-Host",
		"X-Forwarded-Proto", "X-Request-Id", "X-Response-Time", "X-Ratelimit-Limit",
		"X-Ratelimit-Remaining", "X-Ratelimit-Reset",
	} {
		m[k] = k
	}
	return m
}()

// canonicalKey is textproto.CanonicalMIMEHeaderKey for a name already
// checked to be a token, without allocating for common names.
func canonicalKey(b []byte) string {
	if k, ok := commonKeys[string(b)]; ok {
		return k
	}
	var buf [64]byte
	if len(b) <= len(buf) {
		c := buf[:len(b)]
		upper := true
		for i, ch := range b {
			switch {
			case upper && 'a' <= ch && ch <= 'z':
				ch -= 'a' - 'A'
			case !upper && 'A' <= ch && ch <= 'Z':
				ch += 'a' - 'A'
			}
			c[i] = ch
			upper = ch == '-'
		}
		if k, ok := commonKeys[string(c)]; ok {
			return k
		}
		return string(c)
	}
	return textproto.CanonicalMIMEHeaderKey(string(b))
}

// isCanonical reports whether the token b is already in the form
// textproto.CanonicalMIMEHeaderKey gives.
func isCanonical(b []byte) bool {
	upper := true
	for _, c := range b {
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			return false
		}
		upper = c == '-'
	}
	return true
}

func internMethod(b []byte) string {
	switch string(b) {
	case http.MethodGet:
		return http.MethodGet
	case http.MethodPost:
		return http.MethodPost
	case http.MethodPut:
		return http.MethodPut
	case http.MethodHead:
		return http.MethodHead
	case http.MethodDelete:
		return http.MethodDelete
	case http.MethodPatch:
		return http.MethodPatch
	case http.MethodOptions:
		return http.MethodOptions
	}
	return string(b)
}

// statusLine returns "HTTP/1.1 NNN Reason\r\n" for code.
func statusLine(code int) []byte {
	if code >= 100 && code < 600 {
		if l := statusLines[code-100]; l != nil {
			return l
		}
	}
	text := http.StatusText(code)
	if text == "" {
		text = "status code " + strconv.Itoa(code)
	}
	return []byte("HTTP/1.1 " + strconv.Itoa(code) + " " + text + "\r\n")
}

var statusLines = func() (t [500][]byte) {
	for code := 100; code < 600; code++ {
		if text := http.StatusText(code); text != "" {
			t[code-100] = []byte("HTTP/1.1 " + strconv.Itoa(code) + " " + text + "\r\n")
		}
	}
	return t
}()
