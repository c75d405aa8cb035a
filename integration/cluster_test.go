package integration

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mgw-gateway/mgw/internal/testutil"
	"github.com/mgw-gateway/mgw/ipc"
)

// target starts an httptest backend: /slow answers after two seconds,
// everything else at once with the path it received.
func target(t *testing.T) *httptest.Server {
	t.Helper()
	srv, _ := slowTarget(t)
	return srv
}

// slowTarget is target, and counts the /slow requests that reached it.
func slowTarget(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var slow atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if strings.HasSuffix(r.URL.Path, "/slow") {
			slow.Add(1)
			time.Sleep(2 * time.Second)
		}
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "target saw %s %s", r.Method, r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	return srv, &slow
}

func proxyConfig(targetURL string) string {
	return testutil.Preamble + `[[proxies]]
name = "api"
base_path = "/api"
url = "` + targetURL + `/v1"
`
}

func TestStartStatusStop(t *testing.T) {
	t.Parallel()
	in := newInstance(t, "") // the embedded default config
	st := in.start(4)
	for _, w := range st.Workers {
		if ppid := parentOf(t, w.PID); ppid != st.MasterPID {
			t.Errorf("worker %d has parent %d, want the master %d", w.PID, ppid, st.MasterPID)
		}
	}

	code, body := get(t, in.url("/echo/hello?x=1"))
	if code != 200 || !strings.Contains(body, `"path": "/hello"`) || !strings.Contains(body, `"query": "x=1"`) {
		t.Fatalf("GET /echo/hello = %d %s", code, body)
	}

	out, code := in.mgw("status")
	if code != 0 || !strings.Contains(out, "4 workers:") {
		t.Fatalf("status exited %d:\n%s", code, out)
	}
	for _, w := range st.Workers {
		if !strings.Contains(out, fmt.Sprint(w.PID)) {
			t.Errorf("status text does not list worker pid %d:\n%s", w.PID, out)
		}
	}

	out, code = in.mgw("stop")
	if code != 0 {
		t.Fatalf("stop exited %d: %s", code, out)
	}
	for _, pid := range append([]int{st.MasterPID}, pidsOf(st)...) {
		in.eventually(5*time.Second, fmt.Sprintf("process %d to exit", pid), func() bool { return !alive(pid) })
	}
	if out, code := in.mgw("status"); code != 3 {
		t.Fatalf("status after stop exited %d, want 3: %s", code, out)
	}
	if out, code := in.mgw("stop"); code != 1 {
		t.Fatalf("stop with nothing running exited %d, want 1: %s", code, out)
	}
}

func pidsOf(st ipc.Status) []int {
	var pids []int
	for _, w := range st.Workers {
		pids = append(pids, w.PID)
	}
	return pids
}

// TestReloadUnderLoad reloads 20 times (10 mgw reload, 10 SIGHUP) while
// 64 keep-alive connections send POSTs without retrying, and a slow
// request is in flight across the first reload.
func TestReloadUnderLoad(t *testing.T) {
	t.Parallel()
	tg, slowArrived := slowTarget(t)
	in := newInstance(t, proxyConfig(tg.URL))
	in.start(2)
	first, _ := in.status()

	// 64 keep-alive connections that never retry: a request lost on a
	// reused connection is the race a reload must not lose.
	addr := fmt.Sprintf("127.0.0.1:%d", in.port)
	load := testutil.StartConnLoad(64, addr, "POST /api/load HTTP/1.1\r\nHost: "+addr+"\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello")

	slow := make(chan string, 1)
	go func() {
		c := &http.Client{Timeout: 30 * time.Second}
		resp, err := c.Post(in.url("/api/slow"), "text/plain", strings.NewReader("x"))
		if err != nil {
			slow <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		slow <- fmt.Sprintf("%d %s", resp.StatusCode, b)
	}()
	in.eventually(5*time.Second, "load to flow", func() bool { return load.OK.Load() > 100 })
	in.eventually(5*time.Second, "the slow request to reach the target", func() bool { return slowArrived.Load() == 1 })

	masters := map[int]bool{first.MasterPID: true}
	prev := first
	for i := range 20 {
		if i%2 == 0 {
			if out, code := in.mgw("reload"); code != 0 {
				t.Fatalf("reload %d exited %d: %s", i, code, out)
			}
		} else if err := syscall.Kill(prev.MasterPID, syscall.SIGHUP); err != nil {
			t.Fatalf("SIGHUP to %d: %v", prev.MasterPID, err)
		}
		var st ipc.Status
		in.eventually(15*time.Second, fmt.Sprintf("generation %d", prev.Generation+1), func() bool {
			var ok bool
			st, ok = in.status()
			return ok && st.Generation == prev.Generation+1
		})
		if masters[st.MasterPID] {
			t.Fatalf("reload %d kept master pid %d", i, st.MasterPID)
		}
		masters[st.MasterPID] = true
		prev = st
	}
	load.Stop()

	if got := <-slow; got != "200 target saw POST /v1/slow" {
		t.Errorf("slow request across a reload: %s", got)
	}
	t.Logf("reloads: 20, requests ok: %d, failed: %d", load.OK.Load(), load.Failed.Load())
	if load.Failed.Load() != 0 {
		t.Fatalf("%d requests failed (socket errors or non-2xx) across reloads; first errors: %v", load.Failed.Load(), load.Errors())
	}
	if load.OK.Load() < 1000 {
		t.Fatalf("only %d requests succeeded: the load did not run", load.OK.Load())
	}
	// Old generations leave once drained.
	for pid := range masters {
		if pid != prev.MasterPID {
			in.eventually(15*time.Second, fmt.Sprintf("old master %d to exit", pid), func() bool { return !alive(pid) })
		}
	}
}

func TestKilledWorkerIsReplaced(t *testing.T) {
	t.Parallel()
	in := newInstance(t, "")
	st := in.start(2)
	victim := st.Workers[0].PID
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var now ipc.Status
	in.eventually(5*time.Second, "a replacement worker", func() bool {
		var ok bool
		now, ok = in.status()
		return ok && now.Workers[0].PID != victim && now.Workers[0].PID != 0 && now.Workers[0].State == ipc.StateServing
	})
	if now.MasterPID != st.MasterPID {
		t.Fatalf("master changed from %d to %d", st.MasterPID, now.MasterPID)
	}
	if now.Workers[0].Restarts != 1 {
		t.Errorf("restarts = %d, want 1", now.Workers[0].Restarts)
	}
	if code, _ := get(t, in.url("/echo/after")); code != 200 {
		t.Fatalf("GET after the crash = %d", code)
	}
}

func TestStartAfterKill9(t *testing.T) {
	t.Parallel()
	in := newInstance(t, "")
	st := in.start(2)
	// The keeper first (it would restart the master), then the master
	// and its workers, as an OOM killer or a careless kill -9 would.
	keeper := in.cmd.Process.Pid
	for _, pid := range append([]int{keeper, st.MasterPID}, pidsOf(st)...) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, pid := range append([]int{keeper, st.MasterPID}, pidsOf(st)...) {
		in.eventually(5*time.Second, "killed processes to go", func() bool { return !alive(pid) })
	}
	// mgw.sock and mgw.pid are left behind; start must replace them.
	in.start(2)
	if code, _ := get(t, in.url("/echo/again")); code != 200 {
		t.Fatalf("GET after restart = %d", code)
	}
	if out, code := in.mgwRaw("start", "--port", fmt.Sprint(in.port)); code != 1 || !strings.Contains(out, "already running") {
		t.Fatalf("a second start exited %d: %s", code, out)
	}
}

// TestConcurrentStartsOneWins: two `mgw start` on one run dir at the same
// moment both find no control socket; the run dir's lock lets one run,
// and the other exits 1 saying so, instead of both serving with one
// control socket between them (so that stop ended only one).
func TestConcurrentStartsOneWins(t *testing.T) {
	t.Parallel()
	in := newInstance(t, "")
	ports := []int{in.port, freePort(t)}
	type run struct {
		cmd    *exec.Cmd
		out    testutil.Buffer
		code   int           // the exit status, once exited is closed
		exited chan struct{} // closed when the process has ended
	}
	runs := make([]*run, 2)
	for i, port := range ports {
		r := &run{exited: make(chan struct{})}
		r.cmd = exec.Command(mgwBin, "start", "--processes", "1", "--port", strconv.Itoa(port))
		r.cmd.Env = in.startEnv()
		r.cmd.Stdout, r.cmd.Stderr = &r.out, &r.out
		runs[i] = r
	}
	for _, r := range runs {
		if err := r.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() {
			err := r.cmd.Wait()
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				r.code = ee.ExitCode()
			}
			close(r.exited)
		}()
	}
	t.Cleanup(func() {
		// A start still running when the test ends (it failed) is
		// stopped as a user would, so that its master and workers go too.
		for _, r := range runs {
			_ = r.cmd.Process.Signal(syscall.SIGTERM)
		}
		for _, r := range runs {
			select {
			case <-r.exited:
			case <-time.After(10 * time.Second):
				_ = r.cmd.Process.Kill()
			}
		}
	})
	var winner *run
	var winnerPort int
	select {
	case <-runs[0].exited:
		winner, winnerPort = runs[1], ports[1]
		if runs[0].code != 1 || !strings.Contains(runs[0].out.String(), "already running") {
			t.Fatalf("the losing start exited %d: %s", runs[0].code, runs[0].out.String())
		}
	case <-runs[1].exited:
		winner, winnerPort = runs[0], ports[0]
		if runs[1].code != 1 || !strings.Contains(runs[1].out.String(), "already running") {
			t.Fatalf("the losing start exited %d: %s", runs[1].code, runs[1].out.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("both starts are still running after 20 s")
	}
	in.waitServing(1)
	if code, _ := get(t, fmt.Sprintf("http://127.0.0.1:%d/echo/x", winnerPort)); code != 200 {
		t.Fatalf("the instance that won answers %d", code)
	}
	if out, code := in.mgw("stop"); code != 0 {
		t.Fatalf("stop exited %d: %s", code, out)
	}
	select {
	case <-winner.exited:
		if winner.code != 0 {
			t.Fatalf("the instance that won exited %d after stop: %s", winner.code, winner.out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("stop left the instance that won running")
	}
}

func TestConfigEditInPlace(t *testing.T) {
	t.Parallel()
	tg := target(t)
	cfg := proxyConfig(tg.URL)
	in := newInstance(t, cfg)
	before := in.start(2)

	if code, _ := get(t, in.url("/more/x")); code != 404 {
		t.Fatalf("GET /more before the edit = %d, want 404", code)
	}
	in.writeConfig(cfg + `
[[proxies]]
name = "more"
base_path = "/more"
url = "` + tg.URL + `/other"
`)
	in.eventually(5*time.Second, "the new proxy to serve", func() bool {
		code, body := get(t, in.url("/more/x"))
		return code == 200 && body == "target saw GET /other/x"
	})
	after := in.waitServing(2)
	if fmt.Sprint(pidsOf(after)) != fmt.Sprint(pidsOf(before)) || after.MasterPID != before.MasterPID {
		t.Fatalf("pids changed: before %d %v, after %d %v", before.MasterPID, pidsOf(before), after.MasterPID, pidsOf(after))
	}
	if after.Config.Revision <= before.Config.Revision {
		t.Fatalf("revision %d did not increase from %d", after.Config.Revision, before.Config.Revision)
	}

	// A broken edit is ignored and reported; the last good config serves.
	in.writeConfig(cfg + "\n[[proxies]]\nname = \"broken\"\nbase_path = \"nope\"\n")
	in.eventually(5*time.Second, "the broken edit to be reported", func() bool {
		st, ok := in.status()
		return ok && st.Config.LastError != nil && strings.Contains(*st.Config.LastError, `base_path "nope" must start with /`)
	})
	if code, _ := get(t, in.url("/more/x")); code != 200 {
		t.Fatalf("GET /more after a broken edit = %d, want 200", code)
	}

	// A reload with the broken config fails and the old generation serves on.
	out, code := in.mgw("reload")
	if code != 1 || !strings.Contains(out, "must start with /") {
		t.Fatalf("reload with a broken config exited %d: %s", code, out)
	}
	st := in.waitServing(2)
	if st.MasterPID != before.MasterPID || st.Generation != before.Generation {
		t.Fatalf("after a failed reload: master %d gen %d, want %d gen %d", st.MasterPID, st.Generation, before.MasterPID, before.Generation)
	}
	if code, _ := get(t, in.url("/api/x")); code != 200 {
		t.Fatalf("GET after a failed reload = %d", code)
	}
}

// TestControlSocketGarbage sends garbage and an oversize frame header to
// the control socket: the master answers the next client as before.
func TestControlSocketGarbage(t *testing.T) {
	t.Parallel()
	in := newInstance(t, "")
	in.start(1)
	sock := in.dir + "/mgw.sock"
	for _, payload := range [][]byte{
		[]byte("GET / HTTP/1.1\r\n\r\n"),
		{'M', 'G', 1, byte(ipc.KindControl), 0xff, 0xff, 0xff, 0xff},
		{'M', 'G', 1, byte(ipc.KindControl), 0, 0, 0, 3, '{', '{', '{'},
		{'M', 'G', 9, byte(ipc.KindControl), 0, 0, 0, 0},
	} {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write(payload)
		_ = c.SetReadDeadline(time.Now().Add(6 * time.Second))
		_, _ = io.ReadAll(c)
		c.Close()
	}
	if _, ok := in.status(); !ok {
		t.Fatal("the master stopped answering after garbage on its control socket")
	}
	if code, _ := get(t, in.url("/echo/still")); code != 200 {
		t.Fatalf("GET = %d", code)
	}
}

// TestConnectionsSpreadOverWorkers: 64 keep-alive connections opened at
// once end up spread over the 4 workers, none holding more than twice
// its share. Without balancing, whichever worker runs first takes most
// of such a burst from the shared socket.
func TestConnectionsSpreadOverWorkers(t *testing.T) {
	tgt := target(t)
	in := newInstance(t, testutil.Preamble+`[[proxies]]
name = "api"
base_path = "/api"
url = "`+tgt.URL+`"
`)
	in.start(4)
	const conns = 64
	errs := make(chan error, conns)
	for range conns {
		go func() {
			c, err := net.DialTimeout("tcp", in.url("")[len("http://"):], 5*time.Second)
			if err != nil {
				errs <- err
				return
			}
			t.Cleanup(func() { _ = c.Close() })
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(c, "GET /api/x HTTP/1.1\r\nHost: mgw\r\n\r\n"); err != nil {
				errs <- err
				return
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err == nil {
				_ = resp.Body.Close()
				if resp.StatusCode != 200 {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
			}
			errs <- err
		}()
	}
	for range conns {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	var active []int64
	in.eventually(10*time.Second, "workers to report 64 open connections", func() bool {
		st, _ := in.status()
		active = active[:0]
		var sum int64
		for _, w := range st.Workers {
			active = append(active, w.Active)
			sum += w.Active
		}
		return sum == conns
	})
	for i, n := range active {
		if n > 2*conns/4 {
			t.Fatalf("worker %d holds %d of %d connections: %v", i, n, conns, active)
		}
	}
	t.Logf("connections per worker: %v", active)
}
