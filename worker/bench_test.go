package worker

import (
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/mgw-gateway/mgw/worker/h1"
	"github.com/mgw-gateway/mgw/worker/h1/h1test"
)

// BenchmarkWorker is the whole no-plugin request path in one process:
// keep-alive clients, the worker's handler on the h1 server, the h1
// transport, and an h1 target answering 22 bytes, all on 127.0.0.1. The
// "headers" case has every [headers] switch on (the default), "bare" has
// them all off; compare their ns/op and allocs/op in one run.
//
//	go test -run '^$' -bench Worker -benchmem ./worker
func BenchmarkWorker(b *testing.B) {
	tln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	target := &h1.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header()["Content-Length"] = []string{"22"}
		_, _ = io.WriteString(w, "hello from the target\n")
	})}
	go func() { _ = target.Serve(tln) }()
	b.Cleanup(func() { _ = target.Close() })

	for _, tc := range []struct{ name, headers string }{
		{"headers", ""},
		{"bare", `
[headers]
x-forwarded-for = false
x-forwarded-host = false
x-forwarded-proto = false
x-request-id = false
x-response-time = false
via = false`},
	} {
		b.Run(tc.name, func(b *testing.B) {
			w := &Worker{pool: newTransportPool(), metrics: newMetrics()}
			w.applyTOML(b, 1, `
[[proxies]]
name = "api"
base_path = "/api"
url = "http://TARGET"
`+tc.headers, tln.Addr().String())
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			s := &h1.Server{Handler: w}
			go func() { _ = s.Serve(ln) }()
			defer func() { _ = s.Close() }()
			h1test.Clients(b, ln.Addr().String(), "/api/bench")
		})
	}
}
