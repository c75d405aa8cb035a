package configs

import (
	"time"
)

// Config is the decoded mgw.toml. Field tags give the TOML key (as in
// edgemicro's YAML) and the JSON key used on the IPC wire.
type Config struct {
	// EdgeConfig, when present, selects Edge mode: proxies, products and
	// keys come from an Apigee org. Without it mgw runs in local mode.
	EdgeConfig *EdgeConfig `toml:"edge_config" json:"edge_config,omitempty"`
	Edgemicro  Edgemicro   `toml:"edgemicro" json:"edgemicro"`
	Headers    Headers     `toml:"headers" json:"headers"`
	Proxies    []Proxy     `toml:"proxies" json:"proxies"`
	// Products and Apps are declared in the file in local mode; in Edge
	// mode Products are downloaded and Apps stay empty.
	Products []Product `toml:"products" json:"products,omitempty"`
	Apps     []App     `toml:"apps" json:"apps,omitempty"`
	// Metrics, when present with a port, serves Prometheus /metrics.
	Metrics *Metrics `toml:"metrics" json:"metrics,omitempty"`
	// Targets are TLS settings for calls to target hosts.
	Targets []Target `toml:"targets" json:"targets,omitempty"`

	// The auth plugins' sections; each is optional.
	OAuth   *Auth `toml:"oauth" json:"oauth,omitempty"`
	APIKeys *Auth `toml:"apikeys" json:"apikeys,omitempty"`
	OAuthV2 *Auth `toml:"oauthv2" json:"oauthv2,omitempty"`

	// Sections holds the tables owned by other plugins ([spikearrest],
	// [quotas], [analytics], a custom plugin's …), as plain data; each
	// plugin decodes its own with Section.
	Sections map[string]any `toml:"-" json:"sections,omitempty"`

	// src is the text the configuration was parsed from, after ${VAR}
	// substitution, so that an error found later (a plugin's section)
	// can say its line. It stays in the master: nil in a worker's copy.
	src []byte
}

// EdgeConfig is the [edge_config] section: where an Apigee org serves
// what a gateway needs (docs/COMPATIBILITY.md).
type EdgeConfig struct {
	Bootstrap     string `toml:"bootstrap" json:"bootstrap"`
	JWTPublicKey  string `toml:"jwt_public_key" json:"jwt_public_key"`
	Products      string `toml:"products" json:"products"`
	JWKPublicKeys string `toml:"jwk_public_keys" json:"jwk_public_keys,omitempty"`
	QuotaURI      string `toml:"quotaUri" json:"quotaUri,omitempty"`
	// ProxyPattern keeps the Edge proxies whose name matches it (* is a
	// wildcard). Defaults to edgemicro_*.
	ProxyPattern string `toml:"proxyPattern" json:"proxyPattern"`
	// MaxDownloadMB bounds each answer of Edge, in MiB; 0 means 32.
	MaxDownloadMB int `toml:"max_download_mb" json:"max_download_mb,omitempty"`
	// Used by the command line only, kept so edgemicro files import as is.
	ManagementURI    string `toml:"managementUri" json:"managementUri,omitempty"`
	AuthURI          string `toml:"authUri" json:"authUri,omitempty"`
	BaseURI          string `toml:"baseUri" json:"baseUri,omitempty"`
	VaultName        string `toml:"vaultName" json:"vaultName,omitempty"`
	BootstrapMessage string `toml:"bootstrapMessage" json:"bootstrapMessage,omitempty"`
	KeySecretMessage string `toml:"keySecretMessage" json:"keySecretMessage,omitempty"`
	// TLS configures the client certificate and trust for calls to Edge.
	TLS EdgeTLS `toml:"tls" json:"tls"`
}

// EdgeTLS is [edge_config.tls]: mutual TLS for calls to Edge.
type EdgeTLS struct {
	// CA is a PEM file of the CAs that sign Edge's certificates; the
	// system pool when empty.
	CA string `toml:"ca" json:"ca,omitempty"`
	// Cert and Key are PEM files of the client certificate.
	Cert string `toml:"cert" json:"cert,omitempty"`
	Key  string `toml:"key" json:"key,omitempty"`
	// InsecureSkipVerify turns certificate checks off (tests only).
	InsecureSkipVerify bool `toml:"insecure_skip_verify" json:"insecure_skip_verify,omitempty"`
}

// Metrics is [metrics]: where the master serves /metrics for the instance.
type Metrics struct {
	Port int `toml:"port" json:"port"`
	// Address to bind. Defaults to 127.0.0.1: metrics are for the operator.
	Address string `toml:"address" json:"address,omitempty"`
	// RolloverAll is accepted for edgemicro files.
	RolloverAll bool `toml:"rollover_all" json:"rollover_all,omitempty"`
}

// Product is an API product: which proxies and paths a token or key that
// carries it may call, and its quota.
type Product struct {
	Name         string   `toml:"name" json:"name"`
	Proxies      []string `toml:"proxies" json:"proxies"`
	APIResources []string `toml:"apiResources" json:"apiResources,omitempty"`
	Scopes       []string `toml:"scopes" json:"scopes,omitempty"`
	// Quota allows Quota requests per QuotaInterval QuotaTimeUnit; zero means none.
	Quota         int    `toml:"quota" json:"quota,omitempty"`
	QuotaInterval int    `toml:"quotaInterval" json:"quotaInterval,omitempty"`
	QuotaTimeUnit string `toml:"quotaTimeUnit" json:"quotaTimeUnit,omitempty"`
}

// App is a local-mode developer app: a key (the client id) and secret
// and the products they grant.
type App struct {
	Name           string   `toml:"name" json:"name"`
	DeveloperEmail string   `toml:"developer_email" json:"developer_email"`
	Key            string   `toml:"key" json:"key"`
	Secret         string   `toml:"secret" json:"secret"`
	Products       []string `toml:"products" json:"products"`
}

// Auth is the [oauth], [apikeys] or [oauthv2] section, with edgemicro's
// key names.
type Auth struct {
	AllowNoAuthorization      bool   `toml:"allowNoAuthorization" json:"allowNoAuthorization,omitempty"`
	AllowInvalidAuthorization bool   `toml:"allowInvalidAuthorization" json:"allowInvalidAuthorization,omitempty"`
	AllowOAuthOnly            bool   `toml:"allowOAuthOnly" json:"allowOAuthOnly,omitempty"`
	AllowAPIKeyOnly           bool   `toml:"allowAPIKeyOnly" json:"allowAPIKeyOnly,omitempty"`
	APIKeyHeader              string `toml:"api-key-header" json:"api-key-header,omitempty"`
	AuthorizationHeader       string `toml:"authorization-header" json:"authorization-header,omitempty"`
	KeepAuthorizationHeader   bool   `toml:"keep-authorization-header" json:"keep-authorization-header,omitempty"`
	KeepAPIKey                bool   `toml:"keep-api-key" json:"keep-api-key,omitempty"`
	// GracePeriod is the clock skew, in seconds, allowed on exp, nbf and iat.
	GracePeriod int `toml:"gracePeriod" json:"gracePeriod,omitempty"`
	// TokenCache keeps verified JWTs so their signature is checked once.
	// Defaults to true (edgemicro: false).
	TokenCache     *bool `toml:"tokenCache" json:"tokenCache,omitempty"`
	TokenCacheSize int   `toml:"tokenCacheSize" json:"tokenCacheSize,omitempty"`
	// CacheKey is accepted for compatibility: mgw always caches an API
	// key's answer for the life of its token, once for the instance.
	CacheKey    bool `toml:"cacheKey" json:"cacheKey,omitempty"`
	ProductOnly bool `toml:"productOnly" json:"productOnly,omitempty"`
	// VerifyAPIKeyURL is Edge's verifyApiKey endpoint. Defaults to the
	// jwt_public_key URL with publicKey replaced by verifyApiKey.
	VerifyAPIKeyURL string `toml:"verify_api_key_url" json:"verify_api_key_url,omitempty"`
	// ExcludeUrls are paths this plugin lets through untouched.
	ExcludeUrls StringList `toml:"excludeUrls" json:"excludeUrls,omitempty"`
}

// EdgeMode reports whether c takes its proxies from Edge.
func (c *Config) EdgeMode() bool { return c.EdgeConfig != nil }

// Mode is "edge" or "local".
func (c *Config) Mode() string {
	if c.EdgeMode() {
		return "edge"
	}
	return "local"
}

// Edgemicro is the [edgemicro] section: the listener and server limits.
type Edgemicro struct {
	// Port to listen on. Defaults to 8000.
	Port int `toml:"port" json:"port"`
	// Address to bind. Defaults to all interfaces.
	Address string `toml:"address" json:"address,omitempty"`
	// MaxConnections bounds the client connections one worker holds open;
	// a worker at the limit stops accepting and leaves new connections to
	// the others. Zero means no limit.
	MaxConnections int `toml:"max_connections" json:"max_connections,omitempty"`
	// ConfigChangePollInterval is the Edge poll period in seconds. Defaults to 600.
	ConfigChangePollInterval int `toml:"config_change_poll_interval" json:"config_change_poll_interval"`
	// DisableConfigPollInterval turns Edge polling off.
	DisableConfigPollInterval bool `toml:"disable_config_poll_interval" json:"disable_config_poll_interval,omitempty"`
	// RequestTimeout bounds, in seconds, the wait for a target's response
	// headers. Defaults to 60. A proxy's own timeout (ms) overrides it.
	RequestTimeout int `toml:"request_timeout" json:"request_timeout"`
	// KeepAliveTimeout is how long, in ms, an idle client connection is
	// kept open. Defaults to 5000.
	KeepAliveTimeout int `toml:"keep_alive_timeout" json:"keep_alive_timeout"`
	// MaxHeaderBytes bounds the request line and headers; over it, 431.
	// Defaults to 16384.
	MaxHeaderBytes int `toml:"max_header_bytes" json:"max_header_bytes"`
	// MaxBodyBytes bounds a request body; over it, 413. Zero means no limit.
	MaxBodyBytes int64 `toml:"max_body_bytes" json:"max_body_bytes,omitempty"`
	// DrainTimeout bounds, in seconds, how long a draining worker may take
	// to finish in-flight requests. Defaults to 30.
	DrainTimeout int `toml:"drain_timeout" json:"drain_timeout"`
	// DrainGrace is how long, in ms, a draining worker leaves idle
	// keep-alive connections open for a last request (answered with
	// Connection: close) before it closes them. Defaults to 1000.
	DrainGrace int `toml:"drain_grace" json:"drain_grace"`

	// Proxies, in Edge mode, keeps only the Edge proxies of these names
	// (after proxyPattern); empty keeps every one.
	Proxies []string `toml:"proxies" json:"proxies,omitempty"`

	Logging Logging `toml:"logging" json:"logging"`
	Plugins Plugins `toml:"plugins" json:"plugins"`
	// SSL, when present, serves HTTPS.
	SSL *SSL `toml:"ssl" json:"ssl,omitempty"`
	// Proxy sends target calls through an outbound HTTP proxy.
	Proxy *OutboundProxy `toml:"proxy" json:"proxy,omitempty"`
	// HeadersTimeout bounds, in ms, the wait for a request's headers.
	// Defaults to keep_alive_timeout + 5000, as in edgemicro.
	HeadersTimeout int `toml:"headers_timeout" json:"headers_timeout,omitempty"`
	// WriteTimeout bounds, in seconds, the writing of one answer; 0 (the
	// default) means none, so long downloads are not cut.
	WriteTimeout int `toml:"write_timeout" json:"write_timeout,omitempty"`
	// BodyIdleTimeout bounds, in seconds, the wait for the next bytes of
	// a request body, as nginx's client_body_timeout; BodyTimeout the
	// whole body. A body that misses either gets 408 and its connection
	// closes. Defaults 60 and 300; 0 turns a bound off.
	BodyIdleTimeout int `toml:"body_idle_timeout" json:"body_idle_timeout"`
	BodyTimeout     int `toml:"body_timeout" json:"body_timeout"`
	// TrustedProxies lists the addresses and CIDRs of the proxies in
	// front of mgw. Only a request whose connection comes from one of
	// them has its X-Forwarded-For believed: the client is then the
	// right-most address in it that is not a trusted proxy. Empty (the
	// default): the client is always the connection's peer.
	TrustedProxies []string `toml:"trusted_proxies" json:"trusted_proxies,omitempty"`
}

// OutboundProxy is [edgemicro.proxy]: an HTTP proxy for calls to targets.
type OutboundProxy struct {
	Enabled bool `toml:"enabled" json:"enabled"`
	// URL of the proxy; empty takes HTTP_PROXY / HTTPS_PROXY.
	URL string `toml:"url" json:"url,omitempty"`
	// Bypass lists hosts reached directly (NO_PROXY syntax); empty takes NO_PROXY.
	Bypass string `toml:"bypass" json:"bypass,omitempty"`
	// Tunnel is accepted for edgemicro files: https targets always go
	// through CONNECT, http targets as absolute-URI requests.
	Tunnel bool `toml:"tunnel" json:"tunnel,omitempty"`
}

// Logging is the [edgemicro.logging] section.
type Logging struct {
	// Level is one of error, warn, info, debug, trace, none. Defaults to info.
	Level string `toml:"level" json:"level"`
	// Dir, when set, receives the log file mgw.log instead of stderr.
	Dir string `toml:"dir" json:"dir,omitempty"`
	// ToConsole writes human-readable lines instead of JSON.
	ToConsole bool `toml:"to_console" json:"to_console,omitempty"`
	// RotateInterval rotates mgw.log after this many hours; MaxSizeMB
	// when it grows past this size; MaxFiles rotated files are kept
	// (default 10). Rotation is off unless one of the first two is set.
	RotateInterval int `toml:"rotate_interval" json:"rotate_interval,omitempty"`
	MaxSizeMB      int `toml:"max_size_mb" json:"max_size_mb,omitempty"`
	MaxFiles       int `toml:"max_files" json:"max_files,omitempty"`
	// AccessLog writes one line per request: proxy, method, path (never
	// the query, which may hold an API key), status, duration, client IP
	// and request id.
	AccessLog bool `toml:"access_log" json:"access_log,omitempty"`
	// AccessLogFile sends the access log lines to their own file instead
	// of the log: a path relative to Dir unless absolute. It is rotated
	// as the log is. It needs AccessLog.
	AccessLogFile string `toml:"access_log_file" json:"access_log_file,omitempty"`
}

// Plugins is the [edgemicro.plugins] section.
type Plugins struct {
	// Sequence names the plugins every proxy runs, in order.
	Sequence []string `toml:"sequence" json:"sequence"`
	// ExcludeUrls lists paths (with * wildcards, the query ignored) for
	// which only analytics runs: a list, or edgemicro's comma-separated string.
	ExcludeUrls StringList `toml:"excludeUrls" json:"excludeUrls,omitempty"`
}

// Headers is the [headers] section: which forwarding headers mgw writes.
// Every switch defaults to true.
type Headers struct {
	XForwardedFor   bool `toml:"x-forwarded-for" json:"x-forwarded-for"`
	XForwardedHost  bool `toml:"x-forwarded-host" json:"x-forwarded-host"`
	XForwardedProto bool `toml:"x-forwarded-proto" json:"x-forwarded-proto"`
	XRequestID      bool `toml:"x-request-id" json:"x-request-id"`
	XResponseTime   bool `toml:"x-response-time" json:"x-response-time"`
	Via             bool `toml:"via" json:"via"`
	// Host true sends the target its own host; false keeps the client's.
	Host bool `toml:"host" json:"host"`
}

// Proxy is one [[proxies]] entry: requests under BasePath go to URL.
type Proxy struct {
	Name     string `toml:"name" json:"name"`
	BasePath string `toml:"base_path" json:"base_path"`
	URL      string `toml:"url" json:"url"`
	// Timeout in ms overrides edgemicro.request_timeout for this proxy.
	Timeout int `toml:"timeout" json:"timeout,omitempty"`
	// MaxConnections bounds a worker's connections to this target. Zero
	// means no limit.
	MaxConnections int `toml:"max_connections" json:"max_connections,omitempty"`
	// Revision is the Edge proxy's deployed revision, for analytics.
	Revision string `toml:"revision" json:"revision,omitempty"`
}

// Defaults returns a Config holding every default; a file is decoded over it.
func Defaults() Config {
	return Config{
		Edgemicro: Edgemicro{
			Port:                     8000,
			ConfigChangePollInterval: 600,
			RequestTimeout:           60,
			KeepAliveTimeout:         5000,
			MaxHeaderBytes:           16384,
			DrainTimeout:             30,
			DrainGrace:               1000,
			BodyIdleTimeout:          60,
			BodyTimeout:              300,
			Logging:                  Logging{Level: "info"},
			Plugins:                  Plugins{Sequence: []string{}},
		},
		Headers: Headers{
			XForwardedFor: true, XForwardedHost: true, XForwardedProto: true,
			XRequestID: true, XResponseTime: true, Via: true, Host: true,
		},
	}
}

// TargetTimeout returns how long the proxy waits for its target's response headers.
func (c *Config) TargetTimeout(p *Proxy) time.Duration {
	if p.Timeout > 0 {
		return time.Duration(p.Timeout) * time.Millisecond
	}
	return time.Duration(c.Edgemicro.RequestTimeout) * time.Second
}

// DrainTimeout returns edgemicro.drain_timeout as a duration.
func (c *Config) DrainTimeout() time.Duration {
	return time.Duration(c.Edgemicro.DrainTimeout) * time.Second
}

// BodyIdleTimeout returns edgemicro.body_idle_timeout as a duration;
// zero means no bound.
func (c *Config) BodyIdleTimeout() time.Duration {
	return time.Duration(c.Edgemicro.BodyIdleTimeout) * time.Second
}

// BodyTimeout returns edgemicro.body_timeout as a duration; zero means
// no bound.
func (c *Config) BodyTimeout() time.Duration {
	return time.Duration(c.Edgemicro.BodyTimeout) * time.Second
}

// DrainGrace returns edgemicro.drain_grace as a duration.
func (c *Config) DrainGrace() time.Duration {
	return time.Duration(c.Edgemicro.DrainGrace) * time.Millisecond
}
