// The client's pool of keep-alive connections to one target: taking an
// idle connection or dialing within MaxConns and ConnWait, the reuse
// check of an idle connection, giving a connection back, and the sweep
// of connections idle past IdleTimeout.

package h1

import (
	"bufio"
	"context"
	"errors"
	"syscall"
	"time"
	"unsafe"
)

// CloseIdleConnections closes the pooled connections.
func (t *Transport) CloseIdleConnections() {
	t.init()
	for {
		select {
		case cc := <-t.idle:
			cc.close()
		default:
			return
		}
	}
}

// get returns a pooled connection that has not been idle too long, or
// dials a new one; at MaxConns it waits for either.
func (t *Transport) get(ctx context.Context) (*clientConn, bool, error) {
	for {
		var cc *clientConn
		select {
		case cc = <-t.idle:
		default:
			if t.tokens == nil {
				cc, err := t.dial(ctx)
				return cc, false, err
			}
			var err error
			if cc, err = t.take(ctx); err != nil {
				return nil, false, err
			}
			if cc == nil { // a token was taken for a new connection
				cc, err := t.dial(ctx)
				if err != nil {
					<-t.tokens
				}
				return cc, false, err
			}
		}
		if !cc.stale() && cc.quiet() {
			return cc, true, nil
		}
		cc.close()
	}
}

// ErrConnWait is a request that waited ConnWait for a connection to the
// target, all MaxConns of them busy.
var ErrConnWait = errors.New("all connections to the target are busy")

// take returns an idle connection, or nil once it has taken a token for
// a new one. At MaxConns it waits for either, no longer than ConnWait;
// only that wait costs a timer.
func (t *Transport) take(ctx context.Context) (*clientConn, error) {
	select {
	case cc := <-t.idle:
		return cc, nil
	case t.tokens <- struct{}{}:
		return nil, nil
	default:
	}
	var wait <-chan time.Time
	if t.ConnWait > 0 {
		timer := time.NewTimer(t.ConnWait)
		defer timer.Stop()
		wait = timer.C
	}
	select {
	case cc := <-t.idle:
		return cc, nil
	case t.tokens <- struct{}{}:
		return nil, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-wait:
		return nil, ErrConnWait
	}
}

func (t *Transport) dial(ctx context.Context) (*clientConn, error) {
	nc, err := t.Dial(ctx, "tcp", t.Addr)
	if err != nil {
		return nil, err
	}
	cc := &clientConn{t: t, nc: nc, br: bufio.NewReaderSize(nc, 8<<10), bw: bufio.NewWriterSize(nc, 8<<10)}
	if s, ok := nc.(syscall.Conn); ok {
		if sc, err := s.SyscallConn(); err == nil {
			cc.sc = sc
			cc.peekFn = cc.peek
		}
	}
	return cc, nil
}

// quiet reports whether nothing has arrived on the pooled connection
// since its last answer ended: no byte the target sent past that
// answer's framing (a body after the head of a HEAD, 204 or 304 answer,
// bytes past its Content-Length, anything after it) and no end of
// stream. Such bytes would otherwise be read as the answer to the next
// request, from whichever client sends it, and every later answer on
// the connection would go to the request after its own; a closed
// connection would cost a failed attempt. It costs one non-blocking
// recv(MSG_PEEK) per reuse, which is cheaper than keeping a read
// pending on every idle connection as net/http does. A connection that
// is not a socket is taken as quiet.
func (cc *clientConn) quiet() bool {
	if cc.sc == nil {
		return true
	}
	cc.peekN, cc.peekErr = 0, 0
	if err := cc.sc.Control(cc.peekFn); err != nil {
		return false
	}
	return cc.peekErr == syscall.EAGAIN || cc.peekErr == syscall.EWOULDBLOCK
}

// peek looks, without waiting and without consuming, for one byte or the
// end of stream on fd.
func (cc *clientConn) peek(fd uintptr) {
	for {
		cc.peekN, _, cc.peekErr = syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&cc.peekBuf[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		if cc.peekErr != syscall.EINTR {
			return
		}
	}
}

func (cc *clientConn) stale() bool {
	return cc.t.IdleTimeout > 0 && time.Since(cc.idleAt) > cc.t.IdleTimeout
}

// put returns cc to the pool, or closes it when the pool is full.
func (cc *clientConn) put() {
	t := cc.t
	cc.idleAt = time.Now()
	select {
	case t.idle <- cc:
		t.armSweep()
	default:
		cc.close()
	}
}

func (cc *clientConn) close() {
	_ = cc.nc.Close()
	if cc.t.tokens != nil {
		<-cc.t.tokens
	}
}

// armSweep makes sure a timer will close connections left idle past
// IdleTimeout, so an unused pool does not hold sockets the target has
// closed.
func (t *Transport) armSweep() {
	if t.IdleTimeout <= 0 {
		return
	}
	t.sweep.Lock()
	defer t.sweep.Unlock()
	if t.armed {
		return
	}
	t.armed = true
	time.AfterFunc(t.IdleTimeout, t.sweepIdle)
}

func (t *Transport) sweepIdle() {
	t.sweep.Lock()
	t.armed = false
	t.sweep.Unlock()
	var keep []*clientConn
	for n := len(t.idle); n > 0; n-- {
		select {
		case cc := <-t.idle:
			if cc.stale() {
				cc.close()
			} else {
				keep = append(keep, cc)
			}
		default:
		}
	}
	for _, cc := range keep { // back with the idle time they had
		select {
		case t.idle <- cc:
		default:
			cc.close()
		}
	}
	if len(keep) > 0 {
		t.armSweep()
	}
}
