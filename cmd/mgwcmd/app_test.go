package mgwcmd

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/configs/edge"
)

func TestInitWritesAndRefusesToOverwrite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := writeInit(dir, false); err != nil {
		t.Fatal(err)
	}
	if _, err := configs.Load(filepath.Join(dir, initConfigName), os.LookupEnv); err != nil {
		t.Fatalf("the written config does not load: %v", err)
	}
	if info, err := os.Stat(filepath.Join(dir, initPrivateKeyName)); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("private key: %v %v", info, err)
	}
	if err := writeInit(dir, false); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("second init = %v, want a refusal naming --force", err)
	}
	if err := writeInit(dir, true); err != nil {
		t.Fatalf("init --force = %v", err)
	}
}

func TestConfigLookup(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	run := func(args ...string) paths {
		t.Helper()
		var got paths
		app := newApp()
		for _, c := range app.Commands {
			if c.Name == "status" {
				c.Action = func(c *cli.Context) error {
					var err error
					got, err = resolvePaths(c)
					return err
				}
			}
		}
		if err := app.Run(append([]string{"mgw", "status", "--config-dir", dir}, args...)); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if p := run(); p.config != "" || p.runDir != dir {
		t.Fatalf("no file: %+v, want the embedded default and run dir = config dir", p)
	}
	_ = os.WriteFile(filepath.Join(dir, "mgw.toml"), []byte(""), 0o644)
	if p := run(); p.config != filepath.Join(dir, "mgw.toml") {
		t.Fatalf("mgw.toml: %+v", p)
	}
	_ = os.WriteFile(filepath.Join(dir, "org-test-config.toml"), []byte(""), 0o644)
	if p := run("-o", "org", "-e", "test"); p.config != filepath.Join(dir, "org-test-config.toml") {
		t.Fatalf("org and env: %+v", p)
	}
	if p := run("--run-dir", "/tmp/x"); p.runDir != "/tmp/x" {
		t.Fatalf("run dir: %+v", p)
	}
}

func TestFormatURI(t *testing.T) {
	t.Parallel()
	for tmpl, want := range map[string]string{
		"https://%s-%s.apigee.net/edgemicro-auth": "https://org-env.apigee.net/edgemicro-auth",
		"https://auth.example.com/edgemicro-auth": "https://auth.example.com/edgemicro-auth",
		"https://%s.example.com":                  "https://org.example.com",
	} {
		if got := edge.FormatURI(tmpl, "org", "env"); got != want {
			t.Errorf("FormatURI(%q) = %q, want %q", tmpl, got, want)
		}
	}
}

func TestVersionNamesTheBuild(t *testing.T) {
	t.Parallel()
	v := versionString()
	if !strings.HasPrefix(v, "mgw ") || !strings.Contains(v, "go1.") || !strings.Contains(v, "commit ") {
		t.Fatalf("version %q", v)
	}
}

// TestLogRotation: over its size the log file is renamed to .1, older
// ones shift, no more than maxFiles are kept, and writes go to a new file.
func TestLogRotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	spare, err := os.Create(filepath.Join(dir, "spare"))
	if err != nil {
		t.Fatal(err)
	}
	defer spare.Close()
	lf := &logFile{fd: int(spare.Fd()), path: filepath.Join(dir, "mgw.log"), maxBytes: 10, maxFiles: 2}
	if err := lf.Reopen(); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if _, err := fmt.Fprintf(spare, "line %d is long enough\n", i); err != nil {
			t.Fatal(err)
		}
		rotated, err := lf.Rotate(time.Now())
		if err != nil || !rotated {
			t.Fatalf("write %d: rotated %v, %v", i, rotated, err)
		}
	}
	if rotated, _ := lf.Rotate(time.Now()); rotated {
		t.Fatal("rotated an empty file")
	}
	b1, _ := os.ReadFile(lf.path + ".1")
	b2, _ := os.ReadFile(lf.path + ".2")
	if string(b1) != "line 3 is long enough\n" || string(b2) != "line 2 is long enough\n" {
		t.Fatalf(".1 %q, .2 %q", b1, b2)
	}
	if _, err := os.Stat(lf.path + ".3"); err == nil {
		t.Fatal("more files kept than max_files")
	}
}

func TestMaskedLogs(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	w := masked(&b, "a1a1a1a1a1a1", "short", "")
	log, _ := newLogger(w, logSettings{level: "info"})
	log.Error().Str("url", "https://k:a1a1a1a1a1a1@edge/x").Msg("calling edge with a1a1a1a1a1a1 failed")
	if strings.Contains(b.String(), "a1a1a1a1a1a1") || !strings.Contains(b.String(), "****") {
		t.Fatalf("log line %q", b.String())
	}
	if masked(&b, "short") != io.Writer(&b) {
		t.Fatal("a secret too short to be one masked every line")
	}
}
