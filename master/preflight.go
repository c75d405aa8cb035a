package master

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/configs/edge"
	"github.com/mgw-gateway/mgw/plugins"
	"github.com/mgw-gateway/mgw/plugins/analytics"
)

// Check is one line of a dry run: what was checked, and how it went.
type Check struct {
	Name   string
	Detail string
	Err    error
}

// Preflight runs, without serving, what Run does before it serves: it
// loads the configuration with the very code a start runs (the file, TLS
// files, the token signing key, the Edge download or its cache, every
// plugin section), checks that the run dir is writable (a control
// socket binds there, an existing limit zone opens, the local analytics
// file takes records) and that the listening and metrics addresses are
// valid and free. It writes nothing
// but a probe file in the run dir, which it removes. `mgw verify` prints
// its checks, so that verify passing means start passes.
func Preflight(opts Options) (*configs.Snapshot, []Check) {
	var checks []Check
	snap, _, err := Load(opts)
	source := opts.ConfigPath
	if source == "" {
		source = configs.DefaultSource
	}
	if err != nil {
		return nil, append(checks, Check{Name: "config", Detail: source, Err: err})
	}
	checks = append(checks, Check{Name: "config", Detail: fmt.Sprintf("%s (%s mode)", snap.Source, snap.Config.Mode())})
	if !snap.Config.EdgeMode() && snap.Keys.PrivateKey != "" {
		checks = append(checks, Check{Name: "signing key", Detail: filepath.Join(opts.ConfigDir, PrivateKeyFile)})
	}
	runDirErr := writableDir(opts.RunDir)
	checks = append(checks, Check{Name: "run dir", Detail: opts.RunDir, Err: runDirErr})
	if runDirErr == nil {
		sock := filepath.Join(opts.RunDir, ControlFileName)
		checks = append(checks, Check{Name: "control socket", Detail: sock, Err: socketCheck(sock)})
		if z := filepath.Join(opts.RunDir, ZoneFileName); exists(z) {
			checks = append(checks, Check{Name: "limit zone", Detail: z, Err: zoneCheck(z)})
		}
		if file, on := analyticsFile(&snap.Config, opts.RunDir); on {
			checks = append(checks, Check{Name: "analytics file", Detail: file, Err: checkAnalyticsFile(file)})
		}
	}
	// Another user's instance (a socket this user may not reach) is not
	// one a reload by this user would inherit the ports of.
	rerr := checkRunning(filepath.Join(opts.RunDir, ControlFileName))
	running := rerr != nil && !errors.Is(rerr, fs.ErrPermission)
	cfg := &snap.Config.Edgemicro
	checks = append(checks, listenCheck("listen", net.JoinHostPort(cfg.Address, strconv.Itoa(cfg.Port)), running))
	if mc := snap.Config.Metrics; mc != nil && mc.Port != 0 {
		checks = append(checks, listenCheck("metrics", net.JoinHostPort(mc.Address, strconv.Itoa(mc.Port)), running))
	}
	return snap, checks
}

// Load builds the snapshot a start would serve, with the code a start
// runs, and writes nothing. In Edge mode, edgeFrom says where the proxies
// and products came from: Edge now, or the cache file when Edge cannot
// be reached (and why).
func Load(opts Options) (snap *configs.Snapshot, edgeFrom string, err error) {
	if opts.LookupEnv == nil {
		opts.LookupEnv = os.LookupEnv
	}
	m := &Master{opts: opts, log: opts.Logger, dryRun: true}
	m.edge.keys = &edge.KeyCache{Verify: m.verifyKey}
	m.edge.keyCalls = make(chan struct{}, maxKeyCalls)
	snap, err = m.load()
	if err != nil || !snap.Config.EdgeMode() {
		return snap, "", err
	}
	if m.lastError != nil {
		return snap, fmt.Sprintf("the cache file %s (Edge cannot be reached: %s)", m.cachePath(), *m.lastError), nil
	}
	return snap, "Edge, downloaded now", nil
}

// writableDir creates dir as Run does and checks that a file can be
// written in it: mgw.pid, mgw.sock and mgw.zone go there.
func writableDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating run dir: %w", configs.ExplainAccess(err))
	}
	f, err := os.CreateTemp(dir, ".mgw-verify-*")
	if err != nil {
		return fmt.Errorf("writing in the run dir: %w", configs.ExplainAccess(err))
	}
	_ = f.Close()
	return os.Remove(f.Name())
}

// listenCheck binds addr as Run does, and lets it go at once. When a
// master of this run dir serves, an address in use is most likely its
// own, which a reload inherits.
func listenCheck(name, addr string, running bool) Check {
	c := Check{Name: name, Detail: addr}
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		_ = ln.Close()
		return c
	}
	if running && errors.Is(err, syscall.EADDRINUSE) {
		c.Detail += " (in use by the running mgw; `mgw reload` inherits it)"
		return c
	}
	c.Err = fmt.Errorf("listening on %s: %w", addr, configs.ExplainListen(addr, err))
	return c
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// socketCheck binds a Unix socket at a name as long as the longest one a
// start binds before it renames it to path (path.PID.tmp), and lets it
// go: a run dir whose path is too long for a socket address fails here.
func socketCheck(path string) error {
	tmp := path + ".verify.tmp" // as long as a 7-digit pid
	_ = os.Remove(tmp)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return fmt.Errorf("creating control socket %s: %w (a socket's path holds at most 107 bytes: give a shorter --run-dir)", tmp, configs.ExplainAccess(err))
	}
	return ln.Close() // unlinks tmp
}

// zoneCheck opens an existing limit zone for reading and writing, as a
// start does (a zone left by another user, say root, fails here).
func zoneCheck(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("opening limit zone: %w", configs.ExplainAccess(err))
	}
	return f.Close()
}

// analyticsFile is the file a local-mode instance with analytics on
// writes its records to ([analytics] file, else analytics.jsonl in the
// run dir); on is false when there is none.
func analyticsFile(cfg *configs.Config, runDir string) (file string, on bool) {
	if !plugins.AnalyticsOn(cfg) || cfg.EdgeMode() {
		return "", false
	}
	s, err := analytics.Load(cfg)
	if err != nil {
		return "", false // the config check says why
	}
	if s.File == "" {
		return filepath.Join(runDir, "analytics.jsonl"), true
	}
	return s.File, true
}

// checkAnalyticsFile checks that records can be appended to path: an
// existing file opens for appending, else its directory takes a new
// file. It writes nothing that stays.
func checkAnalyticsFile(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err == nil {
		return f.Close()
	}
	if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("analytics file: %w", configs.ExplainAccess(err))
	}
	t, err := os.CreateTemp(filepath.Dir(path), ".mgw-verify-*")
	if err != nil {
		return fmt.Errorf("analytics file %s cannot be created: %w", path, configs.ExplainAccess(err))
	}
	_ = t.Close()
	return os.Remove(t.Name())
}
