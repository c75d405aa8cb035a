package master

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/configs/edge"
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
// plugin section), checks that the run dir is writable and that the
// listening and metrics addresses are valid and free. It writes nothing
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
	checks = append(checks, Check{Name: "run dir", Detail: opts.RunDir, Err: writableDir(opts.RunDir)})
	running := checkRunning(filepath.Join(opts.RunDir, ControlFileName)) != nil
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
	c.Err = fmt.Errorf("listening on %s: %w", addr, err)
	return c
}
