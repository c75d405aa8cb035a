// Command loadgen sends GET requests at a fixed rate over keep-alive
// connections and prints the latency percentiles, for scripts/latency.
//
// wrk keeps a fixed number of requests in flight, so its latency is the
// number of connections divided by the throughput (Little's law): a
// slower proxy shows a higher p99 whatever its own delay. loadgen fixes
// the rate instead, below what every setup can serve, and measures each
// request from the moment it was due, not from when a connection was
// free to send it: a request that waits behind a slow one counts the
// wait ("coordinated omission").
//
//	loadgen -rate 5000 -d 10s -c 64 [-H 'Name: value'] URL
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

func main() {
	rate := flag.Int("rate", 5000, "requests per second")
	dur := flag.Duration("d", 10*time.Second, "how long to send")
	conns := flag.Int("c", 64, "keep-alive connections")
	var headers headerFlags
	flag.Var(&headers, "H", "a header line to send, Name: value (repeatable)")
	flag.Parse()
	if flag.NArg() != 1 || *rate <= 0 || *conns <= 0 {
		fmt.Fprintln(os.Stderr, "usage: loadgen -rate N -d DURATION -c CONNS [-H 'Name: value'] URL")
		os.Exit(2)
	}
	res, err := run(flag.Arg(0), headers, *rate, *dur, *conns)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
	fmt.Println(res)
}

type headerFlags []string

func (h *headerFlags) String() string     { return strings.Join(*h, ", ") }
func (h *headerFlags) Set(v string) error { *h = append(*h, v); return nil }

// result is one run: the requests answered, the failures, and the
// latencies in sorted order.
type result struct {
	sent, failed int
	lat          []time.Duration
	elapsed      time.Duration
}

func (r result) String() string {
	if len(r.lat) == 0 {
		return fmt.Sprintf("requests 0 failed %d", r.failed)
	}
	p := func(q float64) float64 { // nearest rank
		i := int(math.Ceil(q*float64(len(r.lat)))) - 1
		return float64(r.lat[max(0, i)]) / float64(time.Millisecond)
	}
	return fmt.Sprintf("requests %d failed %d rate %.0f p50 %.3f p90 %.3f p99 %.3f p999 %.3f max %.3f",
		len(r.lat), r.failed, float64(len(r.lat))/r.elapsed.Seconds(), p(0.50), p(0.90), p(0.99), p(0.999), p(1))
}

func run(rawURL string, headers []string, rate int, dur time.Duration, conns int) (result, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return result{}, fmt.Errorf("want an http:// URL, got %q", rawURL)
	}
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\n"
	for _, h := range headers {
		req += h + "\r\n"
	}
	req += "\r\n"

	// due carries each request's due time to whichever connection is
	// free; its buffer lets the schedule run ahead of slow answers, so
	// their wait is counted rather than hidden.
	n := int(float64(rate) * dur.Seconds())
	due := make(chan time.Time, n)
	var mu sync.Mutex
	res := result{lat: make([]time.Duration, 0, n)}
	var wg sync.WaitGroup
	for range conns {
		c, err := net.Dial("tcp", u.Host)
		if err != nil {
			return result{}, fmt.Errorf("connecting: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat, failed := serve(c, u.Host, req, due)
			mu.Lock()
			res.lat = append(res.lat, lat...)
			res.failed += failed
			mu.Unlock()
		}()
	}
	start := time.Now()
	for i := range n {
		t := start.Add(time.Duration(float64(i) * float64(time.Second) / float64(rate)))
		if d := time.Until(t); d > 0 {
			time.Sleep(d)
		}
		due <- t
	}
	close(due)
	wg.Wait()
	res.elapsed = time.Since(start)
	res.sent = n
	slices.Sort(res.lat)
	return res, nil
}

// serve sends a request on c for each due time and reads its answer. An
// error or an answer other than 200 counts as a failure, and the next
// request goes on a new connection, so that a connection the server
// closed neither takes the load off the others nor leaves the run.
func serve(c net.Conn, addr, req string, due <-chan time.Time) (lat []time.Duration, failed int) {
	br := bufio.NewReader(c)
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	for t := range due {
		if c == nil {
			var err error
			if c, err = net.Dial("tcp", addr); err != nil {
				failed++
				continue
			}
			br.Reset(c)
		}
		if err := roundTrip(c, br, req); err != nil {
			c.Close()
			c = nil
			failed++
			continue
		}
		lat = append(lat, time.Since(t))
	}
	return lat, failed
}

func roundTrip(c net.Conn, br *bufio.Reader, req string) error {
	if _, err := io.WriteString(c, req); err != nil {
		return err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != http.StatusOK {
		err = errors.New(resp.Status)
	}
	return err
}
