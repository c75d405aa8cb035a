package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/plugins"
)

// Mode selects which credentials a plugin accepts.
type Mode int

// The three auth plugins.
const (
	ModeOAuth   Mode = iota // Bearer JWT or API key: "oauth"
	ModeAPIKeys             // API key only: "apikeys"
	ModeOAuthV2             // Bearer JWT only: "oauthv2"
)

// Factory returns the plugins.Factory of mode, reading its section
// ([oauth], [apikeys] or [oauthv2]) of the configuration.
func Factory(mode Mode) plugins.Factory {
	return func(env plugins.Env, snap *configs.Snapshot, proxy *configs.Proxy) (plugins.Plugin, error) {
		return newPlugin(mode, env, snap, proxy)
	}
}

type plugin struct {
	mode    Mode
	cfg     configs.Auth
	keyHdr  string // as written in the query
	keyKey  string // canonical header key of keyHdr
	authKey string // canonical header key of the Authorization header
	v       *verifier
	keys    plugins.KeyVerifier
	rules   *proxyRules
	// keyTimeout bounds an API key's verification.
	keyTimeout time.Duration
	// local holds the verified claims of local-mode keys.
	local sync.Map
}

func newPlugin(mode Mode, env plugins.Env, snap *configs.Snapshot, proxy *configs.Proxy) (*plugin, error) {
	c := snap.Config
	var sec *configs.Auth
	name := "oauth"
	switch mode {
	case ModeOAuth:
		sec = c.OAuth
	case ModeAPIKeys:
		sec, name = c.APIKeys, "apikeys"
	case ModeOAuthV2:
		sec, name = c.OAuthV2, "oauthv2"
	}
	p := &plugin{mode: mode, keys: env.APIKeys, keyTimeout: 10 * time.Second}
	if sec != nil {
		p.cfg = *sec
	}
	p.keyHdr = strings.ToLower(p.cfg.APIKeyHeader)
	if p.keyHdr == "" {
		p.keyHdr = "x-api-key"
	}
	p.keyKey = http.CanonicalHeaderKey(p.keyHdr)
	p.authKey = http.CanonicalHeaderKey(p.cfg.AuthorizationHeader)
	if p.authKey == "" {
		p.authKey = "Authorization"
	}
	if p.cfg.GracePeriod < 0 || p.cfg.TokenCacheSize < 0 {
		return nil, fmt.Errorf("[%s] gracePeriod and tokenCacheSize must not be negative", name)
	}
	// API keys of local-mode apps need no key pair; Bearer tokens do.
	if len(snap.Keys.PublicKeys) == 0 && len(snap.Keys.JWKS) == 0 && (mode == ModeOAuthV2 || snap.Config.EdgeMode()) {
		return nil, fmt.Errorf("[%s] no public key to verify tokens with: in local mode run `mgw init` to make a key pair, in Edge mode set edge_config.jwt_public_key", name)
	}
	grace := time.Duration(p.cfg.GracePeriod) * time.Second
	cacheOn := p.cfg.TokenCache == nil || *p.cfg.TokenCache
	size := p.cfg.TokenCacheSize
	if size == 0 {
		size = 1000
	}
	v, err := plugins.SharedValue(env.Shared, fmt.Sprintf("oauth-verifier/%d/%t/%d", grace, cacheOn, size), func() (*verifier, error) {
		return newVerifier(snap.Keys, grace, cacheOn, size, env.Now)
	})
	if err != nil {
		return nil, fmt.Errorf("[%s] %w", name, err)
	}
	p.v = v
	set, err := plugins.SharedValue(env.Shared, "oauth-rules", func() (*ruleSet, error) { return newRuleSet(c.Products), nil })
	if err != nil {
		return nil, fmt.Errorf("[%s] %w", name, err)
	}
	p.rules = newProxyRules(set, proxy, p.cfg.ProductOnly)
	return p, nil
}

func (p *plugin) ServeHTTP(w http.ResponseWriter, r *http.Request, next http.Handler) {
	authz := first(r.Header[p.authKey])
	useKey := p.mode == ModeAPIKeys || (p.mode == ModeOAuth && (authz == "" || p.cfg.AllowAPIKeyOnly))
	if p.mode == ModeOAuth && p.cfg.AllowOAuthOnly && authz == "" {
		p.deny(w, r, next, http.StatusUnauthorized, "missing_authorization", "Missing Authorization header")
		return
	}
	if useKey {
		p.serveKey(w, r, next)
		return
	}
	if authz == "" {
		p.deny(w, r, next, http.StatusUnauthorized, "missing_authorization", "Missing Authorization header")
		return
	}
	token, ok := strings.CutPrefix(authz, "Bearer ")
	if !ok || token == "" {
		p.invalid(w, r, next, http.StatusBadRequest, "invalid_request", "Invalid Authorization header")
		return
	}
	t, err := p.v.verify(token)
	if err != nil {
		desc := "invalid_token"
		if errors.Is(err, errMalformed) {
			desc = "token could not be parsed"
		}
		p.invalid(w, r, next, http.StatusUnauthorized, "invalid_token", desc)
		return
	}
	if !p.cfg.KeepAuthorizationHeader {
		delete(r.Header, p.authKey)
	}
	p.authorize(w, r, next, t)
}

// serveKey authenticates by API key: header first, then the query
// parameter of the same name.
func (p *plugin) serveKey(w http.ResponseWriter, r *http.Request, next http.Handler) {
	key := first(r.Header[p.keyKey])
	if key == "" {
		key = r.URL.Query().Get(p.keyHdr)
	}
	if key == "" {
		desc := "Missing Authorization header"
		if p.mode == ModeAPIKeys {
			desc = "Missing API Key header"
		}
		p.deny(w, r, next, http.StatusUnauthorized, "missing_authorization", desc)
		return
	}
	if p.keys == nil {
		WriteError(w, http.StatusInternalServerError, "internal_server_error", "API keys cannot be verified here")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), p.keyTimeout)
	res, err := p.keys.VerifyAPIKey(ctx, key)
	cancel()
	switch {
	case errors.Is(err, plugins.ErrKeyRejected):
		WriteError(w, http.StatusForbidden, "access_denied", "Unauthorized")
		return
	case err != nil:
		WriteError(w, http.StatusGatewayTimeout, "gateway_timeout", err.Error())
		return
	}
	var t *verified
	if res.Claims != nil {
		t = p.localVerified(key, res.Claims)
	} else if t, err = p.v.verify(res.Token); err != nil {
		WriteError(w, http.StatusForbidden, "access_denied", "Unauthorized")
		return
	}
	if p.mode == ModeAPIKeys && !p.cfg.KeepAPIKey {
		delete(r.Header, p.keyKey)
	}
	p.authorize(w, r, next, t)
}

// localVerified wraps the claims of a local-mode app once per key and
// revision, so that its claims header is encoded once.
func (p *plugin) localVerified(key string, claims map[string]any) *verified {
	if t, ok := p.local.Load(key); ok && t.(*verified).sameClaims(claims) {
		return t.(*verified)
	}
	t := newVerified(claims, time.Time{})
	p.local.Store(key, t)
	return t
}

// authorize lets the request through when a product of the token covers
// the proxy and the path.
func (p *plugin) authorize(w http.ResponseWriter, r *http.Request, next http.Handler, t *verified) {
	product := ""
	list, _ := t.claims["api_product_list"].([]any)
	for _, item := range list {
		name, _ := item.(string)
		if p.rules.allows(name, r.URL.Path) {
			product = name
			break
		}
	}
	if product == "" {
		WriteError(w, http.StatusForbidden, "access_denied", "access_denied")
		return
	}
	r.Header["X-Authorization-Claims"] = t.headerValue
	next.ServeHTTP(w, plugins.SetPrincipal(r, t.principal(product)))
}

// first is the first value of a header, or "".
func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// deny answers a request without credentials, unless allowNoAuthorization.
func (p *plugin) deny(w http.ResponseWriter, r *http.Request, next http.Handler, status int, code, desc string) {
	if p.cfg.AllowNoAuthorization {
		next.ServeHTTP(w, r)
		return
	}
	WriteError(w, status, code, desc)
}

// invalid answers a request with bad credentials, unless allowInvalidAuthorization.
func (p *plugin) invalid(w http.ResponseWriter, r *http.Request, next http.Handler, status int, code, desc string) {
	if p.cfg.AllowInvalidAuthorization {
		next.ServeHTTP(w, r)
		return
	}
	WriteError(w, status, code, desc)
}

// WriteError writes edgemicro's auth error body,
// {"error":…,"error_description":…}, as JSON. The local token service
// answers with it too.
func WriteError(w http.ResponseWriter, status int, code, desc string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	b, _ := json.Marshal(struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}{code, desc})
	_, _ = w.Write(b)
}
