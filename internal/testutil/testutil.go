// Package testutil holds what the integration tests would otherwise
// write out again and again: polling for a condition (Poll, Eventually),
// a load of concurrent requests (StartLoad until stopped, Repeat for a
// number of calls, StartConnLoad over keep-alive connections), the head
// of an mgw.toml for a test instance (Preamble, PreambleWith), and a
// Buffer several goroutines or a process's output may write to.
// It is for tests only; no product package imports it.
package testutil

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// PollEvery is how often Poll and Eventually check their condition.
const PollEvery = 20 * time.Millisecond

// Poll checks cond every PollEvery until it holds or timeout has passed,
// and reports whether it held.
func Poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(PollEvery)
	}
	return true
}

// Eventually fails t, naming what it waited for, when cond does not hold
// within timeout.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Poll(timeout, cond) {
		t.Fatalf("timed out after %s waiting for %s", timeout, what)
	}
}

// Load is n goroutines each calling a request function in a loop until
// Stop (or a number of calls, with Repeat); OK and Failed count the calls
// that returned nil and an error, and Errors keeps the first few errors
// for a failure message.
type Load struct {
	OK, Failed atomic.Int64
	stop       chan struct{}
	wg         sync.WaitGroup
	mu         sync.Mutex
	errs       []string
}

// keptErrors is how many errors a Load keeps for Errors.
const keptErrors = 5

// StartLoad starts n goroutines calling do with 0, 1, 2 … (each its own
// count) until Stop.
func StartLoad(n int, do func(i int) error) *Load {
	return start(n, -1, func() (func(int) error, func()) { return do, nil })
}

// Repeat runs n goroutines each calling do with 0, 1 … each-1 and returns
// once every call has returned.
func Repeat(n, each int, do func(i int) error) *Load {
	l := start(n, each, func() (func(int) error, func()) { return do, nil })
	l.wg.Wait()
	return l
}

// start runs n goroutines, each with the request function (and the
// function that releases what it holds, or nil) that caller makes for
// it, for each calls (or, for each < 0, until Stop).
func start(n, each int, caller func() (do func(int) error, done func())) *Load {
	l := &Load{stop: make(chan struct{})}
	for range n {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			do, done := caller()
			if done != nil {
				defer done()
			}
			for i := 0; each < 0 || i < each; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				if err := do(i); err != nil {
					l.fail(err)
				} else {
					l.OK.Add(1)
				}
			}
		}()
	}
	return l
}

func (l *Load) fail(err error) {
	l.Failed.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errs) < keptErrors {
		l.errs = append(l.errs, err.Error())
	}
}

// Errors returns the first errors the calls returned (five at most).
func (l *Load) Errors() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.errs)
}

// Stop ends the load and waits for the calls in flight.
func (l *Load) Stop() {
	close(l.stop)
	l.wg.Wait()
}

// DoOK sends req with c and reads the answer whole: the request function
// of most loads. An error, or an answer other than 200, is an error.
func DoOK(c *http.Client, req *http.Request) error {
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return fmt.Errorf("%s %s: body: %w", req.Method, req.URL, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: status %d", req.Method, req.URL, resp.StatusCode)
	}
	return nil
}

// StartConnLoad keeps n keep-alive connections to addr busy with req, one
// whole HTTP/1.1 request written as is, until Stop. It never retries: a
// request that fails on a reused connection counts as failed, which is
// exactly the race a reload must not lose. An answer that is not 2xx
// fails too. A connection that failed, or whose answer says
// Connection: close, is closed and replaced by a new one.
func StartConnLoad(n int, addr, req string) *Load {
	return start(n, -1, func() (func(int) error, func()) {
		var c net.Conn
		var br *bufio.Reader
		drop := func() {
			if c != nil {
				_ = c.Close()
				c = nil
			}
		}
		do := func(int) error {
			if c == nil {
				var err error
				if c, err = net.DialTimeout("tcp", addr, 5*time.Second); err != nil {
					c = nil
					return fmt.Errorf("dial: %w", err)
				}
				br = bufio.NewReader(c)
			}
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(c, req); err != nil {
				drop()
				return fmt.Errorf("write: %w", err)
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				drop()
				return fmt.Errorf("read: %w", err)
			}
			_, err = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if err != nil || resp.Close {
				drop()
			}
			switch {
			case err != nil:
				return fmt.Errorf("body: %w", err)
			case resp.StatusCode/100 != 2:
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		}
		return do, drop
	})
}

// Preamble is the head of a test instance's mgw.toml: the port the
// harness substitutes for ${PORT}, loopback only, info logs to the
// console (the harness keeps them for a failed test's output).
var Preamble = PreambleWith()

// PreambleWith is Preamble with more keys of [edgemicro], each given as
// one line ("trusted_proxies = [\"127.0.0.1\"]").
func PreambleWith(keys ...string) string {
	var b strings.Builder
	b.WriteString("\n[edgemicro]\nport = ${PORT}\naddress = \"127.0.0.1\"\n")
	for _, k := range keys {
		b.WriteString(k + "\n")
	}
	b.WriteString("[edgemicro.logging]\nlevel = \"info\"\nto_console = true\n")
	return b.String()
}

// Buffer collects what several goroutines write (a logger's lines, a
// process's output) for a test to read at any time.
type Buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String is everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
