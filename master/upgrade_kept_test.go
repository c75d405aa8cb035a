package master

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mgw-gateway/mgw/ipc"
)

// TestKeptRefusal: a reload is refused only for a value it was given
// (the CLI sends only what the command line names) that is not the
// instance's own; log levels compare in any case, against the level the
// new generation would log at.
func TestKeptRefusal(t *testing.T) {
	t.Parallel()
	cfg := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(cfg, []byte("[edgemicro]\nport = 8000\n[edgemicro.logging]\nlevel = \"DEBUG\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	local := &Master{opts: Options{ConfigPath: cfg, WorkerArgs: []string{"--log-level", "info"}}}
	edge := &Master{opts: Options{ConfigPath: cfg, Org: "myorg", Env: "test", Key: "k1", Secret: "s1", WorkerArgs: []string{"--log-level", "info"}}}
	for _, tc := range []struct {
		name string
		m    *Master
		ctl  ipc.Control
		why  string // "": accepted
	}{
		{"nothing given", local, ipc.Control{}, ""},
		{"org of a local instance", local, ipc.Control{Org: "myorg"}, `serves org ""`},
		{"own org and env", edge, ipc.Control{Org: "myorg", Env: "test"}, ""},
		{"other env", edge, ipc.Control{Env: "prod"}, `serves org "myorg" env "test"`},
		{"own key", edge, ipc.Control{KeyDigest: ipc.Digest("k1"), SecretDigest: ipc.Digest("s1")}, ""},
		{"other key", edge, ipc.Control{KeyDigest: ipc.Digest("k2")}, "not the Edge key"},
		{"other secret", edge, ipc.Control{SecretDigest: ipc.Digest("s2")}, "not the Edge secret"},
		// The config now says DEBUG (start's level was info): the new
		// generation logs at debug.
		{"the config's new level", local, ipc.Control{LogLevel: "debug"}, ""},
		{"the config's new level, upper case", local, ipc.Control{LogLevel: "Debug"}, ""},
		{"the start-time level the config no longer gives", local, ipc.Control{LogLevel: "info"}, "would log at debug"},
	} {
		got := tc.m.keptRefusal(tc.ctl)
		if tc.why == "" && got != "" || tc.why != "" && !strings.Contains(got, tc.why) {
			t.Errorf("%s: refusal %q, want %q", tc.name, got, tc.why)
		}
	}
}

// TestNextLogLevel: start's --log-level, which a reload runs again, wins
// over the config; without it the config's level as it is now; a config
// that does not load leaves the level in force.
func TestNextLogLevel(t *testing.T) {
	t.Parallel()
	cfg := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(cfg, []byte("[edgemicro]\nport = 8000\n[edgemicro.logging]\nlevel = \"warn\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m := &Master{opts: Options{ConfigPath: cfg, WorkerArgs: []string{"--log-level", "error"}}}
	broken := &Master{opts: Options{ConfigPath: filepath.Join(t.TempDir(), "missing.toml"), WorkerArgs: []string{"--log-level", "ERROR"}}}
	for _, tc := range []struct {
		m    *Master
		args []string
		want string
	}{
		{m, []string{"start", "--log-level", "TRACE"}, "trace"},
		{m, []string{"start", "--log-level=debug"}, "debug"},
		{m, []string{"start", "-log-level", "info"}, "info"},
		{m, []string{"start", "-c", "x"}, "warn"},
		{m, []string{"start", "--", "--log-level", "debug"}, "warn"},
		{broken, []string{"start"}, "error"},
	} {
		if got := tc.m.nextLogLevel(tc.args); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.args, got, tc.want)
		}
	}
}
