package h1

import (
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/mgw-gateway/mgw/worker/h1/h1test"
)

// BenchmarkProxy compares, in one run, a minimal proxy on this package's
// server and client with the same proxy on net/http's server and
// transport: keep-alive clients, an h1 target answering 22 bytes, all
// on 127.0.0.1. Compare the two lines' ns/op and allocs/op; absolute
// numbers depend on the machine.
//
//	go test -run '^$' -bench Proxy -benchmem ./worker/h1
func BenchmarkProxy(b *testing.B) {
	target := benchListen(b)
	ts := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header()["Content-Length"] = []string{"22"}
		_, _ = io.WriteString(w, "hello from the target\n")
	})}
	go func() { _ = ts.Serve(target) }()
	b.Cleanup(func() { _ = ts.Close() })
	addr := target.Addr().String()

	proxyTo := func(rt http.RoundTripper) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			out := &http.Request{Method: r.Method, URL: r.URL, Host: addr, Header: r.Header, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
			out.URL.Scheme, out.URL.Host = "http", addr
			resp, err := rt.RoundTrip(out)
			if err != nil {
				w.WriteHeader(http.StatusBadGateway)
				return
			}
			defer resp.Body.Close()
			for k, v := range resp.Header {
				w.Header()[k] = v
			}
			w.WriteHeader(resp.StatusCode)
			bp := copyBufs.Get().(*[]byte)
			_, _ = io.CopyBuffer(w, resp.Body, *bp)
			copyBufs.Put(bp)
		})
	}
	d := &net.Dialer{Timeout: time.Second}

	b.Run("h1", func(b *testing.B) {
		ln := benchListen(b)
		s := &Server{Handler: proxyTo(&Transport{Addr: addr, Dial: d.DialContext})}
		go func() { _ = s.Serve(ln) }()
		defer func() { _ = s.Close() }()
		h1test.Clients(b, ln.Addr().String(), "/bench")
	})
	b.Run("net-http", func(b *testing.B) {
		ln := benchListen(b)
		s := &http.Server{Handler: proxyTo(&http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 1024})}
		go func() { _ = s.Serve(ln) }()
		defer func() { _ = s.Close() }()
		h1test.Clients(b, ln.Addr().String(), "/bench")
	})
}

func benchListen(b *testing.B) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	return ln
}
