package worker

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mgw-gateway/mgw/ipc"
)

// metrics are a worker's counters, kept for the life of the process
// (across revisions) and reported to the master with the stats. The
// request path only does atomic adds on counters it found at compile time.
type metrics struct {
	mu         sync.Mutex // guards the maps, not the counters
	proxies    map[string]*proxyMetrics
	rejections map[string]*atomic.Uint64
	latency    [14]atomic.Uint64 // len(ipc.LatencyBuckets)+1
	latencyNs  atomic.Uint64
}

// proxyMetrics are one proxy's counters.
type proxyMetrics struct {
	classes  [6]atomic.Uint64 // 1xx…5xx, and anything else
	errors   atomic.Uint64
	timeouts atomic.Uint64
}

func newMetrics() *metrics {
	return &metrics{proxies: map[string]*proxyMetrics{}, rejections: map[string]*atomic.Uint64{}}
}

// proxy returns name's counters, made once.
func (m *metrics) proxy(name string) *proxyMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.proxies[name]
	if !ok {
		p = &proxyMetrics{}
		m.proxies[name] = p
	}
	return p
}

// rejected counts a request a plugin answered.
func (m *metrics) rejected(plugin string) {
	m.mu.Lock()
	c, ok := m.rejections[plugin]
	if !ok {
		c = &atomic.Uint64{}
		m.rejections[plugin] = c
	}
	m.mu.Unlock()
	c.Add(1)
}

// observe counts one answer of proxy p.
func (m *metrics) observe(p *proxyMetrics, status int, d time.Duration) {
	class := status/100 - 1
	if class < 0 || class > 4 {
		class = 5
	}
	p.classes[class].Add(1)
	s := d.Seconds()
	i := 0
	for i < len(ipc.LatencyBuckets) && s > ipc.LatencyBuckets[i] {
		i++
	}
	m.latency[i].Add(1)
	m.latencyNs.Add(uint64(d))
}

var classNames = [6]string{"1xx", "2xx", "3xx", "4xx", "5xx", "other"}

// snapshot copies the counters for a Stats report.
func (m *metrics) snapshot() *ipc.Metrics {
	out := &ipc.Metrics{Requests: map[string]map[string]uint64{}, Upstream: map[string]map[string]uint64{}, Rejections: map[string]uint64{}}
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, p := range m.proxies {
		byClass := map[string]uint64{}
		for i := range p.classes {
			if n := p.classes[i].Load(); n > 0 {
				byClass[classNames[i]] = n
			}
		}
		if len(byClass) > 0 {
			out.Requests[name] = byClass
		}
		if e, t := p.errors.Load(), p.timeouts.Load(); e+t > 0 {
			out.Upstream[name] = map[string]uint64{"error": e, "timeout": t}
		}
	}
	for name, c := range m.rejections {
		out.Rejections[name] = c.Load()
	}
	out.Latency = make([]uint64, len(m.latency))
	for i := range m.latency {
		out.Latency[i] = m.latency[i].Load()
	}
	out.LatencySum = math.Round(float64(m.latencyNs.Load())/1e3) / 1e6
	return out
}
