package plugins

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// Exchange is what the steps of one request learn about it, shared along
// its chain: who it is (set by the auth plugin), what the target did (set
// by the proxy), for the plugins that look at it afterwards (quota,
// analytics). The worker attaches one to every request that has plugins.
type Exchange struct {
	// Start is when the request was read.
	Start time.Time
	// RequestID is the X-Request-Id the proxy sent the target.
	RequestID string
	// Plugin is the innermost plugin the request entered, cleared when the
	// request reaches the proxy: when set at the end, that plugin answered.
	Plugin string
	// Principal is set by the auth plugins; nil when none authenticated it.
	Principal *Principal
	// Target side, set by the proxy; zero when no target was called.
	// Target is the outgoing request's URL; it is not modified after.
	Target              *url.URL
	TargetSentStart     time.Time
	TargetReceivedStart time.Time
	TargetReceivedEnd   time.Time
	TargetStatus        int
}

// Principal is who a request was authenticated as.
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

// Products calls f with each product of the api_product_list claim, in
// order, until f returns false.
func (p *Principal) Products(f func(product string) bool) {
	list, _ := p.Claims["api_product_list"].([]any)
	for _, v := range list {
		if s, ok := v.(string); ok && !f(s) {
			return
		}
	}
}

type exchangeKey struct{}

// WithExchange returns r carrying x.
func WithExchange(r *http.Request, x *Exchange) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), exchangeKey{}, x))
}

// ExchangeOf returns the exchange r carries, or nil.
func ExchangeOf(r *http.Request) *Exchange {
	x, _ := r.Context().Value(exchangeKey{}).(*Exchange)
	return x
}

// SetPrincipal records p on r's exchange, attaching one when r has none,
// and returns the request to pass on.
func SetPrincipal(r *http.Request, p *Principal) *http.Request {
	if x := ExchangeOf(r); x != nil {
		x.Principal = p
		return r
	}
	return WithExchange(r, &Exchange{Start: time.Now(), Principal: p})
}

// PrincipalOf returns who r was authenticated as, or nil.
func PrincipalOf(r *http.Request) *Principal {
	if x := ExchangeOf(r); x != nil {
		return x.Principal
	}
	return nil
}
