package master

import (
	"context"
	"net/http"
	"path/filepath"
	"time"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/ipc"
	"github.com/mgw-gateway/mgw/plugins"
	"github.com/mgw-gateway/mgw/plugins/analytics"
)

// analyticsFlushTimeout bounds the upload of what is left at exit.
const analyticsFlushTimeout = 10 * time.Second

// startAnalytics starts the instance's analytics queue when analytics
// are on. Its settings hold for the generation; a reload applies changes.
func (m *Master) startAnalytics(snap *configs.Snapshot) error {
	cfg := &snap.Config
	if !plugins.AnalyticsOn(cfg) {
		return nil
	}
	s, err := analytics.Load(cfg)
	if err != nil {
		return err
	}
	var send analytics.Sender
	switch {
	case cfg.EdgeMode():
		client := &http.Client{Timeout: 30 * time.Second}
		send = analytics.EdgeSender(s.URI, m.opts.Key, m.opts.Secret, s.Compress, client)
	default:
		file := s.File
		if file == "" {
			file = filepath.Join(m.opts.RunDir, "analytics.jsonl")
		}
		send = analytics.FileSender(file)
	}
	// Records a generation cannot upload before it exits are spooled in
	// the run dir, where the next generation finds them.
	m.analytics = analytics.NewQueue(s, send, m.opts.RunDir, m.log.With().Str("component", "analytics").Logger())
	stop, done := make(chan struct{}), make(chan struct{})
	q := m.analytics
	go func() { defer close(done); q.Run(stop) }()
	m.stopAnalytics = func() { close(stop); <-done }
	m.sup.records = m.analytics.Add
	return nil
}

// flushAnalytics, once every worker has exited, reads their channels to
// the end, uploads what is queued and spools the rest.
func (m *Master) flushAnalytics() {
	if m.analytics == nil {
		return
	}
	if !m.sup.waitReaders(5 * time.Second) {
		m.log.Warn().Msg("a worker channel was not read to its end; its last analytics records may be lost")
	}
	m.stopAnalytics() // returns when no upload is in flight
	timeout := analyticsFlushTimeout
	if m.quitting {
		timeout = time.Second // one try; the rest is spooled
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	m.analytics.Flush(ctx)
	q, d, s := m.analytics.Stats()
	m.log.Info().Int("left", q).Uint64("dropped", d).Uint64("sent", s).Msg("analytics flushed")
	m.analytics = nil
}

func (m *Master) analyticsStatus() *ipc.AnalyticsStatus {
	if m.analytics == nil {
		return nil
	}
	q, d, s := m.analytics.Stats()
	d += m.sup.retired.RecordsDropped // dropped in workers, before the master got them
	for _, sl := range m.sup.slots {
		if sl.metrics != nil {
			d += sl.metrics.RecordsDropped
		}
	}
	return &ipc.AnalyticsStatus{Queued: q, Dropped: d, Sent: s}
}
