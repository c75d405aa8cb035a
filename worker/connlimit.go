package worker

import (
	"errors"
	"io"
	"net/http"
	"sync"
	"time"
)

// errConnWait is a request that waited its proxy's timeout for a
// connection to a target at its max_connections; the client gets 503.
// It is h1.ErrConnWait for the targets net/http's transport reaches
// (https, or through an outbound proxy).
var errConnWait = errors.New("every connection to the target is busy (max_connections)")

// limitedTransport lets at most cap(sem) requests to a target be in
// flight, from the start of the round trip until the answer's body is
// closed, and makes a request that finds them all busy wait a bounded
// time instead of for as long as net/http's MaxConnsPerHost would (the
// request's whole life).
type limitedTransport struct {
	http.RoundTripper
	sem  chan struct{}
	wait time.Duration
}

func newLimitedTransport(rt http.RoundTripper, limit int, timeout time.Duration) *limitedTransport {
	return &limitedTransport{RoundTripper: rt, sem: make(chan struct{}, limit), wait: timeout}
}

func (t *limitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	select {
	case t.sem <- struct{}{}:
	default:
		var expired <-chan time.Time
		if t.wait > 0 {
			tm := time.NewTimer(t.wait)
			defer tm.Stop()
			expired = tm.C
		}
		select {
		case t.sem <- struct{}{}:
		case <-expired:
			closeRequestBody(req)
			return nil, errConnWait
		case <-req.Context().Done():
			closeRequestBody(req)
			return nil, req.Context().Err()
		}
	}
	resp, err := t.RoundTripper.RoundTrip(req)
	if err != nil {
		<-t.sem
		return nil, err
	}
	resp.Body = &releasingBody{ReadCloser: resp.Body, release: func() { <-t.sem }}
	return resp, nil
}

// CloseIdleConnections passes the call on.
func (t *limitedTransport) CloseIdleConnections() {
	if c, ok := t.RoundTripper.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

func closeRequestBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// releasingBody gives its slot back when it is closed.
type releasingBody struct {
	io.ReadCloser
	once    sync.Once
	release func()
}

func (b *releasingBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.release)
	return err
}
