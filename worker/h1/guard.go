package h1

import (
	"errors"
	"io"
	"net"
	"net/http"
	"time"
)

// GuardBodies returns h with each request body read as Server reads the
// bodies it serves itself: each read within idle, the whole body within
// total (zero: no limit), and any failure to read it, a malformed
// chunked body included, a *RequestBodyError. It is for a net/http
// server: Server's fallback, or one that serves TLS. The deadlines are
// set through http.ResponseController, and cleared at the body's end.
func GuardBodies(h http.Handler, idle, total time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			g := &guardedBody{rc: r.Body, idle: idle}
			if idle > 0 || total > 0 {
				g.ctl = http.NewResponseController(w)
			}
			if total > 0 {
				g.end = time.Now().Add(total)
			}
			r.Body = g
		}
		h.ServeHTTP(w, r)
	})
}

// guardedBody is a net/http request body read within timeouts.
type guardedBody struct {
	rc   io.ReadCloser
	ctl  *http.ResponseController // nil: no timeouts
	idle time.Duration
	end  time.Time
	err  error
}

func (g *guardedBody) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	if g.ctl != nil {
		var d time.Time
		if g.idle > 0 {
			d = time.Now().Add(g.idle)
		}
		if !g.end.IsZero() && (d.IsZero() || g.end.Before(d)) {
			d = g.end
		}
		_ = g.ctl.SetReadDeadline(d)
	}
	n, err := g.rc.Read(p)
	switch {
	case err == nil:
	case errors.Is(err, io.EOF):
		if g.ctl != nil {
			// net/http goes on reading the connection, to notice the
			// client going away; the body's deadline must not end that.
			_ = g.ctl.SetReadDeadline(time.Time{})
		}
	default:
		var ne net.Error
		g.err = &RequestBodyError{Timeout: errors.As(err, &ne) && ne.Timeout(), Err: err}
		return n, g.err
	}
	return n, err
}

func (g *guardedBody) Close() error { return g.rc.Close() }
