package integration

import (
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mgw-gateway/mgw/internal/logkey"
	"github.com/mgw-gateway/mgw/internal/testutil"
)

// TestWorkerDrainsWhileTheMasterIsStopped: a worker told to stop
// (SIGTERM) while its master is stopped with SIGSTOP drains at once, even
// though its channel to the master is full (Edge mode with analytics,
// under load): its loop never waits to hand the master a stats beat.
func TestWorkerDrainsWhileTheMasterIsStopped(t *testing.T) {
	fe, _ := helloEdge(t)
	in := newInstance(t, edgeConfigNoAuth(fe)+"\n[analytics]\nflushInterval = 100\nbatchSize = 500\n")
	st := in.start(2, edgeFlags(fe)...)

	c := &http.Client{Timeout: 10 * time.Second}
	load := testutil.StartLoad(4, func(i int) error {
		req, _ := http.NewRequest("GET", in.url("/hello/r"+strconv.Itoa(i)), nil)
		return testutil.DoOK(c, req)
	})
	defer load.Stop()
	ok := &load.OK
	in.eventually(20*time.Second, "requests flowing", func() bool { return ok.Load() >= 200 })
	if err := syscall.Kill(st.MasterPID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = syscall.Kill(st.MasterPID, syscall.SIGCONT) }()
	// The records of 3,000 requests are far more than the socket to the
	// master holds; then two stats beats (one a second) find it full.
	stopped := ok.Load()
	in.eventually(60*time.Second, "3,000 requests with the master stopped", func() bool { return ok.Load()-stopped >= 3000 })
	full := time.Now()
	testutil.Poll(10*time.Second, func() bool { return time.Since(full) >= 2*time.Second })

	worker := st.Workers[0].PID
	if err := syscall.Kill(worker, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	in.eventually(30*time.Second, "the worker to drain while the master is stopped", func() bool {
		return logged(in.logs.String(), "drained", worker)
	})
}

// logged reports whether the log lines in logs (the harness's console
// format) hold one with message msg written by process pid.
func logged(logs, msg string, pid int) bool {
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, " "+msg+" ") && strings.Contains(line+" ", " "+logkey.PID+"="+strconv.Itoa(pid)+" ") {
			return true
		}
	}
	return false
}
