package mgwcmd

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/configs/edge"
)

func TestInitWritesAndRefusesToOverwrite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := writeInit(dir, false, false); err != nil {
		t.Fatal(err)
	}
	if _, err := configs.Load(filepath.Join(dir, initConfigName), os.LookupEnv); err != nil {
		t.Fatalf("the written config does not load: %v", err)
	}
	if info, err := os.Stat(filepath.Join(dir, initPrivateKeyName)); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("private key: %v %v", info, err)
	}
	if _, err := writeInit(dir, false, false); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("second init = %v, want a refusal naming --force", err)
	}
	key, _ := os.ReadFile(filepath.Join(dir, initPrivateKeyName))
	wrote, err := writeInit(dir, true, false)
	if err != nil || strings.Join(wrote, ",") != initConfigName {
		t.Fatalf("init --force wrote %v, %v; want mgw.toml alone", wrote, err)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, initPrivateKeyName)); string(again) != string(key) {
		t.Fatal("init --force replaced the signing key")
	}
	if wrote, err := writeInit(dir, false, true); err != nil || len(wrote) != 3 {
		t.Fatalf("init --force-keys wrote %v, %v", wrote, err)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, initPrivateKeyName)); string(again) == string(key) {
		t.Fatal("init --force-keys kept the signing key")
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

// TestConfigLookupNamesWhatIsMissing: the embedded default only when
// nothing is named; anything named and missing is an error naming the
// path looked for.
func TestConfigLookupNamesWhatIsMissing(t *testing.T) {
	dir := t.TempDir()
	home := t.TempDir()
	t.Setenv("HOME", home)
	for _, v := range []string{"MGW_CONFIG", "MGW_CONFIG_DIR", "EDGEMICRO_CONFIG_DIR", "EDGEMICRO_ORG", "EDGEMICRO_ENV"} {
		t.Setenv(v, "")
	}
	_ = os.WriteFile(filepath.Join(dir, "mgw.toml"), []byte("[edgemicro]\nport = 1\n"), 0o644)
	empty := t.TempDir()
	resolve := func(args ...string) (paths, error) {
		t.Helper()
		var got paths
		var gotErr error
		app := newApp()
		for _, c := range app.Commands {
			if c.Name == "verify" {
				c.Action = func(c *cli.Context) error {
					got, gotErr = resolveConfig(c)
					return nil
				}
			}
		}
		if err := app.Run(append([]string{"mgw", "verify"}, args...)); err != nil {
			t.Fatal(err)
		}
		return got, gotErr
	}
	tests := []struct {
		desc string
		args []string
		want string // the config file, or "" for the embedded default
		err  string // a part of the error
	}{
		{desc: "nothing named", want: ""},
		{desc: "config dir", args: []string{"--config-dir", dir}, want: filepath.Join(dir, "mgw.toml")},
		{desc: "org and env fall back to mgw.toml", args: []string{"--config-dir", dir, "-o", "o", "-e", "e"}, want: filepath.Join(dir, "mgw.toml")},
		{desc: "missing config file", args: []string{"--config", filepath.Join(dir, "nope.toml")}, err: filepath.Join(dir, "nope.toml") + " does not exist"},
		{desc: "config file is a dir", args: []string{"--config", dir}, err: "is a directory"},
		{desc: "missing config dir", args: []string{"--config-dir", filepath.Join(dir, "nope")}, err: filepath.Join(dir, "nope") + " does not exist: write one with `mgw init"},
		{desc: "config dir without a file", args: []string{"--config-dir", empty}, err: filepath.Join(empty, "mgw.toml") + " does not exist"},
		{desc: "org and env without a file", args: []string{"-o", "myorg", "-e", "test"}, err: filepath.Join(home, ".mgw", "myorg-test-config.toml") + " nor "},
		{desc: "org and env name what to run", args: []string{"--config-dir", empty, "-o", "myorg", "-e", "test"}, err: "mgw config import myorg-test-config.yaml --output " + filepath.Join(empty, "myorg-test-config.toml")},
		{desc: "org alone", args: []string{"--config-dir", empty, "-o", "myorg"}, err: "needs both"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			p, err := resolve(tc.args...)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.err)
				}
				return
			}
			if err != nil || p.config != tc.want {
				t.Fatalf("config = %q, %v; want %q", p.config, err, tc.want)
			}
		})
	}
	t.Run("environment counts as naming", func(t *testing.T) {
		t.Setenv("MGW_CONFIG_DIR", empty)
		if _, err := resolve(); err == nil {
			t.Fatal("MGW_CONFIG_DIR naming a dir without a config fell back to the default")
		}
	})
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

// TestLogAgeCountsFromTheFilesBirth: a log file reopened at a start keeps
// the age it had, counted from its creation, not from its last write or
// status change (which every write moves).
func TestLogAgeCountsFromTheFilesBirth(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "mgw.log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st unix.Statx_t
	if err := unix.Statx(int(f.Fd()), "", unix.AT_EMPTY_PATH, unix.STATX_BTIME|unix.STATX_CTIME, &st); err != nil || st.Mask&unix.STATX_BTIME == 0 {
		t.Skipf("the file system of %s records no birth time (statx: %v)", dir, err)
	}
	birth := time.Unix(st.Btime.Sec, int64(st.Btime.Nsec))
	// Write until the status change time has moved past the birth (one
	// clock tick of the file system), so the two can be told apart.
	for deadline := time.Now().Add(5 * time.Second); ; {
		if _, err := f.WriteString("a line\n"); err != nil {
			t.Fatal(err)
		}
		if err := unix.Statx(int(f.Fd()), "", unix.AT_EMPTY_PATH, unix.STATX_CTIME, &st); err != nil {
			t.Fatal(err)
		}
		if time.Unix(st.Ctime.Sec, int64(st.Ctime.Nsec)).After(birth) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the status change time never moved")
		}
	}
	spare, err := os.Create(filepath.Join(dir, "spare"))
	if err != nil {
		t.Fatal(err)
	}
	defer spare.Close()
	lf := &logFile{fd: int(spare.Fd()), path: path, maxFiles: 2}
	if err := lf.Reopen(); err != nil {
		t.Fatal(err)
	}
	if !lf.opened.Equal(birth) {
		t.Fatalf("the file's age counts from %v, want its birth %v", lf.opened, birth)
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

func TestFlagsFirst(t *testing.T) {
	t.Parallel()
	app := newApp()
	tests := []struct{ in, want string }{
		{"mgw config import a.yaml --output b.toml", "mgw config import --output b.toml a.yaml"},
		{"mgw config import --output b.toml a.yaml", "mgw config import --output b.toml a.yaml"},
		{"mgw config import a.yaml --output=b.toml --force", "mgw config import --output=b.toml --force a.yaml"},
		{"mgw token decode TOKEN -f x", "mgw token decode -f x TOKEN"},
		{"mgw token verify TOKEN --config-dir d -o org", "mgw token verify --config-dir d -o org TOKEN"},
		{"mgw start -p 2", "mgw start -p 2"},
		{"mgw token decode -- -x", "mgw token decode -- -x"},
		{"mgw nosuch a -b", "mgw nosuch a -b"},
		{"mgw --help", "mgw --help"},
	}
	for _, tc := range tests {
		if got := strings.Join(flagsFirst(app, strings.Fields(tc.in)), " "); got != tc.want {
			t.Errorf("flagsFirst(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestUnknownCommand(t *testing.T) {
	t.Parallel()
	app := newApp()
	for in, bad := range map[string]bool{
		"mgw nosuch": true, "mgw token nosuch": true, "mgw config nosuch x": true,
		"mgw start": false, "mgw token get -i x": false, "mgw --version": false, "mgw help start": false,
		"mgw config import x.yaml": false,
	} {
		err := unknownCommand(app, strings.Fields(in))
		if (err != nil) != bad {
			t.Errorf("unknownCommand(%q) = %v, want an error: %v", in, err, bad)
		}
		if ec, ok := errors.AsType[cli.ExitCoder](err); ok && ec.ExitCode() != 1 {
			t.Errorf("unknownCommand(%q) exits %d, want 1", in, ec.ExitCode())
		}
	}
}

func TestMaskURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"redis://:pw@h:6379/0":      "redis://:****@h:6379/0",
		"http://user:pw@proxy:3128": "http://user:****@proxy:3128",
		"http://token@h/x":          "http://****@h/x",
		"http://h/x?a=b@c":          "http://h/x?a=b@c",
		"plain string":              "plain string",
	} {
		if got := maskURL(in); got != want {
			t.Errorf("maskURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestLogRotationFollowsEdits: max_size_mb written into the config after
// the start applies at the next check.
func TestLogRotationFollowsEdits(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "mgw.toml")
	write := func(extra string) {
		t.Helper()
		if err := os.WriteFile(cfg, []byte("[edgemicro]\nport = 1\n[edgemicro.logging]\ndir = \""+dir+"\"\n"+extra), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("")
	spare, err := os.Create(filepath.Join(dir, "spare"))
	if err != nil {
		t.Fatal(err)
	}
	defer spare.Close()
	s := settingsFrom(cfg, "")
	lf := &logFile{fd: int(spare.Fd()), path: filepath.Join(dir, "mgw.log"), maxFiles: 10, config: s.config, seen: fileStamp(cfg)}
	if err := lf.Reopen(); err != nil {
		t.Fatal(err)
	}
	if _, err := spare.WriteString(strings.Repeat("x", 2<<20)); err != nil {
		t.Fatal(err)
	}
	if rotated, _ := lf.Rotate(time.Now()); rotated {
		t.Fatal("rotated with no max_size_mb")
	}
	write("max_size_mb = 1\n")
	// A different size is enough for the stamp to change within one mtime tick.
	if rotated, err := lf.Rotate(time.Now()); err != nil || !rotated {
		t.Fatalf("after max_size_mb = 1 was written: rotated %v, %v", rotated, err)
	}
}

// TestStrayArgumentsRefused: a command that takes no arguments refuses
// one instead of ignoring it (`mgw start /etc/mgw` used to start on the
// default config), and says how to name a config dir when it is one;
// commands that take an argument still do.
func TestStrayArgumentsRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string // in the error; "" for none
	}{
		{[]string{"start", dir}, "start takes no arguments, got \"" + dir + "\"; to use the configuration in that directory, give --config-dir " + dir},
		{[]string{"stop", "extra"}, "stop takes no arguments, got \"extra\""},
		{[]string{"status", "--json", "extra"}, "status takes no arguments"},
		{[]string{"verify", dir}, "verify takes no arguments"},
		{[]string{"token", "decode", "not-a-token"}, "not a JWS"}, // the argument is read
	} {
		app := newApp()
		app.ExitErrHandler = func(*cli.Context, error) {}
		app.Writer, app.ErrWriter = io.Discard, io.Discard
		err := app.Run(append([]string{"mgw"}, tc.args...))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("mgw %v: %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}
