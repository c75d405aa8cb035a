package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
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
