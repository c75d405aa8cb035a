package master

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/mgw-gateway/mgw/ipc"
)

// controlRequest is one command from the command line, with the channel
// its reply goes to.
type controlRequest struct {
	ctl   ipc.Control
	reply chan ipc.Reply
}

// controlSocket is this generation's control socket. Each generation binds
// a fresh socket at a temporary name and renames it over mgw.sock, so the
// path always reaches the newest master, and removes the path on exit only
// while it still names its own socket.
type controlSocket struct {
	path string
	ln   *net.UnixListener
	info os.FileInfo
}

// listenControl creates the control socket at path, mode 0600, and
// delivers each request to reqs until done is closed.
// Every connection's handler is counted in wg, so the master can let the
// last replies reach their readers before it exits.
func listenControl(path string, reqs chan<- controlRequest, done <-chan struct{}, wg *sync.WaitGroup) (*controlSocket, error) {
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	_ = os.Remove(tmp)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("creating control socket: %w", err)
	}
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("securing control socket: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("installing control socket: %w", err)
	}
	info, err := os.Stat(path)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("installing control socket: %w", err)
	}
	cs := &controlSocket{path: path, ln: ln, info: info}
	go cs.serve(reqs, done, wg)
	return cs, nil
}

func (cs *controlSocket) serve(reqs chan<- controlRequest, done <-chan struct{}, wg *sync.WaitGroup) {
	for {
		c, err := cs.ln.Accept()
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			handleControl(c, reqs, done)
		}()
	}
}

func handleControl(c net.Conn, reqs chan<- controlRequest, done <-chan struct{}) {
	defer c.Close()
	conn := ipc.NewConn(c)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	f, err := conn.Recv()
	if err != nil {
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	var rep ipc.Reply
	var ctl ipc.Control
	if f.Kind != ipc.KindControl {
		rep.Error = fmt.Sprintf("expected a control message, got %s", f.Kind)
	} else if err := f.Decode(&ctl); err != nil {
		rep.Error = err.Error()
	} else {
		req := controlRequest{ctl: ctl, reply: make(chan ipc.Reply, 1)}
		select {
		case reqs <- req:
			select {
			case rep = <-req.reply:
			case <-done:
				select {
				case rep = <-req.reply:
				default:
					rep.Error = "the master exited before answering"
				}
			}
		case <-done:
			rep.Error = "the master is exiting"
		}
	}
	_ = conn.Send(ipc.KindReply, rep)
}

// owned reports whether the path still names this socket.
func (cs *controlSocket) owned() bool {
	info, err := os.Stat(cs.path)
	return err == nil && os.SameFile(info, cs.info)
}

// close stops accepting; remove also unlinks the path if it is still ours.
func (cs *controlSocket) close(remove bool) {
	if remove && cs.owned() {
		_ = os.Remove(cs.path)
	}
	_ = cs.ln.Close()
}

// checkRunning fails when a master answers on the control socket at path.
// A socket nobody answers on is stale, whatever else is in the run dir
// (a master killed a moment ago may still accept a connection while it
// exits, and never answer): it is removed.
func checkRunning(path string) error {
	if _, err := os.Stat(path); err != nil {
		return nil
	}
	rep, err := ipc.Call(path, ipc.Control{Command: ipc.CommandStatus}, 3*time.Second)
	if err == nil && rep.Status != nil {
		return fmt.Errorf("mgw is already running (master pid %d, control socket %s); stop it first with mgw stop", rep.Status.MasterPID, path)
	}
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if errors.Is(err, os.ErrPermission) {
		return err // another user's instance, perhaps running: never removed
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing stale control socket: %w", err)
	}
	return nil
}
