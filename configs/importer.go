package configs

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
	"go.yaml.in/yaml/v3"
)

// importSpec says, for each edgemicro section, which keys carry over to
// mgw.toml under which name; every other key is reported as dropped, and
// as lost (see secure) when its section protects the gateway.
var importSpec = map[string]map[string]string{
	"edge_config": {
		"bootstrap": "bootstrap", "jwt_public_key": "jwt_public_key", "products": "products",
		"jwk_public_keys": "jwk_public_keys", "quotaUri": "quotaUri", "proxyPattern": "proxyPattern",
		"managementUri": "managementUri", "vaultName": "vaultName", "authUri": "authUri", "baseUri": "baseUri",
		"bootstrapMessage": "bootstrapMessage", "keySecretMessage": "keySecretMessage",
	},
	"edgemicro": {
		"port": "port", "address": "address", "max_connections": "max_connections",
		"config_change_poll_interval": "config_change_poll_interval", "disable_config_poll_interval": "disable_config_poll_interval",
		"request_timeout": "request_timeout", "keep_alive_timeout": "keep_alive_timeout",
		"headers_timeout": "headers_timeout", "maxHttpHeaderSize": "max_header_bytes", "proxies": "proxies",
	},
	"edgemicro.logging": {"level": "level", "dir": "dir", "to_console": "to_console", "rotate_interval": "rotate_interval"},
	"edgemicro.plugins": {"sequence": "sequence", "excludeUrls": "excludeUrls"},
	"edgemicro.ssl": {
		"cert": "cert", "key": "key", "ca": "ca", "requestCert": "requestCert", "rejectUnauthorized": "rejectUnauthorized",
	},
	"edgemicro.proxy": same("enabled", "url", "bypass", "tunnel"),
	"headers": {
		"x-forwarded-for": "x-forwarded-for", "x-forwarded-host": "x-forwarded-host", "x-forwarded-proto": "x-forwarded-proto",
		"x-request-id": "x-request-id", "x-response-time": "x-response-time", "via": "via", "host": "host",
	},
	"oauth": authKeys, "apikeys": authKeys, "oauthv2": authKeys,
	"spikearrest": same("timeUnit", "allow", "bufferSize", "excludeUrls"),
	"quotas": same("failOpen", "useDebugMpId", "useRedis", "bufferSize", "excludeUrls",
		"isHTTPStatusTooManyRequestEnabled"),
	"metrics": same("port", "rollover_all"),
	"analytics": same("uri", "bufferSize", "batchSize", "flushInterval", "compress", "source",
		"proxy", "proxy_revision", "excludeUrls"),
	"accesscontrol": same("allow", "deny", "noRuleMatchAction", "excludeUrls"),
	"cors":          same("cors-origin", "cors-methods", "cors-headers", "cors-max-age", "excludeUrls"),
	"healthcheck":   same("healthcheck_url", "excludeUrls"),
	// targets is a list; each entry's ssl.client keys are these.
	"targets.ssl.client": same("cert", "key", "ca", "rejectUnauthorized", "servername"),
}

// secure lists the sections whose dropped keys weaken the gateway: TLS
// to clients, to targets and to Edge, address lists and the auth plugins'
// settings. Import reports them as lost, and `mgw config import` refuses
// to write the file without --force.
var secure = map[string]bool{
	"edgemicro.ssl": true, "targets": true, "targets.ssl.client": true, "edge_config.tlsOptions.agentOptions": true,
	"accesscontrol": true, "oauth": true, "apikeys": true, "oauthv2": true, lostPlugin: true,
}

// lostPlugin is the section of a plugin of the sequence that mgw lacks.
const lostPlugin = "edgemicro.plugins.sequence"

// harmless are keys of secure sections whose loss weakens nothing: what
// edgemicro's own merged cache adds to the auth sections.
var harmless = map[string]bool{
	"public_key": true, "jwk_keys": true, "product_to_proxy": true, "product_to_scopes": true,
	"product_to_api_resource": true, "servername": true,
}

// same maps keys to themselves.
func same(keys ...string) map[string]string {
	m := make(map[string]string, len(keys))
	for _, k := range keys {
		m[k] = k
	}
	return m
}

var authKeys = map[string]string{
	"allowNoAuthorization": "allowNoAuthorization", "allowInvalidAuthorization": "allowInvalidAuthorization",
	"allowOAuthOnly": "allowOAuthOnly", "allowAPIKeyOnly": "allowAPIKeyOnly", "api-key-header": "api-key-header",
	"authorization-header": "authorization-header", "keep-authorization-header": "keep-authorization-header",
	"keep-api-key": "keep-api-key", "gracePeriod": "gracePeriod", "tokenCache": "tokenCache",
	"tokenCacheSize": "tokenCacheSize", "cacheKey": "cacheKey", "productOnly": "productOnly",
	"verify_api_key_url": "verify_api_key_url",
}

// Report is what Import says about the keys it could not carry as they
// were.
type Report struct {
	// Dropped names keys with no meaning in mgw, one line each.
	Dropped []string
	// Lost names keys whose loss weakens the gateway (TLS, address lists,
	// mutual TLS, a plugin without its settings or left out).
	Lost []string
	// Notes say where a carried key's meaning changes, with the value
	// that keeps the old effect.
	Notes []string
}

// ImportOptions tune Import.
type ImportOptions struct {
	// KnownPlugin tells which plugins of the sequence mgw has.
	KnownPlugin func(string) bool
	// Processes, when above 0, is how many workers edgemicro ran (its
	// -p): spike arrest allowances counted per worker there, so they are
	// multiplied by it to keep the instance's effective limit.
	Processes int
}

// Import converts an edgemicro {org}-{env}-config.yaml into mgw.toml. It
// returns the TOML and a Report of every key it leaves out or whose
// meaning changes. Env tags (<E>VAR</E>, <E><n>VAR</n></E>,
// <E><b>VAR</b></E>) become ${VAR}.
func Import(src []byte, o ImportOptions) ([]byte, Report, error) {
	var rep Report
	var doc map[string]any
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, rep, fmt.Errorf("reading edgemicro yaml: %w", err)
	}
	if doc == nil {
		return nil, rep, errors.New("reading edgemicro yaml: the file holds no settings")
	}
	drop := func(section, path, why string) {
		last := path[strings.LastIndexByte(path, '.')+1:]
		if secure[section] && !harmless[last] {
			rep.Lost = append(rep.Lost, path+": "+why)
			return
		}
		rep.Dropped = append(rep.Dropped, path+": "+why)
	}
	out := map[string]any{}
	var redisURL string
	var numbers []string // ${VAR}s that must be written unquoted
	var conv func(v any) any
	conv = func(v any) any {
		switch v := v.(type) {
		case string:
			if m := envTag.FindStringSubmatch(v); m != nil {
				ref := "${" + m[2] + "}"
				if m[1] != "" {
					numbers = append(numbers, ref)
				}
				return ref
			}
			return strings.ReplaceAll(v, "$", "$$")
		case []any:
			l := make([]any, len(v))
			for i, e := range v {
				l[i] = conv(e)
			}
			return l
		case map[string]any:
			m := make(map[string]any, len(v))
			for k, e := range v {
				m[k] = conv(e)
			}
			return m
		}
		return v
	}
	var section func(prefix string, m map[string]any, dst map[string]any)
	section = func(prefix string, m map[string]any, dst map[string]any) {
		spec := importSpec[prefix]
		for k, v := range m {
			path := prefix + "." + k
			if sub, ok := v.(map[string]any); ok && importSpec[path] != nil {
				d := map[string]any{}
				section(path, sub, d)
				dst[k] = d
				continue
			}
			name, ok := spec[k]
			if !ok {
				drop(prefix, path, "not supported by mgw")
				continue
			}
			dst[name] = conv(v)
		}
	}
	for k, v := range doc {
		if k == "targets" {
			if t := importTargets(v, section, drop); len(t) > 0 {
				out[k] = t
			}
			continue
		}
		m, isMap := v.(map[string]any)
		if importSpec[k] == nil || !isMap {
			drop(k, k, "not supported by mgw")
			continue
		}
		d := map[string]any{}
		switch k {
		case "edge_config":
			importEdgeTLS(m, d, drop)
		case "edgemicro":
			redisURL = importRedis(m, &rep)
			if ssl, ok := m["ssl"].(map[string]any); ok {
				importSecureProtocol(ssl, drop)
			}
		}
		section(k, m, d)
		out[k] = d
	}
	if redisURL != "" {
		q, _ := out["quotas"].(map[string]any)
		if q == nil {
			q = map[string]any{}
			out["quotas"] = q
		}
		q["redis_url"] = redisURL
	}
	if em, ok := out["edgemicro"].(map[string]any); ok {
		if pl, ok := em["plugins"].(map[string]any); ok {
			importPlugins(pl, o.KnownPlugin, out, drop)
		}
	}
	importLimits(out, o.Processes, &rep)
	if em, ok := doc["edgemicro"].(map[string]any); ok && em["maxHttpHeaderSize"] != nil {
		rep.Notes = append(rep.Notes, "edgemicro.maxHttpHeaderSize: written as max_header_bytes, which bounds the raw request line and headers (431 above it); edgemicro measured the headers as JSON (400 above it)")
	}
	var buf bytes.Buffer
	buf.WriteString("# Imported from an Edge Microgateway config by `mgw config import`.\n")
	if err := toml.NewEncoder(&buf).Encode(out); err != nil {
		return nil, rep, fmt.Errorf("writing toml: %w", err)
	}
	b := buf.Bytes()
	for _, ref := range numbers {
		b = bytes.ReplaceAll(b, []byte(`"`+ref+`"`), []byte(ref))
	}
	sort.Strings(rep.Dropped)
	sort.Strings(rep.Lost)
	sort.Strings(rep.Notes)
	return b, rep, nil
}

// envTag matches edgemicro's env tags: <E>VAR</E>, <E><n>VAR</n></E>, <E><b>VAR</b></E>.
var envTag = regexp.MustCompile(`^<E>(?:<([nb])>)?([A-Za-z_][A-Za-z0-9_]*)(?:</[nb]>)?</E>$`)

type dropFunc func(section, path, why string)

// importEdgeTLS maps tlsOptions.agentOptions to [edge_config.tls].
func importEdgeTLS(src, dst map[string]any, drop dropFunc) {
	opts, _ := src["tlsOptions"].(map[string]any)
	delete(src, "tlsOptions")
	if opts == nil {
		return
	}
	const sec = "edge_config.tlsOptions.agentOptions"
	agent, _ := opts["agentOptions"].(map[string]any)
	tls := map[string]any{}
	for k, v := range agent {
		switch k {
		case "cert", "key", "ca":
			tls[k] = v
		case "rejectUnauthorized":
			if b, ok := v.(bool); ok && !b {
				tls["insecure_skip_verify"] = true
			}
		case "requestCert":
			// A client option with no effect on a client.
		default:
			drop(sec, sec+"."+k, "not supported by mgw")
		}
	}
	if len(tls) > 0 {
		dst["tls"] = tls
	}
}

// importSecureProtocol turns [edgemicro.ssl] secureProtocol into
// min_version where mgw has the same (or a stricter) floor.
func importSecureProtocol(ssl map[string]any, drop dropFunc) {
	p, ok := ssl["secureProtocol"].(string)
	if !ok {
		return
	}
	delete(ssl, "secureProtocol")
	switch p {
	case "TLSv1_2_method", "TLSv1_2_server_method", "TLS_method", "TLS_server_method", "SSLv23_method", "SSLv23_server_method":
		ssl["min_version"] = "1.2"
	case "TLSv1_3_method", "TLSv1_3_server_method":
		ssl["min_version"] = "1.3"
	case "TLSv1_method", "TLSv1_1_method", "TLSv1_server_method", "TLSv1_1_server_method":
		ssl["min_version"] = "1.2" // stricter: mgw serves TLS 1.2 and up only
	default:
		drop("edgemicro.ssl", "edgemicro.ssl.secureProtocol", fmt.Sprintf("%q has no mgw equivalent", p))
	}
}

func init() {
	importSpec["edgemicro.ssl"]["min_version"] = "min_version"
}

// importTargets carries [[targets]] (TLS to target hosts).
func importTargets(v any, section func(string, map[string]any, map[string]any), drop dropFunc) []any {
	list, ok := v.([]any)
	if !ok {
		drop("targets", "targets", "not a list")
		return nil
	}
	var out []any
	for i, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			drop("targets", fmt.Sprintf("targets[%d]", i), "not a table")
			continue
		}
		t := map[string]any{}
		for k, v := range m {
			path := fmt.Sprintf("targets[%d].%s", i, k)
			switch k {
			case "host":
				t["host"] = v
			case "ssl":
				ssl, _ := v.(map[string]any)
				for sk, sv := range ssl {
					client, ok := sv.(map[string]any)
					if sk != "client" || !ok {
						drop("targets", path+"."+sk, "not supported by mgw")
						continue
					}
					c := map[string]any{}
					for ck, cv := range client {
						if _, ok := importSpec["targets.ssl.client"][ck]; ok {
							c[ck] = cv
						} else {
							drop("targets.ssl.client", path+".client."+ck, "not supported by mgw")
						}
					}
					t["ssl"] = map[string]any{"client": c}
				}
			default:
				drop("targets", path, "not supported by mgw")
			}
		}
		out = append(out, t)
	}
	return out
}

// importRedis turns edgemicro.redisHost, redisPort, redisDb and
// redisPassword into the URL of [quotas] redis_url ("" when none is set).
func importRedis(em map[string]any, rep *Report) string {
	host, hasHost := em["redisHost"]
	port, hasPort := em["redisPort"]
	db, hasDB := em["redisDb"]
	pw, hasPW := em["redisPassword"]
	for _, k := range []string{"redisHost", "redisPort", "redisDb", "redisPassword"} {
		delete(em, k)
	}
	if !hasHost && !hasPort && !hasDB && !hasPW {
		return ""
	}
	part := func(v any, escape func(string) string) string {
		str := fmt.Sprint(v)
		if m := envTag.FindStringSubmatch(str); m != nil {
			return "${" + m[2] + "}"
		}
		return strings.ReplaceAll(escape(str), "$", "$$")
	}
	keep := func(s string) string { return s }
	h, p := "localhost", "6379"
	if hasHost {
		h = part(host, keep)
	}
	if hasPort {
		p = part(port, keep)
	}
	u := "redis://"
	if hasPW {
		userinfo := part(pw, func(s string) string { return url.UserPassword("", s).String() })
		if strings.HasPrefix(userinfo, "${") {
			userinfo = ":" + userinfo // a reference to the password
		}
		u += userinfo + "@"
	}
	if strings.Contains(h, ":") && !strings.HasPrefix(h, "[") {
		h = "[" + h + "]" // an IPv6 address
	}
	u += h + ":" + p
	if hasDB {
		u += "/" + part(db, keep)
	}
	rep.Notes = append(rep.Notes, "edgemicro.redisHost/redisPort/redisDb/redisPassword: written as [quotas] redis_url; quotas use Redis when useRedis = true (or backend = \"redis\")")
	return u
}

// importPlugins turns excludeUrls into a list and keeps only the plugins
// mgw has in the sequence. A plugin left out is lost (it may be the one
// that authenticates); analytics is not: mgw runs it by itself in Edge
// mode.
func importPlugins(pl map[string]any, known func(string) bool, out map[string]any, drop dropFunc) {
	if s, ok := pl["excludeUrls"].(string); ok {
		var list []string
		for _, u := range strings.Split(s, ",") {
			if u = strings.TrimSpace(u); u != "" {
				list = append(list, u)
			}
		}
		pl["excludeUrls"] = list
	}
	seq, _ := pl["sequence"].([]any)
	kept := []string{}
	for _, p := range seq {
		name := fmt.Sprint(p)
		switch {
		case name == "analytics":
			drop("edgemicro.plugins", "edgemicro.plugins.sequence", "plugin analytics is not listed: mgw runs analytics first by itself in Edge mode (with an [analytics] section in local mode)")
		case known != nil && !known(name):
			drop(lostPlugin, "edgemicro.plugins.sequence", "plugin "+name+" is not in this mgw: every proxy would run without it")
		default:
			kept = append(kept, name)
		}
	}
	pl["sequence"] = kept
}

// importLimits says where a limit's meaning changes: edgemicro counts
// spike arrests and quotas in each worker, mgw for the instance.
func importLimits(out map[string]any, processes int, rep *Report) {
	if sa, ok := out["spikearrest"].(map[string]any); ok {
		if allow, ok := sa["allow"].(int); ok {
			if processes > 0 {
				sa["allow"] = allow * processes
				rep.Notes = append(rep.Notes, fmt.Sprintf("spikearrest.allow: edgemicro counted %d per worker, %d with its %d workers; mgw counts for the instance, so allow = %d keeps that limit", allow, allow*processes, processes, allow*processes))
			} else {
				rep.Notes = append(rep.Notes, fmt.Sprintf("spikearrest.allow: edgemicro counted %d per worker (N workers allowed N·%d in all); mgw counts %d for the whole instance, whatever --processes is. To keep edgemicro's effective limit, set allow = N·%d (or import with --edgemicro-processes N)", allow, allow, allow, allow))
			}
		}
	}
	if _, ok := out["quotas"]; ok {
		rep.Notes = append(rep.Notes, "quotas: edgemicro counted each product's quota per worker (N workers allowed up to N times the quota); mgw holds the product's quota for the whole instance (and for every instance sharing a Redis with backend = \"redis\")")
	}
}
