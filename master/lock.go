package master

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// LockFileName is the file in the run dir whose lock the keeper holds for
// the life of an instance. Two starts on one run dir at the same moment
// both find no control socket; only one gets the lock.
const LockFileName = "mgw.lock"

// lockRunDir takes the run dir's instance lock without waiting, and
// returns the file that holds it: the lock lasts until the file is
// closed, or the process ends. The file is opened close-on-exec, so no
// master or worker holds it on.
func lockRunDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, LockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if errors.Is(err, fs.ErrPermission) {
		return nil, fmt.Errorf("opening %s: %w: an instance of another user may be running with this run dir; run mgw as that user, or give another --run-dir", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("mgw is already running with the run dir %s (another mgw start holds %s); stop it first with mgw stop", dir, path)
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return f, nil
}
