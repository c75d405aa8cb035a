package master

import (
	"context"
	"net/http"
	"path/filepath"
	"time"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/internal/logkey"
	"github.com/mgw-gateway/mgw/ipc"
	"github.com/mgw-gateway/mgw/plugins"
	"github.com/mgw-gateway/mgw/plugins/analytics"
)

// analyticsFlushTimeout bounds the upload of what is left at exit.
const analyticsFlushTimeout = 10 * time.Second

// applyAnalytics follows a revision's analytics settings: it starts the
// instance's queue when analytics turn on, and gives a running queue the
// revision's settings, keeping the records it holds. A revision that
// turns analytics off leaves the queue to upload what it holds. The
// supervisor hands records to whatever queue there is at that moment, so
// a queue started by a config push takes the records of workers that
// were running already.
func (m *Master) applyAnalytics(snap *configs.Snapshot) error {
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
		// Records the file cannot take would be lost: say so now.
		if err := checkAnalyticsFile(file); err != nil {
			return err
		}
		send = analytics.FileSender(file)
	}
	if q := m.analytics.Load(); q != nil {
		q.Reconfigure(s, send)
		return nil
	}
	// Records a generation cannot upload before it exits are spooled in
	// the run dir, where the next generation finds them.
	q := analytics.NewQueue(s, send, m.opts.RunDir, m.log.With().Str(logkey.Plugin, "analytics").Logger())
	stop, done := make(chan struct{}), make(chan struct{})
	go func() { defer close(done); q.Run(stop) }()
	m.stopAnalytics = func() { close(stop); <-done }
	m.analytics.Store(q)
	return nil
}

// addRecords is the supervisor's hook for the records frames workers
// send: the frame's payload, JSON lines, goes to the queue whole, which
// counts its records without splitting them.
func (m *Master) addRecords(lines []byte) {
	if q := m.analytics.Load(); q != nil {
		q.Add(lines)
	}
}

// maxPooledFrame bounds the records frames read into the analytics
// pool's buffers (a worker sends them at about 128 KiB); a larger one is
// read as any frame is, as it arrives.
const maxPooledFrame = 1 << 20

// recordsBuffer is the supervisor's hook for the memory a records frame
// is read into: a buffer of the analytics pool, which the queue gives
// back once the records are uploaded.
func (m *Master) recordsBuffer(n int) []byte {
	if n > maxPooledFrame || m.analytics.Load() == nil {
		return nil
	}
	return analytics.Buffer(n)
}

// flushAnalytics, once every worker has exited, reads their channels to
// the end, uploads what is queued and spools the rest.
func (m *Master) flushAnalytics() {
	q := m.analytics.Load()
	if q == nil {
		return
	}
	if !m.sup.waitReaders(5 * time.Second) {
		m.log.Warn().Msg("a worker channel was not read to its end; its last analytics records may be lost")
	}
	m.stopAnalytics() // returns when no upload is in flight
	timeout := analyticsFlushTimeout
	if m.phase == phaseQuitting {
		timeout = time.Second // one try; the rest is spooled
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	q.Flush(ctx)
	n, d, s := q.Stats()
	m.log.Info().Int(logkey.Left, n).Uint64(logkey.Dropped, d).Uint64(logkey.Sent, s).Msg("analytics flushed")
	m.analytics.Store(nil)
}

func (m *Master) analyticsStatus() *ipc.AnalyticsStatus {
	aq := m.analytics.Load()
	if aq == nil {
		return nil
	}
	q, d, s := aq.Stats()
	d += m.sup.retired.RecordsDropped // dropped in workers, before the master got them
	for _, sl := range m.sup.slots {
		if sl.metrics != nil {
			d += sl.metrics.RecordsDropped
		}
	}
	return &ipc.AnalyticsStatus{Queued: q, Dropped: d, Sent: s}
}
