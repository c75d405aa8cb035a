package master

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/internal/logkey"
	"github.com/mgw-gateway/mgw/ipc"
)

// addMetrics adds src's counters to dst.
func addMetrics(dst, src *ipc.Metrics) {
	add2 := func(d *map[string]map[string]uint64, s map[string]map[string]uint64) {
		if *d == nil {
			*d = map[string]map[string]uint64{}
		}
		for k, m := range s {
			if (*d)[k] == nil {
				(*d)[k] = map[string]uint64{}
			}
			for k2, v := range m {
				(*d)[k][k2] += v
			}
		}
	}
	add2(&dst.Requests, src.Requests)
	add2(&dst.Upstream, src.Upstream)
	if dst.Rejections == nil {
		dst.Rejections = map[string]uint64{}
	}
	for k, v := range src.Rejections {
		dst.Rejections[k] += v
	}
	for len(dst.Latency) < len(src.Latency) {
		dst.Latency = append(dst.Latency, 0)
	}
	for i, v := range src.Latency {
		dst.Latency[i] += v
	}
	dst.LatencySum += src.LatencySum
	dst.RecordsDropped += src.RecordsDropped
}

// metricsRequest asks the select loop for the text of /metrics, or, with
// health set, only for an answer (the loop is alive) and the phase.
type metricsRequest struct {
	health bool
	reply  chan []byte
}

// Paths of the health endpoints on the metrics port.
const (
	// HealthPath answers 200 while the master's loop runs (a liveness probe).
	HealthPath = "/healthz"
	// ReadyPath answers 200 only while a generation serves: 503 while the
	// first one starts, and from the moment a stop begins (a readiness
	// probe). Across a reload it stays 200.
	ReadyPath = "/readyz"
)

// handleMetrics answers /metrics with what the select loop renders, and
// the health endpoints.
func (m *Master) handleMetrics(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if path != "/metrics" && path != HealthPath && path != ReadyPath {
		http.NotFound(w, r)
		return
	}
	req := metricsRequest{health: path != "/metrics", reply: make(chan []byte, 1)}
	select {
	case m.metricsReqs <- req:
	case <-m.done:
		if req.health && m.shownPhase() == phaseReplaced {
			// The next generation serves: the instance is live and ready.
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			answer := "ready\n"
			if path == HealthPath {
				answer = "ok\n"
			}
			_, _ = w.Write([]byte(answer))
			return
		}
		http.Error(w, "stopping", http.StatusServiceUnavailable)
		return
	case <-time.After(5 * time.Second):
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	body := <-req.reply
	if req.health {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if path == HealthPath {
			_, _ = w.Write([]byte("ok\n"))
			return
		}
		if phase := string(body); phase != "serving" {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(phase + "\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
		return
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, _ = w.Write(body)
}

// answerMetrics answers one metrics request on the select loop: the text
// of /metrics, or for a health probe the phase's readiness word. A
// replaced generation answers for the next one, which serves: its last
// probes say serving.
func (m *Master) answerMetrics(req metricsRequest) {
	if !req.health {
		req.reply <- m.renderMetrics()
		return
	}
	req.reply <- []byte(m.phase.readiness())
}

// renderMetrics writes the Prometheus text format of the instance's
// counters: every worker of this generation, living or exited.
func (m *Master) renderMetrics() []byte {
	total := ipc.Metrics{}
	addMetrics(&total, &m.sup.retired)
	states := map[string]int{}
	restarts := 0
	for _, sl := range m.sup.slots {
		if sl.metrics != nil {
			addMetrics(&total, sl.metrics)
		}
		if !sl.exited {
			states[sl.state]++
		}
		restarts += sl.restarts
	}
	var b strings.Builder
	writeTraffic(&b, &total)
	writeLatency(&b, &total)
	writeWorkers(&b, states, restarts)
	m.writeConfig(&b)
	m.writeAnalytics(&b)
	return []byte(b.String())
}

// family writes the HELP and TYPE lines of a metric family.
func family(b *strings.Builder, name, typ, help string) {
	fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

// writeTraffic writes the request, target error and plugin rejection
// counters.
func writeTraffic(b *strings.Builder, total *ipc.Metrics) {
	family(b, "mgw_requests_total", "counter", "Requests answered, by proxy and status class.")
	for _, proxy := range sortedKeys(total.Requests) {
		for _, class := range sortedKeys(total.Requests[proxy]) {
			fmt.Fprintf(b, "mgw_requests_total{proxy=\"%s\",class=\"%s\"} %d\n", esc(proxy), class, total.Requests[proxy][class])
		}
	}
	family(b, "mgw_upstream_errors_total", "counter", "Target calls that failed, by proxy and kind (error, timeout).")
	for _, proxy := range sortedKeys(total.Upstream) {
		for _, kind := range sortedKeys(total.Upstream[proxy]) {
			fmt.Fprintf(b, "mgw_upstream_errors_total{proxy=\"%s\",kind=\"%s\"} %d\n", esc(proxy), kind, total.Upstream[proxy][kind])
		}
	}
	family(b, "mgw_plugin_rejections_total", "counter", "Requests answered by a plugin instead of the target, by plugin.")
	for _, p := range sortedKeys(total.Rejections) {
		fmt.Fprintf(b, "mgw_plugin_rejections_total{plugin=\"%s\"} %d\n", esc(p), total.Rejections[p])
	}
}

// writeLatency writes the request duration histogram: the workers count
// per bucket, the text format wants the running sum.
func writeLatency(b *strings.Builder, total *ipc.Metrics) {
	family(b, "mgw_request_duration_seconds", "histogram", "Time from reading a request to the end of its answer.")
	var cum uint64
	for i, le := range ipc.LatencyBuckets {
		if i < len(total.Latency) {
			cum += total.Latency[i]
		}
		fmt.Fprintf(b, "mgw_request_duration_seconds_bucket{le=\"%s\"} %d\n", strconv.FormatFloat(le, 'g', -1, 64), cum)
	}
	if n := len(ipc.LatencyBuckets); n < len(total.Latency) {
		cum += total.Latency[n]
	}
	fmt.Fprintf(b, "mgw_request_duration_seconds_bucket{le=\"+Inf\"} %d\n", cum)
	fmt.Fprintf(b, "mgw_request_duration_seconds_sum %s\n", strconv.FormatFloat(total.LatencySum, 'f', -1, 64))
	fmt.Fprintf(b, "mgw_request_duration_seconds_count %d\n", cum)
}

// writeWorkers writes the worker processes by state and their restarts.
func writeWorkers(b *strings.Builder, states map[string]int, restarts int) {
	family(b, "mgw_workers", "gauge", "Worker processes, by state.")
	for _, st := range sortedKeys(states) {
		fmt.Fprintf(b, "mgw_workers{state=\"%s\"} %d\n", st, states[st])
	}
	family(b, "mgw_worker_restarts_total", "counter", "Workers replaced after they died.")
	fmt.Fprintf(b, "mgw_worker_restarts_total %d\n", restarts)
}

// writeConfig writes the generation, the revision served and the last
// good Edge poll.
func (m *Master) writeConfig(b *strings.Builder) {
	family(b, "mgw_generation", "gauge", "The master generation (one more per reload).")
	fmt.Fprintf(b, "mgw_generation %d\n", m.generation)
	family(b, "mgw_config_revision", "gauge", "The configuration revision served.")
	fmt.Fprintf(b, "mgw_config_revision %d\n", m.snap.Revision)
	if m.edge.lastPoll != nil {
		family(b, "mgw_config_last_poll_timestamp_seconds", "gauge", "When Edge was last polled successfully.")
		fmt.Fprintf(b, "mgw_config_last_poll_timestamp_seconds %d\n", m.edge.lastPoll.Unix())
	}
}

// writeAnalytics writes the analytics queue's counters, when analytics
// are on.
func (m *Master) writeAnalytics(b *strings.Builder) {
	a := m.analyticsStatus()
	if a == nil {
		return
	}
	family(b, "mgw_analytics_queue_length", "gauge", "Analytics records waiting for upload.")
	fmt.Fprintf(b, "mgw_analytics_queue_length %d\n", a.Queued)
	family(b, "mgw_analytics_dropped_total", "counter", "Analytics records dropped (buffer full, or refused as malformed).")
	fmt.Fprintf(b, "mgw_analytics_dropped_total %d\n", a.Dropped)
	family(b, "mgw_analytics_sent_total", "counter", "Analytics records uploaded.")
	fmt.Fprintf(b, "mgw_analytics_sent_total %d\n", a.Sent)
	if q := m.analytics.Load(); q != nil {
		size, uploading := q.Load()
		family(b, "mgw_analytics_buffer_size", "gauge", "Analytics records the queue holds at most (bufferSize); past it the oldest are dropped.")
		fmt.Fprintf(b, "mgw_analytics_buffer_size %d\n", size)
		family(b, "mgw_analytics_uploads_in_flight", "gauge", "Analytics uploads in progress (at most [analytics] concurrency).")
		fmt.Fprintf(b, "mgw_analytics_uploads_in_flight %d\n", uploading)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// esc escapes a label value.
func esc(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

// listenMetrics opens [metrics] port for /metrics and the health
// endpoints. The socket comes from tableflip, so the next generation
// inherits it across a reload. The first generation answers at once (not
// ready while it starts); a later one only once it serves, and the one it
// replaces stops answering then, so that a probe during a reload never
// meets a generation that is not the serving one.
func (m *Master) listenMetrics(snap *configs.Snapshot) error {
	mc := snap.Config.Metrics
	if mc == nil || mc.Port == 0 {
		return nil
	}
	addr := net.JoinHostPort(mc.Address, strconv.Itoa(mc.Port))
	ln, err := m.link.listen(m.upg, "tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics: listening on %s: %w", addr, configs.ExplainListen(addr, err))
	}
	m.metrics = &http.Server{Handler: http.HandlerFunc(m.handleMetrics), ReadHeaderTimeout: 5 * time.Second}
	m.metricsLn = ln
	go func() { <-m.done; m.stopMetrics() }()
	if !m.upg.HasParent() {
		m.serveMetrics()
	}
	return nil
}

// serveMetrics starts answering on the metrics socket, once.
func (m *Master) serveMetrics() {
	m.metricsOnce.Do(func() {
		if m.metrics == nil {
			return
		}
		srv, ln := m.metrics, m.metricsLn
		go func() { _ = srv.Serve(ln) }()
		m.log.Info().Str(logkey.Addr, ln.Addr().String()).Msg("metrics served on /metrics, health on " + HealthPath + " and " + ReadyPath)
	})
}

// stopMetrics stops accepting on the metrics socket (closing this
// process's descriptor of it) and finishes the requests it has read
// (up to a second), so that no probe in flight is cut off.
func (m *Master) stopMetrics() {
	m.metricsStop.Do(func() {
		if m.metrics == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := m.metrics.Shutdown(ctx); err != nil {
			_ = m.metrics.Close()
		}
		_ = m.metricsLn.Close()
	})
}
