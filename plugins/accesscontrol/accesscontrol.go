// Package accesscontrol admits or refuses a request by its client IP:
// the connection's peer, or, when the peer is one of [edgemicro]
// trusted_proxies, the address the worker found in X-Forwarded-For (the
// right-most one that is not a trusted proxy); the worker puts it in
// the request's RemoteAddr. Unlike edgemicro, which takes the first
// address of X-Forwarded-For from anyone, a client cannot choose its
// address by sending that header. Patterns are IPv4 addresses whose octets may be *; an address on the
// allow list is admitted, else one on the deny list is refused with 403
// {"code":403,"message":"Forbidden"} as edgemicro answers, else
// noRuleMatchAction decides (allow by default).
package accesscontrol

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/plugins"
)

// Section is the configuration table of the plugin.
const Section = "accesscontrol"

// Settings are the keys of [accesscontrol].
type Settings struct {
	Allow             []string `json:"allow"`
	Deny              []string `json:"deny"`
	NoRuleMatchAction string   `json:"noRuleMatchAction"`
}

type plugin struct {
	allow, deny [][4]string
	admit       bool
}

// New builds the plugin.
func New(_ plugins.Env, snap *configs.Snapshot, _ *configs.Proxy) (plugins.Plugin, error) {
	s := Settings{NoRuleMatchAction: "allow"}
	if err := snap.Config.Section(Section, &s); err != nil {
		return nil, err
	}
	p := &plugin{}
	switch s.NoRuleMatchAction {
	case "allow":
		p.admit = true
	case "deny":
	default:
		return nil, fmt.Errorf("[accesscontrol] noRuleMatchAction %q is not allow or deny", s.NoRuleMatchAction)
	}
	var err error
	if p.allow, err = parse(s.Allow); err != nil {
		return nil, err
	}
	if p.deny, err = parse(s.Deny); err != nil {
		return nil, err
	}
	return p, nil
}

func parse(list []string) ([][4]string, error) {
	out := make([][4]string, 0, len(list))
	for _, pat := range list {
		parts := strings.Split(strings.TrimSpace(pat), ".")
		if len(parts) != 4 {
			return nil, errors.New("[accesscontrol] " + pat + " is not an IPv4 pattern (a.b.c.d, * for any octet)")
		}
		out = append(out, [4]string(parts))
	}
	return out, nil
}

func matches(list [][4]string, ip []string) bool {
	for _, pat := range list {
		ok := true
		for i := range 4 {
			if pat[i] != "*" && pat[i] != ip[i] {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// clientIP is the request's client address, as the worker decided it.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (p *plugin) ServeHTTP(w http.ResponseWriter, r *http.Request, next http.Handler) {
	ip := clientIP(r)
	if parsed := net.ParseIP(ip); parsed != nil && parsed.To4() != nil {
		ip = parsed.To4().String() // ::ffff:a.b.c.d too
	}
	octets := strings.Split(ip, ".")
	admit := p.admit
	if len(octets) == 4 {
		switch {
		case matches(p.allow, octets):
			admit = true
		case matches(p.deny, octets):
			admit = false
		}
	}
	if !admit {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(`{"code":403,"message":"Forbidden"}`))
		return
	}
	next.ServeHTTP(w, r)
}
