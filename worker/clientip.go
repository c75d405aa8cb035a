package worker

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// trustedProxies is [edgemicro] trusted_proxies, compiled: the peers
// whose X-Forwarded-For mgw believes.
type trustedProxies []netip.Prefix

// parseTrustedProxies compiles addresses and CIDRs; a lone address is a
// prefix of its full length.
func parseTrustedProxies(list []string) (trustedProxies, error) {
	out := make(trustedProxies, 0, len(list))
	for _, s := range list {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("edgemicro.trusted_proxies: %q is not an address or a CIDR", s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

func (t trustedProxies) contains(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range t {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// resolveClient decides the client address of r. It is the connection's
// peer, unless the peer is a trusted proxy: then it is the right-most
// address of X-Forwarded-For that is not a trusted proxy (the left-most
// when all are; the last trusted one when an entry left of it is not an
// address). In that case r.RemoteAddr becomes the client address and
// X-Forwarded-For keeps only the entries left of it, so that the
// access log, analytics' client_ip, accesscontrol and the
// X-Forwarded-For that the proxy appends the address to all see the one
// client address, and the target finds it right-most. Requests from a
// peer that is not trusted are left as they are: their X-Forwarded-For
// is passed on but believed by nobody in mgw.
//
// The other claims a proxy in front makes about the original request
// (forwardingClaims) are believed only from a trusted proxy too: from any
// other peer they are removed, and the proxy sets its own
// X-Forwarded-Proto (a client on plain HTTP must not make a target
// believe it came over TLS, or came from another address).
func (t trustedProxies) resolveClient(r *http.Request) {
	if len(t) == 0 {
		dropClaims(r.Header)
		return
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		dropClaims(r.Header)
		return
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !t.contains(peer) {
		dropClaims(r.Header)
		return
	}
	prior := r.Header["X-Forwarded-For"]
	if len(prior) == 0 {
		return
	}
	entries := strings.Split(strings.Join(prior, ","), ",")
	client, keep := peer, len(entries)
	for i := len(entries) - 1; i >= 0; i-- {
		a, ok := parseForwarded(entries[i])
		if !ok {
			break
		}
		client, keep = a, i
		if !t.contains(a) {
			break
		}
	}
	if keep == 0 {
		delete(r.Header, "X-Forwarded-For")
	} else {
		for i := range entries[:keep] {
			entries[i] = strings.TrimSpace(entries[i])
		}
		r.Header["X-Forwarded-For"] = []string{strings.Join(entries[:keep], ", ")}
	}
	r.RemoteAddr = net.JoinHostPort(client.Unmap().String(), "0")
}

// parseForwarded reads one X-Forwarded-For entry: an address, possibly
// with a port.
func parseForwarded(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

// forwardingClaims are the request headers by which a proxy in front
// tells the target the original request's scheme, client or port, and
// which mgw does not write itself. X-Forwarded-For and X-Forwarded-Host
// are not among them: mgw appends its entry to those, and a target reads
// the right-most.
var forwardingClaims = []string{
	"X-Forwarded-Proto", "Forwarded", "X-Forwarded-Ssl", "Front-End-Https",
	"X-Forwarded-Scheme", "X-Url-Scheme", "X-Forwarded-Port", "X-Real-Ip",
}

// isForwardingClaim is forwardingClaims as a set, for lookalike.
var isForwardingClaim = func() map[string]bool {
	m := make(map[string]bool, len(forwardingClaims))
	for _, k := range forwardingClaims {
		m[k] = true
	}
	return m
}()

// dropClaims removes the forwarding claims of a peer that is not trusted.
// It runs for every such request: deleting from a slice of names costs
// about 60 ns, ranging over a map of them well over twice that.
func dropClaims(h http.Header) {
	for _, k := range forwardingClaims {
		delete(h, k)
	}
}
