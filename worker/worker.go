package worker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/mgw-gateway/mgw/configs"
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
	// Logger is the worker's logger; Run adds the worker id, pid and revision.
	Logger zerolog.Logger
	// Listener is the shared listening socket. Defaults to the one inherited at ipc.ListenerFD.
	Listener net.Listener
	// Conn is the channel to the master. Defaults to the one inherited at ipc.ChannelFD.
	Conn *ipc.Conn
	// StatsInterval is the period of Stats reports. Defaults to one second.
	StatsInterval time.Duration
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

	draining atomic.Bool
	requests atomic.Uint64
	conns    atomic.Int64
}

// Run serves until the master orders a drain, the master goes away, or ctx
// is canceled; each ends in a graceful drain. It returns an error only
// when the worker could not start.
func Run(ctx context.Context, opts Options) error {
	if opts.StatsInterval <= 0 {
		opts.StatsInterval = time.Second
	}
	w := &Worker{opts: opts, pool: newTransportPool(), metrics: newMetrics()}
	// Records and access-log lines wait at most recordFlush; the timer
	// runs only while some wait.
	pending := make(chan struct{}, 1)
	w.log = opts.Logger.With().Int("worker", opts.ID).Int("pid", os.Getpid()).Logger()
	w.alog = w.log
	if out := accessOutput(opts); out != nil {
		w.abuf = newLineBuffer(out, pending)
		w.alog = w.log.Output(w.abuf)
		defer w.abuf.flush()
	}
	w.conn = opts.Conn
	if w.conn == nil {
		c, err := ipc.Inherited()
		if err != nil {
			return err
		}
		w.conn = c
	}
	defer w.conn.Close()
	w.keys = newKeyClient(w.conn, w.rt.Load)
	w.sink = newRecordSink(w.conn, pending)
	defer w.sink.close() // the records of the last requests, before the channel closes
	w.zone = opts.Zone
	switch {
	case w.zone != nil:
	case opts.Conn == nil: // started by a master: every descriptor is inherited
		w.zone = inheritedZone()
	default:
		w.zone = zone.New(zone.DefaultSlots)
	}
	ln := opts.Listener
	if ln == nil {
		f := os.NewFile(ipc.ListenerFD, "listener")
		l, err := net.FileListener(f)
		_ = f.Close()
		if err != nil {
			return fmt.Errorf("opening inherited listener: %w", err)
		}
		ln = l
	}

	if err := w.conn.Send(ipc.KindHello, ipc.Hello{WorkerID: opts.ID, PID: os.Getpid(), Protocol: ipc.ProtocolVersion}); err != nil {
		return err
	}
	frames := make(chan ipc.Frame)
	recvErr := make(chan error, 1)
	go func() {
		for {
			f, err := w.conn.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			if f.Kind == ipc.KindKeyTell { // answered here: requests wait for it
				if err := w.keys.deliver(f); err != nil {
					w.log.Warn().Err(err).Msg("bad key answer")
				}
				continue
			}
			frames <- f
		}
	}()

	// The first frame must be a configuration.
	var first ipc.Frame
	select {
	case first = <-frames:
	case err := <-recvErr:
		return fmt.Errorf("waiting for the first config: %w", err)
	case <-ctx.Done():
		return ctx.Err()
	}
	if first.Kind != ipc.KindConfig {
		return fmt.Errorf("first frame from the master is %s, want config", first.Kind)
	}
	if err := w.handleConfig(first); err != nil {
		return err
	}

	cfg := &w.rt.Load().snap.Config
	w.ln = newLimitListener(ln, cfg.Edgemicro.MaxConnections)
	w.ln.onFDExhausted = w.fdExhausted
	if bal := opts.Balance; bal != nil || opts.Conn == nil {
		if bal == nil {
			bal = inheritedBalance(w.log, ipc.BalanceFD)
		}
		w.ln.balanceWith(bal, opts.ID)
	}
	w.srv = &http.Server{
		Handler:           h1.GuardBodies(w, cfg.BodyIdleTimeout(), cfg.BodyTimeout()),
		ReadHeaderTimeout: headersTimeout(&cfg.Edgemicro),
		WriteTimeout:      time.Duration(cfg.Edgemicro.WriteTimeout) * time.Second,
		IdleTimeout:       time.Duration(cfg.Edgemicro.KeepAliveTimeout) * time.Millisecond,
		MaxHeaderBytes:    cfg.Edgemicro.MaxHeaderBytes,
		ConnState:         w.connState,
		ErrorLog:          log.New(zerologWriter{w.log, zerolog.DebugLevel}, "", 0),
	}
	serveErr := make(chan error, 2)
	if w.rt.Load().serverTLS != nil {
		// The certificate comes from the serving revision at each
		// handshake, so a config push can replace it in place; turning
		// TLS on or off takes a reload.
		serveLn := tls.NewListener(w.ln, &tls.Config{
			MinVersion: tls.VersionTLS12,
			GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
				if tc := w.rt.Load().serverTLS; tc != nil {
					return tc, nil
				}
				return nil, errors.New("TLS is off in the serving revision; reload to turn it off")
			},
		})
		go func() { serveErr <- w.srv.Serve(serveLn) }()
	} else {
		// Plain HTTP: the hand-written server takes every connection and
		// hands the ones it does not serve to net/http.
		handoff := h1.NewFallbackListener(w.ln.Addr())
		w.fast = &h1.Server{
			Handler:           w,
			Fallback:          handoff.Give,
			ReadHeaderTimeout: w.srv.ReadHeaderTimeout,
			IdleTimeout:       w.srv.IdleTimeout,
			WriteTimeout:      w.srv.WriteTimeout,
			MaxHeaderBytes:    w.srv.MaxHeaderBytes,
			BodyIdleTimeout:   cfg.BodyIdleTimeout(),
			BodyTimeout:       cfg.BodyTimeout(),
			ErrorResponse:     plugins.WriteError,
			ConnState:         w.connState,
			ErrorLog:          log.New(zerologWriter{w.log, zerolog.ErrorLevel}, "", 0), // handler panics
		}
		go func() { serveErr <- w.fast.Serve(w.ln) }()
		// A connection handed to net/http serves one request: the next
		// comes on a new connection, whose head h1 screens first.
		w.srv.Handler = h1.OneRequest(w.srv.Handler)
		go func() { _ = w.srv.Serve(handoff) }()
	}
	if err := w.conn.Send(ipc.KindReady, ipc.Ready{Revision: w.revision()}); err != nil {
		return err
	}
	w.log.Info().Uint64("revision", w.revision()).Msg("worker serving")

	stats := time.NewTicker(opts.StatsInterval)
	defer stats.Stop()
	flush := time.NewTimer(recordFlush)
	flush.Stop()
	defer flush.Stop()
	flushArmed := false
	var last ipc.Stats
	for {
		select {
		case <-ctx.Done():
			w.log.Info().Msg("signal: draining")
			c := &w.rt.Load().snap.Config
			w.drain(c.DrainGrace(), c.DrainTimeout())
			return nil
		case err := <-recvErr:
			if !errors.Is(err, io.EOF) {
				w.log.Error().Err(err).Msg("reading from the master")
			}
			w.log.Warn().Msg("master gone: draining")
			c := &w.rt.Load().snap.Config
			w.drain(c.DrainGrace(), c.DrainTimeout())
			return nil
		case f := <-frames:
			switch f.Kind {
			case ipc.KindConfig:
				if err := w.handleConfig(f); err != nil {
					w.log.Error().Err(err).Msg("acknowledging config")
				}
			case ipc.KindDrain:
				var d ipc.Drain
				if err := f.Decode(&d); err != nil {
					w.log.Error().Err(err).Msg("bad drain order; draining with defaults")
					c := &w.rt.Load().snap.Config
					d = ipc.Drain{Grace: c.DrainGrace(), Timeout: c.DrainTimeout()}
				}
				w.log.Info().Dur("grace", d.Grace).Dur("timeout", d.Timeout).Msg("draining")
				w.drain(d.Grace, d.Timeout)
				return nil
			default:
				w.log.Debug().Stringer("kind", f.Kind).Msg("ignoring unknown message")
			}
		case err := <-serveErr:
			if !w.draining.Load() {
				return fmt.Errorf("serving: %w", err)
			}
		case <-pending:
			if !flushArmed {
				flush.Reset(recordFlush)
				flushArmed = true
			}
		case <-flush.C:
			flushArmed = false
			w.sink.flush()
			if w.abuf != nil {
				w.abuf.flush()
			}
		case <-w.sink.kick:
			w.sink.flush()
		case <-stats.C:
			// Every second, changed or not: the master takes a worker
			// that stops sending for unresponsive. The counters go only
			// when they changed.
			s := ipc.Stats{Requests: w.requests.Load(), Active: w.conns.Load()}
			if s.Requests != last.Requests || s.Active != last.Active {
				s.Metrics = w.metrics.snapshot()
				s.Metrics.RecordsDropped = w.sink.droppedCount()
				last = s
			}
			_ = w.conn.Send(ipc.KindStats, s)
		}
	}
}

// handleConfig applies a Config frame and acknowledges it. A snapshot
// that fails to decode or compile leaves the current runtime serving and
// is reported in the Ack.
func (w *Worker) handleConfig(f ipc.Frame) error {
	var msg ipc.Config
	err := f.Decode(&msg)
	if err == nil {
		err = w.apply(msg.Snapshot)
	}
	ack := ipc.Ack{Revision: w.revision()}
	if err != nil {
		ack.Error = err.Error()
		w.log.Error().Err(err).Uint64("offered", msg.Revision).Msg("config rejected")
	}
	if serr := w.conn.Send(ipc.KindAck, ack); serr != nil {
		return serr
	}
	if w.rt.Load() == nil {
		return fmt.Errorf("first config: %w", err)
	}
	return nil
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
	w.log.Info().Uint64("revision", snap.Revision).Int("proxies", len(rt.routes)).Msg("config applied")
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
	*wr = responseWriter{ResponseWriter: rw, start: time.Now(), responseTime: cfg.Headers.XResponseTime, closeConn: w.draining.Load()}
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

// headersTimeout is edgemicro's headers_timeout, by default the
// keep-alive timeout plus 5 s.
func headersTimeout(e *configs.Edgemicro) time.Duration {
	if e.HeadersTimeout > 0 {
		return time.Duration(e.HeadersTimeout) * time.Millisecond
	}
	return time.Duration(e.KeepAliveTimeout+5000) * time.Millisecond
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
	w.alog.Info().Str("proxy", proxy).Str("method", r.Method).Str("path", path).
		Int("status", status).Float64("ms", float64(took.Microseconds())/1000).
		Str("client_ip", ip).Str("request_id", id).Msg("request")
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

// drain stops accepting, lets keep-alive clients make one more request
// (answered with Connection: close) for up to grace, then closes idle
// connections and waits for active ones until timeout.
func (w *Worker) drain(grace, timeout time.Duration) {
	start := time.Now()
	w.draining.Store(true)
	if w.ln != nil {
		_ = w.ln.Close()
	}
	if w.srv == nil {
		return
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for w.conns.Load() > 0 && time.Since(start) < grace {
		<-tick.C
	}
	ctx, cancel := context.WithDeadline(context.Background(), start.Add(max(timeout, grace)))
	defer cancel()
	var err error
	if w.fast != nil {
		err = w.fast.Shutdown(ctx) // first, so that it hands over no more
	}
	if err == nil {
		err = w.srv.Shutdown(ctx)
	}
	if err != nil {
		w.log.Warn().Int64("connections", w.conns.Load()).Msg("drain timeout: closing the remaining connections")
		if w.fast != nil {
			_ = w.fast.Close()
		}
		_ = w.srv.Close()
	}
	w.log.Info().Dur("took", time.Since(start)).Uint64("requests", w.requests.Load()).Msg("drained")
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
	w.log.Warn().Err(err).Uint64("limit_nofile", rl.Cur).Int64("connections", w.conns.Load()).
		Uint64("failed_accepts", w.ln.fdFailures.Load()).
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

// inheritedZone maps the zone at ipc.ZoneFD; a worker started without
// one (in tests) gets a private zone.
func inheritedZone() *zone.Zone {
	f := os.NewFile(ipc.ZoneFD, "zone")
	if f == nil {
		return zone.New(zone.DefaultSlots)
	}
	z, err := zone.Map(f)
	if err != nil {
		_ = f.Close()
		return zone.New(zone.DefaultSlots)
	}
	return z
}

// inheritedBalance maps the table at descriptor fd (ipc.BalanceFD) when
// the master says there is one, or returns nil, and the worker accepts
// without balancing.
func inheritedBalance(log zerolog.Logger, fd int) *balance.Table {
	if os.Getenv(ipc.BalanceEnv) != strconv.Itoa(fd) {
		return nil
	}
	f := os.NewFile(uintptr(fd), "balance")
	t, err := balance.Map(f)
	if err != nil {
		_ = f.Close()
		log.Warn().Err(err).Msg("accepting without balancing")
		return nil
	}
	return t
}

// zerologWriter sends a log.Logger's lines to the worker's logger at
// one level: net/http's own error log at debug, handler panics at error.
type zerologWriter struct {
	log   zerolog.Logger
	level zerolog.Level
}

func (z zerologWriter) Write(p []byte) (int, error) {
	z.log.WithLevel(z.level).Str("component", "http").Msg(string(p[:len(p)-min(1, len(p))]))
	return len(p), nil
}
