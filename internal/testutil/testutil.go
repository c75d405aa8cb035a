// Package testutil holds what the integration tests would otherwise
// write out again and again: polling for a condition, a load of
// concurrent requests, and the head of an mgw.toml for a test instance.
// It is for tests only; no product package imports it.
package testutil

import (
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
// Stop; OK and Failed count the calls that returned nil and an error.
type Load struct {
	OK, Failed atomic.Int64
	stop       chan struct{}
	wg         sync.WaitGroup
}

// StartLoad starts n goroutines calling do with 0, 1, 2 … (each its own
// count) until Stop.
func StartLoad(n int, do func(i int) error) *Load {
	l := &Load{stop: make(chan struct{})}
	for range n {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				if err := do(i); err != nil {
					l.Failed.Add(1)
				} else {
					l.OK.Add(1)
				}
			}
		}()
	}
	return l
}

// Stop ends the load and waits for the calls in flight.
func (l *Load) Stop() {
	close(l.stop)
	l.wg.Wait()
}

// Preamble is the head of a test instance's mgw.toml: the port the
// harness substitutes for ${PORT}, loopback only, info logs to the
// console (the harness keeps them for a failed test's output).
const Preamble = `
[edgemicro]
port = ${PORT}
address = "127.0.0.1"
[edgemicro.logging]
level = "info"
to_console = true
`
