package worker

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/internal/logkey"
	"github.com/mgw-gateway/mgw/ipc"
	"github.com/mgw-gateway/mgw/plugins"
	"github.com/mgw-gateway/mgw/plugins/zone"
	"github.com/mgw-gateway/mgw/worker/balance"
	"github.com/mgw-gateway/mgw/worker/h1"
)

// Options configure a worker.
type Options struct {
	// ID is the worker's slot in the master's table, from 0.
	ID int
	// Logger is the worker's logger; Run adds the worker id and pid.
	Logger zerolog.Logger
	// Listener is the shared listening socket. Defaults to the one inherited at ipc.ListenerFD.
	Listener net.Listener
	// Conn is the channel to the master. Defaults to the one inherited at ipc.ChannelFD.
	Conn *ipc.Conn
	// StatsInterval is the period of Stats reports. Defaults to one second.
	StatsInterval time.Duration
	// statsBeat, when set, replaces the ticker of StatsInterval (tests).
	statsBeat <-chan time.Time
	// LogOutput is where Logger writes JSON lines. When set, access log
	// lines are gathered and written to it in batches; when nil, they go
	// through Logger one by one.
	LogOutput io.Writer
	// AccessLogOutput, when set, gets the access log lines (JSON, in
	// batches of whole lines) in place of LogOutput: the access log's own
	// file.
	AccessLogOutput io.Writer
	// Zone is the shared limit zone. Defaults to the one inherited at
	// ipc.ZoneFD when Conn is inherited too, else a private one.
	Zone *zone.Zone
	// Balance is the table that spreads connections over the workers.
	// Defaults to the one inherited at ipc.BalanceFD when Conn is
	// inherited too, else none.
	Balance *balance.Table
}

// Worker serves HTTP on the shared socket with the configuration the
// master pushes.
type Worker struct {
	opts    Options
	log     zerolog.Logger
	alog    zerolog.Logger // access log lines
	abuf    *lineBuffer    // alog's batches, when it has them
	conn    *ipc.Conn
	pool    *transportPool
	rt      atomic.Pointer[runtime]
	srv     *http.Server // TLS, and the connections fast hands over
	fast    *h1.Server   // plain HTTP/1.1
	ln      *limitListener
	keys    *keyClient
	zone    *zone.Zone
	sink    *recordSink
	metrics *metrics

	// fdWarned is when fdExhausted last warned, in Unix ns.
	fdWarned atomic.Int64
	// noProxyMetrics counts the requests that reach no proxy.
	noProxyMetrics atomic.Pointer[proxyMetrics]

	// phase is where the worker is in its life: the loop moves it,
	// requests read it (a draining worker closes every connection after
	// its answer).
	phase    phaseVar
	requests atomic.Uint64
	conns    atomic.Int64

	// The loop's event sources, made by newWorker and fed by start.
	frames   chan ipc.Frame // frames from the master, key answers excepted
	recvErr  chan error     // why the master's channel ended
	serveErr chan error     // why a server stopped
	pending  chan struct{}  // records or access-log lines wait to go out
	// out sends the loop's acks and stats, so that the loop never waits
	// for the master.
	out *outbox
}

// Run serves until the master orders a drain, the master goes away, or ctx
// is canceled; each ends in a graceful drain. It returns an error only
// when the worker could not start, or its server failed.
//
// Its three parts are in their own files: start (start.go) does what
// comes before serving, the loop (loop.go) hands each event to the method
// named after it, and close puts away what start opened.
func Run(ctx context.Context, opts Options) error {
	return newWorker(opts).run(ctx)
}

// run is Run on a worker newWorker made.
func (w *Worker) run(ctx context.Context) error {
	defer w.close()
	if err := w.start(ctx); err != nil {
		return err
	}
	return w.loop(ctx)
}

// apply compiles a snapshot and swaps it in. An older or equal revision
// is ignored.
func (w *Worker) apply(raw []byte) error {
	snap, err := configs.Decode(raw)
	if err != nil {
		return err
	}
	if cur := w.rt.Load(); cur != nil && snap.Revision <= cur.snap.Revision {
		return nil
	}
	rt, err := compile(snap, w.pool, plugins.Env{Logger: w.log, APIKeys: w.keys, Now: time.Now, Zone: w.zone, Analytics: w.sink, WatchQuota: w.watchQuota}, w.metrics)
	if err != nil {
		return fmt.Errorf("compiling revision %d: %w", snap.Revision, err)
	}
	w.rt.Store(rt)
	w.pool.retain(rt)
	w.log.Info().Uint64(logkey.Revision, snap.Revision).Int(logkey.Proxies, len(rt.routes)).Msg("config applied")
	return nil
}

func (w *Worker) revision() uint64 {
	if rt := w.rt.Load(); rt != nil {
		return rt.snap.Revision
	}
	return 0
}

// ServeHTTP routes one request through its proxy's chain.
func (w *Worker) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	w.requests.Add(1)
	rt := w.rt.Load()
	cfg := &rt.snap.Config
	wr := writerPool.Get().(*responseWriter)
	*wr = responseWriter{ResponseWriter: rw, start: time.Now(), responseTime: cfg.Headers.XResponseTime, closeConn: w.phase.load() >= phaseDraining}
	defer func() {
		wr.ResponseWriter = nil
		writerPool.Put(wr)
	}()

	if limit := cfg.Edgemicro.MaxHeaderBytes; limit > 0 && headerBytes(r) > limit {
		wr.closeConn = true
		plugins.WriteError(wr, http.StatusRequestHeaderFieldsTooLarge, "request header fields too large")
		return
	}
	// Claims reach a target only from mgw's own oauth plugin.
	delete(r.Header, "X-Authorization-Claims")
	rt.trusted.resolveClient(r)
	// One normal form of the path, before anything reads it: routing,
	// excludeUrls, the plugins and the target all see this one.
	cp, err := normalizePath(requestPath(r))
	if err == nil {
		r = withCleanPath(r, cp)
		if cp.climbed {
			if r0 := rt.match(cp.within); r0 != nil && cp.low < segments(r0.proxy.basePath) {
				err = errPathAboveRoot
			}
		}
	}
	if err != nil {
		plugins.WriteError(wr, http.StatusBadRequest, err.Error())
		w.unmatched(r, requestPath(r), cfg, wr) // as sent: it has no normal form
		return
	}
	if rt.issuer != nil && rt.issuer.serve(wr, r) {
		return
	}
	route := rt.match(cp.path)
	if route == nil {
		plugins.WriteError(wr, http.StatusNotFound, "no match found")
		w.unmatched(r, r.URL.Path, cfg, wr)
		return
	}
	var x *plugins.Exchange
	if route.exchange {
		x = &plugins.Exchange{Start: wr.start}
		r = plugins.WithExchange(r, x)
	}
	route.handler.ServeHTTP(wr, r)
	status := wr.status
	if status == 0 {
		status = http.StatusOK
	}
	took := time.Since(wr.start)
	w.metrics.observe(route.metrics, status, took)
	if cfg.Edgemicro.Logging.AccessLog {
		w.accessLog(r, r.URL.Path, route.name, status, took, x)
	}
	if x != nil && x.Plugin != "" && status >= 400 {
		w.metrics.rejected(x.Plugin)
	}
	if wr.abort {
		// The server recovers this without logging it, and closes the
		// connection without the end of the body (the client sees a cut).
		panic(http.ErrAbortHandler)
	}
}

// NoProxy is the proxy name under which the access log and the metrics
// count the requests that reach no proxy: refused paths (400) and paths
// no base path matches (404).
const NoProxy = "(none)"

// unmatched counts and logs a request that reached no proxy.
func (w *Worker) unmatched(r *http.Request, path string, cfg *configs.Config, wr *responseWriter) {
	took := time.Since(wr.start)
	w.metrics.observe(w.noProxy(), wr.status, took)
	if cfg.Edgemicro.Logging.AccessLog {
		w.accessLog(r, path, NoProxy, wr.status, took, nil)
	}
}

// noProxy returns the counters of NoProxy, made once.
func (w *Worker) noProxy() *proxyMetrics {
	if p := w.noProxyMetrics.Load(); p != nil {
		return p
	}
	p := w.metrics.proxy(NoProxy)
	w.noProxyMetrics.Store(p)
	return p
}

// accessLog writes one line for a request. It names the path but never
// the query or any header, so no API key or token reaches the log.
func (w *Worker) accessLog(r *http.Request, path, proxy string, status int, took time.Duration, x *plugins.Exchange) {
	ip := r.RemoteAddr
	if h, _, err := net.SplitHostPort(ip); err == nil {
		ip = h
	}
	id := r.Header.Get("X-Request-Id")
	if id == "" && x != nil {
		id = x.RequestID
	}
	w.alog.Info().Str(logkey.Proxy, proxy).Str(logkey.Method, r.Method).Str(logkey.Path, path).
		Int(logkey.Status, status).Dur(logkey.TookMS, took).
		Str(logkey.ClientIP, ip).Str(logkey.RequestID, id).Msg("request")
}

// headerBytes is the size of the request line and header block as the
// client sent them.
func headerBytes(r *http.Request) int {
	n := len(r.Method) + 1 + len(r.RequestURI) + 1 + len(r.Proto) + 2 + 2
	if r.Host != "" {
		n += len("Host: ") + len(r.Host) + 2
	}
	for k, vv := range r.Header {
		for _, v := range vv {
			n += len(k) + 2 + len(v) + 2
		}
	}
	return n
}

func (w *Worker) connState(c net.Conn, s http.ConnState) {
	switch s {
	case http.StateNew:
		w.conns.Add(1)
	case http.StateClosed, http.StateHijacked:
		w.conns.Add(-1)
	}
}

// fdExhausted warns that accepting failed for want of a file
// descriptor: the first time, then at most once a minute, with the
// process's limit and how often it happened, so that a log shows it
// without being flooded by it.
func (w *Worker) fdExhausted(err error) {
	now := time.Now()
	last := w.fdWarned.Load()
	if last != 0 && now.Sub(time.Unix(0, last)) < time.Minute || !w.fdWarned.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	var rl syscall.Rlimit
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
	w.log.Warn().Err(err).Uint64(logkey.LimitNOFILE, rl.Cur).Int64(logkey.Connections, w.conns.Load()).
		Uint64(logkey.FailedAccepts, w.ln.fdFailures.Load()).
		Msg("out of file descriptors: new connections wait in the backlog while open ones are served; raise LimitNOFILE (ulimit -n)")
}

// watchQuota asks the master to keep a quota identifier in step with
// Edge. A request calls it (once per identifier), so the message goes
// from a goroutine of its own: a stalled master never holds the request.
func (w *Worker) watchQuota(id string, allow uint32, interval int, unit string) {
	go func() {
		_ = w.conn.Send(ipc.KindQuota, ipc.QuotaWatch{Identifier: id, Allow: allow, Interval: interval, TimeUnit: unit})
	}()
}
