package configs

import (
	"bytes"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
	"gopkg.in/yaml.v3"
)

// importSpec says, for each edgemicro section, which keys carry over to
// mgw.toml under which name; every other key is reported as dropped.
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
	},
	"edgemicro.logging": {"level": "level", "dir": "dir", "to_console": "to_console", "rotate_interval": "rotate_interval"},
	"edgemicro.plugins": {"sequence": "sequence", "excludeUrls": "excludeUrls"},
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

// Import converts an edgemicro {org}-{env}-config.yaml into mgw.toml. It
// returns the TOML and one line for every key or plugin it leaves out.
// Env tags (<E>VAR</E>, <E><n>VAR</n></E>, <E><b>VAR</b></E>) become
// ${VAR}. knownPlugin tells which plugins of the sequence mgw has.
func Import(src []byte, knownPlugin func(string) bool) ([]byte, []string, error) {
	var doc map[string]any
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, nil, fmt.Errorf("reading edgemicro yaml: %w", err)
	}
	var dropped []string
	out := map[string]any{}
	var numbers []string // ${VAR}s that must be written unquoted
	conv := func(v any) any {
		s, ok := v.(string)
		if !ok {
			return v
		}
		if m := envTag.FindStringSubmatch(s); m != nil {
			ref := "${" + m[2] + "}"
			if m[1] != "" {
				numbers = append(numbers, ref)
			}
			return ref
		}
		return strings.ReplaceAll(s, "$", "$$")
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
				dropped = append(dropped, path+": not supported by mgw")
				continue
			}
			dst[name] = conv(v)
		}
	}
	for k, v := range doc {
		m, isMap := v.(map[string]any)
		if importSpec[k] == nil || !isMap {
			dropped = append(dropped, k+": not supported by mgw")
			continue
		}
		d := map[string]any{}
		if k == "edge_config" {
			importEdgeTLS(m, d, &dropped)
		}
		section(k, m, d)
		out[k] = d
	}
	if em, ok := out["edgemicro"].(map[string]any); ok {
		if pl, ok := em["plugins"].(map[string]any); ok {
			importPlugins(pl, knownPlugin, &dropped)
		}
	}
	var buf bytes.Buffer
	buf.WriteString("# Imported from an Edge Microgateway config by `mgw config import`.\n")
	if err := toml.NewEncoder(&buf).Encode(out); err != nil {
		return nil, nil, fmt.Errorf("writing toml: %w", err)
	}
	b := buf.Bytes()
	for _, ref := range numbers {
		b = bytes.ReplaceAll(b, []byte(`"`+ref+`"`), []byte(ref))
	}
	sort.Strings(dropped)
	return b, dropped, nil
}

// envTag matches edgemicro's env tags: <E>VAR</E>, <E><n>VAR</n></E>, <E><b>VAR</b></E>.
var envTag = regexp.MustCompile(`^<E>(?:<([nb])>)?([A-Za-z_][A-Za-z0-9_]*)(?:</[nb]>)?</E>$`)

// importEdgeTLS maps tlsOptions.agentOptions to [edge_config.tls].
func importEdgeTLS(src, dst map[string]any, dropped *[]string) {
	opts, _ := src["tlsOptions"].(map[string]any)
	delete(src, "tlsOptions")
	if opts == nil {
		return
	}
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
		default:
			*dropped = append(*dropped, "edge_config.tlsOptions.agentOptions."+k+": not supported by mgw")
		}
	}
	if len(tls) > 0 {
		dst["tls"] = tls
	}
}

// importPlugins turns excludeUrls into a list and keeps only the plugins
// mgw has in the sequence.
func importPlugins(pl map[string]any, known func(string) bool, dropped *[]string) {
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
		if name == "analytics" || (known != nil && !known(name)) {
			*dropped = append(*dropped, "edgemicro.plugins.sequence: plugin "+name+" is not in this mgw")
			continue
		}
		kept = append(kept, name)
	}
	pl["sequence"] = kept
}
