package h1

import (
	"io"
	"net"
	"syscall"
	"unsafe"
)

// rawConn reads and writes a TCP connection with raw system calls made
// through the netpoller (syscall.RawConn), instead of the runtime's
// syscall wrappers.
//
// A socket read or write on a nonblocking socket never blocks, but on a
// machine where the gateway shares its cores with its target, a write
// that wakes the peer is often preempted inside the kernel. Through the
// ordinary wrapper the runtime counts that time as a blocking system
// call, and its monitor thread hands the worker's only P to another OS
// thread, which costs two more context switches and a futex wake per
// request. A raw call keeps the P: the thread simply resumes where it
// was, as an event loop in C would. Waiting for readiness still goes
// through the netpoller, so deadlines and Close work as for any net.Conn.
type rawConn struct {
	*net.TCPConn
	rc syscall.RawConn

	// The state of the one read and the one write that may run at once,
	// kept here, with the functions bound once, so that a call allocates
	// no closure.
	rp      []byte
	rn      uintptr
	rerrno  syscall.Errno
	readFn  func(fd uintptr) bool
	wp      []byte
	wdone   int
	werrno  syscall.Errno
	writeFn func(fd uintptr) bool
}

// RawConn wraps c when it is a TCP connection, and returns it
// unchanged otherwise.
func RawConn(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	r := &rawConn{TCPConn: tc, rc: rc}
	r.readFn, r.writeFn = r.read, r.write
	return r
}

func (c *rawConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rp, c.rn, c.rerrno = p, 0, 0
	err := c.rc.Read(c.readFn)
	n, errno := c.rn, c.rerrno
	c.rp = nil
	switch {
	case err != nil:
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
	case errno != 0:
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: errno}
	case n == 0:
		return 0, io.EOF
	}
	return int(n), nil
}

// read is one attempt of Read; false means "wait until readable".
func (c *rawConn) read(fd uintptr) bool {
	for {
		c.rn, _, c.rerrno = syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&c.rp[0])), uintptr(len(c.rp)))
		if c.rerrno != syscall.EINTR {
			return c.rerrno != syscall.EAGAIN
		}
	}
}

func (c *rawConn) Write(p []byte) (int, error) {
	c.wp, c.wdone, c.werrno = p, 0, 0
	err := c.rc.Write(c.writeFn)
	done, errno := c.wdone, c.werrno
	c.wp = nil
	if err == nil && errno != 0 {
		err = errno
	}
	if err != nil {
		return done, &net.OpError{Op: "write", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
	}
	return done, nil
}

// write is one attempt of Write; false means "wait until writable".
func (c *rawConn) write(fd uintptr) bool {
	p := c.wp
	for c.wdone < len(p) {
		n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[c.wdone])), uintptr(len(p)-c.wdone))
		switch errno {
		case 0:
			c.wdone += int(n)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			c.werrno = errno
			return true
		}
	}
	return true
}
