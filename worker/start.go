// Setting a worker up and putting it away: everything Run does before
// its loop starts (start) and after it ends (close).

package worker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
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

// newWorker makes a worker of opts, with its loggers and the channels its
// loop waits on; it opens nothing.
func newWorker(opts Options) *Worker {
	if opts.StatsInterval <= 0 {
		opts.StatsInterval = time.Second
	}
	w := &Worker{opts: opts, pool: newTransportPool(), metrics: newMetrics(),
		frames:   make(chan ipc.Frame),
		recvErr:  make(chan error, 1),
		serveErr: make(chan error, 2),
		// Records and access-log lines wait at most recordFlush; the
		// loop's timer runs only while some wait.
		pending: make(chan struct{}, 1),
	}
	w.phase.store(phaseStarting) // until start has sent Ready
	w.log = opts.Logger.With().Int(logkey.WorkerID, opts.ID).Int(logkey.PID, os.Getpid()).Logger()
	w.alog = w.log
	if out := accessOutput(opts); out != nil {
		w.abuf = newLineBuffer(out, w.pending)
		w.alog = w.log.Output(w.abuf)
	}
	return w
}

// start does, in order, what comes before serving: it opens the master's
// channel and the listening socket, says hello, waits for the first
// config and applies it, starts the servers and reports ready. It returns
// an error when the worker cannot start; close puts away what it opened.
func (w *Worker) start(ctx context.Context) error {
	if err := w.openChannel(); err != nil {
		return err
	}
	ln, err := w.openListener()
	if err != nil {
		return err
	}
	if err := w.conn.Send(ipc.KindHello, ipc.Hello{WorkerID: w.opts.ID, PID: os.Getpid(), Protocol: ipc.ProtocolVersion}); err != nil {
		return err
	}
	go w.readMaster()
	if err := w.firstConfig(ctx); err != nil {
		return err
	}
	w.serve(ln)
	if err := w.conn.Send(ipc.KindReady, ipc.Ready{Revision: w.revision()}); err != nil {
		return err
	}
	w.phase.store(phaseServing)
	w.log.Info().Uint64(logkey.Revision, w.revision()).Msg("worker serving")
	return nil
}

// close puts away what start opened, in reverse: the records of the last
// requests go to the master before the channel closes, and the last
// access-log lines are written.
func (w *Worker) close() {
	if w.sink != nil {
		w.sink.close()
	}
	if w.conn != nil {
		_ = w.conn.Close()
	}
	if w.out != nil {
		w.out.close() // after the channel closed: a send under way fails
	}
	if w.abuf != nil {
		w.abuf.flush()
	}
}

// openChannel opens the channel to the master (Options.Conn, or the one
// inherited), the clients that use it and the limit zone.
func (w *Worker) openChannel() error {
	w.conn = w.opts.Conn
	if w.conn == nil {
		c, err := ipc.Inherited()
		if err != nil {
			return err
		}
		w.conn = c
	}
	w.out = newOutbox(w.conn, w.log)
	w.keys = newKeyClient(w.conn, w.rt.Load)
	w.sink = newRecordSink(w.conn, w.pending)
	w.zone = w.opts.Zone
	switch {
	case w.zone != nil:
	case w.opts.Conn == nil: // started by a master: every descriptor is inherited
		w.zone = inheritedZone()
	default:
		w.zone = zone.New(zone.DefaultSlots)
	}
	return nil
}

// openListener returns Options.Listener, or the listening socket
// inherited at ipc.ListenerFD.
func (w *Worker) openListener() (net.Listener, error) {
	if w.opts.Listener != nil {
		return w.opts.Listener, nil
	}
	f := os.NewFile(ipc.ListenerFD, "listener")
	l, err := net.FileListener(f)
	_ = f.Close()
	if err != nil {
		return nil, fmt.Errorf("opening inherited listener: %w", err)
	}
	return l, nil
}

// readMaster reads the master's frames until the channel ends, and hands
// them to the loop; key answers it delivers itself, since requests wait
// for them.
func (w *Worker) readMaster() {
	for {
		f, err := w.conn.Recv()
		if err != nil {
			w.recvErr <- err
			return
		}
		if f.Kind == ipc.KindKeyTell {
			if err := w.keys.deliver(f); err != nil {
				w.log.Warn().Err(err).Msg("bad key answer")
			}
			continue
		}
		w.frames <- f
	}
}

// firstConfig waits for the master's first frame, which must be a
// configuration, applies it and acknowledges it.
func (w *Worker) firstConfig(ctx context.Context) error {
	var first ipc.Frame
	select {
	case first = <-w.frames:
	case err := <-w.recvErr:
		return fmt.Errorf("waiting for the first config: %w", err)
	case <-ctx.Done():
		return ctx.Err()
	}
	if first.Kind != ipc.KindConfig {
		return fmt.Errorf("first frame from the master is %s, want config", first.Kind)
	}
	ack, err := w.applyConfig(first)
	if serr := w.conn.Send(ipc.KindAck, ack); serr != nil {
		return serr
	}
	if w.rt.Load() == nil {
		return fmt.Errorf("first config: %w", err)
	}
	return nil
}

// applyConfig applies a Config frame and returns the Ack that answers it.
// A snapshot that fails to decode or compile leaves the current runtime
// serving, and its error goes back in the Ack.
func (w *Worker) applyConfig(f ipc.Frame) (ipc.Ack, error) {
	var msg ipc.Config
	err := f.Decode(&msg)
	if err == nil {
		err = w.apply(msg.Snapshot)
	}
	ack := ipc.Ack{Revision: w.revision()}
	if err != nil {
		ack.Error = err.Error()
		w.log.Error().Err(err).Uint64(logkey.OfferedRevision, msg.Revision).Msg("config rejected")
	}
	return ack, err
}

// serve starts serving on ln with the settings of the first runtime:
// plain HTTP on h1's server, which hands what it does not serve to
// net/http, or HTTPS on net/http's.
func (w *Worker) serve(ln net.Listener) {
	cfg := &w.rt.Load().snap.Config
	w.ln = newLimitListener(ln, cfg.Edgemicro.MaxConnections)
	w.ln.onFDExhausted = w.fdExhausted
	if bal := w.opts.Balance; bal != nil || w.opts.Conn == nil {
		if bal == nil {
			bal = inheritedBalance(w.log, ipc.BalanceFD)
		}
		w.ln.balanceWith(bal, w.opts.ID)
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
		go func() { w.serveErr <- w.srv.Serve(serveLn) }()
		return
	}
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
	go func() { w.serveErr <- w.fast.Serve(w.ln) }()
	// A connection handed to net/http serves one request: the next
	// comes on a new connection, whose head h1 screens first.
	w.srv.Handler = h1.OneRequest(w.srv.Handler)
	go func() { _ = w.srv.Serve(handoff) }()
}

// headersTimeout is edgemicro's headers_timeout, by default the
// keep-alive timeout plus 5 s.
func headersTimeout(e *configs.Edgemicro) time.Duration {
	if e.HeadersTimeout > 0 {
		return time.Duration(e.HeadersTimeout) * time.Millisecond
	}
	return time.Duration(e.KeepAliveTimeout+5000) * time.Millisecond
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
	z.log.WithLevel(z.level).Str(logkey.Subsystem, logkey.SubsystemHTTP).Str(logkey.Error, string(p[:len(p)-min(1, len(p))])).Msg("net/http error")
	return len(p), nil
}
