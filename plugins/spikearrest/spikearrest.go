// Package spikearrest smooths the traffic of a whole instance to allow
// requests per timeUnit (second or minute), as Apigee's SpikeArrest
// does, but for the instance rather than per worker, and with no
// per-millisecond ceiling: one schedule (a GCRA theoretical arrival time)
// in the shared limit zone admits a request every timeUnit/allow, with
// a tenth of a timeUnit of slack for bursts. With bufferSize > 0 a request
// that comes too early waits for its turn, up to bufferSize turns,
// instead of being refused with 503.
package spikearrest

import (
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
	TimeUnit    string             `json:"timeUnit"`
	Allow       int                `json:"allow"`
	BufferSize  int                `json:"bufferSize"`
	ExcludeUrls configs.StringList `json:"excludeUrls"`
}

type plugin struct {
	slot     zone.Slot
	interval time.Duration
	burst    time.Duration
	maxWait  time.Duration
	now      func() time.Time
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
	z := env.Zone
	if z == nil {
		z = zone.New(8)
	}
	// One schedule for the instance, as edgemicro's _default key.
	slot, err := z.Slot("spikearrest/_default")
	if err != nil {
		return nil, err
	}
	interval := unit / time.Duration(s.Allow)
	return &plugin{
		slot: slot, interval: interval,
		burst:   max(interval, unit/10),
		maxWait: time.Duration(s.BufferSize) * interval,
		now:     env.Now,
	}, nil
}

func (p *plugin) ServeHTTP(w http.ResponseWriter, r *http.Request, next http.Handler) {
	wait, ok := p.slot.Reserve(p.now(), p.interval, p.burst, p.maxWait)
	if !ok {
		plugins.WriteError(w, http.StatusServiceUnavailable, "SpikeArrest engaged")
		return
	}
	if wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	next.ServeHTTP(w, r)
}
