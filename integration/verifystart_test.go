package integration

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestVerifyFailsWhereStartFails: for each thing a start needs that an
// operator can get wrong (the local analytics file, the access log file,
// a limit zone mgw cannot open, a run dir too long for the control
// socket), mgw verify prints a FAIL line naming it and exits 1, and mgw
// start exits 1 too: verify passing means start passes.
func TestVerifyFailsWhereStartFails(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, in *instance) (config string, args []string)
		check string // the FAIL line's name
	}{
		{"analytics file in a missing dir", func(t *testing.T, in *instance) (string, []string) {
			return "\n[analytics]\nfile = \"" + filepath.Join(in.dir, "nosuch", "records.jsonl") + "\"\n", nil
		}, "analytics file"},
		{"access log file under a file", func(t *testing.T, in *instance) (string, []string) {
			f := filepath.Join(in.dir, "plain")
			if err := os.WriteFile(f, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			return "\n[edgemicro.logging]\naccess_log = true\naccess_log_file = \"" + filepath.Join(f, "access.log") + "\"\n", nil
		}, "access log file"},
		{"a limit zone mgw cannot open", func(t *testing.T, in *instance) (string, []string) {
			if err := os.Mkdir(filepath.Join(in.dir, "mgw.zone"), 0o700); err != nil {
				t.Fatal(err)
			}
			return "", nil
		}, "limit zone"},
		{"a run dir too long for a socket", func(t *testing.T, in *instance) (string, []string) {
			long := filepath.Join(in.dir, strings.Repeat("r", 100))
			return "", []string{"--run-dir", long}
		}, "control socket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := newInstance(t, "")
			extra, args := tc.setup(t, in)
			cfg := proxyConfig("http://127.0.0.1:1") + extra
			if strings.Contains(extra, "[edgemicro.logging]") {
				// One logging section: the test's replaces the preamble's.
				cfg = strings.Replace(cfg, "[edgemicro.logging]\nlevel = \"info\"\nto_console = true\n", "", 1)
			}
			in.writeConfig(cfg)
			out, code := in.mgw(append([]string{"verify"}, args...)...)
			if code != 1 || !strings.Contains(out, "FAIL "+tc.check) {
				t.Fatalf("verify: exit %d, want 1 with a FAIL %s line:\n%s", code, tc.check, out)
			}
			if out, code := in.startOnce(append([]string{"--processes", "1"}, args...)...); code != 1 {
				t.Fatalf("start: exit %d, want 1 (verify said it would fail):\n%s", code, out)
			}
		})
	}
}

// startOnce runs mgw start with the instance's config dir and args, for a
// start that is meant to fail: it returns the output and exit status. A
// start that serves instead is stopped (SIGTERM to it, as a service
// manager does) after 30 s and reported as exit 0.
func (in *instance) startOnce(args ...string) (string, int) {
	in.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, mgwBin, append([]string{"start", "--config-dir", in.dir}, args...)...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 20 * time.Second
	cmd.Env = append(os.Environ(), "MGW_CONFIG=", "MGW_RUN_DIR=", "MGW_CONFIG_DIR=", "EDGEMICRO_CONFIG_DIR=", "HOME="+filepath.Dir(in.dir))
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return string(out), 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		in.t.Fatalf("running mgw start: %v", err)
	}
	return string(out), 0
}
