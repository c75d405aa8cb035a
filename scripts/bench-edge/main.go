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
		rd := io.LimitReader(r.Body, 64<<20)
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(rd)
			if err != nil {
				http.Error(w, "bad gzip", http.StatusBadRequest)
				return
			}
			rd = zr
		}
		b, err := io.ReadAll(rd)
		if err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		n := bytes.Count(b, []byte(`"recordType"`))
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
