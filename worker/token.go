package worker

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/plugins/oauth"
)

// Paths of the local-mode token service, the same as on Edge's
// edgemicro-auth proxy so that clients need not change.
const (
	tokenPath     = "/edgemicro-auth/token"
	publicKeyPath = "/edgemicro-auth/publicKey"
)

// tokenLifetime is how long an issued token lasts, as on Edge (token_expiry).
const tokenLifetime = 30 * time.Minute

// issuer signs RS256 tokens for the apps of a local-mode configuration.
type issuer struct {
	key    *rsa.PrivateKey
	pubPEM string
	apps   map[string]*configs.App // by key (client_id)
	now    func() time.Time
}

func newIssuer(snap *configs.Snapshot, now func() time.Time) (*issuer, error) {
	if snap.Config.EdgeMode() || snap.Keys.PrivateKey == "" {
		return nil, nil
	}
	rk, err := oauth.ParsePrivateKey([]byte(snap.Keys.PrivateKey))
	if err != nil {
		return nil, fmt.Errorf("token signing key: %w", err)
	}
	pubPEM := ""
	if len(snap.Keys.PublicKeys) > 0 {
		pubPEM = snap.Keys.PublicKeys[0]
	}
	is := &issuer{key: rk, pubPEM: pubPEM, apps: map[string]*configs.App{}, now: now}
	for i := range snap.Config.Apps {
		a := &snap.Config.Apps[i]
		is.apps[a.Key] = a
	}
	return is, nil
}

// serve answers the token service's paths; it reports false for any other.
func (is *issuer) serve(w http.ResponseWriter, r *http.Request) bool {
	switch r.URL.Path {
	case tokenPath:
		if r.Method != http.MethodPost {
			oauth.WriteError(w, http.StatusBadRequest, "invalid_request", "invalid request")
			return true
		}
		is.token(w, r)
	case publicKeyPath:
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, is.pubPEM)
	default:
		return false
	}
	return true
}

// token implements Edge's POST /token for client_credentials: the
// credentials come in a JSON or form body, or as HTTP Basic.
func (is *issuer) token(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
		GrantType    string `json:"grant_type"`
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		oauth.WriteError(w, http.StatusBadRequest, "invalid_request", "invalid request")
		return
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "application/json" {
		_ = json.Unmarshal(body, &req)
	} else if form, err := url.ParseQuery(string(body)); err == nil {
		req.ClientID, req.ClientSecret, req.GrantType = form.Get("client_id"), form.Get("client_secret"), form.Get("grant_type")
	}
	if id, secret, ok := r.BasicAuth(); ok && req.ClientID == "" {
		req.ClientID, req.ClientSecret = id, secret
	}
	if req.GrantType != "client_credentials" {
		oauth.WriteError(w, http.StatusUnauthorized, "unauthorized", "authentication failed grant_type is missing or invalid")
		return
	}
	if req.ClientID == "" || req.ClientSecret == "" {
		oauth.WriteError(w, http.StatusUnauthorized, "unauthorized", "authentication failed missing client credentials")
		return
	}
	app := is.apps[req.ClientID]
	if app == nil || app.Secret != req.ClientSecret {
		oauth.WriteError(w, http.StatusUnauthorized, "unauthorized", "authentication failed")
		return
	}
	now := is.now()
	claims := appClaims(app)
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	claims["aud"] = "microgateway"
	claims["iss"] = scheme + "://" + r.Host + tokenPath
	claims["iat"] = now.Unix()
	claims["nbf"] = now.Unix()
	claims["exp"] = now.Add(tokenLifetime).Unix()
	claims["jti"] = randomID()
	signed, err := jwt.NewWithClaims(jwt.SigningMethodRS256, claims).SignedString(is.key)
	if err != nil {
		oauth.WriteError(w, http.StatusInternalServerError, "internal_server_error", "signing failed")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"token": signed, "access_token": signed, "token_type": "Bearer",
		"expires_in": int(tokenLifetime/time.Second) - 1,
	})
}

// appClaims are the claims of a token or API key of app.
func appClaims(app *configs.App) jwt.MapClaims {
	products := make([]any, len(app.Products))
	for i, p := range app.Products {
		products[i] = p
	}
	return jwt.MapClaims{
		"client_id":        app.Key,
		"application_name": app.Name,
		"developer_email":  app.DeveloperEmail,
		"api_product_list": products,
	}
}

func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
