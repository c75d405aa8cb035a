package configs

import (
	"os"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// TestImportEdgemicroExample converts a realistic edgemicro file (testdata):
// the result parses as an Edge-mode mgw.toml, and every key left out is
// named.
func TestImportEdgemicroExample(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("testdata/edgemicro-example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, sec := range []string{"analytics", "spikearrest", "quotas"} {
		AllowSection(sec, nil) // as their plugins do when they register
	}
	known := func(p string) bool { return p == "oauth" }
	out, rep, err := Import(src, ImportOptions{KnownPlugin: known})
	dropped := append(rep.Dropped, rep.Lost...)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := Parse(out, os.LookupEnv)
	if err != nil {
		t.Fatalf("imported config does not parse: %v\n%s", err, out)
	}
	c := snap.Config
	if !c.EdgeMode() || c.EdgeConfig.Products != "https://myorg-test.apigee.net/edgemicro-auth/products" || c.EdgeConfig.QuotaURI != "https://%s-%s.apigee.net/edgemicro-auth" {
		t.Errorf("edge_config: %+v", c.EdgeConfig)
	}
	if c.Edgemicro.KeepAliveTimeout != 65000 || c.Edgemicro.RequestTimeout != 30 || c.Edgemicro.Logging.Dir != "/var/tmp" {
		t.Errorf("edgemicro: %+v", c.Edgemicro)
	}
	if strings.Join(c.Edgemicro.Plugins.Sequence, ",") != "oauth" || strings.Join(c.Edgemicro.Plugins.ExcludeUrls, ",") != "/healthcheck" {
		t.Errorf("plugins: %+v", c.Edgemicro.Plugins)
	}
	if c.OAuth == nil || c.OAuth.GracePeriod != 10 || !c.OAuth.CacheKey || c.OAuth.VerifyAPIKeyURL == "" {
		t.Errorf("oauth: %+v", c.OAuth)
	}
	want := []string{
		"edgemicro.logging.stack_trace", "edgemicro.logging.stats_log_interval", "edgemicro.plugins.dir",
		"plugin spikearrest", "plugin quota",
	}
	all := strings.Join(dropped, "\n")
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("dropped does not name %q:\n%s", w, all)
		}
	}
	if strings.Contains(all, "oauth.gracePeriod") || strings.Contains(all, "edge_config.bootstrap") ||
		strings.Contains(all, "spikearrest:") || strings.Contains(all, "analytics.") || strings.Contains(all, "quotas.") {
		t.Errorf("a supported key is reported dropped:\n%s", all)
	}
}

func TestImportEnvTagsAndTLS(t *testing.T) {
	t.Parallel()
	src := []byte(`
edge_config:
  bootstrap: <E>BOOT</E>
  jwt_public_key: https://k/publicKey
  products: https://k/products
  tlsOptions:
    agentOptions: {cert: /c.pem, key: /k.pem, rejectUnauthorized: false, ciphers: X}
edgemicro:
  port: <E><n>PORT</n></E>
  logging: {level: warn, to_console: true}
  plugins: {sequence: [analytics, oauth]}
`)
	out, rep, err := Import(src, ImportOptions{KnownPlugin: func(string) bool { return true }})
	dropped := append(rep.Dropped, rep.Lost...)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{`bootstrap = "${BOOT}"`, `port = ${PORT}`, `cert = "/c.pem"`, `insecure_skip_verify = true`} {
		if !strings.Contains(string(out), w) {
			t.Errorf("output lacks %s:\n%s", w, out)
		}
	}
	env := func(k string) (string, bool) {
		return map[string]string{"BOOT": "https://b/boot", "PORT": "9000"}[k], true
	}
	snap, err := Parse(out, env)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if snap.Config.Edgemicro.Port != 9000 || snap.Config.EdgeConfig.TLS.Cert != "/c.pem" {
		t.Errorf("parsed %+v", snap.Config)
	}
	if all := strings.Join(dropped, "\n"); !strings.Contains(all, "ciphers") || !strings.Contains(all, "plugin analytics") {
		t.Errorf("dropped:\n%s", all)
	}
}

// TestImportCarriesEveryMeaning: the sections mgw supports are carried,
// not dropped; what cannot be carried and weakens the gateway is lost.
func TestImportCarriesEveryMeaning(t *testing.T) {
	t.Parallel()
	for _, sec := range []string{"accesscontrol", "cors", "healthcheck", "quotas", "spikearrest"} {
		AllowSection(sec, nil)
	}
	src := []byte(`
edge_config:
  bootstrap: https://b/boot
  jwt_public_key: https://k/publicKey
  products: https://k/products
edgemicro:
  port: 8443
  proxies: [edgemicro_a, edgemicro_b]
  redisHost: <E>REDIS_HOST</E>
  redisPort: 6380
  redisDb: 2
  redisPassword: "p@ss"
  ssl:
    cert: /c.pem
    key: /k.pem
    ca: /ca.pem
    requestCert: true
    rejectUnauthorized: true
    secureProtocol: TLSv1_2_method
  plugins:
    sequence: [oauth, accesscontrol, cors, healthcheck, spikearrest]
accesscontrol:
  allow: [10.0.0.*]
  deny: [10.0.0.9]
  noRuleMatchAction: deny
cors: {cors-origin: "https://a.example", cors-max-age: 60}
healthcheck: {healthcheck_url: /healthz}
spikearrest: {timeUnit: second, allow: 10}
quotas: {useRedis: true}
targets:
  - host: t.example
    ssl:
      client: {cert: /tc.pem, key: /tk.pem, ca: /tca.pem, rejectUnauthorized: true, servername: t}
`)
	env := func(k string) (string, bool) { return map[string]string{"REDIS_HOST": "redis.internal"}[k], true }
	out, rep, err := Import(src, ImportOptions{KnownPlugin: func(string) bool { return true }, Processes: 4})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Lost) > 0 || len(rep.Dropped) > 0 {
		t.Errorf("lost %v, dropped %v; want everything carried", rep.Lost, rep.Dropped)
	}
	snap, err := Parse(out, env)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	c := snap.Config
	if c.Edgemicro.SSL == nil || c.Edgemicro.SSL.Cert != "/c.pem" || !c.Edgemicro.SSL.RequestCert || c.Edgemicro.SSL.MinVersion != "1.2" {
		t.Errorf("ssl = %+v", c.Edgemicro.SSL)
	}
	if len(c.Targets) != 1 || c.Targets[0].Host != "t.example" || c.Targets[0].SSL.Client.Cert != "/tc.pem" || c.Targets[0].SSL.Client.Servername != "t" {
		t.Errorf("targets = %+v", c.Targets)
	}
	if strings.Join(c.Edgemicro.Proxies, ",") != "edgemicro_a,edgemicro_b" {
		t.Errorf("edgemicro.proxies = %v", c.Edgemicro.Proxies)
	}
	var ac struct {
		Allow, Deny       []string
		NoRuleMatchAction string
	}
	if err := c.Section("accesscontrol", &ac); err != nil || ac.NoRuleMatchAction != "deny" || len(ac.Allow) != 1 || len(ac.Deny) != 1 {
		t.Errorf("accesscontrol = %+v %v", ac, err)
	}
	var q struct {
		RedisURL string `json:"redis_url"`
		UseRedis bool   `json:"useRedis"`
	}
	if err := c.Section("quotas", &q); err != nil || q.RedisURL != "redis://:p%40ss@redis.internal:6380/2" || !q.UseRedis {
		t.Errorf("quotas = %+v %v", q, err)
	}
	var sa struct {
		TimeUnit string `json:"timeUnit"`
		Allow    int    `json:"allow"`
	}
	if err := c.Section("spikearrest", &sa); err != nil || sa.Allow != 40 {
		t.Errorf("spikearrest.allow = %d %v, want 4·10", sa.Allow, err)
	}
	for _, sec := range []string{"cors", "healthcheck"} {
		if !c.HasSection(sec) {
			t.Errorf("[%s] not carried", sec)
		}
	}
	notes := strings.Join(rep.Notes, "\n")
	if !strings.Contains(notes, "allow = 40") || !strings.Contains(notes, "redis_url") {
		t.Errorf("notes:\n%s", notes)
	}
}

// TestImportLosesWhatWeakens: keys that cannot be carried and protect the
// gateway are reported lost, others dropped; the per-worker limit is
// explained with its equivalent.
func TestImportLosesWhatWeakens(t *testing.T) {
	t.Parallel()
	src := []byte(`
edgemicro:
  port: 8000
  nodelay: true
  ssl: {pfx: /p.pfx, passphrase: x}
  plugins: {sequence: [oauth, extauth]}
targets:
  - host: t
    ssl: {client: {pfx: /c.pfx}}
accesscontrol: {allow: [1.2.3.4], weird: 1}
spikearrest: {allow: 10}
oauth: {public_key: "PEM", product_to_proxy: {}}
`)
	_, rep, err := Import(src, ImportOptions{KnownPlugin: func(p string) bool { return p != "extauth" }})
	if err != nil {
		t.Fatal(err)
	}
	lost := strings.Join(rep.Lost, "\n")
	for _, w := range []string{"edgemicro.ssl.pfx", "edgemicro.ssl.passphrase", "targets[0].ssl.client.pfx", "accesscontrol.weird", "plugin extauth"} {
		if !strings.Contains(lost, w) {
			t.Errorf("lost does not name %s:\n%s", w, lost)
		}
	}
	dropped := strings.Join(rep.Dropped, "\n")
	if !strings.Contains(dropped, "edgemicro.nodelay") || strings.Contains(lost, "nodelay") || strings.Contains(lost, "public_key") {
		t.Errorf("dropped:\n%s\nlost:\n%s", dropped, lost)
	}
	if notes := strings.Join(rep.Notes, "\n"); !strings.Contains(notes, "N·10") {
		t.Errorf("notes do not explain the per-worker allowance:\n%s", notes)
	}
}

// FuzzImport: no YAML makes Import panic, and what it writes parses as
// TOML (it may fail validation, never decoding).
func FuzzImport(f *testing.F) {
	for _, p := range []string{"testdata/edgemicro-example.yaml"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("edgemicro: {redisHost: h, redisPort: 1}\ntargets: [{host: x, ssl: {client: {cert: a}}}]\n"))
	f.Add([]byte("spikearrest: {allow: 5}\nedgemicro: {ssl: {secureProtocol: TLSv1_3_method}}\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		out, _, err := Import(src, ImportOptions{Processes: 3})
		if err != nil {
			return
		}
		var v map[string]any
		if _, err := toml.Decode(string(out), &v); err != nil {
			t.Fatalf("Import wrote TOML that does not decode: %v\n%s", err, out)
		}
	})
}
