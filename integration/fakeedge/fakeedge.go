// Package fakeedge is mgw's stand-in for an Apigee org: an HTTP server on
// 127.0.0.1 that serves the Edge endpoints of docs/COMPATIBILITY.md with the shapes a real
// org sends (bootstrap, products with string quotas, a PEM certificate
// and a JWKS, verifyApiKey and token signed RS256, analytics), with hooks
// for tests: change the proxies, count calls, fail on demand.
package fakeedge

import (
	"compress/gzip"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Proxy is one edgemicro_* proxy as the bootstrap lists it.
type Proxy struct {
	Name, BasePath, URL string
	// Timeout in ms, sent as a string of digits when not zero.
	Timeout int
}

// Product is one API product. Quota "" is sent as "null".
type Product struct {
	Name                                string
	Proxies, APIResources               []string
	Quota, QuotaInterval, QuotaTimeUnit string
}

// App is a developer app: its key is the client id.
type App struct {
	Name, DeveloperEmail, Key, Secret string
	Products                          []string
}

// Endpoint names for Calls and Fail.
const (
	Bootstrap    = "bootstrap"
	Products     = "products"
	PublicKey    = "publicKey"
	JWKS         = "jwkPublicKeys"
	VerifyAPIKey = "verifyApiKey"
	Token        = "token"
	Analytics    = "analytics"
	Quota        = "quota"
)

// Server is a running fake org.
type Server struct {
	// URL is http://127.0.0.1:port, without a trailing slash.
	URL           string
	Org, Env      string
	Key, Secret   string
	Kid           string
	priv          *rsa.PrivateKey
	cert          []byte
	srv           *http.Server
	ln            net.Listener
	mu            sync.Mutex
	proxies       []Proxy
	products      []Product
	apps          []App
	calls         map[string]int
	fail          map[string]int
	records       []json.RawMessage
	quotas        map[string]*quotaWindow
	tokenLifetime time.Duration
	mgmt          mgmtState
	answers       map[string]string // Answer
	etags         bool              // SetETags
	notModified   map[string]int
}

// quotaWindow is one identifier's flexi window at the fake quota service.
type quotaWindow struct {
	used   int64
	expiry time.Time
}

// Start serves a fake org on a free loopback port with one app,
// "mgw-app", whose products cover the proxies given later.
func Start(org, env string) (*Server, error) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: org + "-" + env},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{
		URL: "http://" + ln.Addr().String(), Org: org, Env: env,
		Key: strings.Repeat("a1", 32), Secret: strings.Repeat("b2", 32), Kid: "1",
		priv: priv, cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		ln: ln, calls: map[string]int{}, fail: map[string]int{}, quotas: map[string]*quotaWindow{}, tokenLifetime: 30 * time.Minute,
		products: []Product{
			{Name: "hello-product", Proxies: []string{"edgemicro-auth", "edgemicro_hello"}, APIResources: []string{"/**"}, Quota: "1000", QuotaInterval: "1", QuotaTimeUnit: "minute"},
			{Name: "open-product", Proxies: []string{"edgemicro_hello", "edgemicro_open"}, APIResources: []string{"/"}},
			{Name: "other-product", Proxies: []string{"edgemicro_other"}},
		},
		apps: []App{
			{Name: "mgw-app", DeveloperEmail: "dev@example.com", Key: "mgwAppKey0000000000000000000000001", Secret: "mgwAppSecret00000000000000000001", Products: []string{"hello-product"}},
			{Name: "open-app", DeveloperEmail: "dev@example.com", Key: "mgwAppKey0000000000000000000000002", Secret: "mgwAppSecret00000000000000000002", Products: []string{"open-product"}},
			{Name: "other-app", DeveloperEmail: "dev@example.com", Key: "mgwAppKey0000000000000000000000003", Secret: "mgwAppSecret00000000000000000003", Products: []string{"other-product"}},
		},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /edgemicro/bootstrap/organization/{org}/environment/{env}", s.count(Bootstrap, true, s.bootstrap))
	mux.HandleFunc("GET /edgemicro-auth/products", s.count(Products, true, s.productList))
	mux.HandleFunc("GET /edgemicro-auth/publicKey", s.count(PublicKey, false, s.publicKey))
	mux.HandleFunc("GET /edgemicro-auth/jwkPublicKeys", s.count(JWKS, false, s.jwks))
	mux.HandleFunc("POST /edgemicro-auth/verifyApiKey", s.count(VerifyAPIKey, true, s.verifyAPIKey))
	mux.HandleFunc("POST /edgemicro-auth/token", s.count(Token, false, s.token))
	mux.HandleFunc("POST /edgemicro/axpublisher/organization/{org}/environment/{env}", s.count(Analytics, true, s.analytics))
	mux.HandleFunc("POST /edgemicro/quotas/organization/{org}/environment/{env}/v2/quotas/apply", s.count(Quota, true, s.quotaApply))
	s.mgmt = mgmtState{user: "admin@example.com", password: "mgmt-password", token: "mgmt-oauth-token",
		revisions: map[string]int{"edgemicro-auth": 3}, deployed: map[string]int{"edgemicro-auth": 3}}
	s.mgmtRoutes(mux)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Close stops the server.
func (s *Server) Close() { _ = s.srv.Close() }

// Apps returns the org's apps.
func (s *Server) Apps() []App {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]App(nil), s.apps...)
}

// SetProxies replaces the deployed proxies.
func (s *Server) SetProxies(ps ...Proxy) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.proxies = append([]Proxy(nil), ps...)
}

// SetProducts replaces the org's products.
func (s *Server) SetProducts(ps ...Product) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.products = append([]Product(nil), ps...)
}

// Calls is how many requests endpoint has received.
func (s *Server) Calls(endpoint string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[endpoint]
}

// Fail makes endpoint answer status from now on; 0 restores it.
func (s *Server) Fail(endpoint string, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail[endpoint] = status
}

// Records returns the analytics records received.
func (s *Server) Records() []json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]json.RawMessage(nil), s.records...)
}

// PrivateKey is the org's token signing key, for tests that forge tokens.
func (s *Server) PrivateKey() *rsa.PrivateKey { return s.priv }

// EdgeConfigTOML returns an [edge_config] section pointing at s.
func (s *Server) EdgeConfigTOML() string {
	return fmt.Sprintf(`[edge_config]
bootstrap = "%[1]s/edgemicro/bootstrap/organization/%[2]s/environment/%[3]s"
jwt_public_key = "%[1]s/edgemicro-auth/publicKey"
jwk_public_keys = "%[1]s/edgemicro-auth/jwkPublicKeys"
products = "%[1]s/edgemicro-auth/products"
`, s.URL, s.Org, s.Env)
}

func (s *Server) count(name string, auth bool, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.calls[name]++
		fail := s.fail[name]
		s.mu.Unlock()
		if fail != 0 {
			http.Error(w, `{"error":"failing on demand"}`, fail)
			return
		}
		if auth {
			k, sec, ok := r.BasicAuth()
			if !ok || !s.validCredential(k, sec) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = io.WriteString(w, `{"error":"unauthorized","error_description":"authentication failed "}`)
				return
			}
		}
		s.answerAs(name, w, r, h)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) bootstrap(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("org") != s.Org || r.PathValue("env") != s.Env {
		http.Error(w, "no such org/env", http.StatusNotFound)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	list := []map[string]any{}
	for _, p := range s.proxies {
		te := map[string]any{"name": "default", "url": p.URL}
		if p.Timeout > 0 {
			te["timeout"] = fmt.Sprint(p.Timeout)
		}
		list = append(list, map[string]any{
			"apiProxyName": p.Name, "revision": "1",
			"proxyEndpoint":  map[string]any{"name": "default", "basePath": p.BasePath},
			"targetEndpoint": te, "maxConnections": 1000,
		})
	}
	// A proxy that is not a gateway's, and one without a target, as real
	// orgs have: mgw must skip both.
	list = append(list,
		map[string]any{"apiProxyName": "edgemicro-auth", "revision": "3", "proxyEndpoint": map[string]any{"name": "default", "basePath": "/edgemicro-auth"}, "targetEndpoint": map[string]any{"name": "default", "url": "null"}},
		map[string]any{"apiProxyName": "edgemicro_broken", "revision": "1", "proxyEndpoint": map[string]any{"name": "default", "basePath": "/broken"}, "targetEndpoint": map[string]any{"name": "default"}},
	)
	writeJSON(w, map[string]any{"apiProxies": list})
}

func (s *Server) productList(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := []map[string]any{}
	for _, p := range s.products {
		q, qi, qu := p.Quota, p.QuotaInterval, p.QuotaTimeUnit
		if q == "" {
			q, qi, qu = "null", "null", "null"
		}
		res := p.APIResources
		if res == nil {
			res = []string{}
		}
		list = append(list, map[string]any{
			"apiResources": res, "approvalType": "auto", "attributes": []map[string]string{{"name": "access", "value": "public"}},
			"createdAt": 1551313145539, "createdBy": "dev@example.com", "description": "", "displayName": p.Name,
			"environments": []string{s.Env}, "name": p.Name, "proxies": p.Proxies,
			"quota": q, "quotaInterval": qi, "quotaTimeUnit": qu, "scopes": []string{},
		})
	}
	writeJSON(w, map[string]any{"apiProduct": list})
}

func (s *Server) publicKey(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write(s.cert)
}

func (s *Server) jwks(w http.ResponseWriter, _ *http.Request) {
	pub := s.priv.PublicKey
	writeJSON(w, map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "alg": "RS256", "use": "sig", "kid": s.Kid,
		"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}}})
}

func (s *Server) app(key string) *App {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.apps {
		if s.apps[i].Key == key {
			a := s.apps[i]
			return &a
		}
	}
	return nil
}

func (s *Server) verifyAPIKey(w http.ResponseWriter, r *http.Request) {
	var body struct {
		APIKey string `json:"apiKey"`
	}
	_ = json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&body)
	a := s.app(body.APIKey)
	if a == nil || r.Header.Get("x-dna-api-key") != body.APIKey {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"fault":{"faultstring":"Invalid ApiKey","detail":{"errorcode":"oauth.v2.InvalidApiKey"}}}`)
		return
	}
	tok, err := s.Sign(s.Claims(*a, s.URL+"/edgemicro-auth/verifyApiKey"), true)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, map[string]string{"token": tok})
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	var body struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
		GrantType    string `json:"grant_type"`
	}
	_ = json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&body)
	a := s.app(body.ClientID)
	if body.GrantType != "client_credentials" || a == nil || a.Secret != body.ClientSecret {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"error":"unauthorized","error_description":"authentication failed"}`)
		return
	}
	c := s.Claims(*a, s.URL+"/edgemicro-auth/token")
	c["access_token"] = "opaque" + a.Key[len(a.Key)-4:]
	tok, err := s.Sign(c, true)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, map[string]any{"token": tok, "access_token": tok, "token_type": "Bearer", "expires_in": 1799})
}

func (s *Server) analytics(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Records []json.RawMessage `json:"records"`
	}
	var rd io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, "bad gzip", http.StatusBadRequest)
			return
		}
		rd = zr
	}
	if err := json.NewDecoder(io.LimitReader(rd, 64<<20)).Decode(&body); err != nil {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.records = append(s.records, body.Records...)
	s.mu.Unlock()
	writeJSON(w, map[string]int{"accepted": len(body.Records), "rejected": 0})
}

func (s *Server) quotaApply(w http.ResponseWriter, r *http.Request) {
	var q struct {
		Identifier string `json:"identifier"`
		Weight     int64  `json:"weight"`
		Interval   int    `json:"interval"`
		Allow      int64  `json:"allow"`
		TimeUnit   string `json:"timeUnit"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&q); err != nil || q.Identifier == "" {
		http.Error(w, "bad quota request", http.StatusBadRequest)
		return
	}
	unit := map[string]time.Duration{"minute": time.Minute, "hour": time.Hour, "day": 24 * time.Hour, "week": 7 * 24 * time.Hour, "month": 30 * 24 * time.Hour}[q.TimeUnit]
	now := time.Now()
	s.mu.Lock()
	win := s.quotas[q.Identifier]
	if win == nil || !now.Before(win.expiry) {
		win = &quotaWindow{expiry: now.Add(time.Duration(max(q.Interval, 1)) * unit)}
		s.quotas[q.Identifier] = win
	}
	win.used += q.Weight
	used, expiry := win.used, win.expiry
	s.mu.Unlock()
	writeJSON(w, map[string]int64{
		"allowed": q.Allow, "used": used, "exceeded": max(0, used-q.Allow), "available": max(0, q.Allow-used),
		"expiryTime": expiry.UnixMilli(), "timestamp": now.UnixMilli(),
	})
}

// QuotaUsed is the count of identifier's current window.
func (s *Server) QuotaUsed(identifier string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w := s.quotas[identifier]; w != nil {
		return w.used
	}
	return 0
}

// Claims are the claims Edge puts in a token for app, valid from now.
func (s *Server) Claims(a App, iss string) jwt.MapClaims {
	now := time.Now()
	products := make([]any, len(a.Products))
	for i, p := range a.Products {
		products[i] = p
	}
	return jwt.MapClaims{
		"api_product_list": products, "application_name": a.Name, "aud": "microgateway",
		"client_id": a.Key, "developer_email": a.DeveloperEmail, "iss": iss,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(s.tokenLifetime).Unix(),
		"jti": fmt.Sprintf("%x", now.UnixNano()),
	}
}

// Sign signs claims RS256 with the org's key, with its kid when withKid.
func (s *Server) Sign(c jwt.MapClaims, withKid bool) (string, error) {
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	if withKid {
		t.Header["kid"] = s.Kid
	}
	return t.SignedString(s.priv)
}
