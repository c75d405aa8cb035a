package worker

import (
	"io"
	"sync"
)

// accessLogBuffer is how many bytes of access log lines a worker gathers
// before writing them out; the worker also writes them within recordFlush
// of the first line and before it exits.
const accessLogBuffer = 32 << 10

// lineBuffer gathers whole log lines and writes them in batches, as
// nginx's access_log buffer= does: at tens of thousands of requests a
// second, one write per line to a file shared by every worker costs more
// than the rest of the log line.
type lineBuffer struct {
	mu      sync.Mutex
	buf     []byte
	out     io.Writer
	pending chan<- struct{} // told when the buffer is no longer empty
}

// accessOutput is where the access log lines are written in batches:
// the access log's own file when there is one, else the log's output;
// nil when they go through the logger one by one.
func accessOutput(opts Options) io.Writer {
	if opts.AccessLogOutput != nil {
		return opts.AccessLogOutput
	}
	return opts.LogOutput
}

func newLineBuffer(out io.Writer, pending chan<- struct{}) *lineBuffer {
	return &lineBuffer{out: out, buf: make([]byte, 0, accessLogBuffer), pending: pending}
}

// Write takes one line; zerolog writes each event in one call.
func (b *lineBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.buf)+len(p) > cap(b.buf) {
		b.flushLocked()
	}
	if len(b.buf) == 0 {
		signal(b.pending)
	}
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *lineBuffer) flush() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushLocked()
}

func (b *lineBuffer) flushLocked() {
	if len(b.buf) > 0 {
		_, _ = b.out.Write(b.buf)
	}
	b.buf = b.buf[:0]
}
