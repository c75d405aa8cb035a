package oauth

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"reflect"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/plugins"
)

// Errors of token verification: a value that is not a JWS at all, and a
// JWS that is not valid (signature, algorithm, key or time).
var (
	errMalformed = errors.New("token could not be parsed")
	errInvalid   = errors.New("invalid_token")
)

// verifier checks RS256 tokens against one revision's keys and keeps the
// good ones.
type verifier struct {
	keys   []*rsa.PublicKey
	byKid  map[string]*rsa.PublicKey
	parser *jwt.Parser
	grace  time.Duration
	now    func() time.Time

	cacheOn  bool
	cacheMax int
	mu       sync.Mutex
	cache    map[string]*verified
}

// verified is a token that passed every check. It is shared by every
// request that presents the token, so it is never modified after it is
// made, except for its principals, under mu.
type verified struct {
	claims      map[string]any
	header      string   // x-authorization-claims
	headerValue []string // the same, as a header value; shared, never modified
	exp         time.Time

	mu         sync.Mutex
	principals map[string]*plugins.Principal // by product
}

func newVerified(claims map[string]any, exp time.Time) *verified {
	h := claimsHeader(claims)
	return &verified{claims: claims, header: h, headerValue: []string{h}, exp: exp}
}

// sameClaims reports whether t was made from exactly this claims map.
func (t *verified) sameClaims(c map[string]any) bool {
	return reflect.ValueOf(t.claims).UnsafePointer() == reflect.ValueOf(c).UnsafePointer()
}

// principal is the token's principal for product, made once.
func (t *verified) principal(product string) *plugins.Principal {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p, ok := t.principals[product]; ok {
		return p
	}
	if t.principals == nil {
		t.principals = map[string]*plugins.Principal{}
	}
	p := &plugins.Principal{Claims: t.claims, Product: product}
	t.principals[product] = p
	return p
}

func newVerifier(keys configs.Keys, grace time.Duration, cacheOn bool, cacheMax int, now func() time.Time) (*verifier, error) {
	v := &verifier{grace: grace, now: now, cacheOn: cacheOn, cacheMax: cacheMax, cache: map[string]*verified{}, byKid: map[string]*rsa.PublicKey{}}
	for _, p := range keys.PublicKeys {
		k, err := ParsePublicKey([]byte(p))
		if err != nil {
			return nil, err
		}
		v.keys = append(v.keys, k)
	}
	if len(keys.JWKS) > 0 {
		jwks, err := ParseJWKS(keys.JWKS)
		if err != nil {
			return nil, err
		}
		v.byKid = jwks
	}
	v.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{"RS256"}),
		jwt.WithLeeway(grace),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(now),
	)
	return v, nil
}

// verify returns the verified token, from the cache when it was seen before.
func (v *verifier) verify(token string) (*verified, error) {
	if v.cacheOn {
		v.mu.Lock()
		t, ok := v.cache[token]
		v.mu.Unlock()
		if ok && v.now().Before(t.exp.Add(v.grace)) {
			return t, nil
		}
	}
	claims := jwt.MapClaims{}
	_, err := v.parser.ParseWithClaims(token, claims, v.keyFor)
	if err != nil {
		if errors.Is(err, jwt.ErrTokenMalformed) {
			return nil, errMalformed
		}
		return nil, fmt.Errorf("%w: %w", errInvalid, err)
	}
	exp := v.now().Add(30 * time.Minute)
	if e, err := claims.GetExpirationTime(); err == nil && e != nil {
		exp = e.Time
	}
	t := newVerified(claims, exp)
	if v.cacheOn {
		v.mu.Lock()
		if len(v.cache) >= v.cacheMax {
			now := v.now()
			for k, c := range v.cache {
				if len(v.cache) < v.cacheMax/2+1 && now.Before(c.exp.Add(v.grace)) {
					continue
				}
				delete(v.cache, k) // expired first; when all are live, any half
			}
		}
		v.cache[token] = t
		v.mu.Unlock()
	}
	return t, nil
}

// keyFor selects the key: by kid when the JWKS has it, else the PEM keys.
func (v *verifier) keyFor(t *jwt.Token) (any, error) {
	if kid, _ := t.Header["kid"].(string); kid != "" && len(v.byKid) > 0 {
		k, ok := v.byKid[kid]
		if !ok {
			return nil, fmt.Errorf("unknown kid %q", kid)
		}
		return k, nil
	}
	if len(v.keys) == 0 {
		return nil, errors.New("no public key to verify tokens with")
	}
	set := jwt.VerificationKeySet{}
	for _, k := range v.keys {
		set.Keys = append(set.Keys, k)
	}
	return set, nil
}

// hiddenClaims are left out of x-authorization-claims, as edgemicro does.
var hiddenClaims = map[string]bool{
	"application_name": true, "client_id": true, "api_product_list": true,
	"iat": true, "exp": true, "access_token": true,
}

func claimsHeader(c map[string]any) string {
	out := make(map[string]any, len(c))
	for k, v := range c {
		if !hiddenClaims[k] {
			out[k] = v
		}
	}
	b, _ := json.Marshal(out)
	return base64.StdEncoding.EncodeToString(b)
}

// ParsePrivateKey reads an RSA private key from PEM, PKCS#8 or PKCS#1.
func ParsePrivateKey(b []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("private key: no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		if k, err = x509.ParsePKCS1PrivateKey(block.Bytes); err != nil {
			return nil, fmt.Errorf("private key: %w", err)
		}
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("private key: %T is not an RSA key", k)
	}
	return rk, nil
}

// ParsePublicKey reads an RSA public key from PEM: a certificate, a PKIX
// public key or a PKCS#1 public key.
func ParsePublicKey(b []byte) (*rsa.PublicKey, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("public key: no PEM block")
	}
	var key any
	var err error
	switch block.Type {
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			key = cert.PublicKey
		}
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	default:
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	rk, ok := key.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("public key: %T is not an RSA key", key)
	}
	return rk, nil
}

// ParseJWKS reads the RSA keys of a {"keys":[JWK…]} document, by kid.
func ParseJWKS(b []byte) (map[string]*rsa.PublicKey, error) {
	var set struct {
		Keys []struct {
			Kty string `json:"kty"`
			Kid string `json:"kid"`
			N   string `json:"n"`
			E   string `json:"e"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	out := map[string]*rsa.PublicKey{}
	for _, k := range set.Keys {
		if k.Kty != "RSA" || k.Kid == "" {
			continue
		}
		n, err1 := base64.RawURLEncoding.DecodeString(k.N)
		e, err2 := base64.RawURLEncoding.DecodeString(k.E)
		if err1 != nil || err2 != nil || len(e) > 4 || len(n) == 0 {
			return nil, fmt.Errorf("jwks: key %q is not a valid RSA key", k.Kid)
		}
		out[k.Kid] = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	}
	return out, nil
}
