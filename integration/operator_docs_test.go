package integration

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mgw-gateway/mgw/internal/testutil"
)

// shellBlock returns the first ```sh block after the line of doc that
// contains marker.
func shellBlock(t *testing.T, doc, marker string) string {
	t.Helper()
	b, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, marker)
	if i < 0 {
		t.Fatalf("%s has no %q: the test follows that block", doc, marker)
	}
	s = s[i:]
	start := strings.Index(s, "```sh\n")
	if start < 0 {
		t.Fatalf("no ```sh block after %q in %s", marker, doc)
	}
	s = s[start+len("```sh\n"):]
	return s[:strings.Index(s, "```")]
}

// runShell runs script with bash -eux and returns its output.
func runShell(t *testing.T, script string, env ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("bash", "-euxo", "pipefail", "-c", script)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestOperationsInstallSteps follows docs/OPERATIONS.md's install block
// as written, as root, with a throwaway service user and paths under a
// temporary root; then starts the service as the unit does (its
// ExecStart, as its User) and asks it for the demo. It also shows that
// the old way (init as root) is caught by verify with the reason.
func TestOperationsInstallSteps(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the documented install creates a user and runs commands as it: it needs root")
	}
	for _, tool := range []string{"useradd", "userdel", "runuser", "setpriv"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	root := t.TempDir()
	// The service user must reach the temporary root.
	for d := root; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		_ = os.Chmod(d, 0o755)
	}
	bin := filepath.Join(root, "usr/local/bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	exe, err := os.ReadFile(mgwBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "mgw"), exe, 0o755); err != nil {
		t.Fatal(err)
	}
	user := fmt.Sprintf("mgwt%d", os.Getpid()%100000)
	t.Cleanup(func() { _ = exec.Command("userdel", user).Run() })
	port := freePort(t)

	paths := strings.NewReplacer("/etc/mgw", root+"/etc/mgw", "/var/log/mgw", root+"/var/log/mgw",
		"/run/mgw", root+"/run/mgw", "/usr/local/bin", bin)
	userRe := regexp.MustCompile(`(-u|-o|-g|nologin) mgw\b`)
	script := shellBlock(t, "../docs/OPERATIONS.md", "<!-- install-steps")
	script = userRe.ReplaceAllString(paths.Replace(script), "$1 "+user)
	// The demo listens on 8000, which another program may hold here.
	script = strings.ReplaceAll(script, "mgw verify", "mgw verify --port "+strconv.Itoa(port))
	out, err := runShell(t, script, "PATH="+bin+":"+os.Getenv("PATH"))
	if err != nil {
		t.Fatalf("the install steps of docs/OPERATIONS.md failed: %v\n%s", err, out)
	}
	if !strings.Contains(out, "ok   signing key") {
		t.Fatalf("verify did not check the signing key:\n%s", out)
	}

	// The unit's ExecStart, as its User.
	unit, err := os.ReadFile("../scripts/mgw.service")
	if err != nil {
		t.Fatal(err)
	}
	var execStart, execStop string
	sc := bufio.NewScanner(strings.NewReader(string(unit)))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "ExecStart="); ok {
			execStart = paths.Replace(v)
		}
		if v, ok := strings.CutPrefix(sc.Text(), "ExecStop="); ok {
			execStop = paths.Replace(v)
		}
	}
	if execStart == "" || !strings.Contains(string(unit), "User=mgw") {
		t.Fatalf("scripts/mgw.service has no ExecStart or does not run as User=mgw")
	}
	asUser := func(cmdline string, extra ...string) *exec.Cmd {
		args := append([]string{"--reuid", user, "--regid", user, "--init-groups", "--"}, strings.Fields(cmdline)...)
		return exec.Command("setpriv", append(args, extra...)...)
	}
	logs := &testutil.Buffer{}
	start := asUser(execStart, "--port", strconv.Itoa(port), "--processes", "1")
	start.Stdout, start.Stderr = logs, logs
	if err := start.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- start.Wait() }()
	t.Cleanup(func() {
		// As systemd stops the unit: its ExecStop, else KillSignal
		// (SIGTERM) to the main process.
		if execStop != "" {
			if out, err := asUser(execStop).CombinedOutput(); err != nil {
				t.Errorf("the unit's ExecStop: %v\n%s", err, out)
			}
		} else {
			_ = start.Process.Signal(syscall.SIGTERM)
		}
		select {
		case err := <-exited:
			t.Logf("the unit's main process ended: %v", err)
		case <-time.After(10 * time.Second):
			t.Errorf("the service did not exit after its ExecStop")
		}
		// Nothing may outlive the test: kill, by pid, what still runs as the user.
		out, _ := exec.Command("ps", "-o", "pid=", "-u", user).Output()
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	url := fmt.Sprintf("http://127.0.0.1:%d/echo/hello", port)
	if !testutil.Poll(15*time.Second, func() bool {
		select {
		case err := <-exited:
			t.Fatalf("the service exited (%v):\n%s", err, logs.String())
		default:
		}
		resp, err := httpGet(url)
		return err == nil && resp == 200
	}) {
		t.Fatalf("the service did not serve %s:\n%s", url, logs.String())
	}

	// The old steps ran init as root: the key is root's, mode 0600.
	key := filepath.Join(root, "etc/mgw/jwt-private.pem")
	if err := os.Chown(key, 0, 0); err != nil {
		t.Fatal(err)
	}
	cmd := asUser(filepath.Join(bin, "mgw") + " verify --config-dir " + root + "/etc/mgw --run-dir " + root + "/run/mgw --port " + strconv.Itoa(freePort(t)))
	b, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(b), "FAIL config") || !strings.Contains(string(b), key+" is owned by root (uid 0) with mode 0600 and mgw runs as "+user) {
		t.Fatalf("verify as the service user with root's key: %v, want a failure naming owner, mode and user:\n%s", err, b)
	}
}

// httpGet returns the status of one GET.
func httpGet(url string) (int, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// TestReadmeQuickStart follows README's quick start as written, with a
// fresh HOME (no ~/.mgw) and `go run ./cmd/mgw` standing for the built
// binary; only the port differs, since 8000 may be taken here.
func TestReadmeQuickStart(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	home := t.TempDir()
	port := strconv.Itoa(freePort(t))
	fix := strings.NewReplacer("go run ./cmd/mgw", mgwBin, ":8000", ":"+port)
	env := []string{"HOME=" + home, "MGW_CONFIG=", "MGW_CONFIG_DIR=", "EDGEMICRO_CONFIG_DIR=", "MGW_RUN_DIR=", "EDGEMICRO_ORG=", "EDGEMICRO_ENV="}
	startLine := strings.TrimSpace(fix.Replace(shellBlock(t, "../README.md", "## Quick start")))
	if startLine != mgwBin+" start" {
		t.Fatalf("README's quick start is no longer `go run ./cmd/mgw start`: %q; update this test", startLine)
	}
	logs := &testutil.Buffer{}
	start := exec.Command(mgwBin, "start", "--port", port, "--processes", "1")
	start.Env = append(os.Environ(), env...)
	start.Stdout, start.Stderr = logs, logs
	if err := start.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- start.Wait() }()
	t.Cleanup(func() {
		_ = exec.Command(mgwBin, "stop", "--run-dir", filepath.Join(home, ".mgw")).Run()
		select {
		case err := <-exited:
			t.Logf("the unit's main process ended: %v", err)
		case <-time.After(10 * time.Second):
			_ = start.Process.Kill()
		}
	})
	next := fix.Replace(shellBlock(t, "../README.md", "In another terminal:"))
	var out string
	if !testutil.Poll(15*time.Second, func() bool {
		var err error
		out, err = runShell(t, next, env...)
		if err == nil && strings.Contains(out, "HTTP/1.1 200") && strings.Contains(out, "mgw is running") {
			return true
		}
		select {
		case err := <-exited:
			t.Fatalf("mgw start exited (%v):\n%s", err, logs.String())
		default:
		}
		return false
	}) {
		t.Fatalf("README's second block did not show the echo and a running mgw:\n%s\nlog:\n%s", out, logs.String())
	}
}
