package integration

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mgw-gateway/mgw/internal/testutil"
)

// testCA issues certificates for the TLS tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

var serial atomic.Int64

func newCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)), Subject: pkix.Name{CommonName: "mgw test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns PEM certificate and key for cn, valid for 127.0.0.1.
func (ca *testCA) issue(t *testing.T, cn string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalPKCS8PrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb})
}

func writeFile(t *testing.T, dir, name string, b []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestTLSBothWays: HTTPS to the gateway with a test CA, HTTPS to a target
// that requires a client certificate, and a reload after the server
// certificate is replaced: new connections see the new one, and no
// request fails meanwhile.
func TestTLSBothWays(t *testing.T) {
	ca := newCA(t)
	// The target: TLS, and only for clients with a certificate of ca.
	tgt := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cn := ""
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			cn = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		fmt.Fprintf(w, "target saw client %s", cn)
	}))
	tc, tk := ca.issue(t, "target", x509.ExtKeyUsageServerAuth)
	pair, _ := tls.X509KeyPair(tc, tk)
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	tgt.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	tgt.StartTLS()
	t.Cleanup(tgt.Close)

	in := newInstance(t, "")
	sc, sk := ca.issue(t, "first", x509.ExtKeyUsageServerAuth)
	cc, ck := ca.issue(t, "mgw-client", x509.ExtKeyUsageClientAuth)
	writeFile(t, in.dir, "server.pem", sc)
	writeFile(t, in.dir, "server.key", sk)
	writeFile(t, in.dir, "client.pem", cc)
	writeFile(t, in.dir, "client.key", ck)
	writeFile(t, in.dir, "ca.pem", ca.pem)
	in.writeConfig(testutil.Preamble + `[edgemicro.ssl]
cert = "server.pem"
key = "server.key"
[[targets]]
host = "127.0.0.1"
[targets.ssl.client]
cert = "client.pem"
key = "client.key"
ca = "ca.pem"
[[proxies]]
name = "api"
base_path = "/api"
url = "` + tgt.URL + `"
`)
	in.start(2)

	url := strings.Replace(in.url("/api/x"), "http://", "https://", 1)
	client := func() *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true,
		}}
	}
	getCN := func() (string, string, error) {
		resp, err := client().Get(url)
		if err != nil {
			return "", "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return "", "", fmt.Errorf("status %d: %s", resp.StatusCode, b)
		}
		return resp.TLS.PeerCertificates[0].Subject.CommonName, string(b), nil
	}
	cn, body, err := getCN()
	if err != nil || cn != "first" || body != "target saw client mgw-client" {
		t.Fatalf("HTTPS through mgw: cn %q body %q err %v", cn, body, err)
	}
	if _, err := (&http.Client{Timeout: 5 * time.Second}).Get(url); err == nil {
		t.Fatal("a client without the test CA trusted the gateway")
	}

	// Replace the certificate, reload under load: zero failures.
	sc2, sk2 := ca.issue(t, "second", x509.ExtKeyUsageServerAuth)
	writeFile(t, in.dir, "server.pem", sc2)
	writeFile(t, in.dir, "server.key", sk2)
	load := testutil.StartLoad(4, func(int) error {
		_, _, err := getCN()
		if err != nil {
			t.Log(err)
		}
		return err
	})
	if out, code := in.mgw("reload"); code != 0 {
		t.Fatalf("reload: %d %s", code, out)
	}
	in.eventually(10*time.Second, "the new certificate", func() bool {
		cn, _, err := getCN()
		return err == nil && cn == "second"
	})
	load.Stop()
	if failed, requests := load.Failed.Load(), load.OK.Load()+load.Failed.Load(); failed != 0 || requests < 8 {
		t.Fatalf("%d of %d requests failed across the reload (fewer than 8 proves nothing)", failed, requests)
	}
}

// TestOutboundProxy: with [edgemicro.proxy], target calls go through the
// proxy (an absolute-URI request), except for the hosts of bypass.
func TestOutboundProxy(t *testing.T) {
	var proxied atomic.Int64
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !r.URL.IsAbs() {
			http.Error(w, "not a proxy request", http.StatusBadRequest)
			return
		}
		proxied.Add(1)
		fmt.Fprintf(w, "proxy fetched %s", r.URL)
	}))
	t.Cleanup(proxy.Close)
	in := newInstance(t, testutil.Preamble+`[edgemicro.proxy]
enabled = true
url = "`+proxy.URL+`"
bypass = "direct.test"
[[proxies]]
name = "far"
base_path = "/far"
url = "http://far.test:8080/v1"
[[proxies]]
name = "near"
base_path = "/near"
url = "http://direct.test:1/"
`)
	in.start(1)
	if st, body := get(t, in.url("/far/x?q=1")); st != 200 || body != "proxy fetched http://far.test:8080/v1/x?q=1" {
		t.Fatalf("through the proxy: %d %s", st, body)
	}
	if st, _ := get(t, in.url("/near/x")); st != 502 || proxied.Load() != 1 {
		t.Fatalf("a bypassed host went through the proxy: %d, %d proxied", st, proxied.Load())
	}
}
