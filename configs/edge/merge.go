package edge

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/rs/zerolog"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/internal/logkey"
)

// flexInt decodes a number that Edge sends as a number, a string of
// digits, "", or "null"; the last three give 0.
type flexInt int

func (f *flexInt) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*f = 0
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("%s is not a whole number", b)
	}
	*f = flexInt(n)
	return nil
}

type bootstrapDoc struct {
	APIProxies []struct {
		APIProxyName  string `json:"apiProxyName"`
		Revision      string `json:"revision"`
		ProxyEndpoint struct {
			Name     string `json:"name"`
			BasePath string `json:"basePath"`
		} `json:"proxyEndpoint"`
		TargetEndpoint struct {
			Name    string  `json:"name"`
			URL     string  `json:"url"`
			Timeout flexInt `json:"timeout"`
		} `json:"targetEndpoint"`
		MaxConnections flexInt `json:"maxConnections"`
	} `json:"apiProxies"`
}

type productsDoc struct {
	APIProduct []struct {
		Name          string   `json:"name"`
		Proxies       []string `json:"proxies"`
		APIResources  []string `json:"apiResources"`
		Scopes        []string `json:"scopes"`
		Quota         flexInt  `json:"quota"`
		QuotaInterval flexInt  `json:"quotaInterval"`
		QuotaTimeUnit string   `json:"quotaTimeUnit"`
	} `json:"apiProduct"`
}

// ErrIncomplete is an Edge answer without a field Edge always sends.
var ErrIncomplete = errors.New("the answer lacks a field Edge always sends")

type parsed struct {
	boot     bootstrapDoc
	products productsDoc
}

func (d *Download) parse() (*parsed, error) {
	var p parsed
	if err := json.Unmarshal(d.Bootstrap, &p.boot); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	if err := json.Unmarshal(d.Products, &p.products); err != nil {
		return nil, fmt.Errorf("products: %w", err)
	}
	// Edge always sends both lists, empty when there is nothing: an answer
	// without one ({} from a broken proxy or cache in front of Edge) is
	// not an org with nothing deployed, and must not empty the gateway.
	if p.boot.APIProxies == nil {
		return nil, fmt.Errorf("bootstrap: %w: no apiProxies list in %q", ErrIncomplete, short(d.Bootstrap))
	}
	if p.products.APIProduct == nil {
		return nil, fmt.Errorf("products: %w: no apiProduct list in %q", ErrIncomplete, short(d.Products))
	}
	if !strings.Contains(d.PublicKey, "-----BEGIN ") {
		return nil, fmt.Errorf("jwt_public_key: the answer is not PEM: %q", short([]byte(d.PublicKey)))
	}
	if len(d.JWKS) > 0 {
		var jwks struct {
			Keys []json.RawMessage `json:"keys"`
		}
		if err := json.Unmarshal(d.JWKS, &jwks); err != nil {
			return nil, fmt.Errorf("jwk_public_keys: %w", err)
		}
	}
	return &p, nil
}

// Checksum identifies the content of d, not when it was fetched nor how
// its JSON was spaced (the cache file holds it compacted).
func (d *Download) Checksum() string {
	h := sha256.New()
	var buf bytes.Buffer
	for _, part := range [][]byte{d.Bootstrap, d.Products, d.JWKS} {
		buf.Reset()
		if json.Compact(&buf, part) != nil {
			buf.Write(part)
		}
		h.Write(buf.Bytes())
		h.Write([]byte{0})
	}
	h.Write([]byte(d.PublicKey))
	return hex.EncodeToString(h.Sum(nil))
}

// Merge fills snap (parsed from an Edge-mode file) with the proxies,
// products and keys of d. Proxies whose name does not match proxyPattern
// are skipped; those without base path or URL, or that conflict with an
// earlier one, are dropped with a log line.
func Merge(snap *configs.Snapshot, d *Download, log zerolog.Logger) error {
	p, err := d.parse()
	if err != nil {
		return err
	}
	cfg := &snap.Config
	pattern := cfg.EdgeConfig.ProxyPattern
	cfg.Proxies = nil
	seen := map[string]string{}
	for _, ap := range p.boot.APIProxies {
		if !Wildcard(pattern, ap.APIProxyName) {
			continue
		}
		if only := cfg.Edgemicro.Proxies; len(only) > 0 && !slices.Contains(only, ap.APIProxyName) {
			continue // not in edgemicro.proxies
		}
		px := configs.Proxy{
			Name:           ap.APIProxyName,
			BasePath:       ap.ProxyEndpoint.BasePath,
			URL:            ap.TargetEndpoint.URL,
			Timeout:        int(ap.TargetEndpoint.Timeout),
			MaxConnections: int(ap.MaxConnections),
			Revision:       ap.Revision,
		}
		// drop says why px is dropped; other names the proxy it
		// conflicts with, if any.
		drop := func(why, other string) {
			c := log.With().Str(logkey.Proxy, px.Name).Str(logkey.BasePath, px.BasePath).Str(logkey.URL, px.URL).Str(logkey.Reason, why)
			if other != "" {
				c = c.Str(logkey.OtherProxy, other)
			}
			l := c.Logger()
			l.Warn().Msg("edge proxy dropped")
		}
		switch {
		case px.BasePath == "" || px.URL == "" || px.URL == "null":
			drop("no base path or url", "")
			continue
		case !strings.HasPrefix(px.BasePath, "/"):
			drop("base path does not start with /", "")
			continue
		case px.Timeout < 0 || px.MaxConnections < 0:
			drop("negative timeout or maxConnections", "")
			continue
		}
		if err := configs.CheckTargetURL(px.URL); err != nil || strings.HasPrefix(px.URL, configs.MockScheme+":") {
			drop("url is not an http(s) URL", "")
			continue
		}
		bp := strings.TrimRight(px.BasePath, "/")
		if bp == "" {
			bp = "/"
		}
		if other, dup := seen[bp]; dup {
			drop("base path already served by another proxy", other)
			continue
		}
		if _, dup := seen["name "+px.Name]; dup {
			drop("name listed twice", "")
			continue
		}
		seen[bp], seen["name "+px.Name] = px.Name, bp
		cfg.Proxies = append(cfg.Proxies, px)
	}
	cfg.Products = nil
	names := map[string]bool{}
	for _, ep := range p.products.APIProduct {
		if ep.Name == "" || names[ep.Name] {
			log.Warn().Str(logkey.Product, ep.Name).Msg("edge product dropped: no name or a name listed twice")
			continue
		}
		names[ep.Name] = true
		pr := configs.Product{
			Name: ep.Name, Proxies: ep.Proxies, APIResources: ep.APIResources, Scopes: ep.Scopes,
			Quota: int(ep.Quota), QuotaInterval: int(ep.QuotaInterval), QuotaTimeUnit: strings.ToLower(ep.QuotaTimeUnit),
		}
		if pr.Quota == 0 {
			pr.QuotaInterval, pr.QuotaTimeUnit = 0, ""
		}
		if pr.Quota > 0 && pr.QuotaInterval == 0 {
			pr.QuotaInterval = 1
		}
		if pr.Quota > 0 && !configs.QuotaTimeUnits[pr.QuotaTimeUnit] {
			log.Warn().Str(logkey.Product, pr.Name).Str(logkey.QuotaTimeUnit, ep.QuotaTimeUnit).Msg("edge product quota ignored: unknown time unit")
			pr.Quota, pr.QuotaInterval, pr.QuotaTimeUnit = 0, 0, ""
		}
		cfg.Products = append(cfg.Products, pr)
	}
	cfg.NormalizeProxies()
	snap.Keys.PublicKeys = []string{d.PublicKey}
	snap.Keys.JWKS = bytes.Clone(d.JWKS)
	sum := sha256.Sum256([]byte(snap.Checksum + d.Checksum()))
	snap.Checksum = hex.EncodeToString(sum[:])
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("edge config: %w", err)
	}
	return nil
}

// Wildcard reports whether name matches pattern, where * matches any run
// of characters (edgemicro's proxyPattern).
func Wildcard(pattern, name string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == name
	}
	if !strings.HasPrefix(name, parts[0]) {
		return false
	}
	name = name[len(parts[0]):]
	for _, mid := range parts[1 : len(parts)-1] {
		i := strings.Index(name, mid)
		if i < 0 {
			return false
		}
		name = name[i+len(mid):]
	}
	return strings.HasSuffix(name, parts[len(parts)-1])
}
