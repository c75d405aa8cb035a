package plugins

import (
	"context"
	"net/http"
)

// Principal is who a request was authenticated as, for the plugins after
// the auth plugin (quota, analytics).
type Principal struct {
	// Claims are the token's claims.
	Claims map[string]any
	// Product is the first product of the token that covers the request.
	Product string
}

// ClaimString returns a string claim, or "".
func (p *Principal) ClaimString(name string) string {
	s, _ := p.Claims[name].(string)
	return s
}

type principalKey struct{}

// WithPrincipal returns r carrying p.
func WithPrincipal(r *http.Request, p *Principal) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
}

// PrincipalOf returns the principal r carries, or nil.
func PrincipalOf(r *http.Request) *Principal {
	p, _ := r.Context().Value(principalKey{}).(*Principal)
	return p
}
