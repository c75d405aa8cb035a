package ipc

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
)

// Descriptors a worker inherits from the master.
const (
	ListenerFD = 3 // the shared listening socket
	ChannelFD  = 4 // the worker's end of the IPC socketpair
	ZoneFD     = 5 // the instance's shared limit zone (plugins/zone)
	BalanceFD  = 6 // the generation's connection counts (worker/balance)
)

// BalanceEnv names the variable by which a master tells its workers that
// BalanceFD holds a balance table: a worker started by an older master
// (a binary replaced on disk, a worker restarted before the reload) finds
// some other descriptor there, or none.
const BalanceEnv = "MGW_BALANCE_FD"

// Conn sends and receives frames over a stream socket. Send is safe for
// concurrent use; Recv must be called from one goroutine.
type Conn struct {
	c   net.Conn
	r   *bufio.Reader
	wmu sync.Mutex
	buf []byte
}

// NewConn wraps a connected stream socket.
func NewConn(c net.Conn) *Conn {
	return &Conn{c: c, r: bufio.NewReaderSize(c, 64<<10)}
}

// Send writes one frame carrying v as a message of the given kind.
func (c *Conn) Send(kind Kind, v any) error {
	f, err := Marshal(kind, v)
	if err != nil {
		return err
	}
	return c.SendFrame(f)
}

// SendFrame writes one frame.
func (c *Conn) SendFrame(f Frame) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	b, err := AppendFrame(c.buf[:0], f)
	if err != nil {
		return err
	}
	if _, err := c.c.Write(b); err != nil {
		return fmt.Errorf("sending %s: %w", f.Kind, err)
	}
	if cap(b) <= 64<<10 {
		c.buf = b
	}
	return nil
}

// Recv reads the next frame. It returns io.EOF when the peer closed the
// connection cleanly.
func (c *Conn) Recv() (Frame, error) {
	return ReadFrame(c.r)
}

// Close closes the connection, unblocking a pending Recv.
func (c *Conn) Close() error { return c.c.Close() }

// NetConn returns the underlying connection.
func (c *Conn) NetConn() net.Conn { return c.c }

// Pair makes a connected pair of Unix stream sockets for one worker. The
// parent end is a Conn for the master; child is the worker's end, to be
// passed in exec.Cmd.ExtraFiles. Both are close-on-exec, so no other child
// ever inherits an end by accident: os/exec clears the flag only on the
// descriptors it hands to its own child. The caller closes child after
// starting the worker.
func Pair() (parent *Conn, child *os.File, err error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("making socketpair: %w", err)
	}
	pf := os.NewFile(uintptr(fds[0]), "ipc-parent")
	defer pf.Close()
	nc, err := net.FileConn(pf)
	if err != nil {
		_ = syscall.Close(fds[1])
		return nil, nil, fmt.Errorf("wrapping socketpair: %w", err)
	}
	return NewConn(nc), os.NewFile(uintptr(fds[1]), "ipc-child"), nil
}

// FileConn wraps a socket descriptor, such as the child end from Pair,
// in a Conn. It closes f; the Conn holds its own duplicate.
func FileConn(f *os.File) (*Conn, error) {
	defer f.Close()
	nc, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("opening channel %s: %w", f.Name(), err)
	}
	return NewConn(nc), nil
}

// Inherited returns the channel a worker inherited at ChannelFD.
func Inherited() (*Conn, error) {
	return FileConn(os.NewFile(ChannelFD, "ipc"))
}
