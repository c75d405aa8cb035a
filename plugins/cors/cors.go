// Package cors answers CORS preflight requests and adds
// Access-Control-Allow-Origin to every other answer, as edgemicro's cors
// plugin does.
package cors

import (
	"net/http"
	"strconv"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/plugins"
)

// Section is the configuration table of the plugin.
const Section = "cors"

// Settings are the keys of [cors], with edgemicro's names and defaults.
type Settings struct {
	// Origin is the allowed origin; empty echoes the request's Origin.
	Origin  string `json:"cors-origin"`
	Methods string `json:"cors-methods"`
	Headers string `json:"cors-headers"`
	MaxAge  int    `json:"cors-max-age"`
}

type plugin struct{ s Settings }

// New builds the plugin.
func New(_ plugins.Env, snap *configs.Snapshot, _ *configs.Proxy) (plugins.Plugin, error) {
	s := Settings{
		Methods: "GET, PUT, POST, DELETE, PATCH, OPTIONS",
		Headers: "Origin, x-requested-with, Accept, Content-Type, Accept-Encoding, Accept-Language, Host, Pragma, Referrer, User-Agent, Cache-Control, Authorization, x-api-key",
		MaxAge:  3628800,
	}
	if err := snap.Config.Section(Section, &s); err != nil {
		return nil, err
	}
	return &plugin{s: s}, nil
}

func (p *plugin) ServeHTTP(w http.ResponseWriter, r *http.Request, next http.Handler) {
	origin := p.s.Origin
	if origin == "" {
		origin = r.Header.Get("Origin")
	}
	h := w.Header()
	if origin != "" {
		h.Set("Access-Control-Allow-Origin", origin)
		if p.s.Origin == "" {
			h.Add("Vary", "Origin")
		}
	}
	if r.Method == http.MethodOptions {
		h.Set("Access-Control-Allow-Methods", p.s.Methods)
		h.Set("Access-Control-Allow-Headers", p.s.Headers)
		h.Set("Access-Control-Max-Age", strconv.Itoa(p.s.MaxAge))
		h.Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
		return
	}
	next.ServeHTTP(w, r)
}
