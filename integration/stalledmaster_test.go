package integration

import (
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mgw-gateway/mgw/internal/testutil"
	"github.com/mgw-gateway/mgw/ipc"
	"github.com/mgw-gateway/mgw/master"
)

// TestStalledMasterKillsNoWorker: a master stopped with SIGSTOP for
// longer than a worker may stay silent blames no worker for it once it
// runs again: it notices its own stall, the workers it started keep
// serving (same pids, no restart), and requests succeed throughout.
func TestStalledMasterKillsNoWorker(t *testing.T) {
	t.Parallel()
	in := newInstance(t, "")
	st := in.start(2)

	c := &http.Client{Timeout: 10 * time.Second}
	load := testutil.StartLoad(2, func(i int) error {
		req, _ := http.NewRequest("GET", in.url("/echo/r"+strconv.Itoa(i)), nil)
		return testutil.DoOK(c, req)
	})
	defer load.Stop()
	ok, failed := &load.OK, &load.Failed
	in.eventually(20*time.Second, "requests flowing", func() bool { return ok.Load() >= 100 })

	if err := syscall.Kill(st.MasterPID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = syscall.Kill(st.MasterPID, syscall.SIGCONT) }()
	stopped, before := time.Now(), ok.Load()
	testutil.Poll(2*master.ReplaceAfter, func() bool { return time.Since(stopped) >= master.ReplaceAfter+2*time.Second })
	during := ok.Load() - before
	if err := syscall.Kill(st.MasterPID, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}

	// Its first check after the stall, then checks that judge the workers
	// on the beats they sent.
	const noticed, killing = "the master did not run", "worker unresponsive: killing"
	in.eventually(20*time.Second, "the master's first beat check after the stall", func() bool {
		logs := in.logs.String()
		return strings.Contains(logs, noticed) || strings.Contains(logs, killing)
	})
	resumed := time.Now()
	testutil.Poll(10*time.Second, func() bool { return time.Since(resumed) >= master.UnresponsiveAfter })
	now, okst := in.status()
	if !okst {
		t.Fatal("no status after the stall")
	}
	for i, w := range now.Workers {
		if w.PID != st.Workers[i].PID || w.Restarts != 0 || w.State != ipc.StateServing {
			t.Errorf("worker %d after the master's stall: %+v, before %+v", i, w, st.Workers[i])
		}
	}
	if logs := in.logs.String(); strings.Contains(logs, killing) || !strings.Contains(logs, noticed) {
		t.Errorf("the log says a worker was killed (%t), or not that the master noticed its stall (%t)", strings.Contains(logs, killing), !strings.Contains(logs, noticed))
	}
	if during == 0 || failed.Load() != 0 {
		t.Fatalf("with the master stopped %d requests completed, and %d failed in all", during, failed.Load())
	}
	t.Logf("%d requests completed while the master was stopped", during)
}
