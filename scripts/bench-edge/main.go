// Command bench-edge is the Apigee org that scripts/bench runs mgw's Edge
// mode against: integration/fakeedge behind a front that takes analytics
// uploads without keeping them (the fake keeps every record for tests,
// which a bench of millions of requests cannot afford) and counts them.
// It deploys one proxy, edgemicro_api on /api to TARGET_URL, in one
// product with a quota far above any bench, and writes to OUT_DIR:
// edge.toml (the [edge_config] section), flags (mgw start's -o -e -k -s)
// and token (a Bearer JWT of the product's app, valid for an hour).
// GET /bench-edge/records answers the number of records uploaded so far.
//
//	bench-edge PORT TARGET_URL OUT_DIR
package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mgw-gateway/mgw/integration/fakeedge"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: bench-edge PORT TARGET_URL OUT_DIR")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2], os.Args[3]); err != nil {
		fmt.Fprintln(os.Stderr, "bench-edge:", err)
		os.Exit(1)
	}
}

func run(port, target, out string) error {
	fe, err := fakeedge.Start("benchorg", "bench")
	if err != nil {
		return fmt.Errorf("starting the fake org: %w", err)
	}
	fe.SetProxies(fakeedge.Proxy{Name: "edgemicro_api", BasePath: "/api", URL: target})
	fe.SetProducts(fakeedge.Product{
		Name: "bench-product", Proxies: []string{"edgemicro-auth", "edgemicro_api"}, APIResources: []string{"/**"},
		Quota: "1000000000", QuotaInterval: "1", QuotaTimeUnit: "minute",
	})
	app := fe.Apps()[0]
	app.Products = []string{"bench-product"}
	self := "http://127.0.0.1:" + port
	claims := fe.Claims(app, self+"/edgemicro-auth/token")
	claims["exp"] = time.Now().Add(time.Hour).Unix()
	claims["access_token"] = "bench-access-token"
	tok, err := fe.Sign(claims, true)
	if err != nil {
		return fmt.Errorf("signing the token: %w", err)
	}
	cfg := strings.ReplaceAll(fe.EdgeConfigTOML(), fe.URL, self)
	flags := fmt.Sprintf("-o %s -e %s -k %s -s %s\n", fe.Org, fe.Env, fe.Key, fe.Secret)
	for name, body := range map[string]string{"edge.toml": cfg, "flags": flags, "token": tok + "\n"} {
		if err := os.WriteFile(filepath.Join(out, name), []byte(body), 0o600); err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
	}
	u, err := url.Parse(fe.URL)
	if err != nil {
		return err
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	var records, uploads atomic.Int64
	mux := http.NewServeMux()
	mux.Handle("/", rp)
	mux.HandleFunc("POST /edgemicro/axpublisher/organization/{org}/environment/{env}", func(w http.ResponseWriter, r *http.Request) {
		n, err := countRecords(r.Body, r.Header.Get("Content-Encoding") == "gzip")
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		records.Add(int64(n))
		uploads.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"accepted":%d,"rejected":0}`, n)
	})
	mux.HandleFunc("GET /bench-edge/records", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "%d records in %d uploads\n", records.Load(), uploads.Load())
	})
	srv := &http.Server{Addr: "127.0.0.1:" + port, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	return srv.ListenAndServe()
}

// recordMark is the field every record has once.
var recordMark = []byte(`"recordType"`)

// counters are countRecords' buffers and gzip readers, kept between
// uploads: the fake org shares the bench's cores with mgw, and what it
// spends on each upload is taken from the gateway being measured.
var counters = sync.Pool{New: func() any { return &counter{buf: make([]byte, 64<<10)} }}

type counter struct {
	buf []byte
	zr  *gzip.Reader
}

// countRecords counts the records of an upload as it reads it, without
// keeping the body: a buffer's last bytes are carried to the start of the
// next read, so that a mark split between two reads is counted once.
func countRecords(body io.Reader, gzipped bool) (int, error) {
	c := counters.Get().(*counter)
	defer counters.Put(c)
	rd := io.LimitReader(body, 64<<20)
	if gzipped {
		if c.zr == nil {
			zr, err := gzip.NewReader(rd)
			if err != nil {
				return 0, fmt.Errorf("bad gzip: %w", err)
			}
			c.zr = zr
		} else if err := c.zr.Reset(rd); err != nil {
			return 0, fmt.Errorf("bad gzip: %w", err)
		}
		rd = c.zr
	}
	n, carry := 0, 0
	for {
		m, err := rd.Read(c.buf[carry:])
		b := c.buf[:carry+m]
		n += bytes.Count(b, recordMark)
		carry = min(len(recordMark)-1, len(b))
		copy(c.buf, b[len(b)-carry:])
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("bad body: %w", err)
		}
	}
}
