package h1

import (
	"net"
	"sync"
)

// FallbackListener is how a Server hands connections to another server,
// net/http's: use its Give as the Server's Fallback, and serve the other
// server on it.
type FallbackListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

// NewFallbackListener returns a listener that reports addr as its address.
func NewFallbackListener(addr net.Addr) *FallbackListener {
	return &FallbackListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

// Give hands c to the server accepting on l, or closes c once l is closed.
func (l *FallbackListener) Give(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		_ = c.Close()
	}
}

// Accept returns the next connection given.
func (l *FallbackListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close makes Accept fail and Give close what it is given.
func (l *FallbackListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// Addr is the address given to NewFallbackListener.
func (l *FallbackListener) Addr() net.Addr { return l.addr }
