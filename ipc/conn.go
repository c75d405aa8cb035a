package ipc

import (
	"bufio"
	"encoding/binary"
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
	buf []byte // a small frame, header and payload
	hdr [HeaderSize]byte
	vec net.Buffers // a large frame's header and payload, for writev
	out net.Buffers // what of vec is left to write
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

// vectorBytes is the payload size from which SendFrame writes the header
// and the payload with one writev instead of copying them together.
const vectorBytes = 4 << 10

// SendFrame writes one frame. A large payload (a records frame) is not
// copied: the header and the payload go out in one writev.
func (c *Conn) SendFrame(f Frame) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if len(f.Payload) >= vectorBytes {
		if len(f.Payload) > MaxFrameSize {
			return fmt.Errorf("%w: %d bytes, limit %d", ErrFrameSize, len(f.Payload), MaxFrameSize)
		}
		h := append(c.hdr[:0], magic0, magic1, ProtocolVersion, byte(f.Kind))
		h = binary.BigEndian.AppendUint32(h, uint32(len(f.Payload)))
		c.vec = append(c.vec[:0], h, f.Payload)
		c.out = c.vec // WriteTo consumes the slice it is given
		_, err := c.out.WriteTo(c.c)
		clear(c.vec) // hold no payload between frames
		if err != nil {
			return fmt.Errorf("sending %s: %w", f.Kind, err)
		}
		return nil
	}
	b, err := AppendFrame(c.buf[:0], f)
	if err != nil {
		return err
	}
	if _, err := c.c.Write(b); err != nil {
		return fmt.Errorf("sending %s: %w", f.Kind, err)
	}
	c.buf = b
	return nil
}

// Recv reads the next frame. It returns io.EOF when the peer closed the
// connection cleanly.
func (c *Conn) Recv() (Frame, error) {
	return ReadFrame(c.r)
}

// RecvInto reads the next frame as Recv does, except that the payload of
// a frame for which buf returns a slice is read into that slice's
// memory (reused across frames by the caller) instead of being
// allocated as it arrives. buf gets the kind and the announced length,
// which is already checked against MaxFrameSize, and returns nil to
// leave the frame to Recv's way; the slice it returns must have room for
// n bytes.
func (c *Conn) RecvInto(buf func(k Kind, n int) []byte) (Frame, error) {
	return readFrame(c.r, buf)
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
