package worker

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/internal/logkey"
	"github.com/mgw-gateway/mgw/plugins"
)

// runtime is everything needed to serve one configuration revision. It is
// built completely before it is published and never modified after.
type runtime struct {
	snap   *configs.Snapshot
	routes []*route // longest base path first
	router *router  // routes indexed by path chunk
	// apps maps a local-mode API key to its app's claims.
	apps map[string]map[string]any
	// issuer serves the local-mode token service, or is nil.
	issuer *issuer
	// serverTLS is the northbound TLS configuration, or nil.
	serverTLS *tls.Config
	// trusted are the proxies whose X-Forwarded-For is believed.
	trusted trustedProxies
}

// route is one proxy, compiled.
type route struct {
	proxy   *proxy
	name    string
	handler http.Handler // the plugin chain ending in proxy
	// exchange is set when the chain has plugins, which share a
	// plugins.Exchange per request.
	exchange bool
	metrics  *proxyMetrics
}

// compile builds a runtime for snap, taking transports from pool.
func compile(snap *configs.Snapshot, pool *transportPool, env plugins.Env, m *metrics) (*runtime, error) {
	cfg := &snap.Config
	rt := &runtime{snap: snap, apps: map[string]map[string]any{}}
	env.Shared = plugins.NewShared()
	if env.Now == nil {
		env.Now = time.Now
	}
	for i := range cfg.Apps {
		rt.apps[cfg.Apps[i].Key] = map[string]any(appClaims(&cfg.Apps[i]))
	}
	is, err := newIssuer(snap, env.Now)
	if err != nil {
		return nil, err
	}
	rt.issuer = is
	if rt.trusted, err = parseTrustedProxies(cfg.Edgemicro.TrustedProxies); err != nil {
		return nil, err
	}
	if rt.serverTLS, err = snap.ServerTLS(); err != nil {
		return nil, err
	}
	// Target TLS settings per host, built once per revision: an org with
	// hundreds of proxies on a few hosts parses each certificate once.
	type targetTLS struct {
		tc *tls.Config
		id string
	}
	byHost := map[string]targetTLS{}
	for i := range cfg.Proxies {
		p := &cfg.Proxies[i]
		target, err := url.Parse(p.URL)
		if err != nil {
			return nil, fmt.Errorf("proxy %q: %w", p.Name, err)
		}
		tt, ok := byHost[target.Host]
		if !ok {
			tc, err := snap.TargetTLS(target.Host)
			if err != nil {
				return nil, fmt.Errorf("proxy %q: targets: %w", p.Name, err)
			}
			tt = targetTLS{tc, tlsID(snap, target.Host)}
			byHost[target.Host] = tt
		}
		px := &proxy{
			targetEsc:  strings.TrimSuffix(target.EscapedPath(), "/"),
			basePath:   p.BasePath,
			target:     target,
			targetPath: strings.TrimSuffix(target.Path, "/"),
			headers:    cfg.Headers,
			transport:  pool.get(target, p.MaxConnections, cfg.TargetTimeout(p), tt.tc, tt.id, cfg.Edgemicro.Proxy),
			maxBody:    cfg.Edgemicro.MaxBodyBytes,
			metrics:    m.proxy(p.Name),
			log:        env.Logger.With().Str(logkey.Proxy, p.Name).Logger(),
		}
		h, err := plugins.Chain(env, snap, p, px)
		if err != nil {
			return nil, err
		}
		rt.routes = append(rt.routes, &route{proxy: px, name: p.Name, handler: h,
			exchange: h != http.Handler(px) || cfg.Edgemicro.Logging.AccessLog, metrics: px.metrics})
	}
	sort.SliceStable(rt.routes, func(i, j int) bool {
		return len(rt.routes[i].proxy.basePath) > len(rt.routes[j].proxy.basePath)
	})
	rt.router = newRouter(rt.routes)
	return rt, nil
}

// tlsID identifies the [[targets]] settings that apply to host.
func tlsID(snap *configs.Snapshot, host string) string {
	h := sha256.New()
	for i, t := range snap.Config.Targets {
		cl := t.SSL.Client
		fmt.Fprintf(h, "%d|%s|%s|%t|", i, t.Host, cl.Servername, cl.RejectUnauthorized == nil || *cl.RejectUnauthorized)
		if i < len(snap.TLS.Targets) {
			fmt.Fprintf(h, "%+v|", snap.TLS.Targets[i])
		}
	}
	_, _ = io.WriteString(h, host)
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// match returns the route whose base path is the longest prefix of path
// on a segment boundary: /hello matches /hello, /hello/ and /hello/x, not
// /helloworld. The router finds it without scanning the routes.
func (rt *runtime) match(path string) *route {
	return rt.router.match(path)
}
