package spikearrest

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/plugins"
)

func build(t *testing.T, section string, now func() time.Time) (plugins.Plugin, error) {
	t.Helper()
	configs.AllowSection(Section)
	s, err := configs.Parse([]byte(section), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	return New(plugins.Env{Now: now}, s, &configs.Proxy{Name: "p"})
}

func TestSpikeArrest(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	p, err := build(t, "[spikearrest]\ntimeUnit = \"second\"\nallow = 20\n", func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	admitted, refused := 0, 0
	for range 600 { // 200 per second for 3 s
		now = now.Add(5 * time.Millisecond)
		rec := httptest.NewRecorder()
		p.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil), http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		if rec.Code == 200 {
			admitted++
		} else if rec.Code == 503 && rec.Body.String() == `{"message":"SpikeArrest engaged","status":503}` {
			refused++
		}
	}
	if admitted < 60 || admitted > 63 || admitted+refused != 600 {
		t.Fatalf("admitted %d, refused %d of 600 at 20/s", admitted, refused)
	}
}

func TestSettings(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{
		"[spikearrest]\nallow = 0\n",
		"[spikearrest]\nallow = 5\ntimeUnit = \"hour\"\n",
		"[spikearrest]\nallow = 5\nbufferSize = -1\n",
		"[spikearrest]\nallow = 5\nalow = 3\n",
	} {
		if _, err := build(t, bad, time.Now); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}
