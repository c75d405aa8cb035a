package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mgw-gateway/mgw/integration/fakeedge"
)

// TestAnalyticsSurviveReloadAndStop: 500 requests, mgw reload, 500
// requests, mgw stop: exactly 1,000 records reach Edge, none twice.
func TestAnalyticsSurviveReloadAndStop(t *testing.T) {
	fe, _ := helloEdge(t)
	in := newInstance(t, edgeConfigNoAuth(fe)+"\n[analytics]\nflushInterval = 100\nbatchSize = 64\n")
	in.start(2, edgeFlags(fe)...)
	in.getEach(1, 500, "/hello/r%d", 200)
	if out, code := in.mgw("reload"); code != 0 {
		t.Fatalf("reload: %d %s", code, out)
	}
	in.getEach(501, 1000, "/hello/r%d", 200)
	in.stop()

	recs := fe.Records()
	seen := map[string]int{}
	for _, raw := range recs {
		var r struct {
			Path   string `json:"request_path"`
			Status int    `json:"response_status_code"`
			Proxy  string `json:"apiproxy"`
		}
		if err := json.Unmarshal(raw, &r); err != nil {
			t.Fatal(err)
		}
		if r.Proxy != "edgemicro_hello" || r.Status != 200 {
			t.Fatalf("record %s", raw)
		}
		seen[r.Path]++
	}
	if len(recs) != 1000 || len(seen) != 1000 {
		t.Fatalf("%d records for %d distinct requests; want exactly 1000 of 1000", len(recs), len(seen))
	}
}

// TestAnalyticsDropOldestWhenEdgeIsDown: with Edge refusing uploads and a
// buffer of 100, 300 requests leave the newest 100, and the 200 dropped
// are counted; once Edge is back, exactly those 100 arrive.
func TestAnalyticsDropOldestWhenEdgeIsDown(t *testing.T) {
	fe, _ := helloEdge(t)
	fe.Fail(fakeedge.Analytics, 503)
	in := newInstance(t, edgeConfigNoAuth(fe)+"\n[analytics]\nflushInterval = 50\nbufferSize = 100\nbatchSize = 10\n")
	in.start(2, edgeFlags(fe)...)
	in.getEach(1, 300, "/hello/r%d", 200)
	in.eventually(10*time.Second, "200 records dropped", func() bool {
		st, _ := in.status()
		return st.Analytics != nil && st.Analytics.Dropped == 200 && st.Analytics.Queued == 100
	})
	fe.Fail(fakeedge.Analytics, 0)
	in.eventually(40*time.Second, "the kept records to arrive", func() bool { return len(fe.Records()) >= 100 })
	var paths []string
	for _, raw := range fe.Records() {
		var r struct {
			Path string `json:"request_path"`
		}
		_ = json.Unmarshal(raw, &r)
		paths = append(paths, r.Path)
	}
	sort.Slice(paths, func(i, j int) bool { return num(paths[i]) < num(paths[j]) })
	// The master queues records in the order the workers' batches (50 ms
	// each) arrive, so "oldest" is exact up to one batch of the other
	// worker: the kept 100 are the newest but for such a reordering.
	if len(paths) != 100 || num(first(paths)) <= 100 || last(paths) != "/hello/r300" {
		t.Fatalf("%d records, oldest %q newest %q; want the newest 100", len(paths), first(paths), last(paths))
	}
	if !strings.Contains(in.logs.String(), "analytics buffer full") {
		t.Fatal("the drops are not logged")
	}
}

func num(p string) int {
	var n int
	_, _ = fmt.Sscanf(strings.TrimPrefix(p, "/hello/r"), "%d", &n)
	return n
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func last(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[len(s)-1]
}

// TestAnalyticsSpooledAcrossARestart: records a stopping gateway cannot
// upload (Edge down) are spooled in the run dir and sent by the next
// start, once.
func TestAnalyticsSpooledAcrossARestart(t *testing.T) {
	fe, _ := helloEdge(t)
	fe.Fail(fakeedge.Analytics, 503)
	in := newInstance(t, edgeConfigNoAuth(fe)+"\n[analytics]\nflushInterval = 50\n")
	in.start(1, edgeFlags(fe)...)
	in.getEach(1, 20, "/hello/r%d", 200)
	in.stop()
	if n := len(fe.Records()); n != 0 {
		t.Fatalf("%d records arrived while Edge refused them", n)
	}
	fe.Fail(fakeedge.Analytics, 0)
	in.start(1, edgeFlags(fe)...)
	in.eventually(10*time.Second, "the spooled records", func() bool { return len(fe.Records()) >= 20 })
	if n := len(fe.Records()); n != 20 {
		t.Fatalf("%d records, want exactly 20", n)
	}
}

// TestAnalyticsTurnedOnByAnEdit: analytics turned on by a config edit,
// with the same processes, record every request from then on (before,
// the master had no queue and dropped what the workers sent).
func TestAnalyticsTurnedOnByAnEdit(t *testing.T) {
	t.Parallel()
	tg := target(t)
	cfg := proxyConfig(tg.URL)
	in := newInstance(t, cfg)
	before := in.start(2)
	file := filepath.Join(t.TempDir(), "records.jsonl")
	in.writeConfig(cfg + `
[edgemicro.plugins]
sequence = []
[analytics]
enabled = true
flushInterval = 100
file = "` + file + `"
`)
	in.eventually(10*time.Second, "every worker to serve the edit", func() bool {
		st, ok := in.status()
		if !ok || st.Config.Revision <= before.Config.Revision || st.Analytics == nil || len(st.Workers) != 2 {
			return false
		}
		for _, w := range st.Workers {
			if w.Revision != st.Config.Revision {
				return false
			}
		}
		return true
	})
	const n = 20
	in.getEach(1, n, "/api/x", 200)
	var lines int
	in.eventually(10*time.Second, fmt.Sprintf("%d records in %s", n, file), func() bool {
		b, _ := os.ReadFile(file)
		lines = strings.Count(string(b), "\n")
		return lines >= n
	})
	if lines != n {
		t.Fatalf("%d records for %d requests", lines, n)
	}
	after := in.waitServing(2)
	if fmt.Sprint(pidsOf(after)) != fmt.Sprint(pidsOf(before)) {
		t.Fatalf("workers changed: %v → %v", pidsOf(before), pidsOf(after))
	}
}
