package configs

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ExplainAccess turns a "permission denied" on a file into what an
// operator needs to fix it: who owns the file (or the directory that
// refuses), its mode, and who mgw runs as. Any other error is returned as
// it is.
func ExplainAccess(err error) error {
	var pe *fs.PathError
	if !errors.As(err, &pe) || !errors.Is(err, fs.ErrPermission) {
		return err
	}
	path := pe.Path
	// The file itself, or the first directory on its way that refuses.
	what := path
	for dir := path; ; dir = filepath.Dir(dir) {
		if st, serr := os.Stat(dir); serr == nil {
			what = dir
			if dir != path && !st.IsDir() {
				what = path
			}
			break
		}
		if dir == filepath.Dir(dir) {
			break
		}
	}
	st, serr := os.Stat(what)
	if serr != nil {
		return fmt.Errorf("%w (mgw runs as %s)", err, userName(os.Geteuid()))
	}
	owner := "unknown"
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		owner = userName(int(sys.Uid))
	}
	return fmt.Errorf("%w: %s is owned by %s with mode %04o and mgw runs as %s: give that user access to it, to read a file or to write in a directory (chown it, or run the command that wrote it as that user)",
		err, what, owner, st.Mode().Perm(), userName(os.Geteuid()))
}

// userName is "name (uid N)", or "uid N" when the user has no name.
func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return fmt.Sprintf("%s (uid %d)", u.Username, uid)
	}
	return fmt.Sprintf("uid %d", uid)
}

// ExplainListen adds to a "permission denied" from listening on addr, a
// port below 1024, what an operator can do about it; any other error is
// returned as it is.
func ExplainListen(addr string, err error) error {
	// tableflip formats the error it got with %s, which ends the chain:
	// its text is all that is left.
	if !errors.Is(err, fs.ErrPermission) && (err == nil || !strings.Contains(err.Error(), syscall.EACCES.Error())) {
		return err
	}
	if _, p, serr := net.SplitHostPort(addr); serr != nil {
		return err
	} else if port, perr := strconv.Atoi(p); perr != nil || port >= 1024 || port == 0 {
		return err // refused by something else (a security module): no advice fits
	}
	return fmt.Errorf("%w: a port below 1024 needs root or the CAP_NET_BIND_SERVICE capability (AmbientCapabilities=CAP_NET_BIND_SERVICE in a systemd unit, or setcap cap_net_bind_service=+ep on the mgw binary), or take a port of 1024 or more", err)
}
