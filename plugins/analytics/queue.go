package analytics

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/mgw-gateway/mgw/internal/logkey"
)

// ErrBadBatch is a Sender's answer for a batch the receiver refuses as
// malformed: it is dropped (and counted), not retried.
var ErrBadBatch = errors.New("analytics batch refused")

// Sender uploads one batch. It returns how many of the batch's last
// records the receiver rejected (they are queued again), or an error when
// the whole batch must be tried again.
type Sender func(ctx context.Context, batch [][]byte) (rejected int, err error)

// Queue holds an instance's records until they are uploaded. It is safe
// for concurrent use.
//
// Run uploads up to Settings.Concurrency batches at once: a full batch
// goes as soon as it is queued (and an upload slot is free), what is left
// of a batch at every flushInterval. So the rate is bounded by
// concurrency × batchSize per upload round trip (with the defaults and
// 100 ms to Edge, 80k records/s), not by bufferSize per flushInterval.
type Queue struct {
	spool string // the directory of spool files
	log   zerolog.Logger
	// changed tells Run that Reconfigure changed the settings.
	changed chan struct{}
	// full tells Run that a full batch is waiting.
	full chan struct{}
	// newTicker is the clock of Run; tests replace it.
	newTicker func(time.Duration) ticker

	mu      sync.Mutex
	s       Settings
	send    Sender
	buf     [][]byte // oldest first
	dropped uint64
	sent    uint64
	failing int // consecutive failed uploads, for backoff
	flying  int // uploads in flight
}

// ticker is the part of *time.Ticker Run uses.
type ticker interface {
	C() <-chan time.Time
	Reset(time.Duration)
	Stop()
}

type realTicker struct{ *time.Ticker }

func (t realTicker) C() <-chan time.Time { return t.Ticker.C }

// NewQueue returns a queue uploading with send; what it cannot upload by
// the end of Flush goes to a spool file in the directory spool ("": none).
func NewQueue(s Settings, send Sender, spool string, log zerolog.Logger) *Queue {
	return &Queue{s: s, send: send, spool: spool, log: log, changed: make(chan struct{}, 1), full: make(chan struct{}, 1),
		newTicker: func(d time.Duration) ticker { return realTicker{time.NewTicker(d)} }}
}

// Reconfigure gives the queue a new revision's settings and sender: the
// records it holds stay and go out with them.
func (q *Queue) Reconfigure(s Settings, send Sender) {
	q.mu.Lock()
	q.s, q.send = s, send
	q.trim()
	q.mu.Unlock()
	select {
	case q.changed <- struct{}{}:
	default:
	}
}

func (q *Queue) settings() (Settings, Sender) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.s, q.send
}

// Add queues records, dropping the oldest when the buffer is full, and
// tells Run when a full batch is waiting.
func (q *Queue) Add(recs [][]byte) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.buf = append(q.buf, recs...)
	q.trim()
	if len(q.buf) >= q.s.BatchSize {
		select {
		case q.full <- struct{}{}:
		default:
		}
	}
}

// trim drops the oldest records over bufferSize. Called with mu held.
func (q *Queue) trim() {
	if over := len(q.buf) - q.s.BufferSize; over > 0 {
		q.buf = append(q.buf[:0], q.buf[over:]...)
		q.dropped += uint64(over)
		q.log.Warn().Int(logkey.Dropped, over).Uint64(logkey.DroppedTotal, q.dropped).Msg("analytics buffer full: oldest records dropped")
	}
}

// Stats returns the records waiting, dropped and sent so far.
func (q *Queue) Stats() (queued int, dropped, sent uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.buf), q.dropped, q.sent
}

// Load returns the buffer's size and the uploads in flight, for metrics.
func (q *Queue) Load() (bufferSize, uploading int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.s.BufferSize, q.flying
}

func (q *Queue) take() [][]byte {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.takeLocked(false)
}

// takeLocked takes the oldest batch; with fullOnly, only a full one.
// Called with mu held.
func (q *Queue) takeLocked(fullOnly bool) [][]byte {
	if fullOnly && len(q.buf) < q.s.BatchSize {
		return nil
	}
	n := min(len(q.buf), q.s.BatchSize)
	batch := make([][]byte, n)
	copy(batch, q.buf[:n])
	q.buf = append(q.buf[:0], q.buf[n:]...)
	return batch
}

// putBack returns records to the front of the queue, keeping the newest
// when they do not all fit.
func (q *Queue) putBack(recs [][]byte) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.buf = append(append(make([][]byte, 0, len(recs)+len(q.buf)), recs...), q.buf...)
	q.trim()
}

// upload sends batches one after the other until the queue is empty or
// a send fails (Flush, at the end of a generation).
func (q *Queue) upload(ctx context.Context) error {
	_, send := q.settings()
	for {
		batch := q.take()
		if len(batch) == 0 {
			return nil
		}
		if err := q.sendBatch(ctx, send, batch); err != nil {
			return err
		}
	}
}

// sendBatch uploads one batch and does the books: a batch refused as
// malformed is dropped and counted (sending it again would fail again
// and hold up every later record), a failed one is put back, and so are
// the records the receiver rejected.
func (q *Queue) sendBatch(ctx context.Context, send Sender, batch [][]byte) error {
	rejected, err := send(ctx, batch)
	if errors.Is(err, ErrBadBatch) {
		q.mu.Lock()
		q.dropped += uint64(len(batch))
		q.mu.Unlock()
		q.log.Error().Err(err).Int(logkey.Dropped, len(batch)).Msg("analytics batch refused as malformed: dropped")
		return nil
	}
	if err != nil {
		q.putBack(batch)
		return err
	}
	rejected = max(0, min(rejected, len(batch)))
	q.mu.Lock()
	q.sent += uint64(len(batch) - rejected)
	q.mu.Unlock()
	if rejected > 0 {
		q.putBack(batch[len(batch)-rejected:])
		return fmt.Errorf("%d records rejected", rejected)
	}
	return nil
}

// Run uploads until stop is closed: a full batch as soon as an upload slot
// is free, and every flushInterval what is queued; it backs off while
// uploads fail, and takes over records a previous generation spooled.
// Uploads in progress when stop closes are finished, not aborted, so that
// no batch is both received and sent again.
func (q *Queue) Run(stop <-chan struct{}) {
	s, _ := q.settings()
	every := time.Duration(s.FlushInterval) * time.Millisecond
	t := q.newTicker(every)
	defer t.Stop()
	ctx := context.Background()
	done := make(chan error)
	skip := 0 // ticks left to back off
	for {
		select {
		case <-stop:
			for q.uploading() > 0 {
				<-done //nolint:errcheck // stopping: a failed upload has no later tick to retry on
				q.landed()
			}
			return
		case <-q.changed:
			s, _ = q.settings()
			every = time.Duration(s.FlushInterval) * time.Millisecond
			t.Reset(every)
		case <-q.full:
			if skip == 0 {
				q.dispatch(ctx, done, true)
			}
		case err := <-done:
			q.landed()
			if err != nil {
				if skip == 0 { // the first failure of a round sets the backoff
					q.failing++
					skip = min(1<<min(q.failing, 7), int(30*time.Second/every))
					q.log.Warn().Err(err).Int(logkey.RetryInTicks, skip).Msg("analytics upload failed")
				}
				continue
			}
			if skip == 0 {
				q.failing = 0
				q.dispatch(ctx, done, true)
			}
		case <-t.C():
			if skip > 0 {
				if skip--; skip > 0 {
					continue
				}
			}
			q.adoptSpool()
			q.dispatch(ctx, done, false)
		}
	}
}

// dispatch starts uploads while a slot is free and a batch (a full one
// with fullOnly) is waiting; each one's result arrives on done.
func (q *Queue) dispatch(ctx context.Context, done chan<- error, fullOnly bool) {
	for {
		q.mu.Lock()
		if q.flying >= max(q.s.Concurrency, 1) {
			q.mu.Unlock()
			return
		}
		batch := q.takeLocked(fullOnly)
		if len(batch) == 0 {
			q.mu.Unlock()
			return
		}
		q.flying++
		send := q.send
		q.mu.Unlock()
		go func() { done <- q.sendBatch(ctx, send, batch) }()
	}
}

func (q *Queue) uploading() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.flying
}

// landed counts an upload as finished.
func (q *Queue) landed() {
	q.mu.Lock()
	q.flying--
	q.mu.Unlock()
}

// Flush uploads what is queued until the queue is empty or ctx is done,
// then writes what is left to the spool file for the next generation.
func (q *Queue) Flush(ctx context.Context) {
	for {
		err := q.upload(ctx)
		if err == nil || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
			continue
		}
		break
	}
	left := q.take()
	for more := q.take(); len(more) > 0; more = q.take() {
		left = append(left, more...)
	}
	if len(left) == 0 || q.spool == "" {
		return
	}
	path, err := writeSpool(q.spool, left)
	if err != nil {
		q.log.Error().Err(err).Int(logkey.Records, len(left)).Msg("analytics records lost: cannot spool them")
		return
	}
	q.log.Warn().Int(logkey.Records, len(left)).Str(logkey.Spool, path).Msg("analytics records spooled for the next generation")
}

// Spool files are analytics-spool-<pid>-<time>.jsonl. Each is written
// under a temporary name and renamed into place whole, and claimed by a
// rename to .claimed before it is read, so a record is never read half
// written, nor by two generations.
const spoolPrefix = "analytics-spool-"

func writeSpool(dir string, recs [][]byte) (string, error) {
	tmp, err := os.CreateTemp(dir, ".spool-*.tmp")
	if err != nil {
		return "", err
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	name := tmp.Name()
	tmp.Close()
	if err := appendLines(name, recs); err != nil {
		return "", err
	}
	path := filepath.Join(dir, fmt.Sprintf("%s%d-%d.jsonl", spoolPrefix, os.Getpid(), time.Now().UnixNano()))
	return path, os.Rename(name, path)
}

// adoptSpool queues the records of every spool file, claiming each first.
func (q *Queue) adoptSpool() {
	if q.spool == "" {
		return
	}
	files, _ := filepath.Glob(filepath.Join(q.spool, spoolPrefix+"*.jsonl"))
	for _, f := range files {
		claimed := f + ".claimed-" + strconv.Itoa(os.Getpid())
		if err := os.Rename(f, claimed); err != nil {
			continue // another generation took it
		}
		recs := readLines(claimed)
		_ = os.Remove(claimed)
		q.log.Info().Int(logkey.Records, len(recs)).Msg("analytics: took over spooled records")
		q.putBack(recs)
	}
}

func readLines(path string) [][]byte {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var recs [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		if line := bytes.TrimSpace(sc.Bytes()); json.Valid(line) {
			recs = append(recs, bytes.Clone(line))
		}
	}
	return recs
}

func appendLines(path string, recs [][]byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for _, r := range recs {
		_, _ = w.Write(r) // a bufio.Writer keeps its first error for Flush
		_ = w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// joinRecords makes {"records":[r1,r2,…]}.
func joinRecords(batch [][]byte) []byte {
	n := len(`{"records":[]}`) + len(batch)
	for _, r := range batch {
		n += len(r)
	}
	b := make([]byte, 0, n)
	b = append(b, `{"records":[`...)
	for i, r := range batch {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, r...)
	}
	return append(b, ']', '}')
}

// FileSender appends records to a JSON-lines file (local mode).
func FileSender(path string) Sender {
	return func(_ context.Context, batch [][]byte) (int, error) {
		return 0, appendLines(path, batch)
	}
}

// EdgeSender posts {"records":[…]} to uri with Basic key:secret, gzipped
// when compress is set.
func EdgeSender(uri, key, secret string, compress bool, client *http.Client) Sender {
	return func(ctx context.Context, batch [][]byte) (int, error) {
		// The records are JSON already: join them, do not encode them again.
		body := joinRecords(batch)
		if compress {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			_, _ = zw.Write(body)
			_ = zw.Close()
			body = buf.Bytes()
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, uri, bytes.NewReader(body))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Content-Type", "application/json")
		if compress {
			req.Header.Set("Content-Encoding", "gzip")
		}
		req.SetBasicAuth(key, secret)
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		switch {
		case resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusRequestEntityTooLarge:
			return 0, fmt.Errorf("%w: %s", ErrBadBatch, resp.Status)
		case resp.StatusCode != http.StatusOK:
			return 0, fmt.Errorf("analytics: %s", resp.Status)
		}
		var out struct {
			Rejected int `json:"rejected"`
		}
		if len(bytes.TrimSpace(b)) == 0 {
			return 0, errors.New("analytics: empty answer")
		}
		_ = json.Unmarshal(b, &out)
		return out.Rejected, nil
	}
}
