package mgwcmd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/internal/logkey"
)

// logSettings is what the root logger is built from.
type logSettings struct {
	level       string
	console     bool
	dir         string
	maxSizeMB   int
	rotateHours int
	maxFiles    int
	// accessFile is access_log_file: the access log's own file, relative
	// to dir unless absolute; "" for the main log.
	accessFile string
	// config is the file the settings came from ("" for the embedded
	// default): the master's log file follows its edits.
	config string
}

// settingsFrom takes the logging section of the configuration at path
// (the embedded default when empty); a config that does not load yields
// the defaults, and the master reports the real error.
func settingsFrom(path, levelFlag string) logSettings {
	var snap *configs.Snapshot
	var err error
	if path == "" {
		snap, err = configs.Default(os.LookupEnv)
	} else {
		snap, err = configs.Load(path, os.LookupEnv)
	}
	s := logSettings{level: "info"}
	if err == nil {
		l := snap.Config.Edgemicro.Logging
		s = logSettings{level: l.Level, console: l.ToConsole, dir: l.Dir,
			maxSizeMB: l.MaxSizeMB, rotateHours: l.RotateInterval, maxFiles: l.MaxFiles,
			accessFile: l.AccessLogFile}
	}
	if levelFlag != "" {
		s.level = levelFlag
	}
	s.config = path
	return s
}

func parseLevel(s string) (zerolog.Level, error) {
	switch s {
	case "none":
		return zerolog.Disabled, nil
	case "":
		return zerolog.InfoLevel, nil
	}
	l, err := zerolog.ParseLevel(s)
	if err != nil || l == zerolog.NoLevel {
		return zerolog.InfoLevel, fmt.Errorf("log level %q is not one of error, warn, info, debug, trace, none", s)
	}
	return l, nil
}

// newLogger builds the root logger writing to w: JSON lines, or console
// lines when console is set. It carries no component: the package that
// runs the process (master, worker) adds it with the pid, once; lines
// this package writes itself go through as.
func newLogger(w io.Writer, s logSettings) (zerolog.Logger, error) {
	lvl, err := parseLevel(s.level)
	if err != nil {
		return zerolog.Nop(), err
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	// A duration field's name says its unit (logkey.UptimeMS): Dur
	// writes milliseconds, as a decimal number.
	zerolog.DurationFieldUnit = time.Millisecond
	zerolog.DurationFieldInteger = false
	if s.console {
		noColor := true
		if f, ok := w.(*os.File); ok {
			noColor = !isatty.IsTerminal(f.Fd())
		}
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05.000", NoColor: noColor}
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

// logFile is one log file of the instance: dir/mgw.log, which descriptor
// 2 of the master and of every worker points at, or the access log file
// the workers write. Every process that writes it opens it for appending
// (O_APPEND, one write per line or per batch of whole lines, so lines of
// different processes never interleave).
//
// With max_size_mb set, each write holds an flock of the file's directory
// while it checks the size and writes: a write that would take the file
// past the cap first rotates it (mgw.log becomes mgw.log.1, older ones
// shift), so whichever process writes, the file stays within the cap.
// A process that finds another one rotated the file (its path names a new
// file) reopens before it writes. The master also rotates by age and, on
// SIGUSR1 (logrotate's signal, which it passes on to its workers), every
// process reopens.
//
// No process ever waits unboundedly for another: a writer waits for the
// lock at most lockWait, then writes without it, and until that wait ends
// it does not wait again. A
// holder that is stopped (SIGSTOP, a frozen cgroup, a debugger) thus costs
// each other process one lockWait, and the file is then not rotated (the
// renames of several processes unordered would shift one rotated file
// onto another): the cap is passed by the lines written meanwhile; the process warns (at most once a minute, with
// the count). The master's periodic Rotate never waits: when the lock is
// taken it skips that tick. Where the directory cannot be opened or locked
// at all (some NFS mounts), the process warns once that the cap is
// approximate: every process then checks and rotates unordered.
type logFile struct {
	mu sync.Mutex
	// fd is a descriptor pointed at the file besides f (2 for mgw.log, so
	// that a panic's trace reaches it too); -1 for none.
	fd int
	// watchOnly: this process never writes the file, only rotates it by
	// age (the master and the access log).
	watchOnly bool
	f         *os.File // the open file; nil when watchOnly
	lock      *os.File // the file's directory; nil when it cannot be opened
	path      string
	id        [2]uint64     // device and inode of the file f (or path) is
	maxBytes  int64         // rotate before a write would pass this size; 0: never by size
	maxAge    time.Duration // rotate when the file is older; 0: never by age
	maxFiles  int           // rotated files kept
	opened    time.Time     // when the file was created (its birth, else its first sight)
	// config is the configuration file the rotation settings come from;
	// seen is its modification time and size when they were last read,
	// followed when Write last looked.
	config   string
	seen     [2]int64
	followed time.Time
	// lockWait is how long a write waits for the directory lock; 0:
	// defaultLockWait.
	lockWait time.Duration
	// waiting, when not nil, is closed once a wait for the lock that
	// outlasted lockWait ends (the lock is let go at once): until then
	// writes go out without the lock and without waiting.
	waiting chan struct{}
	// warn reports what degrades the file (a lock not taken, a reopen
	// that failed); nil: nothing is reported. It is called without mu.
	warn func(logWarning)
	// unlocked counts the writes without the lock since the last warning;
	// warned is when each kind of warning was last given.
	unlocked int
	warned   map[string]time.Time
	// notes are the warnings to give once mu is let go.
	notes []logWarning
}

// defaultLockWait is how long a write waits for the directory lock
// before it writes without it: far longer than any holder needs (a stat,
// a write, a rotation's renames), far shorter than a stopped holder.
const defaultLockWait = 200 * time.Millisecond

// warnEvery is how often a warning of one kind is given at most.
const warnEvery = time.Minute

// logWarning is a warning about a log file: msg is a constant message.
type logWarning struct {
	msg      string
	path     string
	err      error
	unlocked int
}

// newLogFile describes the log file at path with the rotation settings
// of s; it opens nothing yet.
func newLogFile(path string, fd int, s logSettings) *logFile {
	lf := &logFile{
		fd: fd, path: path, maxBytes: int64(s.maxSizeMB) << 20,
		maxAge: time.Duration(s.rotateHours) * time.Hour, maxFiles: s.maxFiles, config: s.config,
	}
	if lf.maxFiles <= 0 {
		lf.maxFiles = 10
	}
	lf.seen = fileStamp(s.config)
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		lf.lock = d
	} else if lf.maxBytes > 0 {
		lf.note(time.Now(), logWarning{msg: msgLockless, path: path, err: err})
	}
	return lf
}

// Warnings about a log file.
const (
	msgLockless   = "log directory cannot be locked: max_size_mb is approximate"
	msgUnlocked   = "log lines written without the log directory lock: another process held it too long (stopped?); max_size_mb may be passed"
	msgReopen     = "log file rotated by another process cannot be reopened: lines still go to the rotated file"
	msgRotateFail = "log file cannot be rotated: it grows past max_size_mb"
)

// warnTo has the warnings about the file given on logger, and gives the
// ones noted so far.
func (lf *logFile) warnTo(logger zerolog.Logger) {
	lf.mu.Lock()
	lf.warn = func(w logWarning) {
		e := logger.Warn().Str(logkey.Path, w.path)
		if w.err != nil {
			e = e.Err(w.err)
		}
		if w.unlocked > 0 {
			e = e.Int(logkey.UnlockedWrites, w.unlocked)
		}
		switch w.msg {
		case msgLockless:
			e.Msg(msgLockless)
		case msgUnlocked:
			e.Msg(msgUnlocked)
		case msgReopen:
			e.Msg(msgReopen)
		case msgRotateFail:
			e.Msg(msgRotateFail)
		}
	}
	lf.mu.Unlock()
	lf.flush()
}

// note keeps warning w to give once mu is let go, unless one of its kind
// was given within warnEvery (msgLockless: ever). mu is held (or lf not
// yet shared).
func (lf *logFile) note(now time.Time, w logWarning) {
	if lf.warned == nil {
		lf.warned = map[string]time.Time{}
	}
	if last, ok := lf.warned[w.msg]; ok && (w.msg == msgLockless || now.Sub(last) < warnEvery) {
		return
	}
	lf.warned[w.msg] = now
	lf.notes = append(lf.notes, w)
}

// flush gives the warnings noted, without mu: the logger they go to may
// write this very file.
func (lf *logFile) flush() {
	lf.mu.Lock()
	notes, warn := lf.notes, lf.warn
	if warn != nil {
		lf.notes = nil
	}
	lf.mu.Unlock()
	if warn == nil {
		return
	}
	for _, w := range notes {
		warn(w)
	}
}

// redirectStderr points descriptor 2 at dir/mgw.log and returns the file,
// which the process's logger writes through.
func redirectStderr(dir string, s logSettings) (*logFile, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating log dir: %w", configs.ExplainAccess(err))
	}
	lf := newLogFile(filepath.Join(dir, "mgw.log"), 2, s)
	return lf, lf.Reopen()
}

// openAccessLog opens the access log file at path for a worker to write.
func openAccessLog(path string, s logSettings) (*logFile, error) {
	lf := newLogFile(path, -1, s)
	return lf, lf.Reopen()
}

// watchAccessLog is the master's view of the access log file: it checks
// that the file can be opened for appending (creating it, as a worker
// will) and rotates it by age; the workers write it.
func watchAccessLog(path string, s logSettings) (*logFile, error) {
	if err := checkLogFile(path); err != nil {
		return nil, err
	}
	lf := newLogFile(path, -1, s)
	lf.watchOnly = true
	return lf, lf.Reopen()
}

// accessLogPath is where the access log lines go: access_log_file, taken
// relative to the log dir; "" for the main log.
func accessLogPath(s logSettings) string {
	if s.accessFile == "" || filepath.IsAbs(s.accessFile) {
		return s.accessFile
	}
	return filepath.Join(s.dir, s.accessFile)
}

// openLog opens (creating) the log file for appending, as every process
// of the instance does.
func openLog(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening log file: %w", configs.ExplainAccess(err))
	}
	return f, nil
}

// checkLogDir does what a start does with the log dir (create it, open
// dir/mgw.log for appending) and lets the file go.
func checkLogDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating log dir: %w", configs.ExplainAccess(err))
	}
	return checkLogFile(filepath.Join(dir, "mgw.log"))
}

// checkLogFile opens the log file at path for appending, creating it (its
// directory too), as a start does, and lets it go.
func checkLogFile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("creating log dir: %w", configs.ExplainAccess(err))
	}
	f, err := openLog(path)
	if err != nil {
		return err
	}
	return f.Close()
}

// Reopen opens the file at its path again, creating it, and points fd at
// it.
func (lf *logFile) Reopen() error {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	return lf.reopenLocked()
}

func (lf *logFile) reopenLocked() error {
	now := time.Now()
	if lf.watchOnly {
		st, err := os.Stat(lf.path)
		if err != nil {
			lf.id, lf.opened = [2]uint64{}, now
			return nil
		}
		lf.id, lf.opened = identity(st), now
		if st.Size() > 0 && st.ModTime().Before(now) {
			lf.opened = fileBirth(lf.path, st.ModTime())
		}
		return nil
	}
	f, err := openLog(lf.path)
	if err != nil {
		return err
	}
	if lf.fd >= 0 {
		if err := syscall.Dup2(int(f.Fd()), lf.fd); err != nil {
			_ = f.Close()
			return fmt.Errorf("redirecting stderr to %s: %w", lf.path, err)
		}
	}
	if lf.f != nil {
		_ = lf.f.Close()
	}
	lf.f = f
	lf.opened = now
	if st, err := f.Stat(); err == nil {
		lf.id = identity(st)
		if st.Size() > 0 && st.ModTime().Before(now) {
			lf.opened = fileBirth(lf.path, st.ModTime())
		}
	}
	return nil
}

// identity is a file's device and inode.
func identity(st os.FileInfo) [2]uint64 {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return [2]uint64{uint64(s.Dev), s.Ino}
	}
	return [2]uint64{}
}

// fileBirth is when the log file at path was created, so that age-based
// rotation keeps its clock across restarts: the birth time statx reports
// where the file system records one, else mod, the last write (a later
// time: the file then rotates at most one period late, never early).
// The status change time is no birth: every write moves it.
func fileBirth(path string, mod time.Time) time.Time {
	var st unix.Statx_t
	err := unix.Statx(unix.AT_FDCWD, path, 0, unix.STATX_BTIME, &st)
	if err != nil || st.Mask&unix.STATX_BTIME == 0 || st.Btime.Sec == 0 {
		return mod
	}
	return time.Unix(st.Btime.Sec, int64(st.Btime.Nsec))
}

// flock takes the directory lock that orders the size checks, rotations
// and writes of every process, waiting at most lockWait; ok is false when
// it is not held (the write then goes out without it). The returned func
// lets it go. mu is held.
func (lf *logFile) flock(now time.Time) (unlock func(), ok bool) {
	if lf.lock == nil {
		return func() {}, false
	}
	if lf.waiting != nil {
		select {
		case <-lf.waiting: // the long wait ended: wait again from now on
			lf.waiting = nil
		default:
			return func() {}, false
		}
	}
	fd := int(lf.lock.Fd())
	release := func() { _ = unix.Flock(fd, unix.LOCK_UN) }
	err := flockNB(fd)
	if err == nil {
		return release, true
	}
	if !errors.Is(err, unix.EWOULDBLOCK) {
		lf.lockless(now, err)
		return func() {}, false
	}
	// Taken: wait in the kernel's queue, on a goroutine of its own so that
	// the wait can be given up. A wait given up goes on; it lets the lock
	// go as soon as it gets it and then closes waiting.
	acquired := make(chan error, 1)
	go func() {
		var err error
		for err = unix.Flock(fd, unix.LOCK_EX); err == unix.EINTR; err = unix.Flock(fd, unix.LOCK_EX) {
		}
		acquired <- err
	}()
	if err, ok := lf.awaitLock(acquired); ok {
		if err != nil {
			lf.lockless(now, err)
			return func() {}, false
		}
		return release, true
	}
	given := make(chan struct{})
	go func() {
		if err := <-acquired; err == nil {
			release()
		}
		close(given)
	}()
	lf.waiting = given
	return func() {}, false
}

// awaitLock waits for the lock's wait to end, for lockWait at most; ok
// is false when the wait is given up. (Whether the file changes says
// nothing of the holder: the processes that gave up write it too.)
func (lf *logFile) awaitLock(acquired <-chan error) (err error, ok bool) {
	wait := lf.lockWait
	if wait <= 0 {
		wait = defaultLockWait
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case err := <-acquired:
		return err, true
	case <-t.C:
		return nil, false
	}
}

// lockless gives up the directory lock for good after err, which is not
// that the lock is taken (flock is unsupported, as on some NFS mounts):
// the file is then checked and rotated unordered, its cap approximate,
// and a warning says so once. mu is held.
func (lf *logFile) lockless(now time.Time, err error) {
	lf.note(now, logWarning{msg: msgLockless, path: lf.path, err: fmt.Errorf("locking the log directory: %w", err)})
	_ = lf.lock.Close()
	lf.lock = nil
}

// flockNB takes the lock on the directory fd if it is free.
func flockNB(fd int) error {
	for {
		err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if err != unix.EINTR {
			return err
		}
	}
}

// Write appends p, one write. With a size cap it first reopens the file
// when another process rotated it and rotates it when p would take it
// past the cap, all under the directory lock, so that the cap holds
// however many processes write: only a single write larger than the cap
// makes a file larger, alone in it. When the lock is not had within
// lockWait (its holder is stopped), p goes out without it and the cap may
// be passed; see logFile.
func (lf *logFile) Write(p []byte) (int, error) {
	n, err := lf.write(p)
	lf.flush()
	return n, err
}

func (lf *logFile) write(p []byte) (int, error) {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	if lf.f == nil {
		return 0, fmt.Errorf("log file %s is not open", lf.path)
	}
	now := time.Now()
	if now.Sub(lf.followed) >= followEvery {
		lf.followed = now
		lf.follow()
	}
	if lf.maxBytes <= 0 {
		return lf.f.Write(p)
	}
	unlock, locked := lf.flock(now)
	defer unlock()
	if !locked && lf.lock != nil && lf.waiting != nil {
		lf.unlocked++
		if last, ok := lf.warned[msgUnlocked]; !ok || now.Sub(last) >= warnEvery {
			lf.note(now, logWarning{msg: msgUnlocked, path: lf.path, unlocked: lf.unlocked})
			lf.unlocked = 0
		}
	}
	if st, err := os.Stat(lf.path); err != nil || identity(st) != lf.id {
		// Rotated (or moved away) by another process. When the new file
		// cannot be opened the line still goes out, to the rotated file,
		// rather than nowhere, and the next write tries again.
		if err := lf.reopenLocked(); err != nil {
			lf.note(now, logWarning{msg: msgReopen, path: lf.path, err: err})
		}
	}
	// Without the lock (its holder is stopped) the file is not rotated:
	// renames of several processes unordered would shift one rotated
	// file onto another. The cap is passed until the lock is had again.
	skipped := !locked && lf.lock != nil
	if st, err := lf.f.Stat(); err == nil && !skipped && st.Size() > 0 && st.Size()+int64(len(p)) > lf.maxBytes {
		if err := lf.rotateLocked(); err != nil { // the line still goes out, to the old file
			lf.note(now, logWarning{msg: msgRotateFail, path: lf.path, err: err})
		}
	}
	return lf.f.Write(p)
}

// followEvery is how often a writer looks whether the configuration file
// changed, for new rotation settings.
const followEvery = time.Second

// Rotate, when the file is over its size or age, renames mgw.log to
// mgw.log.1 (shifting older ones, keeping maxFiles) and reopens. It
// reports whether it rotated, so that the workers are told to reopen.
// The writers rotate by size themselves before each write; this check
// catches what reached the file around them (a crash's trace).
func (lf *logFile) Rotate(now time.Time) (bool, error) {
	defer lf.flush()
	lf.mu.Lock()
	defer lf.mu.Unlock()
	lf.follow()
	// The master's loop never waits for the lock: when another process
	// holds it (or a write of this one still waits for it), this check
	// waits for the next tick.
	if lf.lock != nil && lf.waiting == nil {
		fd := int(lf.lock.Fd())
		switch err := flockNB(fd); {
		case err == nil:
			defer func() { _ = unix.Flock(fd, unix.LOCK_UN) }()
		case errors.Is(err, unix.EWOULDBLOCK):
			return false, nil
		default:
			lf.lockless(now, err)
		}
	} else if lf.waiting != nil {
		select {
		case <-lf.waiting: // the long wait ended: the next tick locks
			lf.waiting = nil
		default:
		}
		return false, nil
	}
	st, err := os.Stat(lf.path)
	if err != nil {
		return false, lf.reopenLocked() // moved away: start a new one
	}
	if identity(st) != lf.id {
		if err := lf.reopenLocked(); err != nil { // a writer rotated it
			return false, err
		}
	}
	bySize := lf.maxBytes > 0 && st.Size() >= lf.maxBytes
	byAge := lf.maxAge > 0 && now.Sub(lf.opened) >= lf.maxAge && st.Size() > 0
	if !bySize && !byAge {
		return false, nil
	}
	return true, lf.rotateLocked()
}

// rotateLocked renames the file to .1, shifting the older ones and
// keeping maxFiles, and opens a new one. The directory lock is held.
func (lf *logFile) rotateLocked() error {
	_ = os.Remove(fmt.Sprintf("%s.%d", lf.path, lf.maxFiles))
	for i := lf.maxFiles - 1; i >= 1; i-- {
		_ = os.Rename(fmt.Sprintf("%s.%d", lf.path, i), fmt.Sprintf("%s.%d", lf.path, i+1))
	}
	if err := os.Rename(lf.path, lf.path+".1"); err != nil {
		return fmt.Errorf("rotating log: %w", err)
	}
	return lf.reopenLocked()
}

// follow takes max_size_mb, rotate_interval and max_files afresh when the
// configuration file changed, so that an edit applies without a reload
// (as the rest of an edit does). A file that does not load keeps the
// settings in force; the master reports why.
func (lf *logFile) follow() {
	if lf.config == "" {
		return
	}
	stamp := fileStamp(lf.config)
	if stamp == lf.seen {
		return
	}
	lf.seen = stamp
	snap, err := configs.Load(lf.config, os.LookupEnv)
	if err != nil {
		return
	}
	l := snap.Config.Edgemicro.Logging
	lf.maxBytes = int64(l.MaxSizeMB) << 20
	lf.maxAge = time.Duration(l.RotateInterval) * time.Hour
	lf.maxFiles = l.MaxFiles
	if lf.maxFiles <= 0 {
		lf.maxFiles = 10
	}
}

// logFiles are the files the master rotates: mgw.log (nil when the log
// goes to stderr) and the access log file (nil when there is none).
type logFiles struct {
	main, access *logFile
}

// warnTo has the warnings about either file given on logger.
func (l logFiles) warnTo(logger zerolog.Logger) {
	for _, lf := range []*logFile{l.main, l.access} {
		if lf != nil {
			lf.warnTo(logger)
		}
	}
}

// Reopen reopens mgw.log; the workers, told too, reopen the access log.
func (l logFiles) Reopen() error {
	var errs []error
	for _, lf := range []*logFile{l.main, l.access} {
		if lf != nil {
			errs = append(errs, lf.Reopen())
		}
	}
	return errors.Join(errs...)
}

// Rotate rotates each file that is over its size or age.
func (l logFiles) Rotate(now time.Time) (bool, error) {
	var rotated bool
	var errs []error
	for _, lf := range []*logFile{l.main, l.access} {
		if lf != nil {
			r, err := lf.Rotate(now)
			rotated = rotated || r
			errs = append(errs, err)
		}
	}
	return rotated, errors.Join(errs...)
}

// fileStamp is a file's modification time and size; zero when it cannot
// be read.
func fileStamp(path string) [2]int64 {
	st, err := os.Stat(path)
	if path == "" || err != nil {
		return [2]int64{}
	}
	return [2]int64{st.ModTime().UnixNano(), st.Size()}
}

// maskWriter replaces secrets in everything written through it, so that a
// key or secret that reaches a log line (inside an error from a library,
// say) is never written in clear.
type maskWriter struct {
	w       io.Writer
	secrets [][]byte
}

// masked wraps w to mask every secret of at least 8 bytes.
func masked(w io.Writer, secrets ...string) io.Writer {
	m := &maskWriter{w: w}
	for _, s := range secrets {
		if len(s) >= 8 {
			m.secrets = append(m.secrets, []byte(s))
		}
	}
	if len(m.secrets) == 0 {
		return w
	}
	return m
}

func (m *maskWriter) Write(p []byte) (int, error) {
	out := p
	for _, s := range m.secrets {
		if bytes.Contains(out, s) {
			out = bytes.ReplaceAll(out, s, []byte("****"))
		}
	}
	if _, err := m.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// as is logger tagged as the process writing a line of this package:
// component and pid, as the packages tag the lines of their processes.
func as(logger zerolog.Logger, component string) zerolog.Logger {
	return logger.With().Str(logkey.Component, component).Int(logkey.PID, os.Getpid()).Logger()
}
