// Command engine-proto is scripts/floor's job on an engine outside Go's
// netpoller, for scripts/cpu-per-request to measure beside mgw, the floor
// and nginx (issue 17's engine question): two worker processes on one
// inherited socket, each one goroutine locked to its thread running an
// epoll loop of its own, level-triggered, the way nginx's event loop works.
// A client connection reads a GET head, rewrites /api to /, replaces Host,
// adds X-Forwarded-For and sends it on its own keep-alive connection to
// the target, whose answer (Content-Length only) is relayed back as it
// arrives. Each readiness event gets one read: a short read means the
// socket is drained, so no read ends in EAGAIN, where the netpoller must
// try a read before every wait. Reads, writes and the wait are raw system
// calls: the loop never leaves its thread's P. Asynchronous preemption is
// off (GODEBUG=asyncpreemptoff=1): the runtime's monitor would otherwise
// signal the loop every 10 ms as a goroutine that never yields, and each
// signal interrupts the wait (with it on, 10.7 system calls per request
// instead of 5.0, half of them futex and nanosleep).
//
// It has no routing table, no plugins, no timeouts, no error answers and
// no validation, and it serves no http.Handler: it is a measuring stick,
// not a gateway.
//
//	engine-proto LISTEN_PORT TARGET_ADDR
package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: engine-proto LISTEN_PORT TARGET_ADDR")
		os.Exit(2)
	}
	if os.Getenv("ENGINE_WORKER") != "" {
		runtime.GOMAXPROCS(1)
		runtime.LockOSThread()
		// worker serves until it fails; it never returns nil.
		fmt.Fprintln(os.Stderr, "engine-proto:", worker(os.Args[2]))
		os.Exit(1)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var cmds []*exec.Cmd
	for range 2 {
		cmd := exec.Command(os.Args[0], os.Args[1:]...)
		cmd.Env = append(os.Environ(), "ENGINE_WORKER=1", "GODEBUG=asyncpreemptoff=1")
		cmd.ExtraFiles = []*os.File{f}
		cmd.Stderr = os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		cmds = append(cmds, cmd)
	}
	for _, c := range cmds {
		_ = c.Wait()
	}
}

// conn is one socket of a pair: a client and the target connection that
// serves it.
type conn struct {
	fd     int
	client bool
	peer   *conn
	buf    []byte // what was read and not yet handled
	out    []byte // what waits for the socket to take it (EPOLLOUT)
	// left is, on a target connection, the bytes of the current answer
	// still to relay; -1 while its head is incomplete.
	left int
}

type loop struct {
	ep     int
	ln     int
	target unix.Sockaddr
	host   string
	conns  map[int]*conn
	head   []byte
}

func worker(target string) error {
	addr, err := net.ResolveTCPAddr("tcp", target)
	if err != nil {
		return err
	}
	sa := &unix.SockaddrInet4{Port: addr.Port}
	copy(sa.Addr[:], addr.IP.To4())
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("epoll_create: %w", err)
	}
	l := &loop{ep: ep, ln: 3, target: sa, host: target, conns: map[int]*conn{}}
	if err := unix.SetNonblock(l.ln, true); err != nil {
		return err
	}
	// EPOLLEXCLUSIVE: a new connection wakes one of the two workers.
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, l.ln, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLEXCLUSIVE, Fd: int32(l.ln)}); err != nil {
		return fmt.Errorf("epoll_ctl listener: %w", err)
	}
	events := make([]unix.EpollEvent, 128)
	for {
		n, errno := epollWait(ep, events)
		if errno != 0 {
			if errno == unix.EINTR {
				continue
			}
			return fmt.Errorf("epoll_wait: %w", errno)
		}
		for _, ev := range events[:n] {
			fd := int(ev.Fd)
			if fd == l.ln {
				l.accept()
				continue
			}
			c := l.conns[fd]
			if c == nil {
				continue
			}
			if ev.Events&unix.EPOLLOUT != 0 && !l.flush(c) {
				continue
			}
			if ev.Events&(unix.EPOLLIN|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
				l.readable(c)
			}
		}
	}
}

// epollWait waits without leaving the P: there is nothing else for it to
// run.
func epollWait(ep int, events []unix.EpollEvent) (int, syscall.Errno) {
	n, _, e := syscall.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(ep), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 1000, 0, 0)
	return int(n), e
}

func read(fd int, b []byte) (int, syscall.Errno) {
	n, _, e := syscall.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	return int(n), e
}

func write(fd int, b []byte) (int, syscall.Errno) {
	n, _, e := syscall.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	return int(n), e
}

func (l *loop) add(fd int, client bool) *conn {
	c := &conn{fd: fd, client: client, buf: make([]byte, 0, 4096), left: -1}
	l.conns[fd] = c
	_ = unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)})
	return c
}

func (l *loop) accept() {
	for {
		fd, _, err := unix.Accept4(l.ln, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err != nil {
			return // EAGAIN, or the other worker took it
		}
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		l.add(fd, true)
	}
}

func (l *loop) close(c *conn) {
	for _, x := range []*conn{c, c.peer} {
		if x != nil && l.conns[x.fd] == x {
			delete(l.conns, x.fd)
			_ = unix.Close(x.fd)
		}
	}
}

// send writes b to c, keeping what the socket does not take for EPOLLOUT.
func (l *loop) send(c *conn, b []byte) bool {
	if len(c.out) > 0 {
		c.out = append(c.out, b...)
		return true
	}
	n, e := write(c.fd, b)
	if e != 0 && e != unix.EAGAIN {
		l.close(c)
		return false
	}
	if n < 0 {
		n = 0
	}
	if n < len(b) {
		c.out = append(c.out[:0], b[n:]...)
		_ = unix.EpollCtl(l.ep, unix.EPOLL_CTL_MOD, c.fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT, Fd: int32(c.fd)})
	}
	return true
}

// flush writes what waits in c.out.
func (l *loop) flush(c *conn) bool {
	if len(c.out) == 0 {
		return true
	}
	n, e := write(c.fd, c.out)
	if e != 0 && e != unix.EAGAIN {
		l.close(c)
		return false
	}
	if n > 0 {
		c.out = c.out[:copy(c.out, c.out[n:])]
	}
	if len(c.out) == 0 {
		_ = unix.EpollCtl(l.ep, unix.EPOLL_CTL_MOD, c.fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(c.fd)})
	}
	return true
}

func (l *loop) readable(c *conn) {
	if len(c.buf) == cap(c.buf) {
		l.close(c) // a head over 4 KiB: out of this prototype's scope
		return
	}
	n, e := read(c.fd, c.buf[len(c.buf):cap(c.buf)])
	if e == unix.EAGAIN {
		return
	}
	if e != 0 || n <= 0 {
		l.close(c)
		return
	}
	c.buf = c.buf[:len(c.buf)+n]
	if c.client {
		l.request(c)
	} else {
		l.answer(c)
	}
}

var (
	prefix = []byte("/api")
	crlf2  = []byte("\r\n\r\n")
)

// request forwards each complete head in c.buf to c's target connection.
func (l *loop) request(c *conn) {
	for {
		end := bytes.Index(c.buf, crlf2)
		if end < 0 {
			return
		}
		h := c.buf[:end+2]
		line, rest, _ := bytes.Cut(h, []byte("\r\n"))
		sp := bytes.IndexByte(line, ' ')
		if sp < 0 || !bytes.HasPrefix(line[sp+1:], prefix) {
			l.close(c)
			return
		}
		head := append(append(l.head[:0], line[:sp+1]...), line[sp+1+len(prefix):]...)
		head = append(head, "\r\n"...)
		for len(rest) > 0 {
			var f []byte
			f, rest, _ = bytes.Cut(rest, []byte("\r\n"))
			if len(f) > 5 && bytes.EqualFold(f[:5], []byte("host:")) {
				head = append(append(append(head, "Host: "...), l.host...), "\r\n"...)
				continue
			}
			head = append(append(head, f...), "\r\n"...)
		}
		head = append(head, "X-Forwarded-For: 127.0.0.1\r\n\r\n"...)
		l.head = head
		c.buf = c.buf[:copy(c.buf, c.buf[end+4:])]
		if c.peer == nil {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				l.close(c)
				return
			}
			if err := unix.Connect(fd, l.target); err != nil {
				_ = unix.Close(fd)
				l.close(c)
				return
			}
			_ = unix.SetNonblock(fd, true)
			_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
			u := l.add(fd, false)
			u.peer, c.peer = c, u
		}
		if !l.send(c.peer, head) {
			return
		}
	}
}

// answer relays what the target sent, finding each answer's length in its
// head.
func (l *loop) answer(u *conn) {
	for len(u.buf) > 0 {
		if u.left < 0 {
			end := bytes.Index(u.buf, crlf2)
			if end < 0 {
				return
			}
			cl := 0
			for _, f := range bytes.Split(u.buf[:end], []byte("\r\n")) {
				if len(f) > 15 && bytes.EqualFold(f[:15], []byte("content-length:")) {
					cl = 0
					for _, d := range bytes.TrimSpace(f[15:]) {
						cl = cl*10 + int(d-'0')
					}
				}
			}
			u.left = end + 4 + cl
		}
		n := min(u.left, len(u.buf))
		if !l.send(u.peer, u.buf[:n]) {
			return
		}
		u.left -= n
		u.buf = u.buf[:copy(u.buf, u.buf[n:])]
		if u.left == 0 {
			u.left = -1
		}
	}
}
