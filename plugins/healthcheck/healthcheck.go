// Package healthcheck answers GET <healthcheck_url> (default
// /healthcheck, matched exactly, so it must be under a proxy's base path)
// itself with the worker's health, as edgemicro's healthcheck plugin does,
// without calling the target.
package healthcheck

import (
	"encoding/json"
	"net/http"
	"os"
	"runtime"
	"time"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/plugins"
)

// Section is the configuration table of the plugin.
const Section = "healthcheck"

// Settings are the keys of [healthcheck].
type Settings struct {
	URL string `json:"healthcheck_url"`
}

var started = time.Now()

type plugin struct{ url string }

// New builds the plugin.
func New(_ plugins.Env, snap *configs.Snapshot, _ *configs.Proxy) (plugins.Plugin, error) {
	s := Settings{URL: "/healthcheck"}
	if err := snap.Config.Section(Section, &s); err != nil {
		return nil, err
	}
	return &plugin{url: s.URL}, nil
}

func (p *plugin) ServeHTTP(w http.ResponseWriter, r *http.Request, next http.Handler) {
	if r.URL.Path != p.url || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		next.ServeHTTP(w, r)
		return
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	b, _ := json.Marshal(map[string]any{
		"memoryUsage": map[string]uint64{"heapAlloc": m.HeapAlloc, "sys": m.Sys},
		"cpuUsage":    map[string]int{"goroutines": runtime.NumGoroutine(), "gomaxprocs": runtime.GOMAXPROCS(0)},
		"uptime":      time.Since(started).Seconds(),
		"pid":         os.Getpid(),
	})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b)
}
