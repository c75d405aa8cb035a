// Package quota enforces the quotas of API products: allow requests per
// interval timeUnit (minute, hour, day, week, month) for each identifier
// <org>.<env>.<app>.<product>, where the app and products come from the
// request's token or API key. A window opens with the first request
// counted and lasts interval × timeUnit (Apigee's "flexi" quota).
//
// The memory backend counts in the instance's shared limit zone, so a
// quota of L admits exactly L whatever the number of workers; the redis
// backend counts in Redis with a server-side script, exact across every
// instance that shares it. The edge backend exchanges the instance's
// count with Apigee's quota service and admits, between exchanges, at
// most its share of what was left (edge.go), so instances together stay
// within a stated bound. A backend that fails admits the request with
// failOpen, and answers 500 without. Every
// response of a proxy a quota covers carries X-RateLimit-Limit,
// -Remaining (never below 0) and -Reset (whole seconds left).
package quota

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/plugins"
	"github.com/mgw-gateway/mgw/plugins/zone"
)

// Section is the configuration table of the plugin, named as in edgemicro.
const Section = "quotas"

// Settings are the keys of [quotas].
type Settings struct {
	// Backend is memory (the default: exact for the instance) or redis
	// (exact for every instance sharing the Redis at RedisURL).
	Backend  string `json:"backend"`
	RedisURL string `json:"redis_url"`
	FailOpen bool   `json:"failOpen"`
	// IsHTTPStatusTooManyRequestEnabled answers 429 instead of 403.
	IsHTTPStatusTooManyRequestEnabled bool `json:"isHTTPStatusTooManyRequestEnabled"`
	// Accepted for edgemicro files; the memory backend needs no buffer.
	BufferSize   map[string]int `json:"bufferSize"`
	UseDebugMpID bool           `json:"useDebugMpId"`
	UseRedis     bool           `json:"useRedis"`
	// EdgeInstances is how many instances share the org's quotas, for the
	// edge backend: between two exchanges with Edge an instance admits at
	// most its share (1/EdgeInstances) of what was left at the last one.
	EdgeInstances int `json:"edge_instances"`
}

// limit is one product's quota.
type limit struct {
	product  string
	interval int
	unit     string
	allow    uint32
	header   []string // X-RateLimit-Limit, shared by every answer
	end      func(time.Time) time.Time
	slots    sync.Map // app → zone.Slot of <org>.<env>.<app>.<product>
}

type plugin struct {
	prefix   string // <org>.<env>.
	limits   map[string]*limit
	zone     *zone.Zone
	status   int
	failOpen bool
	now      func() time.Time
	redis    *redisBackend // nil: the memory backend
	edge     *edgeBackend
}

// New builds the plugin for a proxy: the quotas of the products that
// list it. It returns nil when no product with a quota covers the proxy.
func New(env plugins.Env, snap *configs.Snapshot, proxy *configs.Proxy) (plugins.Plugin, error) {
	s := Settings{Backend: "memory", EdgeInstances: 2}
	if err := snap.Config.Section(Section, &s); err != nil {
		return nil, err
	}
	if s.EdgeInstances < 1 {
		return nil, fmt.Errorf("[quotas] edge_instances must be at least 1 (the instances sharing the org's quotas)")
	}
	if s.UseRedis && s.Backend == "memory" {
		s.Backend = "redis" // edgemicro's spelling
	}
	p := &plugin{
		prefix: snap.Org + "." + snap.Env + ".", limits: map[string]*limit{},
		zone: env.Zone, status: http.StatusForbidden, failOpen: s.FailOpen, now: env.Now,
	}
	if p.zone == nil {
		p.zone = zone.New(64)
	}
	switch s.Backend {
	case "memory":
	case "redis":
		if s.RedisURL == "" {
			s.RedisURL = "redis://127.0.0.1:6379/0"
		}
		c, err := redisClient(s.RedisURL)
		if err != nil {
			return nil, err
		}
		p.redis = &redisBackend{client: c, prefix: "mgw:quota:"}
	case "edge":
		if !snap.Config.EdgeMode() {
			return nil, fmt.Errorf("[quotas] backend \"edge\" needs Edge mode ([edge_config])")
		}
		p.edge = &edgeBackend{zone: p.zone, watch: env.WatchQuota, instances: uint64(s.EdgeInstances)}
	default:
		return nil, fmt.Errorf("[quotas] backend %q is not memory, redis or edge", s.Backend)
	}
	if s.IsHTTPStatusTooManyRequestEnabled {
		p.status = http.StatusTooManyRequests
	}
	var idx *index
	if env.Shared != nil {
		v, err := plugins.SharedValue(env.Shared, "quota-index", func() (*index, error) { return newIndex(snap.Config.Products), nil })
		if err != nil {
			return nil, fmt.Errorf("[quotas] %w", err)
		}
		idx = v
	} else { // a plugin built alone, in tests
		idx = newIndex(snap.Config.Products)
	}
	for _, q := range idx.byProxy[proxy.Name] {
		if q.err != nil {
			return nil, q.err
		}
		l := q.limit // each proxy's plugin caches its own zone slots
		p.limits[l.product] = &limit{product: l.product, interval: l.interval, unit: l.unit, allow: l.allow, header: l.header, end: l.end}
	}
	if len(p.limits) == 0 {
		return nil, nil
	}
	return p, nil
}

// index is, for each proxy, the quotas of the products that list it,
// built once per revision: looking every product up for every proxy
// cost proxies × products.
type index struct {
	byProxy map[string][]quotaOf
}

// quotaOf is one product's quota, or why it is wrong.
type quotaOf struct {
	limit *limit // a template: no slot is cached in it
	err   error
}

// newIndex lists each product with a quota under every proxy it names,
// in product order (so a later product of the same name wins, and the
// first wrong one is the error, as when each proxy scanned the products).
func newIndex(products []configs.Product) *index {
	x := &index{byProxy: map[string][]quotaOf{}}
	for i := range products {
		pr := &products[i]
		if pr.Quota <= 0 {
			continue
		}
		q := newQuota(pr)
		seen := make(map[string]bool, len(pr.Proxies))
		for _, px := range pr.Proxies {
			if !seen[px] { // a proxy listed twice has the quota once
				seen[px] = true
				x.byProxy[px] = append(x.byProxy[px], q)
			}
		}
	}
	return x
}

// newQuota reads one product's quota settings.
func newQuota(pr *configs.Product) quotaOf {
	n := max(pr.QuotaInterval, 1)
	var end func(time.Time) time.Time
	switch pr.QuotaTimeUnit {
	case "minute", "hour", "day", "week":
		d := map[string]time.Duration{"minute": time.Minute, "hour": time.Hour, "day": 24 * time.Hour, "week": 7 * 24 * time.Hour}[pr.QuotaTimeUnit]
		end = func(t time.Time) time.Time { return t.Add(time.Duration(n) * d) }
	case "month":
		end = func(t time.Time) time.Time { return t.AddDate(0, n, 0) }
	default:
		return quotaOf{err: fmt.Errorf("product %q: quotaTimeUnit %q is not minute, hour, day, week or month", pr.Name, pr.QuotaTimeUnit)}
	}
	allow := uint32(min(pr.Quota, 1<<32-1))
	return quotaOf{limit: &limit{product: pr.Name, interval: n, unit: pr.QuotaTimeUnit, allow: allow, header: []string{strconv.FormatUint(uint64(allow), 10)}, end: end}}
}

// take counts the request in app's window on l.
func (p *plugin) take(ctx context.Context, l *limit, app string, now time.Time) (zone.Window, error) {
	if p.redis != nil {
		return p.redis.take(ctx, p.prefix+app+"."+l.product, l, now)
	}
	if p.edge != nil {
		return p.edge.take(p.prefix+app+"."+l.product, l, now)
	}
	slot, err := p.slot(l, app)
	if err != nil {
		return zone.Window{}, err
	}
	return slot.Take(l.allow, now, l.end), nil
}

// slot finds the zone slot of app's window on l, once per app.
func (p *plugin) slot(l *limit, app string) (zone.Slot, error) {
	if s, ok := l.slots.Load(app); ok {
		return s.(zone.Slot), nil
	}
	s, err := p.zone.Slot(p.prefix + app + "." + l.product)
	if err != nil {
		return s, err
	}
	l.slots.Store(app, s)
	return s, nil
}

func (p *plugin) ServeHTTP(w http.ResponseWriter, r *http.Request, next http.Handler) {
	pr := plugins.PrincipalOf(r)
	if pr == nil {
		next.ServeHTTP(w, r)
		return
	}
	app := pr.ClaimString("application_name")
	now := p.now()
	first, refused, failed := true, false, false
	pr.Products(func(product string) bool {
		l, ok := p.limits[product]
		if !ok {
			return true
		}
		win, err := p.take(r.Context(), l, app, now)
		if err != nil {
			failed = !p.failOpen
			return !failed
		}
		if first || !win.Allowed {
			h := w.Header()
			h["X-Ratelimit-Limit"] = l.header
			h["X-Ratelimit-Remaining"] = headerValue(uint64(l.allow - min(win.Used, l.allow)))
			h["X-Ratelimit-Reset"] = headerValue(uint64(max(0, win.End.Sub(now)) / time.Second))
			first = false
		}
		refused = !win.Allowed
		return !refused
	})
	switch {
	case failed:
		plugins.WriteError(w, http.StatusInternalServerError, "quota unavailable")
	case refused:
		plugins.WriteError(w, p.status, "exceeded quota")
	default:
		next.ServeHTTP(w, r)
	}
}

// smallValues are the header values 0 to 1023, made once: headerValue
// hands out one-element slices of this array, which no one writes to (a
// header's Set replaces the slice, its Add appends past the slice's
// capacity of one, which copies).
var smallValues = func() (a [1024]string) {
	for i := range a {
		a[i] = strconv.Itoa(i)
	}
	return a
}()

// headerValue returns n as the value of a header, for a header map that
// keeps it past the request: a small n (the seconds left of a minute's
// window) without allocating, a large one (what is left of a large
// quota) in one allocation instead of two.
func headerValue(n uint64) []string {
	if n < uint64(len(smallValues)) {
		return smallValues[n : n+1 : n+1]
	}
	v := new(struct {
		s [1]string
		b [20]byte // the longest uint64
	})
	b := strconv.AppendUint(v.b[:0], n, 10)
	v.s[0] = unsafe.String(&b[0], len(b))
	return v.s[:]
}
