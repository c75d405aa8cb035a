package integration

import (
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
	in.start(2)
	st := in.waitServing(2)
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
	for range 20 {
		if code, _ := get(t, in.url("/echo/x")); code != 200 {
			t.Fatalf("GET = %d", code)
		}
	}
}
