package master

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mgw-gateway/mgw/ipc"
	"github.com/mgw-gateway/mgw/worker/balance"
)

// Process is a running worker process.
type Process interface {
	Pid() int
	Signal(sig os.Signal) error
}

// Spawner starts worker processes. The supervisor depends on this seam so
// its logic runs in tests with fake processes.
type Spawner interface {
	// Spawn starts worker id and returns it with the master's end of its
	// IPC channel. exited is called once, from any goroutine, when the
	// process has ended.
	Spawn(id int, exited func(error)) (Process, *ipc.Conn, error)
}

// Clock is the supervisor's source of time, injected so tests never sleep.
type Clock interface {
	Now() time.Time
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}

// execSpawner starts workers as `<executable> worker --id N …`, each with
// the listening socket at ipc.ListenerFD, its channel at ipc.ChannelFD and
// the limit zone at ipc.ZoneFD and the generation's balance table at
// ipc.BalanceFD.
type execSpawner struct {
	executable string
	args       []string // after "worker --id N"
	listener   *os.File
	zone       *os.File
	balance    *balance.Table
	env        []string
}

// workerEnv returns the master's environment without tableflip's sentinel,
// so a worker can never mistake its descriptors for an upgrade's, nor
// variables meant only for the next master generation.
//
// Unless the user set GOMAXPROCS, each worker gets an equal share of the
// CPUs (at least one): N workers on N cores each run one scheduler
// thread, as nginx's workers do, instead of N×N threads contending. On
// the 2-core bench this is worth about 15% of throughput.
func workerEnv(workers int) []string {
	var env []string
	if _, set := os.LookupEnv("GOMAXPROCS"); !set {
		env = append(env, "GOMAXPROCS="+strconv.Itoa(max(1, runtime.NumCPU()/max(1, workers))))
	}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "TABLEFLIP_") || strings.HasPrefix(kv, "MGW_UPGRADE_") ||
			strings.HasPrefix(kv, envGeneration+"=") || strings.HasPrefix(kv, KeeperEnv+"=") ||
			strings.HasPrefix(kv, envProcesses+"=") || strings.HasPrefix(kv, envPort+"=") || strings.HasPrefix(kv, envRevision+"=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func (s *execSpawner) Spawn(id int, exited func(error)) (Process, *ipc.Conn, error) {
	conn, child, err := ipc.Pair()
	if err != nil {
		return nil, nil, err
	}
	defer child.Close()
	cmd := exec.Command(s.executable, append([]string{"worker", "--id", strconv.Itoa(id)}, s.args...)...)
	cmd.Env = append(s.env, ipc.BalanceEnv+"="+strconv.Itoa(ipc.BalanceFD))
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	cmd.ExtraFiles = []*os.File{s.listener, child, s.zone, s.balance.File()} // fds 3 to 6
	// Own process group: a Ctrl-C in the terminal reaches only the
	// master, which drains the workers in order. A worker learns of its
	// master's death from EOF on the channel, and drains.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("spawning worker %d: %w", id, err)
	}
	go func() {
		err := cmd.Wait()
		s.balance.Leave(id) // the others stop leaving it connections
		exited(err)
	}()
	return execProcess{cmd.Process}, conn, nil
}

type execProcess struct{ p *os.Process }

func (e execProcess) Pid() int                   { return e.p.Pid }
func (e execProcess) Signal(sig os.Signal) error { return e.p.Signal(sig) }
