package integration

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mgw-gateway/mgw/integration/fakeedge"
)

// kept is an `mgw start` whose exit status the test waits for.
type kept struct {
	cmd  *exec.Cmd
	exit chan int // the status, once it has exited
}

// startKept runs `mgw start` without waiting for it to serve, and
// reports its exit status.
func (in *instance) startKept(workers int, extra ...string) *kept {
	in.t.Helper()
	cmd := exec.Command(mgwBin, in.startArgs(workers, extra...)...)
	cmd.Stdout, cmd.Stderr = in.logs, in.logs
	cmd.Env = in.startEnv()
	if err := cmd.Start(); err != nil {
		in.t.Fatal(err)
	}
	in.cmd = cmd
	in.remember(cmd.Process.Pid)
	k := &kept{cmd: cmd, exit: make(chan int, 1)}
	go func() {
		err := cmd.Wait()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode() // -1 when killed by a signal
		} else if err != nil {
			code = -2
		}
		k.exit <- code
	}()
	return k
}

// killMaster kills the master pid with SIGKILL, as an OOM killer would,
// and waits until another master answers (the keeper starts it).
func (in *instance) killMaster(pid int) {
	in.t.Helper()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		in.t.Fatal(err)
	}
	in.eventually(20*time.Second, "a new master", func() bool {
		now, ok := in.status()
		return ok && now.MasterPID != pid
	})
}

// stopKept stops the instance with `mgw stop` and fails the test unless
// stop and then the kept start exit 0.
func (in *instance) stopKept(k *kept) {
	in.t.Helper()
	if out, code := in.mgw("stop"); code != 0 {
		in.t.Fatalf("stop exited %d: %s", code, out)
	}
	if code := k.waitExit(in.t, "mgw stop"); code != 0 {
		in.t.Fatalf("mgw start exited %d after mgw stop, want 0", code)
	}
}

// waitExit waits for the kept process to exit and returns its status.
func (k *kept) waitExit(t *testing.T, what string) int {
	t.Helper()
	select {
	case code := <-k.exit:
		return code
	case <-time.After(30 * time.Second):
		t.Fatalf("mgw start did not exit after %s", what)
		return 0
	}
}

// alive reports whether the kept process still runs.
func (k *kept) alive() bool {
	select {
	case code := <-k.exit:
		k.exit <- code
		return false
	default:
		return true
	}
}

// pidFile returns the pid mgw.pid names.
func (in *instance) pidFile() int {
	b, err := os.ReadFile(filepath.Join(in.dir, "mgw.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// checkTree checks what stays true of a serving instance whatever
// happened before: mgw.pid names the master, which is the keeper's child
// (once the generation before it has exited), and the workers are the
// master's children.
func (in *instance) checkTree(k *kept, workers int) {
	in.t.Helper()
	var st = in.waitServing(workers)
	in.eventually(10*time.Second, "the master to be the keeper's child", func() bool {
		st = in.waitServing(workers)
		return alive(st.MasterPID) && parentOf(in.t, st.MasterPID) == k.cmd.Process.Pid
	})
	if pid := in.pidFile(); pid != st.MasterPID {
		in.t.Fatalf("mgw.pid names %d, the serving master is %d", pid, st.MasterPID)
	}
	for _, w := range st.Workers {
		if ppid := parentOf(in.t, w.PID); ppid != st.MasterPID {
			in.t.Fatalf("worker %d has parent %d, want the master %d", w.PID, ppid, st.MasterPID)
		}
	}
	if !k.alive() {
		in.t.Fatal("mgw start exited while the instance serves")
	}
}

// TestStartStaysForTheInstance: the process `mgw start` started stays
// across reloads (mgw reload, and SIGHUP sent to it), passes signals on to
// the serving master, and exits 0 after SIGTERM to it.
func TestStartStaysForTheInstance(t *testing.T) {
	t.Parallel()
	in := newInstance(t, "")
	k := in.startKept(2)
	in.checkTree(k, 2)
	first, _ := in.status()

	if out, code := in.mgw("reload"); code != 0 {
		t.Fatalf("reload exited %d: %s", code, out)
	}
	in.checkTree(k, 2)
	if code, _ := get(t, in.url("/echo/a")); code != 200 {
		t.Fatalf("GET after reload = %d", code)
	}

	// SIGHUP to the started process is a reload of the instance.
	if err := k.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	in.eventually(20*time.Second, "generation 3", func() bool {
		st, ok := in.status()
		return ok && st.Generation == first.Generation+2
	})
	in.checkTree(k, 2)
	if code, _ := get(t, in.url("/echo/b")); code != 200 {
		t.Fatalf("GET after SIGHUP = %d", code)
	}

	st, _ := in.status()
	if err := k.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := k.waitExit(t, "SIGTERM"); code != 0 {
		t.Fatalf("mgw start exited %d after SIGTERM, want 0", code)
	}
	for _, pid := range append([]int{st.MasterPID}, pidsOf(st)...) {
		if alive(pid) {
			t.Errorf("process %d of the instance outlived mgw start", pid)
		}
	}
	if _, err := os.Stat(filepath.Join(in.dir, "mgw.pid")); !os.IsNotExist(err) {
		t.Errorf("mgw.pid left after a clean stop: %v", err)
	}
}

// TestDeadMasterIsRestarted: a master killed with SIGKILL is replaced by
// the keeper; `mgw stop` then ends the instance and mgw start exits 0.
func TestDeadMasterIsRestarted(t *testing.T) {
	t.Parallel()
	in := newInstance(t, "")
	k := in.startKept(2)
	in.checkTree(k, 2)
	st, _ := in.status()
	in.killMaster(st.MasterPID)
	in.checkTree(k, 2)
	if code, _ := get(t, in.url("/echo/again")); code != 200 {
		t.Fatalf("GET after the restart = %d", code)
	}
	in.stopKept(k)
}

// TestOldMasterKilledDuringReload: the new generation serves on its own
// when the old master is killed before it was told the new one serves,
// and mgw.pid names it.
func TestOldMasterKilledDuringReload(t *testing.T) {
	t.Parallel()
	in := newInstance(t, "")
	k := in.startKept(2)
	in.checkTree(k, 2)
	old, _ := in.status()
	reload := make(chan string, 1)
	go func() {
		out, code := in.mgw("reload")
		reload <- fmt.Sprintf("%d %s", code, out)
	}()
	// The next generation is the old master's child that is no worker;
	// kill the old master once the new one has its sockets and starts
	// workers (a death before that leaves the keeper to restart one).
	var next int
	in.eventually(10*time.Second, "the next generation's workers", func() bool {
		for _, c := range childrenOf(old.MasterPID) {
			if !isWorker(c) && len(childrenOf(c)) > 0 {
				next = c
				return true
			}
		}
		return false
	})
	in.remember(next)
	if err := syscall.Kill(old.MasterPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-reload // it fails or not, depending on the moment; what serves matters
	in.eventually(20*time.Second, "the next generation to serve", func() bool {
		st, ok := in.status()
		return ok && st.MasterPID != old.MasterPID
	})
	st, _ := in.status()
	if st.MasterPID != next {
		t.Fatalf("master %d serves, want the generation started by the reload, %d (the keeper restarted one instead)", st.MasterPID, next)
	}
	in.checkTree(k, 2)
	if code, _ := get(t, in.url("/echo/after")); code != 200 {
		t.Fatalf("GET = %d", code)
	}
}

// TestStopThenStart: when mgw stop exits 0 the port is free, so a start
// right after it succeeds, every time.
func TestStopThenStart(t *testing.T) {
	t.Parallel()
	in := newInstance(t, "")
	for i := range 5 {
		k := in.startKept(2)
		in.waitServing(2)
		if code, _ := get(t, in.url("/echo/x")); code != 200 {
			t.Fatalf("round %d: GET = %d", i, code)
		}
		if out, code := in.mgw("stop"); code != 0 {
			t.Fatalf("round %d: stop exited %d: %s", i, code, out)
		}
		// The port is free the moment stop says so.
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", in.port))
		if err != nil {
			t.Fatalf("round %d: after mgw stop: %v", i, err)
		}
		ln.Close()
		if code := k.waitExit(t, "mgw stop"); code != 0 {
			t.Fatalf("round %d: mgw start exited %d, want 0:\n%s", i, code, in.logs.String())
		}
	}
}

// TestStartRightAfterKill9: a master killed with SIGKILL (with its keeper,
// so nothing restarts it) leaves mgw.sock and mgw.pid behind, and workers
// that are still draining; a start at once succeeds, every time.
func TestStartRightAfterKill9(t *testing.T) {
	t.Parallel()
	in := newInstance(t, "")
	k := in.startKept(2)
	for i := range 3 {
		st := in.waitServing(2)
		keeper := k.cmd.Process.Pid
		_ = syscall.Kill(keeper, syscall.SIGKILL)
		// Not waitExit: the master still holds the output pipes.
		in.eventually(10*time.Second, "the keeper to die", func() bool { return !alive(keeper) })
		_ = syscall.Kill(st.MasterPID, syscall.SIGKILL)
		// No wait for the master's exit, nor its workers'.
		k = in.startKept(2)
		in.eventually(20*time.Second, "a new master", func() bool {
			now, ok := in.status()
			return ok && now.MasterPID != st.MasterPID && len(now.Workers) == 2
		})
		if code, _ := get(t, in.url("/echo/again")); code != 200 {
			t.Fatalf("round %d: GET after the new start = %d", i, code)
		}
		if !k.alive() {
			t.Fatalf("round %d: the new mgw start exited", i)
		}
	}
	in.stopKept(k)
}

// TestSignalsDuringStart: a start waiting on its first Edge download
// answers signals: SIGTERM ends it cleanly without serving, SIGHUP is a
// reload once it serves.
func TestSignalsDuringStart(t *testing.T) {
	t.Parallel()
	fe := startFakeEdge(t)
	t.Run("SIGTERM", func(t *testing.T) {
		in, k, _ := startOnHangingEdge(t, fe)
		if err := k.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := k.waitExit(t, "SIGTERM during start"); code != 0 {
			t.Fatalf("mgw start exited %d after SIGTERM during start, want 0", code)
		}
		if _, ok := in.status(); ok {
			t.Fatal("an instance answers after a stop during start")
		}
	})
	t.Run("SIGHUP", func(t *testing.T) {
		in, k, release := startOnHangingEdge(t, fe)
		// To the master itself, as systemd's kill -HUP $MAINPID did.
		var master int
		for _, c := range childrenOf(k.cmd.Process.Pid) {
			master = c
		}
		in.remember(master)
		if err := syscall.Kill(master, syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		release()
		in.eventually(30*time.Second, "generation 2 to serve", func() bool {
			st, ok := in.status()
			return ok && st.Generation == 2 && len(st.Workers) == 1 && st.Workers[0].State == "serving"
		})
		in.checkTree(k, 1)
	})
}

// childrenOf lists the live children of pid.
func childrenOf(pid int) []int {
	var out []int
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, tk := range tasks {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, tk.Name()))
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil && alive(c) {
				out = append(out, c)
			}
		}
	}
	return out
}

// isWorker reports whether pid runs `mgw worker`.
func isWorker(pid int) bool {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	args := strings.Split(string(b), "\x00")
	return len(args) > 1 && args[1] == "worker"
}

// startOnHangingEdge starts, without waiting for it to serve, a
// one-worker instance in Edge mode whose bootstrap download waits until
// release is called (then comes from fe), and returns once its master
// has asked: a start that waits on its first Edge download.
func startOnHangingEdge(t *testing.T, fe *fakeedge.Server) (in *instance, k *kept, release func()) {
	t.Helper()
	hang, asked, release := hangingEdge(t, fe.URL)
	in = newInstance(t, strings.ReplaceAll(edgeConfigNoAuth(fe), fe.URL+"/edgemicro/bootstrap", hang.URL+"/edgemicro/bootstrap"))
	k = in.startKept(1, edgeFlags(fe)...)
	select {
	case <-asked:
	case <-time.After(20 * time.Second):
		t.Fatal("the master never asked Edge")
	}
	return in, k, release
}

// hangingEdge is an Edge whose answers wait until release is called,
// then come from fe.
func hangingEdge(t *testing.T, feURL string) (srv *httptest.Server, asked <-chan struct{}, release func()) {
	t.Helper()
	u, _ := url.Parse(feURL)
	proxy := httputil.NewSingleHostReverseProxy(u)
	gate := make(chan struct{})
	first := make(chan struct{}, 1)
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case first <- struct{}{}:
		default:
		}
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	var once bool
	release = func() {
		if !once {
			once = true
			close(gate)
		}
	}
	t.Cleanup(func() { release(); srv.Close() })
	return srv, first, release
}

// TestHealthEndpoints: on the metrics port, /healthz is 200 while the
// master runs and /readyz is 200 only while the generation serves: every
// probe during a reload finds a serving generation, and a stop that
// drains a slow request turns /readyz to 503 while /healthz stays 200.
func TestHealthEndpoints(t *testing.T) {
	t.Parallel()
	tg := target(t)
	metricsPort := freePort(t)
	in := newInstance(t, proxyConfig(tg.URL)+fmt.Sprintf("[metrics]\nport = %d\naddress = \"127.0.0.1\"\n", metricsPort))
	k := in.startKept(2)
	in.waitServing(2)
	probe := func(path string) (int, string) {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d%s", metricsPort, path))
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	if code, body := probe("/healthz"); code != 200 || body != "ok" {
		t.Fatalf("/healthz = %d %q", code, body)
	}
	if code, body := probe("/readyz"); code != 200 || body != "ready" {
		t.Fatalf("/readyz = %d %q", code, body)
	}

	// Probes all through a reload.
	done := make(chan struct{})
	bad := make(chan string, 1)
	probes := 0
	go func() {
		defer close(bad)
		for {
			select {
			case <-done:
				return
			default:
			}
			probes++
			code, body := probe("/readyz")
			if code == 0 {
				// A connection cut during the hand-over of the metrics
				// socket (seen about once in ten reloads on a loaded
				// machine) costs a prober one try; kubelet's default
				// failureThreshold is 3. Two in a row is a failure.
				code, body = probe("/readyz")
			}
			if code != 200 {
				bad <- fmt.Sprintf("%d %s", code, body)
				return
			}
		}
	}()
	if out, code := in.mgw("reload"); code != 0 {
		t.Fatalf("reload exited %d: %s", code, out)
	}
	close(done)
	if b, failed := <-bad; failed {
		t.Fatalf("a /readyz probe during the reload answered %s", b)
	}
	if probes == 0 {
		t.Fatal("no probe ran during the reload")
	}

	// A stop drains a slow request: not ready, still live.
	slow := make(chan int, 1)
	go func() {
		c := &http.Client{Timeout: 30 * time.Second}
		resp, err := c.Post(in.url("/api/slow"), "text/plain", strings.NewReader("x"))
		if err != nil {
			slow <- 0
			return
		}
		resp.Body.Close()
		slow <- resp.StatusCode
	}()
	in.waitActive(1)
	stopped := make(chan int, 1)
	go func() { _, code := in.mgw("stop"); stopped <- code }()
	in.eventually(10*time.Second, "/readyz to say draining", func() bool {
		code, body := probe("/readyz")
		return code == 503 && body == "draining"
	})
	if code, body := probe("/healthz"); code != 200 {
		t.Fatalf("/healthz while draining = %d %q", code, body)
	}
	if code := <-slow; code != 200 {
		t.Fatalf("the slow request in flight across the stop got %d", code)
	}
	if code := <-stopped; code != 0 {
		t.Fatalf("stop exited %d", code)
	}
	if code := k.waitExit(t, "mgw stop"); code != 0 {
		t.Fatalf("mgw start exited %d", code)
	}
}

// waitActive polls status until the workers hold n open connections.
func (in *instance) waitActive(n int64) {
	in.t.Helper()
	in.eventually(10*time.Second, fmt.Sprintf("%d open connections", n), func() bool {
		st, _ := in.status()
		var total int64
		for _, w := range st.Workers {
			total += w.Active
		}
		return total >= n
	})
}

// TestPID1 runs mgw start as PID 1 of a new PID namespace, as a container
// runtime does: it serves, reloads, replaces a master killed with
// SIGKILL and reaps the orphans that leaves, and exits 0 on SIGTERM.
func TestPID1(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("no unshare")
	}
	if os.Geteuid() != 0 {
		t.Skip("a PID namespace needs root here")
	}
	in := newInstance(t, "")
	args := append([]string{"--pid", "--fork", "--mount-proc", mgwBin}, in.startArgs(2)...)
	cmd := exec.Command("unshare", args...)
	cmd.Stdout, cmd.Stderr = in.logs, in.logs
	cmd.Env = in.startEnv()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exit := make(chan int, 1)
	go func() {
		err := cmd.Wait()
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			exit <- ee.ExitCode()
		case err != nil:
			exit <- -2
		default:
			exit <- 0
		}
	}()
	// Its pid as seen from here: the child of unshare.
	var keeper int
	in.eventually(10*time.Second, "mgw start in the namespace", func() bool {
		for _, c := range childrenOf(cmd.Process.Pid) {
			keeper = c
		}
		return keeper != 0
	})
	in.remember(keeper)
	st := in.waitServing(2)
	if st.MasterPID > 100 {
		t.Logf("master pid %d in the namespace", st.MasterPID)
	}
	if code, _ := get(t, in.url("/echo/one")); code != 200 {
		t.Fatalf("GET = %d", code)
	}
	if out, code := in.mgw("reload"); code != 0 {
		t.Fatalf("reload exited %d: %s", code, out)
	}
	in.waitServing(2)
	if code, _ := get(t, in.url("/echo/two")); code != 200 {
		t.Fatalf("GET after reload = %d", code)
	}

	// Kill the master (its pid as seen from here): the keeper starts
	// another, and the old workers, orphaned to PID 1, are reaped.
	before, _ := in.status()
	var master int
	for _, c := range childrenOf(keeper) {
		if !isWorker(c) {
			master = c
		}
	}
	old := childrenOf(master)
	if master == 0 || len(old) != 2 {
		t.Fatalf("keeper %d: master %d with children %v", keeper, master, old)
	}
	if err := syscall.Kill(master, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	in.eventually(20*time.Second, "a new master", func() bool {
		now, ok := in.status()
		return ok && now.MasterPID != before.MasterPID && len(now.Workers) == 2
	})
	in.eventually(10*time.Second, "the old workers to be reaped", func() bool {
		for _, pid := range append(old, master) {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
				return false // alive, or a zombie nobody reaped
			}
		}
		return true
	})
	if code, _ := get(t, in.url("/echo/three")); code != 200 {
		t.Fatalf("GET after the restart = %d", code)
	}

	if err := syscall.Kill(keeper, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-exit:
		if code != 0 {
			t.Fatalf("PID 1 exited %d after SIGTERM, want 0", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("PID 1 did not exit after SIGTERM")
	}
}

// TestReloadTakesWorkersAndPort: mgw reload -p N and -r PORT start the
// new generation with N workers on PORT (and a master the keeper restarts
// keeps them); --config naming another file, and -p 0, are refused with
// exit 1 and change nothing.
func TestReloadTakesWorkersAndPort(t *testing.T) {
	t.Parallel()
	in := newInstance(t, "")
	k := in.startKept(2)
	in.checkTree(k, 2)

	out, code := in.mgw("reload", "-p", "3")
	if code != 0 || !strings.Contains(out, "3 workers") {
		t.Fatalf("reload -p 3 exited %d: %s", code, out)
	}
	in.checkTree(k, 3)

	newPort := freePort(t)
	if out, code := in.mgw("reload", "-r", strconv.Itoa(newPort)); code != 0 {
		t.Fatalf("reload -r exited %d: %s", code, out)
	}
	in.port = newPort
	in.checkTree(k, 3)
	if code, _ := get(t, in.url("/echo/moved")); code != 200 {
		t.Fatalf("GET on the new port = %d", code)
	}

	before, _ := in.status()
	other := filepath.Join(t.TempDir(), "other.toml")
	if err := os.WriteFile(other, []byte("[edgemicro]\nport = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"reload", "--config", other}, {"reload", "-p", "0"}} {
		out, code := in.mgw(args...)
		if code != 1 || out == "" {
			t.Fatalf("%v exited %d: %s", args, code, out)
		}
	}
	if after, _ := in.status(); after.Generation != before.Generation || after.MasterPID != before.MasterPID {
		t.Fatalf("a refused reload changed the instance: %+v → %+v", before, after)
	}

	// A restarted master keeps what the reloads set.
	in.killMaster(before.MasterPID)
	in.checkTree(k, 3)
	if code, _ := get(t, in.url("/echo/restarted")); code != 200 {
		t.Fatalf("GET after the restart = %d", code)
	}
}
