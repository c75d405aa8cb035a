package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/master"
	_ "github.com/mgw-gateway/mgw/plugins/builtin"
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

// TestVerifyIsADryRunOfStart: each thing that makes start fail makes
// verify fail on the line that names it; and what verify passes, start
// serves.
func TestVerifyIsADryRunOfStart(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port
	notADir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notADir, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := proxyConfig("http://127.0.0.1:1")
	tests := []struct {
		desc   string
		config string
		args   []string
		fail   string // the FAIL line's name
		says   string
	}{
		{"port in use", base, []string{"--port", fmt.Sprint(busyPort)}, "listen", "address already in use"},
		{"metrics port in use", base + fmt.Sprintf("\n[metrics]\nport = %d\n", busyPort), nil, "metrics", "address already in use"},
		{"log dir not writable", strings.Replace(base, "to_console = true", "to_console = true\ndir = \""+filepath.Join(notADir, "logs")+"\"", 1), nil, "log dir", "not a directory"},
		{"TLS file that is no certificate", base + "\n[edgemicro.ssl]\ncert = \"" + notADir + "\"\nkey = \"" + notADir + "\"\n", nil, "config", "edgemicro.ssl"},
		{"plugin section that does not decode", base + "\n[edgemicro.plugins]\nsequence = [\"spikearrest\"]\n[spikearrest]\nallow = 10\ntimeUnit = \"second\"\nalow = 3\n", nil, "config", "unknown key"},
		{"no workers", base, []string{"-p", "0"}, "config", "--processes 0"},
		{"more workers than a start may fork", base, []string{"-p", "5000"}, "config", "--processes 5000: give 1 to 1024 workers"},
		// A plugin's section is checked whether or not the plugin runs.
		{"typo in the section of a plugin not in the sequence", base + "\n[quotas]\nbufferSise = 3\n", nil, "config",
			fmt.Sprintf(`mgw.toml: [quotas]: unknown key "bufferSise" (line %d) (did you mean "bufferSize"?)`, strings.Count(base, "\n")+3)},
		{"section of no plugin", base + "\n[spikearest]\nallow = 3\n", nil, "config",
			fmt.Sprintf(`mgw.toml: unknown key "spikearest" (line %d) (did you mean "spikearrest"?)`, strings.Count(base, "\n")+2)},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			in := newInstance(t, tc.config)
			args := append([]string{"--port", fmt.Sprint(in.port)}, tc.args...)
			out, code := in.mgw(append([]string{"verify"}, args...)...)
			if code != 1 || !strings.Contains(out, "FAIL "+tc.fail) || !strings.Contains(out, tc.says) {
				t.Fatalf("verify: exit %d, want 1 with FAIL %s saying %q:\n%s", code, tc.fail, tc.says, out)
			}
			if out, code := in.mgw(append([]string{"start"}, args...)...); code != 1 {
				t.Fatalf("verify failed but start exited %d:\n%s", code, out)
			}
		})
	}
	in := newInstance(t, base+"\n[edgemicro.plugins]\nsequence = [\"spikearrest\"]\n[spikearrest]\nallow = 10\ntimeUnit = \"second\"\n")
	out, code := in.mgw("verify", "--port", fmt.Sprint(in.port))
	if code != 0 {
		t.Fatalf("verify of a good config: exit %d:\n%s", code, out)
	}
	for _, name := range []string{"config", "run dir", "listen"} {
		if !strings.Contains(out, "ok   "+name) {
			t.Errorf("verify does not report %s ok:\n%s", name, out)
		}
	}
	in.start(1)
	if out, code := in.mgw("verify", "--port", fmt.Sprint(in.port)); code != 0 || !strings.Contains(out, "in use by the running mgw") {
		t.Fatalf("verify while it runs: exit %d:\n%s", code, out)
	}
}

// TestConfigShow: the effective configuration, like nginx -T: ${VAR}s
// resolved, flags applied, in Edge mode the proxies Edge sent, and every
// secret masked.
func TestConfigShow(t *testing.T) {
	in := newInstance(t, proxyConfig("http://127.0.0.1:1")+`
[quotas]
backend = "redis"
redis_url = "redis://:${REDIS_PW}@127.0.0.1:6379/0"
[[apps]]
name = "app"
developer_email = "a@example.com"
key = "appkey-0123456789"
secret = "appsecret-0123456789"
products = []
`)
	cmd := exec.Command(mgwBin, "config", "show", "--config-dir", in.dir, "--port", "4321")
	cmd.Env = append(os.Environ(), "REDIS_PW=hunter2-redis", "MGW_CONFIG=", "MGW_CONFIG_DIR=")
	b, err := cmd.CombinedOutput()
	out := string(b)
	if err != nil {
		t.Fatalf("config show: %v\n%s", err, out)
	}
	for _, want := range []string{"port = 4321", `redis_url = "redis://:****@127.0.0.1:6379/0"`, `secret = "****"`, `key = "appk****"`, "config_file: " + filepath.Join(in.dir, "mgw.toml")} {
		if !strings.Contains(out, want) {
			t.Errorf("config show lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{"hunter2-redis", "appsecret-0123456789", "appkey-0123456789"} {
		if strings.Contains(out, secret) {
			t.Errorf("config show prints the secret %q:\n%s", secret, out)
		}
	}

	fe, _ := helloEdge(t)
	edge := newInstance(t, edgeConfig(fe, ""))
	out, code := edge.mgw(append([]string{"config", "show", "--json"}, edgeFlags(fe)...)...)
	if code != 0 {
		t.Fatalf("config show in Edge mode: exit %d\n%s", code, out)
	}
	var doc struct {
		Run    map[string]any `json:"run"`
		Config struct {
			Proxies []struct {
				Name string `json:"name"`
			} `json:"proxies"`
		} `json:"config"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("config show --json: %v\n%s", err, out)
	}
	if len(doc.Config.Proxies) != 1 || doc.Config.Proxies[0].Name != "edgemicro_hello" || doc.Run["edge_from"] != "Edge, downloaded now" {
		t.Errorf("Edge mode shows %+v, want the proxy Edge sent:\n%s", doc, out)
	}
	if strings.Contains(out, fe.Secret) || strings.Contains(out, fe.Key) || doc.Run["secret"] != "****" {
		t.Errorf("config show prints the Edge key or secret:\n%s", out)
	}
}

// TestDeployConfigMapIsAValidConfig: the mgw.toml the Kubernetes example
// mounts parses as mgw's config, and the Deployment probes the health
// paths the master serves.
func TestDeployConfigMapIsAValidConfig(t *testing.T) {
	b, err := os.ReadFile("../deploy/kubernetes/configmap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cm struct {
		Data map[string]string `yaml:"data"`
	}
	if err := yaml.Unmarshal(b, &cm); err != nil {
		t.Fatal(err)
	}
	n := 0
	for name, text := range cm.Data {
		if !strings.HasSuffix(name, ".toml") {
			continue
		}
		n++
		snap, err := configs.Parse([]byte(text), os.LookupEnv)
		if err != nil {
			t.Errorf("%s in the ConfigMap: %v", name, err)
			continue
		}
		if a := snap.Config.Edgemicro.Address; a == "127.0.0.1" || snap.Config.Metrics == nil || snap.Config.Metrics.Address == "127.0.0.1" {
			t.Errorf("%s listens on loopback only (address %q, metrics %+v): the Service and the probes cannot reach it", name, a, snap.Config.Metrics)
		}
	}
	if n == 0 {
		t.Fatal("the ConfigMap holds no .toml")
	}
	d, err := os.ReadFile("../deploy/kubernetes/deployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{master.HealthPath, master.ReadyPath} {
		if !strings.Contains(string(d), "path: "+path) {
			t.Errorf("the Deployment does not probe %s", path)
		}
	}
}

// TestJSONLogStaysJSON: with JSON logs in a file, a reload whose new
// generation cannot start leaves only JSON lines in mgw.log.
func TestJSONLogStaysJSON(t *testing.T) {
	logDir := t.TempDir()
	cfg := strings.Replace(proxyConfig("http://127.0.0.1:1"), "to_console = true", "to_console = false\ndir = \""+logDir+"\"", 1)
	in := newInstance(t, cfg)
	in.start(1)
	// The new generation cannot bind the metrics port another holds.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	in.writeConfig(cfg + fmt.Sprintf("\n[metrics]\nport = %d\n", busy.Addr().(*net.TCPAddr).Port))
	if out, code := in.mgw("reload"); code != 1 {
		t.Fatalf("reload onto a busy metrics port: exit %d, want 1:\n%s", code, out)
	}
	b, err := os.ReadFile(filepath.Join(logDir, "mgw.log"))
	if err != nil {
		t.Fatal(err)
	}
	failed := false
	for i, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("mgw.log line %d is not JSON: %s", i+1, line)
		}
		failed = failed || strings.Contains(line, "mgw start failed")
	}
	if !failed {
		t.Errorf("mgw.log does not record the failed generation:\n%s", b)
	}
}

// TestAnotherUsersInstance: a user who is not the one that started an
// instance, in a run dir it may write in, is told the instance is
// another user's: status does not call it "not running", and a start
// neither removes the running instance's control socket as stale (which
// used to leave it unreachable) nor starts beside it. A config file that
// user may not read is named with its owner and mode.
func TestAnotherUsersInstance(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("running commands as another user needs root")
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv is not installed")
	}
	in := newInstance(t, proxyConfig("http://127.0.0.1:1"))
	in.start(1)
	// The other user reaches the instance's dir, and may write in it.
	for d := in.dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		_ = os.Chmod(d, 0o755)
	}
	if err := os.Chmod(in.dir, 0o777); err != nil {
		t.Fatal(err)
	}
	asNobody := func(args ...string) (string, int) {
		cmd := exec.Command("setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", "--", mgwBin}, args...)...)
		cmd.Env = append(in.startEnv(), "HOME="+in.dir)
		out, err := cmd.CombinedOutput()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	sock := filepath.Join(in.dir, master.ControlFileName)
	if out, code := asNobody("status", "--config-dir", in.dir); code != 4 || strings.Contains(out, "not running") || !strings.Contains(out, "another user") {
		t.Errorf("status as another user: exit %d: %s", code, out)
	}
	if out, code := asNobody("start", "--config-dir", in.dir, "--port", fmt.Sprint(freePort(t))); code != 1 {
		t.Errorf("start as another user: exit %d, want 1: %s", code, out)
	}
	if _, err := os.Stat(sock); err != nil {
		t.Fatalf("the running instance's control socket is gone: %v", err)
	}
	if _, ok := in.status(); !ok {
		t.Fatal("the instance no longer answers its owner")
	}
	if out, _ := asNobody("verify", "--config-dir", in.dir); strings.Contains(out, "in use by the running mgw") || !strings.Contains(out, "address already in use") {
		t.Errorf("verify as another user offers that user a reload of the running instance:\n%s", out)
	}

	// A config file only root may read.
	other := filepath.Join(t.TempDir(), "conf")
	for d := other; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		_ = os.MkdirAll(d, 0o755)
		_ = os.Chmod(d, 0o755)
	}
	if err := os.WriteFile(filepath.Join(other, "mgw.toml"), []byte(proxyConfig("http://127.0.0.1:1")), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := asNobody("verify", "--config-dir", other); code != 1 || !strings.Contains(out, "owned by root (uid 0) with mode 0600") {
		t.Errorf("verify of a file only root reads: exit %d: %s", code, out)
	}
}

// TestReloadSaysWhyTheNextGenerationFailed: a reload whose next
// generation fails before it serves, in what the command line does
// before the master runs (the config file gone, a log dir that is a
// file), exits 1 with that reason, not only "child exited"; the running
// generation serves on.
func TestReloadSaysWhyTheNextGenerationFailed(t *testing.T) {
	t.Parallel()
	tg := target(t)
	cfg := proxyConfig(tg.URL)
	in := newInstance(t, cfg)
	in.start(1)
	aFile := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(aFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		desc, says string
		break_     func()
	}{
		{"log dir is a file", "not a directory", func() {
			in.writeConfig(strings.Replace(cfg, "to_console = true", "to_console = true\ndir = \""+filepath.Join(aFile, "logs")+"\"", 1))
		}},
		{"config file gone", "does not exist", func() {
			if err := os.Remove(filepath.Join(in.dir, "mgw.toml")); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		tc.break_()
		out, code := in.mgw("reload")
		if code != 1 || !strings.Contains(out, tc.says) || strings.Contains(out, "child pid") {
			t.Errorf("%s: reload exited %d, want 1 saying %q:\n%s", tc.desc, code, tc.says, out)
		}
		if code, _ := get(t, in.url("/api/x")); code != 200 {
			t.Fatalf("%s: the running generation answers %d", tc.desc, code)
		}
	}
}
