package integration

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// loadResult counts what a strict client saw.
type loadResult struct {
	ok, non2xx, errors atomic.Int64
	mu                 sync.Mutex
	firstErrors        []string
}

func (r *loadResult) fail(format string, args ...any) {
	r.errors.Add(1)
	r.mu.Lock()
	if len(r.firstErrors) < 5 {
		r.firstErrors = append(r.firstErrors, fmt.Sprintf(format, args...))
	}
	r.mu.Unlock()
}

// runLoad keeps conns keep-alive connections busy with POST requests to
// addr+path until stop is closed. It never retries: a request that fails
// on a reused connection counts as an error, which is exactly the race a
// reload must not lose. A connection the server marks Connection: close is
// closed after its response and replaced by a new one.
// The returned wait blocks until every connection has stopped.
func runLoad(addr, path string, conns int, stop <-chan struct{}) (res *loadResult, wait func()) {
	res = &loadResult{}
	var wg sync.WaitGroup
	req := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello", path, addr)
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var c net.Conn
			var br *bufio.Reader
			defer func() {
				if c != nil {
					c.Close()
				}
			}()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if c == nil {
					var err error
					c, err = net.DialTimeout("tcp", addr, 5*time.Second)
					if err != nil {
						res.fail("dial: %v", err)
						c = nil
						continue
					}
					br = bufio.NewReader(c)
				}
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := io.WriteString(c, req); err != nil {
					res.fail("write: %v", err)
					c.Close()
					c = nil
					continue
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					res.fail("read: %v", err)
					c.Close()
					c = nil
					continue
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch {
				case err != nil:
					res.fail("body: %v", err)
				case resp.StatusCode/100 != 2:
					res.non2xx.Add(1)
				default:
					res.ok.Add(1)
				}
				if err != nil || resp.Close {
					c.Close()
					c = nil
				}
			}
		}()
	}
	return res, wg.Wait
}
