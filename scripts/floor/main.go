// Command floor is the least a proxy written in Go can do, for
// scripts/cpu-per-request to measure beside mgw and nginx: two worker
// processes on one inherited socket, GOMAXPROCS=1 each, one goroutine per
// client connection that reads a GET head, rewrites /api to / and sends it
// on a pooled keep-alive connection to the target, and copies the answer
// back (Content-Length only). Socket I/O is by raw system calls through
// the netpoller, with mgw's own h1.RawConn. It has no routing table, no plugins,
// no timeouts, no error answers and no validation: it is a measuring
// stick, not a gateway.
//
//	floor LISTEN_PORT TARGET_ADDR
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"syscall"

	"github.com/mgw-gateway/mgw/worker/h1"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: floor LISTEN_PORT TARGET_ADDR")
		os.Exit(2)
	}
	if os.Getenv("FLOOR_WORKER") != "" {
		runtime.GOMAXPROCS(1)
		worker(os.Args[2])
		return
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
		cmd.Env = append(os.Environ(), "FLOOR_WORKER=1")
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

func worker(target string) {
	ln, err := net.FileListener(os.NewFile(3, "listener"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	p := &pool{target: target}
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		go p.serve(h1.RawConn(c))
	}
}

type upstream struct {
	c net.Conn
	r *bufio.Reader
	w *bufio.Writer
}

type pool struct {
	target string
	mu     sync.Mutex
	free   []*upstream
}

func (p *pool) get() (*upstream, error) {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		u := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return u, nil
	}
	p.mu.Unlock()
	c, err := net.Dial("tcp", p.target)
	if err != nil {
		return nil, err
	}
	c = h1.RawConn(c)
	return &upstream{c: c, r: bufio.NewReaderSize(c, 4096), w: bufio.NewWriterSize(c, 4096)}, nil
}

func (p *pool) put(u *upstream) {
	p.mu.Lock()
	p.free = append(p.free, u)
	p.mu.Unlock()
}

var prefix = []byte("/api")

func (p *pool) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReaderSize(c, 4096)
	bw := bufio.NewWriterSize(c, 4096)
	var head []byte
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return
		}
		sp := bytes.IndexByte(line, ' ')
		rest := line[sp+1:]
		end := bytes.IndexByte(rest, ' ')
		if sp < 0 || end < 0 || !bytes.HasPrefix(rest[:end], prefix) {
			return
		}
		head = append(append(head[:0], line[:sp+1]...), rest[len(prefix):]...)
		for {
			l, err := br.ReadSlice('\n')
			if err != nil {
				return
			}
			if len(l) <= 2 {
				break
			}
			if len(l) > 5 && bytes.EqualFold(l[:5], []byte("host:")) {
				head = append(head, "Host: "+p.target+"\r\n"...)
				continue
			}
			head = append(head, l...)
		}
		head = append(head, "X-Forwarded-For: 127.0.0.1\r\n\r\n"...)
		u, err := p.get()
		if err != nil {
			return
		}
		if _, err := u.w.Write(head); err != nil || u.w.Flush() != nil {
			_ = u.c.Close()
			return
		}
		if !relay(u.r, bw) {
			_ = u.c.Close()
			return
		}
		p.put(u)
		if br.Buffered() == 0 && bw.Flush() != nil {
			return
		}
	}
}

// relay copies one answer with a Content-Length from r to w.
func relay(r *bufio.Reader, w *bufio.Writer) bool {
	n := 0
	for {
		l, err := r.ReadSlice('\n')
		if err != nil {
			return false
		}
		_, _ = w.Write(l)
		if len(l) <= 2 {
			break
		}
		if len(l) > 15 && bytes.EqualFold(l[:15], []byte("content-length:")) {
			n, _ = strconv.Atoi(string(bytes.TrimSpace(l[15:])))
		}
	}
	_, err := io.CopyN(w, r, int64(n))
	return err == nil
}
