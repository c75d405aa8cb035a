package spikearrest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/plugins"
	"github.com/mgw-gateway/mgw/plugins/zone"
)

func build(t *testing.T, section string, now func() time.Time) (plugins.Plugin, error) {
	t.Helper()
	configs.AllowSection(Section, Settings{})
	s, err := configs.Parse([]byte(section), func(string) (string, bool) { return "", false })
	if err != nil {
		return nil, err // a key the settings lack is found here
	}
	return New(plugins.Env{Now: now}, s, &configs.Proxy{Name: "p"})
}

const engaged = `{"message":"SpikeArrest engaged","status":503}`

// step is one request at an offset from the start: the status it must
// get and how long it must have waited (bufferSize) before going on.
type step struct {
	at     time.Duration
	status int
	wait   time.Duration
}

// burst is n requests at the same instant.
func burst(at time.Duration, statuses ...int) []step {
	out := make([]step, len(statuses))
	for i, s := range statuses {
		out[i] = step{at: at, status: s}
	}
	return out
}

func join(parts ...[]step) []step {
	var out []step
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// TestApigeeRule: a request is admitted only when a whole interval
// (timeUnit/allow) has passed since the last admitted one; the others of
// the interval get 503, or wait their turn with bufferSize. The clock is
// injected and the waits recorded, so nothing sleeps.
func TestApigeeRule(t *testing.T) {
	t.Parallel()
	const ms = time.Millisecond
	for _, tc := range []struct {
		desc, settings string
		steps          []step
	}{
		{"a burst of 5 at 2/second gets one 200; the next 200 is 500 ms after it", "allow = 2",
			join(burst(0, 200, 503, 503, 503, 503),
				[]step{{at: 500*ms - 1, status: 503}, {at: 500 * ms, status: 200}, {at: 500 * ms, status: 503},
					{at: 999 * ms, status: 503}, {at: 1000 * ms, status: 200}})},
		{"the interval edge is exact to the nanosecond", "allow = 3", // 333,333,333 ns
			[]step{{at: 0, status: 200}, {at: 333333332, status: 503}, {at: 333333333, status: 200},
				{at: 666666665, status: 503}, {at: 666666666, status: 200}}},
		{"a refused request takes no turn", "allow = 1",
			[]step{{at: 0, status: 200}, {at: 500 * ms, status: 503}, {at: 999 * ms, status: 503},
				{at: 1000 * ms, status: 200}, {at: 1500 * ms, status: 503}, {at: 2000 * ms, status: 200}}},
		{"after a quiet spell only one is admitted, never a catch-up burst", "allow = 10",
			join([]step{{at: 0, status: 200}}, burst(10*time.Second, 200, 503, 503))},
		{"timeUnit minute: 1 per minute", "timeUnit = \"minute\"\nallow = 1",
			join(burst(0, 200, 503, 503, 503, 503),
				[]step{{at: 59*time.Second + 999*ms, status: 503}, {at: time.Minute, status: 200}, {at: time.Minute + ms, status: 503}})},
		{"timeUnit minute: 30 per minute is one every 2 s", "timeUnit = \"minute\"\nallow = 30",
			[]step{{at: 0, status: 200}, {at: 1999 * ms, status: 503}, {at: 2 * time.Second, status: 200}}},
		{"bufferSize queues up to that many turns ahead", "allow = 2\nbufferSize = 2",
			join([]step{{at: 0, status: 200}, {at: 0, status: 200, wait: 500 * ms}, {at: 0, status: 200, wait: 1000 * ms},
				{at: 0, status: 503}, {at: 499 * ms, status: 503}, {at: 500 * ms, status: 200, wait: 1000 * ms},
				{at: 2000 * ms, status: 200}, {at: 2100 * ms, status: 200, wait: 400 * ms}})},
		{"burst admits that many ahead of the schedule at once", "allow = 10\nburst = 2",
			join(burst(0, 200, 200, 200, 503), []step{{at: 100 * ms, status: 200}, {at: 100 * ms, status: 503}})},
		{"burst and bufferSize: the wait starts past the burst", "allow = 10\nburst = 1\nbufferSize = 1",
			[]step{{at: 0, status: 200}, {at: 0, status: 200}, {at: 0, status: 200, wait: 100 * ms}, {at: 0, status: 503}}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			start := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
			now := start
			pl, err := build(t, "[spikearrest]\n"+tc.settings+"\n", func() time.Time { return now })
			if err != nil {
				t.Fatal(err)
			}
			p := pl.(*plugin)
			var waited time.Duration
			p.wait = func(_ context.Context, d time.Duration) bool { waited = d; return true }
			for i, s := range tc.steps {
				now, waited = start.Add(s.at), 0
				rec := httptest.NewRecorder()
				reached := false
				p.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil), http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached = true }))
				if rec.Code != s.status || reached != (s.status == 200) || waited != s.wait {
					t.Fatalf("request %d at +%v: status %d (target reached %v) after waiting %v; want %d after %v",
						i+1, s.at, rec.Code, reached, waited, s.status, s.wait)
				}
				if s.status == 503 && rec.Body.String() != engaged {
					t.Fatalf("request %d: body %q", i+1, rec.Body.String())
				}
			}
		})
	}
}

// TestNoMillisecondFloor: allow = 100000 per second admits one request
// every 10 µs, 100,000 in the second, and no more.
func TestNoMillisecondFloor(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	now := start
	p, err := build(t, "[spikearrest]\nallow = 100000\n", func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	admitted := 0
	next := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { admitted++ })
	req, w := httptest.NewRequest("GET", "/", nil), discard{}
	for i := range 100000 {
		now = start.Add(time.Duration(i) * 10 * time.Microsecond)
		for range 2 { // each instant twice: the second is always refused
			p.ServeHTTP(w, req, next)
		}
	}
	if admitted != 100000 {
		t.Fatalf("admitted %d in one second at allow = 100000", admitted)
	}
}

// discard is a ResponseWriter that keeps nothing.
type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}

// TestGoneWhileWaiting: a client that leaves while its request waits its
// turn never reaches the target.
func TestGoneWhileWaiting(t *testing.T) {
	t.Parallel()
	pl, err := build(t, "[spikearrest]\nallow = 1\nbufferSize = 1\n", time.Now)
	if err != nil {
		t.Fatal(err)
	}
	p := pl.(*plugin)
	ctx, cancel := context.WithCancel(context.Background())
	reached := 0
	next := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached++ })
	p.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil).WithContext(ctx), next)
	cancel()
	p.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil).WithContext(ctx), next) // waits ~1 s, but the context is done
	if reached != 1 {
		t.Fatalf("the target was reached %d times; the waiting client had gone", reached)
	}
}

// TestEditedSetting: a schedule made with a longer interval does not hold
// back a new setting (the zone outlives edits, reloads and restarts); the
// same setting again finds its own schedule.
func TestEditedSetting(t *testing.T) {
	t.Parallel()
	configs.AllowSection(Section, Settings{})
	z := zone.New(16)
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	status := func(settings string) int {
		t.Helper()
		s, err := configs.Parse([]byte("[spikearrest]\n"+settings+"\n"), func(string) (string, bool) { return "", false })
		if err != nil {
			t.Fatal(err)
		}
		p, err := New(plugins.Env{Now: func() time.Time { return now }, Zone: z}, s, &configs.Proxy{Name: "p"})
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		p.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil), http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		return rec.Code
	}
	for i, step := range []struct {
		settings string
		want     int
	}{
		{"timeUnit = \"minute\"\nallow = 1", 200},
		{"timeUnit = \"minute\"\nallow = 1", 503}, // a second proxy's chain, or a reload: the same schedule
		{"allow = 100", 200},                      // edited: not held back by the minute
		{"allow = 100", 503},
		{"timeUnit = \"minute\"\nallow = 1", 503}, // back: its own schedule still runs
	} {
		if got := status(step.settings); got != step.want {
			t.Fatalf("step %d (%q): %d, want %d", i+1, step.settings, got, step.want)
		}
	}
}

func TestSettings(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{
		"[spikearrest]\nallow = 0\n",
		"[spikearrest]\nallow = 5\ntimeUnit = \"hour\"\n",
		"[spikearrest]\nallow = 5\nbufferSize = -1\n",
		"[spikearrest]\nallow = 5\nburst = -1\n",
		"[spikearrest]\nallow = 5\nalow = 3\n",
	} {
		if _, err := build(t, bad, time.Now); err == nil {
			t.Errorf("accepted %q", strings.TrimSpace(bad))
		}
	}
}
