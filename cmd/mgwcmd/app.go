package mgwcmd

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/master"
	// The built-in plugins register themselves; master and workers need them.
	_ "github.com/mgw-gateway/mgw/plugins/builtin"
)

// Exit statuses beyond 0 and 1.
const (
	exitNotRunning = 3 // `mgw status` when nothing runs, like systemctl status
	exitUnknown    = 4 // `mgw status` when it cannot tell (another user's instance), LSB's "status unknown"
)

// Main runs the command line and returns the process's exit status.
func Main(args []string) int {
	app := newApp()
	err := unknownCommand(app, args)
	if err == nil {
		err = app.Run(flagsFirst(app, args))
	}
	if err != nil {
		var ec cli.ExitCoder
		if errors.As(err, &ec) {
			if msg := err.Error(); msg != "" {
				fmt.Fprintln(os.Stderr, "mgw: "+oneLine(msg))
			}
			return ec.ExitCode()
		}
		fmt.Fprintln(os.Stderr, "mgw: "+oneLine(err.Error()))
		return 1
	}
	return 0
}

func oneLine(s string) string { return strings.ReplaceAll(strings.TrimSpace(s), "\n", "; ") }

func init() {
	cli.VersionPrinter = func(c *cli.Context) { fmt.Println(c.App.Version) }
	cli.VersionFlag = &cli.BoolFlag{Name: "version", Aliases: []string{"v"}, Usage: "print the version and build"}
}

func newApp() *cli.App {
	app := &cli.App{
		Name:                 "mgw",
		Usage:                "an API gateway compatible with Apigee Edge Microgateway",
		Version:              versionString(),
		EnableBashCompletion: true,
		Commands: []*cli.Command{
			startCommand(),
			stopCommand(),
			reloadCommand(),
			statusCommand(),
			initCommand(),
			tokenCommand(),
			verifyCommand(),
			configCommand(),
			configureCommand(),
			genkeysCommand(),
			revokekeysCommand(),
			certCommand(),
			rotatekeyCommand(),
			upgradekvmCommand(),
			upgradeauthCommand(),
			workerCommand(),
			completionCommand(),
		},
	}
	refuseStrayArgs(app.Commands)
	return app
}

// refuseStrayArgs makes every command whose usage names no arguments
// refuse them: `mgw start /etc/mgw` would otherwise start on the default
// config, with the directory ignored.
func refuseStrayArgs(cmds []*cli.Command) {
	for _, cmd := range cmds {
		refuseStrayArgs(cmd.Subcommands)
		if cmd.Action == nil || cmd.ArgsUsage != "" {
			continue
		}
		action := cmd.Action
		cmd.Action = func(c *cli.Context) error {
			if c.NArg() == 0 {
				return action(c)
			}
			arg := c.Args().First()
			msg := fmt.Sprintf("%s takes no arguments, got %q", c.Command.FullName(), arg)
			if info, err := os.Stat(arg); err == nil && info.IsDir() {
				msg += fmt.Sprintf("; to use the configuration in that directory, give --config-dir %s", arg)
			}
			return cli.Exit(msg, 1)
		}
	}
}

// Flag names shared by the commands (docs/CLI.md). Every command but the
// management ones (edgemicro's flags, where -p is the password) accepts
// all of them after its name, so ops scripts may pass the same set
// everywhere; each command's help lists those it honours.
const (
	flagConfig    = "config"
	flagConfigDir = "config-dir"
	flagRunDir    = "run-dir"
	flagOrg       = "org"
	flagEnv       = "env"
	flagKey       = "key"
	flagSecret    = "secret"
	flagProcesses = "processes"
	flagPort      = "port"
	flagLogLevel  = "log-level"
)

func commonFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagConfig, Usage: "configuration `FILE`", EnvVars: []string{"MGW_CONFIG"}},
		&cli.StringFlag{Name: flagConfigDir, Usage: "configuration `DIR` (default ~/.mgw)", EnvVars: []string{"MGW_CONFIG_DIR", "EDGEMICRO_CONFIG_DIR"}},
		&cli.StringFlag{Name: flagRunDir, Usage: "`DIR` for mgw.pid, mgw.sock and mgw.lock (default: the config dir)", EnvVars: []string{"MGW_RUN_DIR"}},
		&cli.StringFlag{Name: flagOrg, Aliases: []string{"o"}, Usage: "Apigee organization", EnvVars: []string{"EDGEMICRO_ORG"}},
		&cli.StringFlag{Name: flagEnv, Aliases: []string{"e"}, Usage: "Apigee environment", EnvVars: []string{"EDGEMICRO_ENV"}},
		&cli.StringFlag{Name: flagKey, Aliases: []string{"k"}, Usage: "Edge Microgateway key", EnvVars: []string{"EDGEMICRO_KEY"}},
		&cli.StringFlag{Name: flagSecret, Aliases: []string{"s"}, Usage: "Edge Microgateway secret", EnvVars: []string{"EDGEMICRO_SECRET"}},
		&cli.IntFlag{Name: flagProcesses, Aliases: []string{"p"}, Usage: "number of worker processes (1 to 1024)", Value: runtime.NumCPU(), DefaultText: "the number of CPUs", EnvVars: []string{"EDGEMICRO_PROCESSES"}},
		&cli.IntFlag{Name: flagPort, Aliases: []string{"r"}, Usage: "listening port (overrides edgemicro.port)"},
		&cli.StringFlag{Name: flagLogLevel, Usage: "log level: error, warn, info, debug, trace, none (overrides the config)"},
	}
}

// commonFlagsFor is commonFlags for a command that honours only the
// named ones: the others are accepted, so that scripts may pass the same
// set to every command, but hidden from its help, which lists only what
// the command uses.
func commonFlagsFor(honoured ...string) []cli.Flag {
	flags := commonFlags()
	for _, f := range flags {
		if slices.Contains(honoured, f.Names()[0]) {
			continue
		}
		switch f := f.(type) {
		case *cli.StringFlag:
			f.Hidden = true
		case *cli.IntFlag:
			f.Hidden = true
		}
	}
	return flags
}

// withoutEnv drops the environment variables of the named flags, so that
// only the command line sets them.
func withoutEnv(flags []cli.Flag, names ...string) []cli.Flag {
	for _, f := range flags {
		if f, ok := f.(*cli.StringFlag); ok && slices.Contains(names, f.Name) {
			f.EnvVars = nil
		}
	}
	return flags
}

// withCommon is a command's own flags followed by the common flags,
// those not in honoured hidden (commonFlagsFor). A common flag whose name
// or alias the command's own flags use is left out: `mgw token get -s`
// is the app's secret, as in edgemicro.
func withCommon(own []cli.Flag, honoured ...string) []cli.Flag {
	taken := map[string]bool{}
	for _, f := range own {
		for _, n := range f.Names() {
			taken[n] = true
		}
	}
	var out []cli.Flag
	for _, f := range commonFlagsFor(honoured...) {
		if !slices.ContainsFunc(f.Names(), func(n string) bool { return taken[n] }) {
			out = append(out, f)
		}
	}
	return append(out, own...)
}

// paths resolves the config dir, run dir and config file of a command.
type paths struct {
	configDir string
	runDir    string
	config    string // "" means the embedded default
}

// resolvePaths finds the config dir and run dir, and the config file the
// lookup would take when there is one. Commands that talk to a running
// master (stop, reload, status) need no more; the commands that read a
// configuration use resolveConfig, which is strict about what is missing.
func resolvePaths(c *cli.Context) (paths, error) {
	var p paths
	p.configDir = c.String(flagConfigDir)
	if p.configDir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return p, fmt.Errorf("finding the home directory for the default config dir: %w", err)
		}
		p.configDir = filepath.Join(home, ".mgw")
	}
	p.runDir = c.String(flagRunDir)
	if p.runDir == "" {
		p.runDir = p.configDir
	}
	if f := c.String(flagConfig); f != "" {
		p.config = f
		return p, nil
	}
	for _, f := range p.candidates(c) {
		// A file this user may not even look at is taken too: reading it
		// then says why, rather than the lookup saying it does not exist.
		if _, err := os.Stat(f); err == nil || errors.Is(err, fs.ErrPermission) {
			p.config = f
			break
		}
	}
	return p, nil
}

// candidates are the files the lookup tries in the config dir, in order.
func (p paths) candidates(c *cli.Context) []string {
	var out []string
	if org, env := c.String(flagOrg), c.String(flagEnv); org != "" && env != "" {
		out = append(out, filepath.Join(p.configDir, org+"-"+env+"-config.toml"))
	}
	return append(out, filepath.Join(p.configDir, initConfigName))
}

// whatToDo names the commands that write a config file.
func whatToDo(dir string) string {
	return fmt.Sprintf("write one with `mgw init --config-dir %s` (local mode), `mgw configure -o ORG -e ENV --config-dir %s` (an Apigee org) or `mgw config import ORG-ENV-config.yaml --output FILE` (an edgemicro file)", dir, dir)
}

// resolveConfig is resolvePaths for the commands that read the
// configuration (start, verify, config show, token). The lookup is
// --config; else {org}-{env}-config.toml in the config dir when org and
// env are given; else mgw.toml there. The embedded default (p.config "")
// serves only when the user named nothing: no --config, no --config-dir
// (nor their environment variables), no org or env. Anything named that
// is not found is an error that names the paths looked for and what to
// do, never a silent fall-back to the demo.
func resolveConfig(c *cli.Context) (paths, error) {
	p, err := resolvePaths(c)
	if err != nil {
		return p, err
	}
	if f := c.String(flagConfig); f != "" {
		st, err := os.Stat(f)
		switch {
		case errors.Is(err, os.ErrNotExist):
			return p, fmt.Errorf("config file %s does not exist: %s", f, whatToDo(filepath.Dir(f)))
		case err != nil:
			return p, fmt.Errorf("config file: %w", err)
		case st.IsDir():
			return p, fmt.Errorf("config file %s is a directory (for a config dir, give --config-dir)", f)
		}
		return p, nil
	}
	dirNamed := c.String(flagConfigDir) != ""
	org, env := c.String(flagOrg), c.String(flagEnv)
	if !dirNamed && org == "" && env == "" {
		return p, nil // the embedded default when ~/.mgw/mgw.toml does not exist
	}
	if p.config != "" {
		return p, nil
	}
	if dirNamed {
		if st, err := os.Stat(p.configDir); errors.Is(err, os.ErrNotExist) {
			return p, fmt.Errorf("config dir %s does not exist: %s", p.configDir, whatToDo(p.configDir))
		} else if err != nil {
			return p, fmt.Errorf("config dir: %w", configs.ExplainAccess(err))
		} else if !st.IsDir() {
			return p, fmt.Errorf("config dir %s is not a directory (for a config file, give --config)", p.configDir)
		}
	}
	looked := strings.Join(p.candidates(c), " nor ")
	if (org == "") != (env == "") {
		return p, fmt.Errorf("no config file: %s does not exist, and {org}-{env}-config.toml needs both -o/--org and -e/--env (one was given); %s", looked, whatToDo(p.configDir))
	}
	if org != "" {
		return p, fmt.Errorf("no config for org %s env %s: %s does not exist; run `mgw configure -o %s -e %s --config-dir %s`, or convert an edgemicro file with `mgw config import %s-%s-config.yaml --output %s`",
			org, env, looked, org, env, p.configDir, org, env, p.candidates(c)[0])
	}
	return p, fmt.Errorf("no config file: %s does not exist; %s", looked, whatToDo(p.configDir))
}

func (p paths) controlSocket() string { return filepath.Join(p.runDir, master.ControlFileName) }
