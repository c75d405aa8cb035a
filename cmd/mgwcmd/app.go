package mgwcmd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/urfave/cli/v2"

	// The built-in plugins register themselves; master and workers need them.
	_ "github.com/mgw-gateway/mgw/plugins/builtin"
)

// Exit statuses beyond 0 and 1.
const exitNotRunning = 3 // `mgw status` when nothing runs, like systemctl status

// Main runs the command line and returns the process's exit status.
func Main(args []string) int {
	app := newApp()
	if err := app.Run(args); err != nil {
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
	return &cli.App{
		Name:                 "mgw",
		Usage:                "an API gateway compatible with Apigee Edge Microgateway",
		Version:              versionString(),
		EnableBashCompletion: false,
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
		},
	}
}

// Flag names shared by the commands (SPEC §1). Every command accepts all
// of them after its name, so ops scripts may pass the same set everywhere.
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
		&cli.StringFlag{Name: flagRunDir, Usage: "`DIR` for mgw.pid and mgw.sock (default: the config dir)", EnvVars: []string{"MGW_RUN_DIR"}},
		&cli.StringFlag{Name: flagOrg, Aliases: []string{"o"}, Usage: "Apigee organization", EnvVars: []string{"EDGEMICRO_ORG"}},
		&cli.StringFlag{Name: flagEnv, Aliases: []string{"e"}, Usage: "Apigee environment", EnvVars: []string{"EDGEMICRO_ENV"}},
		&cli.StringFlag{Name: flagKey, Aliases: []string{"k"}, Usage: "Edge Microgateway key", EnvVars: []string{"EDGEMICRO_KEY"}},
		&cli.StringFlag{Name: flagSecret, Aliases: []string{"s"}, Usage: "Edge Microgateway secret", EnvVars: []string{"EDGEMICRO_SECRET"}},
		&cli.IntFlag{Name: flagProcesses, Aliases: []string{"p"}, Usage: "number of worker processes", Value: runtime.NumCPU(), DefaultText: "the number of CPUs", EnvVars: []string{"EDGEMICRO_PROCESSES"}},
		&cli.IntFlag{Name: flagPort, Aliases: []string{"r"}, Usage: "listening port (overrides edgemicro.port)"},
		&cli.StringFlag{Name: flagLogLevel, Usage: "log level: error, warn, info, debug, trace, none (overrides the config)"},
	}
}

// paths resolves the config dir, run dir and config file of a command.
type paths struct {
	configDir string
	runDir    string
	config    string // "" means the embedded default
}

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
		if _, err := os.Stat(f); err != nil {
			return p, fmt.Errorf("config file: %w", err)
		}
		p.config = f
		return p, nil
	}
	var candidates []string
	if org, env := c.String(flagOrg), c.String(flagEnv); org != "" && env != "" {
		candidates = append(candidates, filepath.Join(p.configDir, org+"-"+env+"-config.toml"))
	}
	candidates = append(candidates, filepath.Join(p.configDir, "mgw.toml"))
	for _, f := range candidates {
		if _, err := os.Stat(f); err == nil {
			p.config = f
			break
		}
	}
	return p, nil
}

func (p paths) controlSocket() string { return filepath.Join(p.runDir, "mgw.sock") }
