package integration

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mgw-gateway/mgw/internal/testutil"
)

// gatedTarget answers at once, except /v1/gate, which it answers only
// once release is called (arrived receives when such a request came).
func gatedTarget(t *testing.T) (srv *httptest.Server, arrived <-chan struct{}, release func()) {
	t.Helper()
	gate := make(chan struct{})
	in := make(chan struct{}, 16)
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/v1/gate" {
			in <- struct{}{}
			<-gate
		}
		fmt.Fprintf(w, "target saw %s %s", r.Method, r.URL.Path)
	}))
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(func() { release(); srv.Close() })
	return srv, in, release
}

// queuedGet connects to addr at once (an error is what a client sees
// when nothing holds the port: connection refused), then sends a GET on
// that connection in the background and reports its answer.
func queuedGet(addr, path string) (<-chan string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	out := make(chan string, 1)
	go func() {
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(60 * time.Second))
		if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path); err != nil {
			out <- err.Error()
			return
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			out <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		out <- fmt.Sprintf("%d %s", resp.StatusCode, b)
	}()
	return out, nil
}

// awaitAnswer waits for a queuedGet's answer.
func awaitAnswer(t *testing.T, what string, ch <-chan string) string {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(60 * time.Second):
		t.Fatalf("%s: no answer", what)
		return ""
	}
}

// killMasterInBetween stops the keeper (so that it cannot restart a
// master yet) and kills the serving master with SIGKILL. resume lets the
// keeper go on.
func killMasterInBetween(t *testing.T, k *kept, st statusLike) (resume func()) {
	t.Helper()
	keeper := k.cmd.Process.Pid
	if err := syscall.Kill(keeper, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume = func() {
		if !resumed {
			resumed = true
			_ = syscall.Kill(keeper, syscall.SIGCONT)
		}
	}
	t.Cleanup(resume)
	if err := syscall.Kill(st.master, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	return resume
}

// waitGone waits until the killed master and every worker of it have
// exited: then no process but the keeper holds the listening sockets.
func (in *instance) waitGone(st statusLike) {
	in.t.Helper()
	in.eventually(30*time.Second, "the killed master's workers to exit", func() bool {
		for _, pid := range append([]int{st.master}, st.workers...) {
			if alive(pid) {
				return false
			}
		}
		return true
	})
}

// statusLike is the processes of a serving generation.
type statusLike struct {
	master  int
	workers []int
}

func (in *instance) serving(k *kept, workers int) statusLike {
	in.t.Helper()
	in.checkTree(k, workers)
	st, _ := in.status()
	return statusLike{st.MasterPID, pidsOf(st)}
}

// TestKilledMasterClientsQueue: while a master killed with SIGKILL is
// restarted by the keeper, the keeper holds the listening sockets (the
// gateway's and the metrics one), so connections made in between wait in
// the backlog and the restarted master answers them: a client that
// connects again and again sees no refused connection and no error. A
// request the killed master's worker had in flight completes.
func TestKilledMasterClientsQueue(t *testing.T) {
	t.Parallel()
	tg, arrived, release := gatedTarget(t)
	metricsPort := freePort(t)
	in := newInstance(t, proxyConfig(tg.URL)+"[metrics]\naddress = \"127.0.0.1\"\nport = "+strconv.Itoa(metricsPort)+"\n")
	k := in.startKept(2)
	st := in.serving(k, 2)
	addr := fmt.Sprintf("127.0.0.1:%d", in.port)
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", metricsPort)

	inflight, err := queuedGet(addr, "/api/gate")
	if err != nil {
		t.Fatal(err)
	}
	<-arrived

	var mu sync.Mutex
	var firstErrs []string
	c := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	load := testutil.StartLoad(4, func(int) error {
		resp, err := c.Get(in.url("/api/x"))
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != 200 {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		if err != nil {
			mu.Lock()
			if len(firstErrs) < 5 {
				firstErrs = append(firstErrs, err.Error())
			}
			mu.Unlock()
		}
		return err
	})
	stopLoad := sync.OnceFunc(load.Stop)
	defer stopLoad()
	in.eventually(10*time.Second, "load to flow", func() bool { return load.OK.Load() > 50 })

	resume := killMasterInBetween(t, k, st)
	// The in-flight request is answered by its worker, which drains
	// without its master.
	release()
	if got := awaitAnswer(t, "the request in flight", inflight); got != "200 target saw GET /v1/gate" {
		t.Fatalf("the request in flight when the master died: %s", got)
	}
	in.waitGone(st)
	queued, err := queuedGet(addr, "/api/queued")
	if err != nil {
		t.Fatalf("a connection while no master serves: %v (the keeper must hold the socket)", err)
	}
	probe, err := queuedGet(metricsAddr, "/healthz")
	if err != nil {
		t.Fatalf("a probe while no master serves: %v (the keeper must hold the metrics socket)", err)
	}
	resume()

	if got := awaitAnswer(t, "the queued request", queued); got != "200 target saw GET /v1/queued" {
		t.Fatalf("the request queued while no master served: %s", got)
	}
	if got := awaitAnswer(t, "the queued probe", probe); !strings.HasPrefix(got, "200 ") {
		t.Fatalf("the probe queued while no master served: %s", got)
	}
	now := in.serving(k, 2)
	if now.master == st.master {
		t.Fatal("the killed master still serves")
	}
	before := load.OK.Load()
	in.eventually(20*time.Second, "load to flow after the restart", func() bool { return load.OK.Load() > before+50 })
	stopLoad()
	t.Logf("requests ok: %d, failed: %d", load.OK.Load(), load.Failed.Load())
	if n := load.Failed.Load(); n != 0 {
		t.Fatalf("%d requests failed across the master's death; first: %v", n, firstErrs)
	}
}

// TestKilledMasterAfterPortChange: after a reload moved the gateway to
// another port, the keeper holds the new port's socket, not the old one:
// a connection to the new port made while no master serves is answered
// by the restarted master, and the old port refuses.
func TestKilledMasterAfterPortChange(t *testing.T) {
	t.Parallel()
	in := newInstance(t, "")
	k := in.startKept(2)
	in.checkTree(k, 2)
	oldPort, newPort := in.port, freePort(t)
	if out, code := in.mgw("reload", "-r", strconv.Itoa(newPort)); code != 0 {
		t.Fatalf("reload -r exited %d: %s", code, out)
	}
	in.port = newPort
	st := in.serving(k, 2)
	if code, _ := get(t, in.url("/echo/moved")); code != 200 {
		t.Fatalf("GET on the new port = %d", code)
	}

	resume := killMasterInBetween(t, k, st)
	in.waitGone(st)
	queued, err := queuedGet(fmt.Sprintf("127.0.0.1:%d", newPort), "/echo/queued")
	if err != nil {
		t.Fatalf("a connection to the new port while no master serves: %v (the keeper must hold the new port's socket)", err)
	}
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", oldPort), 5*time.Second); err == nil {
		c.Close()
		t.Fatal("the old port accepts a connection: the keeper holds a socket nobody serves")
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("the old port: %v, want connection refused", err)
	}
	resume()
	if got := awaitAnswer(t, "the queued request", queued); !strings.HasPrefix(got, "200 ") {
		t.Fatalf("the request queued while no master served: %s", got)
	}
	in.checkTree(k, 2)
	if code, _ := get(t, in.url("/echo/again")); code != 200 {
		t.Fatalf("GET after the restart = %d", code)
	}
}

// TestStopRefusesThoughTheKeeperHolds: a stop (mgw stop, or SIGTERM to
// mgw start) makes the keeper let go of the sockets with the master, so
// new connections are refused at once while the workers drain (the
// request in flight completes), and the stop frees the port.
func TestStopRefusesThoughTheKeeperHolds(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"mgw stop", "SIGTERM"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			tg, arrived, release := gatedTarget(t)
			in := newInstance(t, proxyConfig(tg.URL))
			k := in.startKept(2)
			in.checkTree(k, 2)
			addr := fmt.Sprintf("127.0.0.1:%d", in.port)
			inflight, err := queuedGet(addr, "/api/gate")
			if err != nil {
				t.Fatal(err)
			}
			<-arrived
			stopped := make(chan string, 1)
			if how == "mgw stop" {
				go func() {
					out, code := in.mgw("stop")
					stopped <- fmt.Sprintf("%d %s", code, out)
				}()
			} else if err := k.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			in.eventually(10*time.Second, "new connections to be refused during the drain", func() bool {
				c, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err == nil {
					c.Close()
				}
				return errors.Is(err, syscall.ECONNREFUSED)
			})
			release()
			if got := awaitAnswer(t, "the request in flight", inflight); got != "200 target saw GET /v1/gate" {
				t.Fatalf("the request in flight at the stop: %s", got)
			}
			if how == "mgw stop" {
				if got := <-stopped; !strings.HasPrefix(got, "0 ") {
					t.Fatalf("mgw stop: %s", got)
				}
			}
			if code := k.waitExit(t, how); code != 0 {
				t.Fatalf("mgw start exited %d after %s, want 0", code, how)
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				t.Fatalf("the port after the stop: %v", err)
			}
			ln.Close()
		})
	}
}

// TestKilledMasterTLSClientQueues: with TLS on the gateway (the workers
// handshake, the socket is the same TCP socket), a client that connects
// while no master serves completes its handshake and gets its answer from
// the restarted master.
func TestKilledMasterTLSClientQueues(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	in := newInstance(t, "")
	sc, sk := ca.issue(t, "127.0.0.1", x509.ExtKeyUsageServerAuth)
	writeFile(t, in.dir, "server.pem", sc)
	writeFile(t, in.dir, "server.key", sk)
	tg := target(t)
	in.writeConfig(proxyConfig(tg.URL) + "[edgemicro.ssl]\ncert = \"server.pem\"\nkey = \"server.key\"\n")
	k := in.startKept(2)
	st := in.serving(k, 2)

	resume := killMasterInBetween(t, k, st)
	in.waitGone(st)
	raw, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", in.port), 5*time.Second)
	if err != nil {
		t.Fatalf("a TLS client's connection while no master serves: %v", err)
	}
	defer raw.Close()
	answered := make(chan string, 1)
	go func() {
		_ = raw.SetDeadline(time.Now().Add(60 * time.Second))
		c := tls.Client(raw, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
		if _, err := fmt.Fprintf(c, "GET /api/tls HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
			answered <- err.Error()
			return
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			answered <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		answered <- fmt.Sprintf("%d %s", resp.StatusCode, b)
	}()
	resume()
	if got := awaitAnswer(t, "the queued TLS request", answered); got != "200 target saw GET /v1/tls" {
		t.Fatalf("the TLS request queued while no master served: %s", got)
	}
}

// TestKilledMasterAfterOldGenerationQuit: SIGQUIT to a replaced
// generation still draining a request does not make the keeper let go of
// the serving generation's sockets: a later SIGKILL of the serving master
// still leaves connections waiting in the backlog, answered by the master
// the keeper restarts.
func TestKilledMasterAfterOldGenerationQuit(t *testing.T) {
	t.Parallel()
	tg, arrived, release := gatedTarget(t)
	in := newInstance(t, proxyConfig(tg.URL))
	k := in.startKept(1)
	old := in.serving(k, 1)
	addr := fmt.Sprintf("127.0.0.1:%d", in.port)
	inflight, err := queuedGet(addr, "/api/gate")
	if err != nil {
		t.Fatal(err)
	}
	<-arrived
	if out, code := in.mgw("reload"); code != 0 {
		t.Fatalf("reload exited %d: %s", code, out)
	}
	// The new master is the old one's child until that one exits.
	var now statusLike
	in.eventually(10*time.Second, "the next generation to serve", func() bool {
		st, ok := in.status()
		now = statusLike{st.MasterPID, pidsOf(st)}
		return ok && st.MasterPID != old.master && len(now.workers) == 1
	})
	if !alive(old.master) {
		t.Fatalf("after the reload: master %d, the old one %d alive %v", now.master, old.master, alive(old.master))
	}
	if err := syscall.Kill(old.master, syscall.SIGQUIT); err != nil {
		t.Fatal(err)
	}
	in.waitGone(old)
	release()
	_ = awaitAnswer(t, "the request the old generation had", inflight)

	resume := killMasterInBetween(t, k, now)
	in.waitGone(now)
	queued, err := queuedGet(addr, "/api/queued")
	if err != nil {
		t.Fatalf("a connection while no master serves: %v (the old generation's SIGQUIT made the keeper let go)", err)
	}
	resume()
	if got := awaitAnswer(t, "the queued request", queued); got != "200 target saw GET /v1/queued" {
		t.Fatalf("the request queued while no master served: %s", got)
	}
	in.checkTree(k, 1)
}

// TestStopWithTheKeeperStopped: mgw stop while the keeper (mgw start) is
// SIGSTOPped cannot have the keeper let go of the socket; the master
// shuts it down itself, so the port refuses at once, and mgw stop says
// the keeper did not answer. Once it runs again, mgw start exits 0.
func TestStopWithTheKeeperStopped(t *testing.T) {
	t.Parallel()
	in := newInstance(t, "")
	k := in.startKept(1)
	in.checkTree(k, 1)
	addr := fmt.Sprintf("127.0.0.1:%d", in.port)
	keeper := k.cmd.Process.Pid
	if err := syscall.Kill(keeper, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = syscall.Kill(keeper, syscall.SIGCONT)
		}
	}
	t.Cleanup(resume)
	out, code := in.mgw("stop")
	if code != 0 || !strings.Contains(out, "mgw stopped") || !strings.Contains(out, "did not let go of the listening sockets") {
		t.Fatalf("mgw stop exited %d: %s", code, out)
	}
	if c, err := net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
		c.Close()
		t.Fatal("the port accepts after mgw stop returned, though the keeper is stopped")
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial after the stop: %v, want connection refused", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the port after the stop: %v", err)
	}
	ln.Close()
	resume()
	if code := k.waitExit(t, "mgw stop"); code != 0 {
		t.Fatalf("mgw start exited %d once it ran again, want 0", code)
	}
}
