package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mgw-gateway/mgw/ipc"
)

// TestStoppedWorkerIsReplaced: a worker stopped with SIGSTOP shows as
// unresponsive in status, and is then killed and replaced; requests keep
// being answered by the instance.
func TestStoppedWorkerIsReplaced(t *testing.T) {
	t.Parallel()
	in := newInstance(t, "")
	st := in.start(2)
	stopped := st.Workers[0].PID
	if err := syscall.Kill(stopped, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = syscall.Kill(stopped, syscall.SIGCONT) }()
	in.eventually(10*time.Second, "the stopped worker to show as unresponsive", func() bool {
		now, _ := in.status()
		return len(now.Workers) == 2 && now.Workers[0].PID == stopped && now.Workers[0].State == ipc.StateUnresponsive
	})
	in.eventually(20*time.Second, "the stopped worker to be replaced", func() bool {
		now, _ := in.status()
		return len(now.Workers) == 2 && now.Workers[0].PID != stopped && now.Workers[0].State == ipc.StateServing
	})
	in.eventually(5*time.Second, "the stopped worker to be gone", func() bool { return !alive(stopped) })
	now, _ := in.status()
	if now.MasterPID != st.MasterPID || now.Workers[0].Restarts != 1 || now.Workers[1].PID != st.Workers[1].PID {
		t.Fatalf("after the replacement: %+v, before %+v", now, st)
	}
	in.getEach(1, 20, "/echo/x", 200)
}

// TestWorkerSIGTERMedDrainsPastTheSilenceLimit: a worker sent SIGTERM
// (twice) by hand while it proxies a request its target holds for 12 s,
// longer than the master lets a worker be silent, shows as draining,
// answers that request, and is then replaced; the master never takes it
// for stuck (when the drain blocked the worker's loop, its stats beats
// stopped and the master killed it at 10 s, cutting the request).
func TestWorkerSIGTERMedDrainsPastTheSilenceLimit(t *testing.T) {
	t.Parallel()
	const hold = 12 * time.Second
	held := make(chan struct{}, 1)
	tg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/held") {
			return
		}
		held <- struct{}{}
		select {
		case <-time.After(hold):
		case <-r.Context().Done():
		}
		_, _ = io.WriteString(w, "held")
	}))
	t.Cleanup(tg.Close)
	in := newInstance(t, proxyConfig(tg.URL))
	st := in.start(1)
	worker := st.Workers[0].PID

	answer := make(chan string, 1)
	go func() {
		c := &http.Client{Timeout: 3 * hold}
		resp, err := c.Get(in.url("/api/held"))
		if err != nil {
			answer <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answer <- strconv.Itoa(resp.StatusCode) + " " + string(b)
	}()
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("the request did not reach the target")
	}
	for range 2 {
		if err := syscall.Kill(worker, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		in.eventually(10*time.Second, "the worker to show as draining", func() bool {
			now, _ := in.status()
			return len(now.Workers) == 1 && now.Workers[0].PID == worker && now.Workers[0].State == ipc.StateDraining
		})
	}
	select {
	case got := <-answer:
		if got != "200 held" {
			t.Fatalf("the request held through the drain: %s, want 200 held", got)
		}
	case <-time.After(3 * hold):
		t.Fatal("no answer to the request held through the drain")
	}
	in.eventually(20*time.Second, "the drained worker to be replaced", func() bool {
		now, _ := in.status()
		return len(now.Workers) == 1 && now.Workers[0].PID != worker && now.Workers[0].State == ipc.StateServing
	})
	if logs := in.logs.String(); strings.Contains(logs, "worker unresponsive") || strings.Contains(logs, "missed its stats beats") || !logged(logs, "drained", worker) {
		t.Fatalf("the draining worker was taken for stuck, or did not drain:\n%s", logs)
	}
	in.getEach(1, 5, "/api/x", 200)
}

// TestFullRunDirDoesNotCrashWorkers: with the run dir on a tmpfs too
// small for the limit zone (a full disk), mgw starts with the zone in
// memory, and hundreds of new quota keys crash no worker (a sparse zone
// file would SIGBUS on the first page the disk cannot hold).
func TestFullRunDirDoesNotCrashWorkers(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs in a mount namespace needs root here")
	}
	if _, err := exec.LookPath("nsenter"); err != nil {
		t.Skip("no nsenter")
	}
	tgt, _ := countingTarget(t)
	in := newInstance(t, "")
	if out, code := in.mgw("init"); code != 0 {
		t.Fatal(out)
	}
	const apps = 300
	var extra strings.Builder
	for i := range apps {
		fmt.Fprintf(&extra, "[[apps]]\nname = \"app%d\"\ndeveloper_email = \"d@example.com\"\nkey = \"key-%d\"\nsecret = \"s\"\nproducts = [\"limited\"]\n", i, i)
	}
	in.writeConfig(localAuthConfig(tgt.URL, `["oauth", "quota"]`, "quota = 1000\nquotaInterval = 1\nquotaTimeUnit = \"minute\"", extra.String()))
	run := filepath.Join(t.TempDir(), "run")
	if err := os.Mkdir(run, 0o700); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf("mount -t tmpfs -o size=256k tmpfs %s && exec %s start --config-dir %s --run-dir %s --processes 2 --port %d",
		run, mgwBin, in.dir, run, in.port)
	cmd := exec.Command("unshare", "--mount", "sh", "-c", script)
	cmd.Stdout, cmd.Stderr = in.logs, in.logs
	cmd.Env = in.startEnv()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exit := make(chan error, 1)
	go func() { exit <- cmd.Wait() }()
	keeper := cmd.Process.Pid // unshare and sh exec into mgw start
	in.remember(keeper)
	nsStatus := func() (ipc.Status, bool) {
		out, err := exec.Command("nsenter", "--target", strconv.Itoa(keeper), "--mount", mgwBin, "status", "--json", "--run-dir", run).Output()
		var st ipc.Status
		if err != nil || json.Unmarshal(out, &st) != nil {
			return st, false
		}
		for _, w := range st.Workers {
			in.remember(w.PID)
		}
		in.remember(st.MasterPID)
		return st, true
	}
	in.eventually(20*time.Second, "2 workers serving", func() bool {
		st, ok := nsStatus()
		return ok && len(st.Workers) == 2 && st.Workers[0].State == "serving" && st.Workers[1].State == "serving"
	})
	before, _ := nsStatus()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	failed := 0
	for i := 0; i < apps && failed < 3; i++ {
		req, _ := http.NewRequest("GET", in.url("/api/x"), nil)
		req.Header.Set("x-api-key", fmt.Sprintf("key-%d", i))
		resp, err := c.Do(req)
		if err != nil {
			failed++
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			failed++
		}
	}
	after, ok := nsStatus()
	if !ok || failed != 0 || after.MasterPID != before.MasterPID || after.Workers[0].Restarts+after.Workers[1].Restarts != 0 {
		t.Fatalf("%d of %d requests failed; workers before %+v, after %+v (ok %v)", failed, apps, before.Workers, after.Workers, ok)
	}
	if !strings.Contains(in.logs.String(), "the limit zone lives in memory") {
		t.Error("no warning that the limit zone lives in memory")
	}
	_ = syscall.Kill(keeper, syscall.SIGTERM)
	select {
	case err := <-exit:
		if err != nil {
			t.Fatalf("mgw start: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("mgw start did not exit after SIGTERM")
	}
}
