package master

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/configs/edge"
	"github.com/mgw-gateway/mgw/internal/logkey"
	"github.com/mgw-gateway/mgw/ipc"
	"github.com/mgw-gateway/mgw/plugins/quota"
	"github.com/mgw-gateway/mgw/plugins/zone"
)

// quotaSyncInterval is how often the weights counted for the quota edge
// backend go to Edge.
const quotaSyncInterval = time.Second

// quotaSyncer keeps the quota identifiers of the edge backend in step with
// Apigee's /v2/quotas/apply: it sends the weight counted in the zone since
// the last exchange and stores Edge's count of the window back in the
// zone, where every worker reads it.
type quotaSyncer struct {
	zone   *zone.Zone
	key    string
	secret string
	client *http.Client
	log    zerolog.Logger

	mu   sync.Mutex
	uri  string // …/v2/quotas/apply, from the serving revision
	ids  map[string]ipc.QuotaWatch
	kick chan struct{}
}

// setURI takes a new revision's quota URI.
func (q *quotaSyncer) setURI(uri string) {
	q.mu.Lock()
	q.uri = uri
	q.mu.Unlock()
}

// quotaApplyURI is edge_config.quotaUri with org and env filled in, or
// the bootstrap URL with bootstrap replaced by quotas, as edgemicro does.
func quotaApplyURI(cfg *configs.Config, org, env string) string {
	e := cfg.EdgeConfig
	if e.QuotaURI != "" {
		return strings.TrimSuffix(edge.FormatURI(e.QuotaURI, org, env), "/") + "/v2/quotas/apply"
	}
	if u := edge.ServiceURL(e.Bootstrap, "quotas"); u != "" {
		return u + "/v2/quotas/apply"
	}
	return ""
}

// watch takes a worker's quota-watch: a new identifier to keep in step,
// or a known one whose instance share is used up. Either way it asks for
// an exchange now rather than at the next tick.
func (q *quotaSyncer) watch(w ipc.QuotaWatch) {
	q.mu.Lock()
	q.ids[w.Identifier] = w
	q.mu.Unlock()
	select {
	case q.kick <- struct{}{}:
	default:
	}
}

// run syncs every interval, and at once when a worker asks, until stop
// is closed.
func (q *quotaSyncer) run(stop <-chan struct{}) {
	t := time.NewTicker(quotaSyncInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			q.syncAll() // the last weights
			return
		case <-t.C:
		case <-q.kick:
		}
		q.syncAll()
	}
}

func (q *quotaSyncer) syncAll() {
	q.mu.Lock()
	ws := make([]ipc.QuotaWatch, 0, len(q.ids))
	for _, w := range q.ids {
		ws = append(ws, w)
	}
	uri := q.uri
	q.mu.Unlock()
	for _, w := range ws {
		if err := q.sync(uri, w); err != nil {
			q.log.Warn().Err(err).Str(logkey.Identifier, w.Identifier).Msg("quota: Edge exchange failed; counting locally meanwhile")
		}
	}
}

// sync sends the pending weight of one identifier and keeps Edge's count.
func (q *quotaSyncer) sync(uri string, w ipc.QuotaWatch) error {
	pending, err := q.zone.Slot(w.Identifier + quota.PendingSuffix)
	if err != nil {
		return err
	}
	remote, err := q.zone.Slot(w.Identifier + quota.RemoteSuffix)
	if err != nil {
		return err
	}
	weight := pending.Load()
	body, _ := json.Marshal(map[string]any{
		"identifier": w.Identifier, "weight": weight, "interval": w.Interval,
		"allow": w.Allow, "timeUnit": w.TimeUnit, "quotaType": "flexi",
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, uri, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-DNA-Api-Key", q.key)
	req.SetBasicAuth(q.key, q.secret)
	resp, err := q.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("quotas/apply: %s", resp.Status)
	}
	var out struct {
		Used       int64 `json:"used"`
		ExpiryTime int64 `json:"expiryTime"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return fmt.Errorf("quotas/apply answer: %w", err)
	}
	// Edge's count now includes weight: publish it, then take the weight
	// out of pending. In between, workers count it twice and refuse
	// early rather than admit too many.
	remote.Store(zone.PackCount(uint32(max(0, min(out.Used, 1<<32-1))), time.UnixMilli(out.ExpiryTime)))
	pending.Add(-weight)
	return nil
}

// startQuotaSync starts the syncer in Edge mode; workers name their
// identifiers in quota-watch frames.
func (m *Master) startQuotaSync(snap *configs.Snapshot, z *zone.Zone) {
	if !snap.Config.EdgeMode() {
		return
	}
	q := &quotaSyncer{
		zone: z, uri: quotaApplyURI(&snap.Config, m.opts.Org, m.opts.Env), key: m.opts.Key, secret: m.opts.Secret,
		client: &http.Client{Timeout: 10 * time.Second}, log: m.log.With().Str(logkey.Plugin, "quota").Logger(),
		ids: map[string]ipc.QuotaWatch{}, kick: make(chan struct{}, 1),
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() { defer close(done); q.run(stop) }()
	m.stopQuotas = func() { close(stop); <-done }
	m.sup.quotaWatch = q.watch
	m.quotas = q
}
