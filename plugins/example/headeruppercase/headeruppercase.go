// Package headeruppercase is the example of a custom plugin: the Go
// version of edgemicro's header-uppercase sample. docs/PLUGINS.md walks
// through it; copy this package to start your own.
//
// On the way in it stamps the request with x-foo-request-id and
// x-foo-request-start; on the way out it adds x-foo-response-id and
// x-foo-response-time and, when [header-uppercase] uppercase_body is
// true (the default), upper-cases the response body as it streams.
package headeruppercase

import (
	"bytes"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/plugins"
)

// Name is what edgemicro.plugins.sequence lists, and Section the table of
// mgw.toml that configures it.
const (
	Name    = "header-uppercase"
	Section = "header-uppercase"
)

// Settings are the keys of [header-uppercase]. Each plugin decodes its
// own table: a key not in this struct is a configuration error naming it.
// The chain's own keys (excludeUrls) are taken out before the plugin
// decodes, so the struct declares only what the plugin reads.
type Settings struct {
	UppercaseBody bool `json:"uppercase_body"`
}

// plugin is built once per proxy and configuration revision, and used by
// many requests at once: it keeps no per-request state.
type plugin struct {
	uppercase bool
	now       func() time.Time
	seq       atomic.Uint64
}

// New is the plugin's factory, registered in plugins/builtin.
func New(env plugins.Env, snap *configs.Snapshot, _ *configs.Proxy) (plugins.Plugin, error) {
	s := Settings{UppercaseBody: true}
	if err := snap.Config.Section(Section, &s); err != nil {
		return nil, err
	}
	return &plugin{uppercase: s.UppercaseBody, now: env.Now}, nil
}

// ServeHTTP is the whole contract: code before next is the request hook,
// code after it (or in the wrapped writer) the response hook, so response
// hooks run in the reverse order of the sequence. Not calling next
// answers the request here.
func (p *plugin) ServeHTTP(w http.ResponseWriter, r *http.Request, next http.Handler) {
	id := strconv.FormatUint(p.seq.Add(1), 10)
	start := p.now()
	r.Header.Set("X-Foo-Request-Id", id)
	r.Header.Set("X-Foo-Request-Start", strconv.FormatInt(start.UnixMilli(), 10))
	next.ServeHTTP(&writer{ResponseWriter: w, p: p, id: id, start: start}, r)
}

// writer adds the response headers just before they are sent and
// upper-cases the body.
type writer struct {
	http.ResponseWriter
	p      *plugin
	id     string
	start  time.Time
	headed bool
}

func (w *writer) WriteHeader(code int) {
	if !w.headed {
		w.headed = true
		h := w.Header()
		h.Set("X-Foo-Response-Id", w.id)
		h.Set("X-Foo-Response-Time", strconv.FormatInt(w.p.now().Sub(w.start).Milliseconds(), 10))
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *writer) Write(b []byte) (int, error) {
	if !w.headed {
		w.WriteHeader(http.StatusOK)
	}
	if w.p.uppercase {
		return w.ResponseWriter.Write(bytes.ToUpper(b))
	}
	return w.ResponseWriter.Write(b)
}

// Flush passes streaming on.
func (w *writer) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Status reports the status sent, for the analytics plugin outside.
func (w *writer) Status() int {
	if s, ok := w.ResponseWriter.(interface{ Status() int }); ok {
		return s.Status()
	}
	return 0
}
