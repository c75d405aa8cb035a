package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoSilentFallbackToTheDemo: the embedded default serves only when
// the user named nothing, and then on 127.0.0.1; a named org and env, a
// config dir or file that does not exist, and an empty file are errors in
// start and verify alike, naming the path looked for and what to do.
func TestNoSilentFallbackToTheDemo(t *testing.T) {
	in := newInstance(t, "")
	missing := filepath.Join(in.dir, "nope")
	empty := filepath.Join(t.TempDir(), "empty.toml")
	if err := os.WriteFile(empty, []byte("# nothing here yet\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		desc string
		args []string
		want []string
	}{
		{"org and env", []string{"-o", "myorg", "-e", "tset"}, []string{filepath.Join(in.dir, "myorg-tset-config.toml"), "mgw configure", "mgw config import"}},
		{"org and env with a config dir", []string{"--config-dir", in.dir, "-o", "myorg", "-e", "tset"}, []string{filepath.Join(in.dir, "myorg-tset-config.toml")}},
		{"config dir", []string{"--config-dir", missing}, []string{missing + " does not exist", "mgw init --config-dir " + missing}},
		{"config dir without a file", []string{"--config-dir", in.dir}, []string{filepath.Join(in.dir, "mgw.toml") + " does not exist"}},
		{"config file", []string{"--config", filepath.Join(missing, "mgw.toml")}, []string{filepath.Join(missing, "mgw.toml") + " does not exist"}},
		{"empty config file", []string{"--config", empty}, []string{empty + " is empty"}},
	}
	for _, tc := range tests {
		for _, cmd := range []string{"verify", "start"} {
			out, code := in.mgwRaw(append([]string{cmd, "--port", "1"}, tc.args...)...)
			if code != 1 {
				t.Errorf("%s with %s: exit %d, want 1:\n%s", cmd, tc.desc, code, out)
			}
			if strings.Contains(out, "embedded default") || strings.Contains(out, "serving") {
				t.Errorf("%s with %s fell back to the demo:\n%s", cmd, tc.desc, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("%s with %s does not say %q:\n%s", cmd, tc.desc, w, out)
				}
			}
		}
	}

	// Named nothing: the demo, on this machine only.
	if out, code := in.mgwRaw("verify"); code != 0 || !strings.Contains(out, "embedded default") {
		t.Fatalf("verify with nothing named: exit %d:\n%s", code, out)
	}
	in.start(1)
	if code, _ := get(t, in.url("/echo/x")); code != 200 {
		t.Fatalf("GET /echo/x on the default = %d", code)
	}
	if !strings.Contains(in.logs.String(), "addr=127.0.0.1:") {
		t.Fatalf("the default does not listen on 127.0.0.1 only:\n%s", in.logs.String())
	}
}

// TestConfigImportRefusesToWeaken: a setting that protects the gateway
// and cannot be carried makes the import exit 1 and write nothing; with
// --force (after the file, as README writes flags) it writes the rest.
func TestConfigImportRefusesToWeaken(t *testing.T) {
	dir := t.TempDir()
	yamlPath := filepath.Join(dir, "org-env-config.yaml")
	if err := os.WriteFile(yamlPath, []byte(`
edgemicro:
  port: 8443
  ssl: {pfx: /etc/certs/server.pfx, passphrase: secret}
  plugins: {sequence: [accesscontrol]}
accesscontrol: {allow: [10.1.*.*], noRuleMatchAction: deny}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	in := newInstance(t, "")
	outPath := filepath.Join(dir, "out.toml")
	out, code := in.mgwRaw("config", "import", yamlPath, "--output", outPath)
	if code != 1 || !strings.Contains(out, "LOST    edgemicro.ssl.pfx") || !strings.Contains(out, "--force") {
		t.Fatalf("import of a pfx certificate: exit %d, want 1 naming the lost key and --force:\n%s", code, out)
	}
	if _, err := os.Stat(outPath); err == nil {
		t.Fatal("a refused import wrote its output")
	}
	out, code = in.mgwRaw("config", "import", yamlPath, "--output", outPath, "--force")
	if code != 0 {
		t.Fatalf("import --force: exit %d:\n%s", code, out)
	}
	b, err := os.ReadFile(outPath)
	if err != nil || !strings.Contains(string(b), `noRuleMatchAction = "deny"`) {
		t.Fatalf("the forced import lost [accesscontrol]: %v\n%s", err, b)
	}
}
