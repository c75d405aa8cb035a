package ipc

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"time"
)

// ErrNotRunning is returned by Call when no master answers on the control socket.
var ErrNotRunning = errors.New("mgw is not running")

// Call sends one Control request to the master listening on the control
// socket at path and waits at most timeout for its Reply. A missing socket,
// or one nobody listens on (left behind by a killed master), is
// ErrNotRunning. A socket this user may not connect to is not: it is
// most likely another user's running instance.
func Call(path string, req Control, timeout time.Duration) (Reply, error) {
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if errors.Is(err, fs.ErrPermission) {
		return Reply{}, fmt.Errorf("connecting to the control socket %s: %w: it belongs to an instance another user started; run mgw as that user", path, err)
	}
	if err != nil {
		return Reply{}, fmt.Errorf("%w (%s: %w)", ErrNotRunning, path, err)
	}
	defer c.Close()
	if timeout > 0 {
		_ = c.SetDeadline(time.Now().Add(timeout))
	}
	conn := NewConn(c)
	if err := conn.Send(KindControl, req); err != nil {
		return Reply{}, err
	}
	f, err := conn.Recv()
	if err != nil {
		return Reply{}, fmt.Errorf("waiting for the master's reply: %w", err)
	}
	if f.Kind != KindReply {
		return Reply{}, fmt.Errorf("ipc: master answered with %s, want reply", f.Kind)
	}
	var rep Reply
	if err := f.Decode(&rep); err != nil {
		return Reply{}, err
	}
	return rep, nil
}
