package integration

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/mgw-gateway/mgw/internal/testutil"
)

// commonArgs are every common flag README names, each with a value.
var commonArgs = []string{
	"--config", "/nonexistent/mgw.toml", "--config-dir", "/nonexistent", "--run-dir", "/nonexistent",
	"-o", "org", "-e", "env", "-k", "key", "-s", "secret", "-p", "2", "-r", "8000", "--log-level", "info",
}

// TestEveryCommandTakesTheCommonFlags: the real binary accepts every
// common flag after the name of each command but the management ones
// (--help then prints the help: nothing runs); reload's help lists only
// the flags it acts on.
func TestEveryCommandTakesTheCommonFlags(t *testing.T) {
	t.Parallel()
	in := newInstance(t, "")
	for _, cmd := range []string{
		"start", "stop", "reload", "status", "init", "verify", "config show", "config import",
		"token get", "token decode", "token verify", "completion",
	} {
		args := append(append(strings.Fields(cmd), commonArgs...), "--help")
		out, code := in.mgwRaw(args...)
		if code != 0 || !strings.Contains(out, "USAGE:") {
			t.Errorf("mgw %s with the common flags: exit %d:\n%s", cmd, code, out)
		}
	}
	out, _ := in.mgwRaw("reload", "--help")
	_, options, _ := strings.Cut(out, "OPTIONS:")
	for _, ignored := range []string{"--org", "--env", "--key", "--secret", "--log-level"} {
		if strings.Contains(options, ignored) {
			t.Errorf("reload --help lists %s, which a reload cannot change:\n%s", ignored, out)
		}
	}
}

// TestReloadRefusesWhatItCannotChange: reload given an org, an Edge key
// or a log level other than the instance's refuses with exit 1 and a
// reason, and changes nothing; given the instance's own (as a script
// passing start's flags does), it reloads.
func TestReloadRefusesWhatItCannotChange(t *testing.T) {
	t.Parallel()
	in := newInstance(t, testutil.Preamble+"[[proxies]]\nname = \"echo\"\nbase_path = \"/echo\"\nurl = \"http://127.0.0.1:1\"\n")
	in.start(1)
	before, _ := in.status()
	for _, tc := range []struct {
		args []string
		why  string
	}{
		{[]string{"-k", "another-key"}, "not the Edge key"},
		{[]string{"-s", "another-secret"}, "not the Edge secret"},
		{[]string{"-o", "org", "-e", "env"}, `serves org ""`},
		{[]string{"--log-level", "debug"}, "the new generation would log at info"},
	} {
		out, code := in.mgw(append([]string{"reload"}, tc.args...)...)
		if code != 1 || !strings.Contains(out, tc.why) {
			t.Fatalf("reload %v: exit %d, want 1 saying %q:\n%s", tc.args, code, tc.why, out)
		}
	}
	if after, _ := in.status(); after.Generation != before.Generation || after.MasterPID != before.MasterPID {
		t.Fatalf("a refused reload changed the instance: %+v → %+v", before, after)
	}
	if out, code := in.mgw("reload", "--log-level", "info"); code != 0 {
		t.Fatalf("reload with the instance's own log level: exit %d:\n%s", code, out)
	}
}

// TestReloadIgnoresExportedEdgeVariables: a local-mode instance reloads
// from a shell that exports EDGEMICRO_ORG, ENV, KEY and SECRET (as
// edgemicro's setup has users do): only the command line asks a reload
// to keep a value, and an -o given there that is not the instance's is
// still refused. A log level compares in any case.
func TestReloadIgnoresExportedEdgeVariables(t *testing.T) {
	t.Parallel()
	in := newInstance(t, testutil.Preamble+"[[proxies]]\nname = \"echo\"\nbase_path = \"/echo\"\nurl = \"http://127.0.0.1:1\"\n")
	in.start(1)
	exported := []string{"EDGEMICRO_ORG=myorg", "EDGEMICRO_ENV=test", "EDGEMICRO_KEY=some-key", "EDGEMICRO_SECRET=some-secret"}
	reload := func(args ...string) (string, int) {
		cmd := exec.Command(mgwBin, append(append([]string{"reload"}, args...), "--config-dir", in.dir)...)
		cmd.Env = append(in.startEnv(), exported...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return string(out), ee.ExitCode()
		} else if err != nil {
			t.Fatalf("running mgw reload: %v", err)
		}
		return string(out), 0
	}
	before, _ := in.status()
	if out, code := reload("-o", "otherorg"); code != 1 || !strings.Contains(out, `--org "otherorg"`) {
		t.Fatalf("reload -o otherorg: exit %d, want 1 naming the org:\n%s", code, out)
	}
	if after, _ := in.status(); after.Generation != before.Generation {
		t.Fatalf("a refused reload changed the generation: %d → %d", before.Generation, after.Generation)
	}
	if out, code := reload(); code != 0 {
		t.Fatalf("reload with EDGEMICRO_* exported: exit %d:\n%s", code, out)
	}
	st := in.waitServing(1)
	if st.Generation == before.Generation {
		t.Fatalf("the reload did not start a new generation (%d)", st.Generation)
	}
	if out, code := reload("--log-level", "INFO"); code != 0 {
		t.Fatalf("reload --log-level INFO on an instance at info: exit %d:\n%s", code, out)
	}
}
