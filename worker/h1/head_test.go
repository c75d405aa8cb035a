package h1

import (
	"bufio"
	"bytes"
	"errors"
	"net/http"
	"net/textproto"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func TestParseRequestHead(t *testing.T) {
	tests := []struct {
		name, head string
		err        error
		check      func(t *testing.T, h requestHead)
	}{
		{name: "plain GET", head: "GET /a/b?x=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\naccept: */*\r\n\r\n",
			check: func(t *testing.T, h requestHead) {
				if h.method != "GET" || h.target != "/a/b?x=1" || h.url.Path != "/a/b" || h.url.RawQuery != "x=1" || h.host != "example.com" {
					t.Errorf("got %+v", h)
				}
				if h.header.Get("Accept") != "*/*" || h.header.Get("User-Agent") != "t" || h.header["Host"] != nil {
					t.Errorf("header %v", h.header)
				}
			}},
		{name: "body and repeated header", head: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\nX-A: 1\r\nx-a: 2\r\n\r\n",
			check: func(t *testing.T, h requestHead) {
				if h.contentLength != 12 || !reflect.DeepEqual(h.header["X-A"], []string{"1", "2"}) {
					t.Errorf("got %+v", h)
				}
			}},
		{name: "connection close", head: "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Close\r\n\r\n",
			check: func(t *testing.T, h requestHead) {
				if !h.close {
					t.Error("close not seen")
				}
			}},
		{name: "OWS trimmed", head: "GET / HTTP/1.1\r\nHost: h\r\nX-A: \t v \t\r\n\r\n",
			check: func(t *testing.T, h requestHead) {
				if h.header.Get("X-A") != "v" {
					t.Errorf("got %q", h.header.Get("X-A"))
				}
			}},
		{name: "incomplete", head: "GET / HTTP/1.1\r\nHost: h\r\n", err: errIncomplete},
		{name: "HTTP/1.0", head: "GET / HTTP/1.0\r\n\r\n", err: errUnusual},
		{name: "chunked body", head: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", err: errUnusual},
		{name: "expect", head: "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n", err: errUnusual},
		{name: "upgrade", head: "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", err: errUnusual},
		{name: "no host", head: "GET / HTTP/1.1\r\nX: y\r\n\r\n", err: errUnusual},
		{name: "two hosts", head: "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", err: errUnusual},
		{name: "two lengths", head: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", err: errUnusual},
		{name: "signed length", head: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", err: errUnusual},
		{name: "absolute form", head: "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", err: errUnusual},
		{name: "obs-fold", head: "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n", err: errUnusual},
		{name: "space before colon", head: "GET / HTTP/1.1\r\nHost : a\r\n\r\n", err: errUnusual},
		{name: "bare LF in a line", head: "GET / HTTP/1.1\r\nHost: a\nX: 1\r\n\r\n", err: errUnusual},
		{name: "control byte", head: "GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n", err: errUnusual},
		{name: "space in target", head: "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", err: errUnusual},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := parseRequestHead([]byte(tt.head))
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err == nil {
				if h.size != len(tt.head) {
					t.Errorf("size %d, want %d", h.size, len(tt.head))
				}
				tt.check(t, h)
			}
		})
	}
}

func TestCanonicalKey(t *testing.T) {
	for _, k := range []string{"content-type", "X-API-KEY", "x-forwarded-for", "a", "weird_name-x", strings.Repeat("ab-", 30), "X-Foo", "X-foo", "1a-b"} {
		want := http.CanonicalHeaderKey(k)
		if got := canonicalKey([]byte(k)); got != want {
			t.Errorf("canonicalKey(%q) = %q, want %q", k, got, want)
		}
		if got := isCanonical([]byte(k)); got != (k == want) {
			t.Errorf("isCanonical(%q) = %v", k, got)
		}
	}
}

// FuzzRequestHead checks the promise the fast path rests on: a head it
// accepts, net/http parses to the same request.
func FuzzRequestHead(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
		"POST /a?b=c HTTP/1.1\r\nHost: h:80\r\nContent-Length: 3\r\nX-A: 1\r\nx-a: 2\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
		"GET /%zz HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 01\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseRequestHead(b)
		if err != nil {
			return
		}
		r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(b[:h.size])))
		if err != nil {
			t.Fatalf("fast path accepted what net/http refuses (%v): %q", err, b[:h.size])
		}
		if r.Method != h.method || r.RequestURI != h.target || r.Host != h.host ||
			r.URL.String() != h.url.String() || r.ContentLength != h.contentLength || r.Close != h.close {
			t.Fatalf("differs from net/http:\nnet/http %s %s host=%q len=%d close=%v\nh1       %s %s host=%q len=%d close=%v",
				r.Method, r.URL, r.Host, r.ContentLength, r.Close, h.method, h.url, h.host, h.contentLength, h.close)
		}
		if !reflect.DeepEqual(map[string][]string(r.Header), map[string][]string(h.header)) {
			t.Fatalf("header differs:\nnet/http %v\nh1       %v", r.Header, h.header)
		}
	})
}

// FuzzPlainURL: every target plainURL builds a URL for is one that
// url.ParseRequestURI parses into exactly that URL.
func FuzzPlainURL(f *testing.F) {
	for _, s := range []string{"/", "/api/bench", "/a/b?x=1&y=2", "/a?", "//x", "/a%20b", "/~u/._-", "/a?b?c", "/a?#f", "/A9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		if target == "" || target[0] != '/' || !validTarget([]byte(target)) {
			return
		}
		u, ok := plainURL(target)
		if !ok {
			return
		}
		want, err := url.ParseRequestURI(target)
		if err != nil || !reflect.DeepEqual(u, want) {
			t.Fatalf("%q: plainURL %#v, net/url %#v (%v)", target, u, want, err)
		}
	})
}

// FuzzScreenHead: screenHead finds where net/http's reader ends a head,
// and refuses it exactly when the fields net/http's reader reads from it
// hold both Content-Length and Transfer-Encoding, or its method is
// CONNECT.
func FuzzScreenHead(f *testing.F) {
	for _, s := range []string{
		"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
		"POST / HTTP/1.1\nhost: h\ncontent-length: 3\ntransfer-encoding: chunked\n\n",
		"POST / HTTP/1.1\r\nHost: h\r\nX: a\r\n Transfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n",
		"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n",
		"POST / HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		end := headEnd(b)
		tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(b)))
		line, err := tp.ReadLine()
		if err != nil || line == "" { // net/http refuses an empty request line
			return
		}
		hdr, err := tp.ReadMIMEHeader()
		if err != nil {
			return
		}
		if end < 0 {
			t.Fatalf("net/http read a whole head, headEnd found none: %q", b)
		}
		method, rest, spaced := strings.Cut(line, " ")
		// The version as net/http reads the request line: after the
		// target, up to the end. A line it cannot read it refuses itself.
		_, proto, _ := strings.Cut(rest, " ")
		major, minor, versioned := http.ParseHTTPVersion(proto)
		if !versioned && method != http.MethodConnect {
			return
		}
		v10 := major == 1 && minor == 0
		_, cl := hdr["Content-Length"]
		_, te := hdr["Transfer-Encoding"]
		got := screenHead(b[:end])
		switch {
		case spaced && method == http.MethodConnect:
			if !errors.Is(got, errConnect) {
				t.Fatalf("CONNECT not refused: %v", got)
			}
		case cl && te:
			if !errors.Is(got, errBothLengths) {
				t.Fatalf("both lengths not refused (%v): %q", got, b[:end])
			}
		case te && v10:
			if !errors.Is(got, errTE10) {
				t.Fatalf("Transfer-Encoding in HTTP/1.0 not refused (%v): %q", got, b[:end])
			}
		case got != nil:
			t.Fatalf("refused (%v) a head net/http reads as %s %v", got, line, hdr)
		}
	})
}

// TestValidValueWords checks the word-at-a-time validValue against the
// byte loop for every byte value at every position of values around the
// word size, with the other bytes drawn from the edges of both ranges.
func TestValidValueWords(t *testing.T) {
	fill := []byte{' ', 'a', '~', 0x80, 0xff, '\t', 0x21, 0x7e}
	for n := 1; n <= 19; n++ {
		for pos := 0; pos < n; pos++ {
			for _, bg := range fill {
				b := bytes.Repeat([]byte{bg}, n)
				for c := 0; c < 256; c++ {
					b[pos] = byte(c)
					if got, want := validValue(b), validValueBytes(b); got != want {
						t.Fatalf("validValue(%q) = %v, want %v", b, got, want)
					}
				}
			}
		}
	}
}

func FuzzValidValue(f *testing.F) {
	f.Add([]byte("Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln"))
	f.Add([]byte("a\x00bcdefghijklmnop\x7f"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validValue(b), validValueBytes(b); got != want {
			t.Fatalf("validValue(%q) = %v, want %v", b, got, want)
		}
	})
}

func BenchmarkValidValue(b *testing.B) {
	v := bytes.Repeat([]byte("eyJhbGciOiJSUzI1NiJ9"), 40) // a bearer token's length
	b.SetBytes(int64(len(v)))
	for b.Loop() {
		if !validValue(v) {
			b.Fatal("refused")
		}
	}
}
