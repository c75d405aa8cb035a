// Package spikearrest smooths the traffic of a whole instance to allow
// requests per timeUnit (second or minute) with Apigee's SpikeArrest
// rule: allow per timeUnit is smoothed into intervals of timeUnit/allow,
// and a request is admitted only when a whole interval has passed since
// the last one admitted; every other request gets 503 (with allow = 2
// per second, a burst of 5 gets one 200 and four 503s, and the next 200
// comes 500 ms after the first). Unlike edgemicro, which keeps one
// schedule per worker on a millisecond clock, the schedule is one word
// in the shared limit zone (a GCRA theoretical arrival time, kept in
// nanoseconds), so the rule holds for the instance whatever the number
// of workers, and allow = 100000 per second really admits 100,000. Each
// setting has its own schedule, so an edit applies at once.
//
// bufferSize > 0 makes a request that comes too early wait for its turn,
// up to bufferSize turns ahead, instead of being refused. burst > 0 (an
// mgw key; Apigee has none, and it defaults to none) admits up to burst
// requests ahead of the schedule at once, for traffic whose requests
// arrive in clumps.
package spikearrest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/plugins"
	"github.com/mgw-gateway/mgw/plugins/zone"
)

// Section is the configuration table of the plugin.
const Section = "spikearrest"

// Settings are the keys of [spikearrest].
type Settings struct {
	TimeUnit   string `json:"timeUnit"`
	Allow      int    `json:"allow"`
	BufferSize int    `json:"bufferSize"`
	Burst      int    `json:"burst"`
}

type plugin struct {
	slot     zone.Slot
	interval time.Duration
	// tolerance is how far ahead of the schedule a request is still
	// admitted at once: burst intervals, none by default.
	tolerance time.Duration
	maxWait   time.Duration
	now       func() time.Time
	// wait holds a request admitted for later until its turn; false when
	// the client went away first.
	wait func(ctx context.Context, d time.Duration) bool
}

// New builds the plugin for a proxy.
func New(env plugins.Env, snap *configs.Snapshot, _ *configs.Proxy) (plugins.Plugin, error) {
	s := Settings{TimeUnit: "second"}
	if err := snap.Config.Section(Section, &s); err != nil {
		return nil, err
	}
	var unit time.Duration
	switch s.TimeUnit {
	case "second":
		unit = time.Second
	case "minute":
		unit = time.Minute
	default:
		return nil, fmt.Errorf("[spikearrest] timeUnit %q is not second or minute", s.TimeUnit)
	}
	if s.Allow <= 0 {
		return nil, errors.New("[spikearrest] allow must be more than 0")
	}
	if s.BufferSize < 0 {
		return nil, errors.New("[spikearrest] bufferSize must not be negative")
	}
	if s.Burst < 0 {
		return nil, errors.New("[spikearrest] burst must not be negative")
	}
	z := env.Zone
	if z == nil {
		z = zone.New(8)
	}
	interval := unit / time.Duration(s.Allow)
	p := &plugin{
		interval:  interval,
		tolerance: time.Duration(s.Burst) * interval,
		maxWait:   time.Duration(s.BufferSize) * interval,
		now:       env.Now,
		wait:      sleep,
	}
	if p.now == nil {
		p.now = time.Now
	}
	// One schedule for the instance, as edgemicro's _default key, per
	// setting: a schedule made with a longer interval (allow 1 per minute
	// before an edit to 100 per second) would refuse everything until its
	// next turn, up to a minute after the edit, and the zone outlives
	// restarts. Each setting ever used keeps one of the zone's slots.
	slot, err := z.Slot(fmt.Sprintf("spikearrest/_default/%d/%d/%d", p.interval, p.tolerance, p.maxWait))
	if err != nil {
		return nil, err
	}
	p.slot = slot
	return p, nil
}

func (p *plugin) ServeHTTP(w http.ResponseWriter, r *http.Request, next http.Handler) {
	wait, ok := p.slot.Reserve(p.now(), p.interval, p.tolerance, p.maxWait)
	if !ok {
		plugins.WriteError(w, http.StatusServiceUnavailable, "SpikeArrest engaged")
		return
	}
	if wait > 0 && !p.wait(r.Context(), wait) {
		return
	}
	next.ServeHTTP(w, r)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
