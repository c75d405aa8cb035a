package worker

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"golang.org/x/net/http/httpproxy"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/worker/h1"
)

// idleConnTimeout closes pooled target connections idle this long. It is
// below the 5 s keep-alive timeout of Node.js servers, a common kind of
// target, so mgw closes an idle connection before the target does and
// never sends a request into a connection the target is closing.
const idleConnTimeout = 4 * time.Second

// transportPool keeps one keep-alive transport per target and limits, so
// that connection pools survive configuration revisions.
type transportPool struct {
	mu sync.Mutex
	m  map[string]http.RoundTripper
}

func newTransportPool() *transportPool {
	return &transportPool{m: map[string]http.RoundTripper{}}
}

// get returns the transport for target with these limits and TLS
// settings; tlsID identifies tlsConfig's content, so equal settings in a
// new revision keep the pool.
func (tp *transportPool) get(target *url.URL, maxConns int, timeout time.Duration, tlsConfig *tls.Config, tlsID string, proxy *configs.OutboundProxy) http.RoundTripper {
	if target.Scheme == configs.MockScheme {
		return mockTarget{}
	}
	key := fmt.Sprintf("%s://%s|%d|%s|%s|%+v", target.Scheme, target.Host, maxConns, timeout, tlsID, proxyKey(proxy))
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if t, ok := tp.m[key]; ok {
		return t
	}
	idle := 1024
	if maxConns > 0 {
		idle = maxConns
	}
	dial := rawDialer(&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second})
	if target.Scheme == "http" && (proxy == nil || !proxy.Enabled) {
		t := &h1.Transport{
			Addr:                  hostPort(target),
			Dial:                  dial,
			MaxConns:              maxConns,
			ConnWait:              timeout, // at max_connections: then 503
			ResponseHeaderTimeout: timeout,
			IdleTimeout:           idleConnTimeout,
		}
		tp.m[key] = t
		return t
	}
	t := &http.Transport{
		DialContext:           dial,
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   idle,
		MaxConnsPerHost:       maxConns,
		IdleConnTimeout:       idleConnTimeout,
		ResponseHeaderTimeout: timeout,
		TLSHandshakeTimeout:   timeout,
		TLSClientConfig:       tlsConfig,
		ExpectContinueTimeout: time.Second,
		// A proxy passes Accept-Encoding and bodies through untouched.
		DisableCompression: true,
		WriteBufferSize:    16 << 10,
		ReadBufferSize:     16 << 10,
	}
	if proxy != nil && proxy.Enabled {
		t.Proxy = proxyFunc(proxy)
	}
	if maxConns > 0 { // h1's ConnWait, for net/http's transport
		lt := newLimitedTransport(t, maxConns, timeout)
		tp.m[key] = lt
		return lt
	}
	tp.m[key] = t
	return t
}

func proxyKey(p *configs.OutboundProxy) configs.OutboundProxy {
	if p == nil {
		return configs.OutboundProxy{}
	}
	return *p
}

// proxyFunc chooses the outbound proxy of a target request: the
// configured URL and bypass list, or HTTP(S)_PROXY and NO_PROXY.
func proxyFunc(p *configs.OutboundProxy) func(*http.Request) (*url.URL, error) {
	cfg := httpproxy.FromEnvironment()
	if p.URL != "" {
		cfg.HTTPProxy, cfg.HTTPSProxy = p.URL, p.URL
	}
	if p.Bypass != "" {
		cfg.NoProxy = p.Bypass
	}
	f := cfg.ProxyFunc()
	return func(r *http.Request) (*url.URL, error) { return f(r.URL) }
}

// retain drops the transports that rt does not use, closing their idle
// connections.
func (tp *transportPool) retain(rt *runtime) {
	used := map[http.RoundTripper]bool{}
	for _, r := range rt.routes {
		used[r.proxy.transport] = true
	}
	tp.mu.Lock()
	defer tp.mu.Unlock()
	for k, t := range tp.m {
		if !used[t] {
			delete(tp.m, k)
			if c, ok := t.(interface{ CloseIdleConnections() }); ok {
				c.CloseIdleConnections()
			}
		}
	}
}

// hostPort is a plain-HTTP target's host and port, port 80 when it
// names none.
func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	return net.JoinHostPort(u.Hostname(), "80")
}

// rawDialer dials with d and wraps each connection in h1.RawConn.
func rawDialer(d *net.Dialer) func(context.Context, string, string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return h1.RawConn(c), nil
	}
}
