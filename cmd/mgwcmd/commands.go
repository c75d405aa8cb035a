package mgwcmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/mgw-gateway/mgw/internal/logkey"
	"github.com/mgw-gateway/mgw/ipc"
	"github.com/mgw-gateway/mgw/master"
	"github.com/mgw-gateway/mgw/worker"
)

func startCommand() *cli.Command {
	return &cli.Command{
		Name:  "start",
		Usage: "start the master and its workers; stays in the foreground until the instance stops",
		Flags: commonFlags(),
		Action: func(c *cli.Context) error {
			// First thing: a signal during start is handled, never the
			// default action that would kill the process.
			sigs := master.Signals()
			// A master (this command again, under the keeper) that fails
			// before master.Run says why to a reload waiting for it too.
			fail := func(err error) error {
				if master.Kept() {
					master.ReportUpgradeFailure(err)
				}
				return cli.Exit(err, 1)
			}
			p, err := resolveConfig(c)
			if err == nil {
				err = checkCounts(c)
			}
			if err != nil {
				return fail(err)
			}
			ls := settingsFrom(p.config, c.String(flagLogLevel))
			if !master.Kept() {
				return keep(c, p, ls, sigs)
			}
			var (
				logs       master.LogFile
				files      logFiles
				logOut     io.Writer = os.Stderr
				workerArgs           = []string{"--log-level", ls.level}
			)
			if ls.dir != "" {
				lf, err := redirectStderr(ls.dir, ls)
				if err != nil {
					return fail(err)
				}
				files.main, logOut = lf, lf
				workerArgs = append(workerArgs, "--log-dir", ls.dir)
			}
			if path := accessLogPath(ls); path != "" {
				af, err := watchAccessLog(path, ls)
				if err != nil {
					return fail(fmt.Errorf("access log file: %w", err))
				}
				files.access = af
				workerArgs = append(workerArgs, "--access-log", path)
			}
			if files.main != nil || files.access != nil {
				logs = files
				if p.config != "" {
					// The workers follow the rotation settings as the master does.
					workerArgs = append(workerArgs, "--log-config", p.config)
				}
			}
			// The master holds the Edge key and secret: mask them in its log.
			logger, err := newLogger(masked(logOut, c.String(flagKey), c.String(flagSecret)), ls)
			if err != nil {
				return fail(err)
			}
			files.warnTo(as(logger, logkey.ComponentMaster))
			if ls.console {
				workerArgs = append(workerArgs, "--log-console")
			}
			err = master.Run(context.Background(), master.Options{
				ConfigPath: p.config,
				RunDir:     p.runDir,
				Processes:  c.Int(flagProcesses),
				Port:       c.Int(flagPort),
				Logger:     logger,
				WorkerArgs: workerArgs,
				Logs:       logs,
				ConfigDir:  p.configDir,
				Org:        c.String(flagOrg),
				Env:        c.String(flagEnv),
				Key:        c.String(flagKey),
				Secret:     c.String(flagSecret),
				Signals:    sigs,
			})
			if err != nil && !ls.console {
				// A JSON log stays JSON: the reason is one more record
				// (the keeper says on its terminal that the master failed).
				l := as(logger, logkey.ComponentMaster)
				l.Error().Err(err).Msg("mgw start failed")
				return cli.Exit("", 1)
			}
			if err != nil {
				return cli.Exit(err, 1)
			}
			return nil
		},
	}
}

// keep runs the process `mgw start` leaves in the foreground: the keeper,
// which starts the master (this command again, told so by the
// environment) and stays until the instance stops. Its own few lines go
// to the terminal (or the journal), never to the log file, which belongs
// to the master.
func keep(c *cli.Context, p paths, ls logSettings, sigs chan os.Signal) error {
	logger, err := newLogger(os.Stderr, ls)
	if err != nil {
		return cli.Exit(err, 1)
	}
	exe, err := os.Executable()
	if err != nil {
		return cli.Exit(fmt.Sprintf("finding the mgw executable: %v", err), 1)
	}
	if err := os.MkdirAll(p.runDir, 0o700); err != nil {
		return cli.Exit(fmt.Sprintf("creating run dir: %v", err), 1)
	}
	code := master.Keep(master.KeeperOptions{
		RunDir:     p.runDir,
		Executable: exe,
		Args:       os.Args,
		Signals:    sigs,
		Logger:     logger,
	})
	if code != 0 {
		return cli.Exit("", code)
	}
	return nil
}

func stopCommand() *cli.Command {
	return &cli.Command{
		Name:  "stop",
		Usage: "stop gracefully: finish in-flight requests, then exit",
		Flags: append(commonFlagsFor(flagConfigDir, flagRunDir), &cli.DurationFlag{Name: "timeout", Value: 30 * time.Second, Usage: "bound on the drain"}),
		Action: func(c *cli.Context) error {
			p, err := resolvePaths(c)
			if err != nil {
				return cli.Exit(err, 1)
			}
			timeout := c.Duration("timeout")
			rep, err := ipc.Call(p.controlSocket(), ipc.Control{Command: ipc.CommandStop, Timeout: timeout}, timeout+15*time.Second)
			if err != nil {
				return cli.Exit(err, 1)
			}
			if rep.Error != "" {
				return cli.Exit(rep.Error, 1)
			}
			fmt.Println("mgw stopped")
			// A stop that went with a warning says so: "stopped; why".
			if _, warning, ok := strings.Cut(rep.Message, "; "); ok {
				fmt.Fprintln(os.Stderr, "mgw stop: "+warning)
			}
			return nil
		},
	}
}

func reloadCommand() *cli.Command {
	return &cli.Command{
		Name:  "reload",
		Usage: "replace the running process tree with zero failed requests, reading the config afresh; -p and -r change the worker count and port",
		Description: "A reload keeps the org, env, Edge key and secret and log level mgw start was given: " +
			"-o, -e, -k, -s and --log-level are accepted when they are the instance's own (so that scripts may pass start's flags), and refused otherwise; " +
			"only the command line counts: EDGEMICRO_ORG, EDGEMICRO_ENV, EDGEMICRO_KEY and EDGEMICRO_SECRET in the environment are ignored. " +
			"--log-level (any case) must be the level the new generation would log at: start's --log-level, else the config's [edgemicro.logging] level as it is now. " +
			"--config names the instance's config file or is refused.",
		// The kept values are compared only when given on the command line:
		// EDGEMICRO_ORG and the like, exported for start, are no request
		// to change anything.
		Flags: withoutEnv(commonFlagsFor(flagConfig, flagConfigDir, flagRunDir, flagProcesses, flagPort),
			flagOrg, flagEnv, flagKey, flagSecret),
		Action: func(c *cli.Context) error {
			p, err := resolvePaths(c)
			if err != nil {
				return cli.Exit(err, 1)
			}
			// What the new generation is asked to change; the master
			// refuses what it cannot do, never ignores it.
			ctl := ipc.Control{Command: ipc.CommandReload}
			if c.IsSet(flagProcesses) {
				if ctl.Processes = c.Int(flagProcesses); ctl.Processes < 1 {
					return cli.Exit(fmt.Sprintf("--processes %d: give at least 1 worker", ctl.Processes), 1)
				}
			}
			if c.IsSet(flagPort) {
				if ctl.Port = c.Int(flagPort); ctl.Port < 1 || ctl.Port > 65535 {
					return cli.Exit(fmt.Sprintf("--port %d is not a port number", ctl.Port), 1)
				}
			}
			if f := c.String(flagConfig); f != "" {
				abs, err := filepath.Abs(f)
				if err != nil {
					return cli.Exit(err, 1)
				}
				ctl.Config = abs
			}
			// What a reload keeps: the master refuses another value.
			ctl.Org, ctl.Env = c.String(flagOrg), c.String(flagEnv)
			if k := c.String(flagKey); k != "" {
				ctl.KeyDigest = ipc.Digest(k)
			}
			if s := c.String(flagSecret); s != "" {
				ctl.SecretDigest = ipc.Digest(s)
			}
			if l := c.String(flagLogLevel); l != "" {
				if _, err := parseLevel(l); err != nil {
					return cli.Exit(err, 1)
				}
				ctl.LogLevel = strings.ToLower(l)
			}
			rep, err := ipc.Call(p.controlSocket(), ctl, 5*time.Minute)
			if err != nil {
				return cli.Exit(err, 1)
			}
			if rep.Error != "" {
				return cli.Exit("reload failed: "+rep.Error, 1)
			}
			fmt.Println(rep.Message)
			return nil
		},
	}
}

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show the master, its configuration and its workers",
		Flags: append(commonFlagsFor(flagConfigDir, flagRunDir), &cli.BoolFlag{Name: "json", Usage: "print one JSON object"}),
		Action: func(c *cli.Context) error {
			p, err := resolvePaths(c)
			if err != nil {
				return cli.Exit(err, 1)
			}
			rep, err := ipc.Call(p.controlSocket(), ipc.Control{Command: ipc.CommandStatus}, 10*time.Second)
			if err != nil || rep.Status == nil {
				if c.Bool("json") {
					fmt.Println("null")
				}
				if errors.Is(err, ipc.ErrNotRunning) || err == nil {
					return cli.Exit("mgw is not running", exitNotRunning)
				}
				if errors.Is(err, fs.ErrPermission) {
					return cli.Exit(err, exitUnknown) // it may well run
				}
				return cli.Exit(err, exitNotRunning)
			}
			if c.Bool("json") {
				b, _ := json.Marshal(rep.Status)
				fmt.Println(string(b))
				return nil
			}
			printStatus(rep.Status)
			return nil
		},
	}
}

func printStatus(s *ipc.Status) {
	fmt.Printf("mgw is running: master pid %d, generation %d, up %s, %s mode\n",
		s.MasterPID, s.Generation, (time.Duration(s.UptimeS) * time.Second).String(), s.Mode)
	fmt.Printf("config: %s, revision %d\n", s.Config.Source, s.Config.Revision)
	if s.Config.LastPoll != nil {
		fmt.Printf("last Edge poll: %s\n", s.Config.LastPoll.Format(time.RFC3339))
	}
	if s.Config.LastError != nil {
		fmt.Printf("last config error: %s\n", *s.Config.LastError)
	}
	if a := s.Analytics; a != nil {
		fmt.Printf("analytics: %d queued, %d sent, %d dropped\n", a.Queued, a.Sent, a.Dropped)
	}
	pids := make([]string, 0, len(s.Workers))
	for _, w := range s.Workers {
		if w.PID != 0 {
			pids = append(pids, strconv.Itoa(w.PID))
		}
	}
	fmt.Printf("%d workers: %s\n", len(pids), strings.Join(pids, " "))
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPID\tSTATE\tUPTIME\tREQUESTS\tCONNS\tREVISION\tRESTARTS")
	for _, w := range s.Workers {
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%d\t%d\t%d\t%d\n", w.ID, w.PID, w.State,
			(time.Duration(w.UptimeS) * time.Second).String(), w.Requests, w.Active, w.Revision, w.Restarts)
	}
	_ = tw.Flush()
}

func workerCommand() *cli.Command {
	return &cli.Command{
		Name:   "worker",
		Hidden: true,
		Usage:  "serve as one worker of a master (started by the master only)",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "id"},
			&cli.IntFlag{Name: "generation"},
			&cli.StringFlag{Name: flagLogLevel, Value: "info"},
			&cli.BoolFlag{Name: "log-console"},
			&cli.StringFlag{Name: "log-dir"},
			&cli.StringFlag{Name: "log-config"},
			&cli.StringFlag{Name: "access-log"},
		},
		Action: func(c *cli.Context) error {
			// SIGUSR1 means "reopen the log file"; its default action
			// would kill the worker.
			usr1 := make(chan os.Signal, 1)
			signal.Notify(usr1, syscall.SIGUSR1)
			// The rotation settings come from the master's config file;
			// the worker rotates by size before a write would pass the cap.
			ls := settingsFrom(c.String("log-config"), c.String(flagLogLevel))
			ls.console = c.Bool("log-console")
			var files logFiles
			var logOut io.Writer = os.Stderr
			if dir := c.String("log-dir"); dir != "" {
				lf, err := redirectStderr(dir, ls)
				if err != nil {
					return cli.Exit(err, 1)
				}
				files.main, logOut = lf, lf
			}
			logger, err := newLogger(logOut, ls)
			if err != nil {
				return cli.Exit(err, 1)
			}
			opts := worker.Options{ID: c.Int("id")}
			if !ls.console {
				opts.LogOutput = logOut
			}
			if path := c.String("access-log"); path != "" {
				af, err := openAccessLog(path, ls)
				if err != nil {
					logger.Error().Err(err).Int(logkey.WorkerID, c.Int("id")).Int(logkey.PID, os.Getpid()).Msg("worker failed")
					return cli.Exit("", 1)
				}
				files.access = af
				opts.AccessLogOutput = af
			}
			files.warnTo(as(logger, logkey.ComponentWorker).With().Int(logkey.WorkerID, c.Int("id")).Logger())
			go func() {
				for range usr1 {
					_ = files.Reopen()
				}
			}()
			// The master turns SIGHUP into a reload; a worker that gets
			// one by accident (a kill of the whole group) ignores it.
			signal.Ignore(syscall.SIGHUP)
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			// The worker adds its id and pid (package worker).
			logger = logger.With().Str(logkey.Component, logkey.ComponentWorker).Int(logkey.Generation, c.Int("generation")).Logger()
			opts.Logger = logger
			if err := worker.Run(ctx, opts); err != nil {
				logger.Error().Err(err).Int(logkey.WorkerID, c.Int("id")).Int(logkey.PID, os.Getpid()).Msg("worker failed")
				return cli.Exit("", 1)
			}
			return nil
		},
	}
}
