package configs

import (
	"os"
	"strings"
	"testing"
)

// TestImportEdgemicroExample converts EDGEMICRO.md §c's realistic file:
// the result parses as an Edge-mode mgw.toml, and every key left out is
// named.
func TestImportEdgemicroExample(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("testdata/edgemicro-example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, sec := range []string{"analytics", "spikearrest", "quotas"} {
		AllowSection(sec) // as their plugins do when they register
	}
	known := func(p string) bool { return p == "oauth" }
	out, dropped, err := Import(src, known)
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
		"plugin spikearrest", "plugin quota", "targets:",
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
	out, dropped, err := Import(src, func(string) bool { return true })
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
