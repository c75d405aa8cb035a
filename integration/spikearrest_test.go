package integration

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mgw-gateway/mgw/internal/testutil"
)

// spikeConfig is local mode with spike arrest alone in front of target.
func spikeConfig(targetURL, settings string) string {
	return testutil.Preamble + `[edgemicro.plugins]
sequence = ["spikearrest"]
[spikearrest]
` + settings + `
[[proxies]]
name = "api"
base_path = "/api"
url = "` + targetURL + `"
`
}

// simultaneous opens n connections first, then writes one request on
// each at once, and returns the status and body of every answer.
func simultaneous(t *testing.T, url string, n int) (statuses []int, bodies []string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Close = true
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := net.DialTimeout("tcp", req.URL.Host, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		conns[i] = c
	}
	statuses, bodies = make([]int, n), make([]string, n)
	errs := make([]error, n)
	var ready, wg sync.WaitGroup
	ready.Add(1)
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ready.Wait()
			if errs[i] = req.Write(c); errs[i] != nil {
				return
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), req)
			if errs[i] = err; err != nil {
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			statuses[i], bodies[i] = resp.StatusCode, string(b)
		}()
	}
	ready.Done()
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return statuses, bodies
}

// TestSpikeArrestBurst: 5 simultaneous requests get one 200 and four
// 503s, with 1 worker and with 4 sharing one schedule. allow is 1 per
// minute, so the count is exact however slowly the box runs the burst;
// with 4 workers, rounds go on until two workers have served, and no
// other request passes in the minute.
func TestSpikeArrestBurst(t *testing.T) {
	tgt, reached := countingTarget(t)
	for _, workers := range []int{1, 4} {
		t.Run(strconv.Itoa(workers)+" workers", func(t *testing.T) {
			before := reached.Load()
			in := newInstance(t, spikeConfig(tgt.URL, "timeUnit = \"minute\"\nallow = 1"))
			in.start(workers)
			counts := map[int]int{}
			round := func() {
				statuses, bodies := simultaneous(t, in.url("/api/x"), 5)
				for i, s := range statuses {
					counts[s]++
					if s == 503 && bodies[i] != `{"message":"SpikeArrest engaged","status":503}` {
						t.Fatalf("503 body %q", bodies[i])
					}
				}
			}
			rounds := 1
			if workers == 1 {
				round()
			} else {
				rounds = in.spread(5, round)
			}
			if counts[200] != 1 || counts[503] != 5*rounds-1 || reached.Load()-before != 1 {
				t.Fatalf("%d rounds of 5 simultaneous requests at 1/minute: statuses %v, target reached %d times; want exactly one 200",
					rounds, counts, reached.Load()-before)
			}
		})
	}
}

// TestSpikeArrestNextTurn: at 2 per second with 4 workers, after a burst
// the next request admitted comes at least 500 ms after the first was
// sent (measured from before the burst, so a slow box cannot make this
// fail; only an early admission can).
func TestSpikeArrestNextTurn(t *testing.T) {
	tgt, _ := countingTarget(t)
	in := newInstance(t, spikeConfig(tgt.URL, "allow = 2"))
	in.start(4)
	sent := time.Now()
	statuses, _ := simultaneous(t, in.url("/api/x"), 5)
	admitted := 0
	for _, s := range statuses {
		if s == 200 {
			admitted++
		}
	}
	if admitted < 1 {
		t.Fatalf("burst statuses %v: none admitted", statuses)
	}
	testutil.Eventually(t, 10*time.Second, "a request admitted at 2/second", func() bool {
		statuses, _ := simultaneous(t, in.url("/api/x"), 1)
		return statuses[0] == 200
	})
	// Each admission after the first is a whole interval after the one
	// before: admitted-1 intervals inside the burst, one more to this one.
	if gap, want := time.Since(sent), time.Duration(admitted)*500*time.Millisecond; gap < want {
		t.Fatalf("the next request was admitted %v after the burst of which %d passed; want at least %v", gap, admitted, want)
	}
}
