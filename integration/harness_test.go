package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mgw-gateway/mgw/internal/testutil"
	"github.com/mgw-gateway/mgw/ipc"
)

var mgwBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mgw-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	mgwBin = filepath.Join(dir, "mgw")
	args := []string{"build", "-o", mgwBin}
	if os.Getenv("MGW_RACE") == "1" {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "../cmd/mgw")...)
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building mgw:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// instance is one mgw started by a test, with its own config dir.
type instance struct {
	t    *testing.T
	dir  string
	port int
	cmd  *exec.Cmd
	logs *testutil.Buffer
	pids map[int]bool // every mgw process this test has seen, to clean up
	mu   sync.Mutex
}

// freePort returns a loopback port that was free a moment ago. A concrete
// port, not :0, because a reload re-binds :0 to a new port.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// newInstance prepares a config dir holding config (if not empty) with
// PORT set to a free port.
func newInstance(t *testing.T, config string) *instance {
	t.Helper()
	// The config dir is HOME/.mgw, so that an instance with no config
	// file starts as a user who named nothing: on the embedded default.
	dir := filepath.Join(t.TempDir(), ".mgw")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	in := &instance{t: t, dir: dir, port: freePort(t), logs: &testutil.Buffer{}, pids: map[int]bool{}}
	if config != "" {
		in.writeConfig(config)
	}
	t.Cleanup(in.cleanup)
	return in
}

// writeConfig replaces mgw.toml the way editors do: write, then rename.
func (in *instance) writeConfig(config string) {
	in.t.Helper()
	config = strings.ReplaceAll(config, "${PORT}", strconv.Itoa(in.port))
	tmp := filepath.Join(in.dir, ".mgw.toml.tmp")
	if err := os.WriteFile(tmp, []byte(config), 0o644); err != nil {
		in.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(in.dir, "mgw.toml")); err != nil {
		in.t.Fatal(err)
	}
}

func (in *instance) url(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", in.port, path)
}

// start runs `mgw start`, waits until status reports every worker
// serving, and returns that status. With no config file in the config
// dir, it names no config dir (the dir is HOME/.mgw), so the instance
// runs on the embedded default.
func (in *instance) start(workers int, extra ...string) ipc.Status {
	in.t.Helper()
	in.startKept(workers, extra...)
	return in.waitServing(workers)
}

// startArgs are the arguments of `mgw start` as the harness's start
// gives them: no config dir when it holds no config file (the instance
// then runs on the embedded default, as for a user who named nothing).
func (in *instance) startArgs(workers int, extra ...string) []string {
	args := []string{"start", "--config-dir", in.dir}
	if tomls, _ := filepath.Glob(filepath.Join(in.dir, "*.toml")); len(tomls) == 0 {
		args = []string{"start"}
	}
	return append(append(args, "--processes", strconv.Itoa(workers), "--port", strconv.Itoa(in.port)), extra...)
}

// startEnv is the environment of every mgw the harness runs: HOME is
// above the config dir, so that it is the default one, and no variable
// names another config or run dir.
func (in *instance) startEnv() []string {
	return append(os.Environ(), "MGW_CONFIG=", "MGW_RUN_DIR=", "MGW_CONFIG_DIR=", "EDGEMICRO_CONFIG_DIR=", "HOME="+filepath.Dir(in.dir))
}

// stop runs `mgw stop`, fails the test unless it exits 0, and waits
// until the master it stopped has exited.
func (in *instance) stop() {
	in.t.Helper()
	st, _ := in.status()
	if out, code := in.mgw("stop"); code != 0 {
		in.t.Fatalf("stop exited %d: %s", code, out)
	}
	in.eventually(30*time.Second, "the master to exit", func() bool { return !alive(st.MasterPID) })
}

// waitServing polls status until n workers serve.
func (in *instance) waitServing(n int) ipc.Status {
	in.t.Helper()
	var st ipc.Status
	in.eventually(15*time.Second, fmt.Sprintf("%d workers serving", n), func() bool {
		var ok bool
		st, ok = in.status()
		if !ok || len(st.Workers) != n {
			return false
		}
		for _, w := range st.Workers {
			if w.State != ipc.StateServing || w.PID == 0 {
				return false
			}
		}
		return true
	})
	return st
}

// mgw runs an mgw command against this instance and returns its output and exit status.
func (in *instance) mgw(args ...string) (string, int) {
	in.t.Helper()
	return in.mgwRaw(append(args, "--config-dir", in.dir)...)
}

// mgwRaw runs an mgw command with exactly args.
func (in *instance) mgwRaw(args ...string) (string, int) {
	in.t.Helper()
	cmd := exec.Command(mgwBin, args...)
	cmd.Env = in.startEnv()
	out, err := cmd.CombinedOutput()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			in.t.Fatalf("running mgw %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return string(out), code
}

// status asks the running master for its status; ok is false when none answers.
func (in *instance) status() (ipc.Status, bool) {
	out, code := in.mgw("status", "--json")
	if code != 0 {
		return ipc.Status{}, false
	}
	var st ipc.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		in.t.Fatalf("status --json printed %q: %v", out, err)
	}
	in.remember(st.MasterPID)
	for _, w := range st.Workers {
		in.remember(w.PID)
	}
	return st, true
}

func (in *instance) remember(pid int) {
	if pid <= 0 {
		return
	}
	in.mu.Lock()
	in.pids[pid] = true
	in.mu.Unlock()
}

// eventually fails the test when cond does not hold within timeout.
func (in *instance) eventually(timeout time.Duration, what string, cond func() bool) {
	in.t.Helper()
	testutil.Eventually(in.t, timeout, what, cond)
}

// cleanup stops the instance and kills, by pid, any process it started
// that is still alive; on failure it prints the instance's log.
func (in *instance) cleanup() {
	if _, ok := in.status(); ok {
		in.mgw("stop", "--timeout", "5s")
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	for pid := range in.pids {
		if alive(pid) && isMGW(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if in.t.Failed() {
		in.t.Logf("mgw log:\n%s", in.logs.String())
	}
}

// alive reports whether pid names a process that has not exited.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses; Z is a zombie.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// isMGW reports whether pid runs the mgw binary built for these tests.
func isMGW(pid int) bool {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return err == nil && strings.HasPrefix(exe, mgwBin)
}

// parentOf returns the parent pid of pid.
func parentOf(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatalf("reading /proc/%d/stat: %v", pid, err)
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ppid, _ := strconv.Atoi(fields[1])
	return ppid
}

// get does one request on a fresh connection and returns status and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// getEach sends GET path for i from first to last, one after another on
// new connections, with %d in path replaced by i, and fails the test at
// the first answer whose status is not want.
func (in *instance) getEach(first, last int, path string, want int) {
	in.t.Helper()
	for i := first; i <= last; i++ {
		p := path
		if strings.Contains(p, "%d") {
			p = fmt.Sprintf(path, i)
		}
		if st, body := get(in.t, in.url(p)); st != want {
			in.t.Fatalf("GET %s: %d %s, want %d", p, st, body, want)
		}
	}
}

// spread runs round, which sends perRound requests on new connections,
// until at least two workers have served some, at most 10 times, and
// returns how many rounds ran. Which worker accepts a connection from
// the shared socket is the kernel's choice: sequential requests can all
// land on one worker, and a test of what holds across workers must not
// pass on that.
func (in *instance) spread(perRound uint64, round func()) int {
	in.t.Helper()
	for n := 1; ; n++ {
		round()
		if busy := in.waitRequests(uint64(n) * perRound); busy >= 2 {
			return n
		}
		if n == 10 {
			in.t.Fatalf("after %d rounds of %d requests only one worker had served", n, perRound)
		}
	}
}

// waitRequests polls status until the workers have reported n requests in
// all, and returns how many workers served some.
func (in *instance) waitRequests(n uint64) (busy int) {
	in.t.Helper()
	in.eventually(10*time.Second, fmt.Sprintf("workers to report %d requests", n), func() bool {
		st, _ := in.status()
		var total uint64
		busy = 0
		for _, w := range st.Workers {
			total += w.Requests
			if w.Requests > 0 {
				busy++
			}
		}
		return total >= n
	})
	return busy
}
