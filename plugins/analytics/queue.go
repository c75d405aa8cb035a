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
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/mgw-gateway/mgw/internal/logkey"
)

// ErrBadBatch is a Sender's answer for a batch the receiver refuses as
// malformed: it is dropped (and counted), not retried.
var ErrBadBatch = errors.New("analytics batch refused")

// Sender uploads one batch. It returns how many of the batch's last
// records the receiver rejected (they are queued again), or an error when
// the whole batch must be tried again. It must not keep the batch's
// memory after it returns: the queue reuses it.
type Sender func(ctx context.Context, batch Batch) (rejected int, err error)

// Batch is records to upload as JSON lines: each record a JSON object on
// one line that ends in '\n', as the workers send them.
type Batch struct {
	Lines []byte
	N     int // the number of records (lines)
}

// Records returns the batch's records, sharing its memory.
func (b Batch) Records() [][]byte {
	out := make([][]byte, 0, b.N)
	for rest := b.Lines; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		out = append(out, rest[:i:i])
		rest = rest[i+1:]
	}
	return out
}

// chunk is queued records as JSON lines (a worker's records frame, or a
// batch put back), kept whole: the queue counts its records, it does
// not split them.
type chunk struct {
	lines []byte // the records not yet taken, each line ending in '\n'
	n     int    // the records in lines
	mem   []byte // the memory lines is in, for the pool once it is used up
}

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
	chunks  []chunk // oldest first
	queued  int     // the records in chunks
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

// Add queues records given as JSON lines (a records frame's payload:
// one record per line), dropping the oldest when the buffer is full, and
// tells Run when a full batch is waiting. The queue takes lines over:
// the caller must not use them again, and they go back to Buffer's pool
// once uploaded. The records are counted, not parsed or split.
func (q *Queue) Add(lines []byte) {
	c := newChunk(lines)
	if c.n == 0 {
		putBuffer(c.mem)
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.chunks = append(q.chunks, c)
	q.queued += c.n
	q.trim()
	if q.queued >= q.s.BatchSize {
		select {
		case q.full <- struct{}{}:
		default:
		}
	}
}

// newChunk counts the records of lines, after making every record end in
// a newline and removing empty lines (a worker sends neither, but an
// empty line would make the upload invalid JSON).
func newChunk(lines []byte) chunk {
	mem := lines
	if len(lines) > 0 && lines[len(lines)-1] != '\n' {
		lines = append(lines, '\n')
		mem = lines
	}
	if len(lines) > 0 && (lines[0] == '\n' || bytes.Contains(lines, []byte("\n\n"))) {
		out := lines[:0]
		for _, l := range bytes.SplitAfter(lines, []byte("\n")) {
			if len(l) > 1 {
				out = append(out, l...) // never ahead of what is read
			}
		}
		lines = out
	}
	return chunk{lines: lines, n: bytes.Count(lines, []byte("\n")), mem: mem}
}

// lineEnd returns the length of lines' first n lines.
func lineEnd(lines []byte, n int) int {
	off := 0
	for range n {
		off += bytes.IndexByte(lines[off:], '\n') + 1
	}
	return off
}

// trim drops the oldest records over bufferSize. Called with mu held.
func (q *Queue) trim() {
	over := q.queued - q.s.BufferSize
	if over <= 0 {
		return
	}
	q.dropped += uint64(over)
	q.queued -= over
	q.log.Warn().Int(logkey.Dropped, over).Uint64(logkey.DroppedTotal, q.dropped).Msg("analytics buffer full: oldest records dropped")
	for over > 0 {
		c := &q.chunks[0]
		if c.n > over {
			c.lines = c.lines[lineEnd(c.lines, over):]
			c.n -= over
			return
		}
		over -= c.n
		q.popFront()
	}
}

// Stats returns the records waiting, dropped and sent so far.
func (q *Queue) Stats() (queued int, dropped, sent uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.queued, q.dropped, q.sent
}

// Load returns the buffer's size and the uploads in flight, for metrics.
func (q *Queue) Load() (bufferSize, uploading int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.s.BufferSize, q.flying
}

func (q *Queue) take() Batch {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.takeLocked(false)
}

// takeLocked takes the oldest batch (N 0: none); with fullOnly, only a
// full one. Its lines are copied out of the queued chunks into one
// buffer of the pool; the chunks used up go back to the pool. Called
// with mu held.
func (q *Queue) takeLocked(fullOnly bool) Batch {
	if q.queued == 0 || fullOnly && q.queued < q.s.BatchSize {
		return Batch{}
	}
	n := min(q.queued, q.s.BatchSize)
	size, left := 0, n
	for i := 0; left > 0; i++ {
		c := &q.chunks[i]
		if c.n <= left {
			size += len(c.lines)
			left -= c.n
			continue
		}
		size += lineEnd(c.lines, left)
		left = 0
	}
	b := Batch{Lines: Buffer(size), N: n}
	for left = n; left > 0; {
		c := &q.chunks[0]
		if c.n > left {
			end := lineEnd(c.lines, left)
			b.Lines = append(b.Lines, c.lines[:end]...)
			c.lines, c.n = c.lines[end:], c.n-left
			break
		}
		b.Lines = append(b.Lines, c.lines...)
		left -= c.n
		q.popFront()
	}
	q.queued -= n
	return b
}

// popFront drops the oldest chunk, used up, and gives its memory back.
// The others move down, so that the slice's array is reused. Called with
// mu held.
func (q *Queue) popFront() {
	putBuffer(q.chunks[0].mem)
	n := copy(q.chunks, q.chunks[1:])
	q.chunks[n] = chunk{}
	q.chunks = q.chunks[:n]
}

// pushFront queues c before every other chunk, keeping the newest
// records when they do not all fit. Called with mu held.
func (q *Queue) pushFront(c chunk) {
	q.chunks = append(q.chunks, chunk{})
	copy(q.chunks[1:], q.chunks)
	q.chunks[0] = c
	q.queued += c.n
	q.trim()
}

// putBack returns records to the front of the queue, keeping the newest
// when they do not all fit. The queue takes the batch's memory over.
func (q *Queue) putBack(b Batch) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.pushFront(chunk{lines: b.Lines, n: b.N, mem: b.Lines})
}

// done gives a batch's memory back to the pool.
func (b Batch) done() { putBuffer(b.Lines) }

// upload sends batches one after the other until the queue is empty or
// a send fails (Flush, at the end of a generation).
func (q *Queue) upload(ctx context.Context) error {
	_, send := q.settings()
	for {
		batch := q.take()
		if batch.N == 0 {
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
func (q *Queue) sendBatch(ctx context.Context, send Sender, batch Batch) error {
	rejected, err := send(ctx, batch)
	if errors.Is(err, ErrBadBatch) {
		q.mu.Lock()
		q.dropped += uint64(batch.N)
		q.mu.Unlock()
		batch.done()
		q.log.Error().Err(err).Int(logkey.Dropped, batch.N).Msg("analytics batch refused as malformed: dropped")
		return nil
	}
	if err != nil {
		q.putBack(batch)
		return err
	}
	rejected = max(0, min(rejected, batch.N))
	q.mu.Lock()
	q.sent += uint64(batch.N - rejected)
	q.mu.Unlock()
	if rejected > 0 {
		// The rejected records share the batch's memory, which the
		// queue keeps with them.
		rest := batch.Lines[lineEnd(batch.Lines, batch.N-rejected):]
		q.mu.Lock()
		q.pushFront(chunk{lines: rest, n: rejected, mem: batch.Lines})
		q.mu.Unlock()
		return fmt.Errorf("%d records rejected", rejected)
	}
	batch.done()
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
		if batch.N == 0 {
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
	q.mu.Lock()
	left, n := q.chunks, q.queued
	q.chunks, q.queued = nil, 0
	q.mu.Unlock()
	if n == 0 || q.spool == "" {
		return
	}
	path, err := writeSpool(q.spool, left)
	if err != nil {
		q.log.Error().Err(err).Int(logkey.Records, n).Msg("analytics records lost: cannot spool them")
		return
	}
	q.log.Warn().Int(logkey.Records, n).Str(logkey.Spool, path).Msg("analytics records spooled for the next generation")
}

// Spool files are analytics-spool-<pid>-<time>.jsonl. Each is written
// under a temporary name and renamed into place whole, and claimed by a
// rename to .claimed before it is read, so a record is never read half
// written, nor by two generations.
const spoolPrefix = "analytics-spool-"

func writeSpool(dir string, chunks []chunk) (string, error) {
	tmp, err := os.CreateTemp(dir, ".spool-*.tmp")
	if err != nil {
		return "", err
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	name := tmp.Name()
	tmp.Close()
	if err := appendLines(name, chunks...); err != nil {
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
		b := readLines(claimed)
		_ = os.Remove(claimed)
		q.log.Info().Int(logkey.Records, b.N).Msg("analytics: took over spooled records")
		if b.N > 0 {
			q.putBack(b)
		}
	}
}

// readLines reads a spool file's valid records (a line that is not a
// JSON value, one cut short by a crash, is skipped).
func readLines(path string) Batch {
	f, err := os.Open(path)
	if err != nil {
		return Batch{}
	}
	defer f.Close()
	var b Batch
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		if line := bytes.TrimSpace(sc.Bytes()); len(line) > 0 && json.Valid(line) {
			b.Lines = append(append(b.Lines, line...), '\n')
			b.N++
		}
	}
	return b
}

// appendLines appends the chunks' records to a file, in one write when
// there is one chunk.
func appendLines(path string, chunks ...chunk) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 64<<10)
	for _, c := range chunks {
		_, _ = w.Write(c.lines) // a bufio.Writer keeps its first error for Flush
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// recordsBody makes {"records":[r1,r2,…]} of a batch's lines, in one
// copy into a buffer of the pool: the newlines between records become
// commas.
func recordsBody(b Batch) []byte {
	const head, tail = `{"records":[`, `]}`
	out := Buffer(len(head) + len(b.Lines) + len(tail))
	out = append(out, head...)
	if len(b.Lines) > 0 {
		start := len(out)
		out = append(out, b.Lines[:len(b.Lines)-1]...) // without the last newline
		for rest := out[start:]; ; {
			i := bytes.IndexByte(rest, '\n')
			if i < 0 {
				break
			}
			rest[i] = ','
			rest = rest[i+1:]
		}
	}
	return append(out, tail...)
}

// gzipWriters are reused: a new gzip.Writer allocates about 800 KB.
var gzipWriters sync.Pool

// FileSender appends records to a JSON-lines file (local mode).
func FileSender(path string) Sender {
	return func(_ context.Context, batch Batch) (int, error) {
		return 0, appendLines(path, chunk{lines: batch.Lines, n: batch.N})
	}
}

// EdgeSender posts {"records":[…]} to uri with Basic key:secret, gzipped
// when compress is set.
func EdgeSender(uri, key, secret string, compress bool, client *http.Client) Sender {
	return func(ctx context.Context, batch Batch) (int, error) {
		// The records are JSON already: join them, do not encode them again.
		body := recordsBody(batch)
		if compress {
			buf := bytes.NewBuffer(Buffer(len(body) / 4))
			zw, _ := gzipWriters.Get().(*gzip.Writer)
			if zw == nil {
				zw = gzip.NewWriter(buf)
			} else {
				zw.Reset(buf)
			}
			_, _ = zw.Write(body)
			_ = zw.Close()
			gzipWriters.Put(zw)
			putBuffer(body)
			body = buf.Bytes()
		}
		shared := &sharedBody{buf: body}
		shared.refs.Store(1) // this function's: released when it returns
		defer shared.release()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, uri, nil)
		if err != nil {
			return 0, err
		}
		req.Body, req.ContentLength = shared.open(), int64(len(body))
		req.GetBody = func() (io.ReadCloser, error) { return shared.open(), nil }
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

// The pool of buffers for records frames and batches: the master reads
// every records frame into one (Buffer), the queue copies batches into
// others, and each goes back once its records are uploaded, so a master
// in its steady state allocates no memory per frame or per batch.
var pool struct {
	sync.Mutex
	free [][]byte
}

// The pool keeps at most poolKeep buffers, each at most poolMaxBytes.
const (
	poolKeep     = 6
	poolMaxBytes = 512 << 10 // frames are about 128 KiB, batches of 500 records about 250 KB
	poolMinBytes = 64 << 10
	poolStep     = 16 << 10
)

// Buffer returns an empty buffer with room for n bytes, from the pool
// when it holds one that is large enough. Give it to Queue.Add (which
// returns it to the pool in time) or to nothing (the collector takes it).
func Buffer(n int) []byte {
	pool.Lock()
	best := -1 // the smallest that fits: a large buffer is not spent on a small frame
	for i, b := range pool.free {
		if cap(b) >= n && (best < 0 || cap(b) < cap(pool.free[best])) {
			best = i
		}
	}
	if best >= 0 {
		b := pool.free[best]
		last := len(pool.free) - 1
		pool.free[best], pool.free[last] = pool.free[last], nil
		pool.free = pool.free[:last]
		pool.Unlock()
		return b[:0]
	}
	pool.Unlock()
	// Sizes are rounded up to poolStep, so that a buffer given back fits
	// the next frame or batch of about the same size.
	return make([]byte, 0, max(poolMinBytes, (n+poolStep-1)/poolStep*poolStep))
}

// putBuffer gives b to the pool, replacing a smaller one when the pool is
// full.
func putBuffer(b []byte) {
	if cap(b) < poolMinBytes || cap(b) > poolMaxBytes {
		return
	}
	pool.Lock()
	defer pool.Unlock()
	if len(pool.free) < poolKeep {
		pool.free = append(pool.free, b[:0])
		return
	}
	small := 0
	for i, f := range pool.free {
		if cap(f) < cap(pool.free[small]) {
			small = i
		}
	}
	if cap(pool.free[small]) < cap(b) {
		pool.free[small] = b[:0]
	}
}

// sharedBody is an upload's body in a buffer of the pool. The transport
// may read and close a request's body after the call that sent it has
// returned, and may open it again (GetBody) to send it on another
// connection, so the buffer goes back to the pool when the sender and
// every reader opened are done with it: when each has released it once.
type sharedBody struct {
	buf  []byte
	refs atomic.Int32
}

func (s *sharedBody) release() {
	if s.refs.Add(-1) == 0 {
		putBuffer(s.buf)
	}
}

// open returns a reader of the body, which releases it when closed.
func (s *sharedBody) open() io.ReadCloser {
	s.refs.Add(1)
	r := &bodyReader{s: s}
	r.Reset(s.buf)
	return r
}

type bodyReader struct {
	bytes.Reader
	s    *sharedBody
	once sync.Once
}

// Close releases the body, once however often it is called.
func (r *bodyReader) Close() error {
	r.once.Do(r.s.release)
	return nil
}
