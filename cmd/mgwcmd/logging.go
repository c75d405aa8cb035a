package mgwcmd

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/mgw-gateway/mgw/configs"
)

// logSettings is what the root logger is built from.
type logSettings struct {
	level   string
	console bool
	dir     string
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
		s = logSettings{level: l.Level, console: l.ToConsole, dir: l.Dir}
	}
	if levelFlag != "" {
		s.level = levelFlag
	}
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
// lines when console is set.
func newLogger(w io.Writer, s logSettings) (zerolog.Logger, error) {
	lvl, err := parseLevel(s.level)
	if err != nil {
		return zerolog.Nop(), err
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	if s.console {
		noColor := true
		if f, ok := w.(*os.File); ok {
			noColor = !isatty.IsTerminal(f.Fd())
		}
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05.000", NoColor: noColor}
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

// redirectStderr points descriptor 2 at dir/mgw.log, so the master and
// every worker (which inherit it) write one log file. It returns a
// function that reopens the file, for logrotate's SIGUSR1.
func redirectStderr(dir string) (reopen func() error, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating log dir: %w", err)
	}
	path := filepath.Join(dir, "mgw.log")
	reopen = func() error {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("opening log file: %w", err)
		}
		defer f.Close()
		if err := syscall.Dup2(int(f.Fd()), 2); err != nil {
			return fmt.Errorf("redirecting stderr to %s: %w", path, err)
		}
		return nil
	}
	return reopen, reopen()
}
