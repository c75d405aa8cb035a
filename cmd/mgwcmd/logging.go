package mgwcmd

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
			maxSizeMB: l.MaxSizeMB, rotateHours: l.RotateInterval, maxFiles: l.MaxFiles}
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

// logFile is dir/mgw.log, which descriptor 2 of the master and of every
// worker points at. The master rotates it; each process reopens it on
// SIGUSR1 (logrotate's signal, which the master passes on to its workers).
type logFile struct {
	fd       int // the descriptor pointed at the file: 2
	path     string
	maxBytes int64         // rotate above this size; 0: never by size
	maxAge   time.Duration // rotate when the file is older; 0: never by age
	maxFiles int           // rotated files kept
	opened   time.Time
	// config is the configuration file the rotation settings come from;
	// seen is its modification time and size when they were last read.
	config string
	seen   [2]int64
}

// redirectStderr points descriptor 2 at dir/mgw.log.
func redirectStderr(dir string, s logSettings) (*logFile, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating log dir: %w", configs.ExplainAccess(err))
	}
	lf := &logFile{
		fd: 2, path: filepath.Join(dir, "mgw.log"), maxBytes: int64(s.maxSizeMB) << 20,
		maxAge: time.Duration(s.rotateHours) * time.Hour, maxFiles: s.maxFiles, config: s.config,
	}
	if lf.maxFiles <= 0 {
		lf.maxFiles = 10
	}
	lf.seen = fileStamp(s.config)
	return lf, lf.Reopen()
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
	f, err := openLog(filepath.Join(dir, "mgw.log"))
	if err != nil {
		return err
	}
	return f.Close()
}

// Reopen points descriptor 2 at the file's path again, creating it.
func (lf *logFile) Reopen() error {
	f, err := openLog(lf.path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := syscall.Dup2(int(f.Fd()), lf.fd); err != nil {
		return fmt.Errorf("redirecting stderr to %s: %w", lf.path, err)
	}
	lf.opened = time.Now()
	if st, err := f.Stat(); err == nil && st.Size() > 0 {
		if t := st.ModTime(); t.Before(lf.opened) {
			lf.opened = fileBirth(f, t)
		}
	}
	return nil
}

// fileBirth is when the log file f was created, so that age-based
// rotation keeps its clock across restarts: the birth time statx reports
// where the file system records one, else mod, the last write (a later
// time: the file then rotates at most one period late, never early).
// The status change time is no birth: every write moves it.
func fileBirth(f *os.File, mod time.Time) time.Time {
	var st unix.Statx_t
	err := unix.Statx(int(f.Fd()), "", unix.AT_EMPTY_PATH, unix.STATX_BTIME, &st)
	if err != nil || st.Mask&unix.STATX_BTIME == 0 || st.Btime.Sec == 0 {
		return mod
	}
	return time.Unix(st.Btime.Sec, int64(st.Btime.Nsec))
}

// Rotate, when the file is over its size or age, renames mgw.log to
// mgw.log.1 (shifting older ones, keeping maxFiles) and reopens. It
// reports whether it rotated, so that the workers are told to reopen.
func (lf *logFile) Rotate(now time.Time) (bool, error) {
	lf.follow()
	st, err := os.Stat(lf.path)
	if err != nil {
		return false, lf.Reopen() // moved away: start a new one
	}
	bySize := lf.maxBytes > 0 && st.Size() >= lf.maxBytes
	byAge := lf.maxAge > 0 && now.Sub(lf.opened) >= lf.maxAge && st.Size() > 0
	if !bySize && !byAge {
		return false, nil
	}
	_ = os.Remove(fmt.Sprintf("%s.%d", lf.path, lf.maxFiles))
	for i := lf.maxFiles - 1; i >= 1; i-- {
		_ = os.Rename(fmt.Sprintf("%s.%d", lf.path, i), fmt.Sprintf("%s.%d", lf.path, i+1))
	}
	if err := os.Rename(lf.path, lf.path+".1"); err != nil {
		return false, fmt.Errorf("rotating log: %w", err)
	}
	return true, lf.Reopen()
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
