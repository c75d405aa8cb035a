package configs

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
)

var logLevels = map[string]bool{"error": true, "warn": true, "info": true, "debug": true, "trace": true, "none": true}

// Validate checks c and returns every problem found, joined, each naming
// the key at fault.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	e := &c.Edgemicro
	if e.Port < 1 || e.Port > 65535 {
		bad("edgemicro.port: %d is not a port number (1-65535)", e.Port)
	}
	for key, v := range map[string]int{
		"edgemicro.max_connections":             e.MaxConnections,
		"edgemicro.request_timeout":             e.RequestTimeout,
		"edgemicro.keep_alive_timeout":          e.KeepAliveTimeout,
		"edgemicro.max_header_bytes":            e.MaxHeaderBytes,
		"edgemicro.drain_timeout":               e.DrainTimeout,
		"edgemicro.drain_grace":                 e.DrainGrace,
		"edgemicro.config_change_poll_interval": e.ConfigChangePollInterval,
		"edgemicro.headers_timeout":             e.HeadersTimeout,
		"edgemicro.write_timeout":               e.WriteTimeout,
		"edgemicro.body_idle_timeout":           e.BodyIdleTimeout,
		"edgemicro.body_timeout":                e.BodyTimeout,
	} {
		if v < 0 {
			bad("%s: %d must not be negative", key, v)
		}
	}
	for _, tp := range e.TrustedProxies {
		if !validAddrOrPrefix(tp) {
			bad("edgemicro.trusted_proxies: %q is not an address or a CIDR (such as 10.0.0.0/8)", tp)
		}
	}
	if e.MaxBodyBytes < 0 {
		bad("edgemicro.max_body_bytes: %d must not be negative", e.MaxBodyBytes)
	}
	if e.MaxHeaderBytes > 0 && e.MaxHeaderBytes < 256 {
		bad("edgemicro.max_header_bytes: %d is too small to hold a request line (at least 256)", e.MaxHeaderBytes)
	}
	if !logLevels[e.Logging.Level] {
		bad("edgemicro.logging.level: %q is not one of error, warn, info, debug, trace, none", e.Logging.Level)
	}
	if f := e.Logging.AccessLogFile; f != "" {
		resolved := f
		if !filepath.IsAbs(f) {
			resolved = filepath.Join(e.Logging.Dir, f)
		}
		switch {
		case !e.Logging.AccessLog:
			bad("edgemicro.logging.access_log_file: %q is set but access_log is not true: set access_log = true to write the access log there, or remove access_log_file", f)
		case !filepath.IsAbs(f) && e.Logging.Dir == "":
			bad("edgemicro.logging.access_log_file: %q is relative, and relative paths are taken in the log dir: set dir, or give an absolute path", f)
		case e.Logging.Dir != "" && filepath.Clean(resolved) == filepath.Join(e.Logging.Dir, "mgw.log"):
			bad("edgemicro.logging.access_log_file: %q is the log file itself; name another file (such as access.log)", f)
		}
	}
	seen := map[string]bool{}
	for _, name := range e.Plugins.Sequence {
		if seen["plugin "+name] {
			bad("edgemicro.plugins.sequence: %q is listed twice", name)
		}
		seen["plugin "+name] = true
	}

	names := map[string]int{}
	paths := map[string]string{}
	for i := range c.Proxies {
		p := &c.Proxies[i]
		where := fmt.Sprintf("proxies[%d]", i)
		if p.Name != "" {
			where = fmt.Sprintf("proxy %q", p.Name)
		}
		switch {
		case p.Name == "":
			bad("%s: name is missing", where)
		case names[p.Name] > 0:
			bad("%s: the name is used by another proxy too", where)
		}
		names[p.Name]++
		switch {
		case p.BasePath == "":
			bad("%s: base_path is missing", where)
		case !strings.HasPrefix(p.BasePath, "/"):
			bad("%s: base_path %q must start with /", where, p.BasePath)
		case paths[p.BasePath] != "":
			bad("%s: base_path %q is also the base path of proxy %q", where, p.BasePath, paths[p.BasePath])
		default:
			paths[p.BasePath] = p.Name
		}
		if err := CheckTargetURL(p.URL); err != nil {
			bad("%s: url: %w", where, err)
		}
		if p.Timeout < 0 || p.MaxConnections < 0 {
			bad("%s: timeout and max_connections must not be negative", where)
		}
	}
	if m := c.Metrics; m != nil && (m.Port < 0 || m.Port > 65535 || (m.Port != 0 && m.Port == e.Port)) {
		bad("metrics.port: %d is not a port number other than edgemicro.port", m.Port)
	}
	if p := e.Proxy; p != nil && p.URL != "" {
		if u, err := url.Parse(p.URL); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			bad("edgemicro.proxy.url: %q is not an http(s) URL", p.URL)
		}
	}
	c.validateEdge(bad)
	c.validateProducts(bad, names)
	return errors.Join(errs...)
}

func (c *Config) validateEdge(bad func(string, ...any)) {
	e := c.EdgeConfig
	if e == nil {
		return
	}
	for key, v := range map[string]string{
		"edge_config.bootstrap":      e.Bootstrap,
		"edge_config.jwt_public_key": e.JWTPublicKey,
		"edge_config.products":       e.Products,
	} {
		if err := checkEdgeURL(v, true); err != nil {
			bad("%s: %w", key, err)
		}
	}
	if err := checkEdgeURL(e.JWKPublicKeys, false); err != nil {
		bad("edge_config.jwk_public_keys: %w", err)
	}
	if e.MaxDownloadMB < 0 || e.MaxDownloadMB > 4096 {
		bad("edge_config.max_download_mb: %d is not between 1 and 4096 (MiB; leave it out for 32)", e.MaxDownloadMB)
	}
	if len(c.Apps) > 0 {
		bad("[[apps]] are for local mode; in Edge mode apps live in the org")
	}
}

func checkEdgeURL(raw string, required bool) error {
	if raw == "" {
		if required {
			return errors.New("missing (mgw configure writes it)")
		}
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http(s) URL", raw)
	}
	return nil
}

// QuotaTimeUnits are the values quotaTimeUnit may take.
var QuotaTimeUnits = map[string]bool{"minute": true, "hour": true, "day": true, "week": true, "month": true}

func (c *Config) validateProducts(bad func(string, ...any), proxies map[string]int) {
	products := map[string]bool{}
	for i := range c.Products {
		p := &c.Products[i]
		where := fmt.Sprintf("product %q", p.Name)
		if p.Name == "" {
			where = fmt.Sprintf("products[%d]", i)
			bad("%s: name is missing", where)
		} else if products[p.Name] {
			bad("%s: the name is used by another product too", where)
		}
		products[p.Name] = true
		if !c.EdgeMode() {
			for _, px := range p.Proxies {
				if proxies[px] == 0 {
					bad("%s: proxies: no proxy is named %q", where, px)
				}
			}
		}
		if p.Quota < 0 || p.QuotaInterval < 0 {
			bad("%s: quota and quotaInterval must not be negative", where)
		}
		if p.Quota > 0 && !QuotaTimeUnits[p.QuotaTimeUnit] {
			bad("%s: quotaTimeUnit %q is not one of minute, hour, day, week, month", where, p.QuotaTimeUnit)
		}
	}
	keys := map[string]bool{}
	for i := range c.Apps {
		a := &c.Apps[i]
		where := fmt.Sprintf("app %q", a.Name)
		if a.Name == "" {
			where = fmt.Sprintf("apps[%d]", i)
			bad("%s: name is missing", where)
		}
		switch {
		case a.Key == "" || a.Secret == "":
			bad("%s: key and secret are required", where)
		case keys[a.Key]:
			bad("%s: its key is the key of another app too", where)
		}
		keys[a.Key] = true
		for _, pr := range a.Products {
			if !products[pr] {
				bad("%s: products: no product is named %q", where, pr)
			}
		}
	}
}

// CheckTargetURL reports why raw cannot be a proxy's target URL.
func CheckTargetURL(raw string) error {
	if raw == "" {
		return errors.New("missing")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL", raw)
	}
	switch u.Scheme {
	case "http", "https", MockScheme:
	default:
		return fmt.Errorf("%q: scheme must be http, https or %s", raw, MockScheme)
	}
	if u.Host == "" {
		return fmt.Errorf("%q has no host", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q must not carry a query or fragment", raw)
	}
	return nil
}

// MockScheme is the URL scheme of mgw's built-in mock target:
// mock://echo answers every request with a JSON echo of it.
const MockScheme = "mock"

// validAddrOrPrefix reports whether s is an IP address or a CIDR prefix.
func validAddrOrPrefix(s string) bool {
	s = strings.TrimSpace(s)
	if _, err := netip.ParsePrefix(s); err == nil {
		return true
	}
	_, err := netip.ParseAddr(s)
	return err == nil
}
