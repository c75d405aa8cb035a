package mgwcmd

import (
	"io"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// managementCommands take edgemicro's management flags (-p is the
// password there), not the common ones.
var managementCommands = []string{
	"configure", "genkeys", "revokekeys", "cert install", "cert check", "cert delete",
	"cert public-key", "rotatekey", "upgradekvm", "upgradeauth",
}

// leafCommands are the paths of every visible command that runs.
func leafCommands(app *cli.App) []string {
	var out []string
	var walk func(prefix string, cmds []*cli.Command)
	walk = func(prefix string, cmds []*cli.Command) {
		for _, c := range cmds {
			if c.Hidden {
				continue
			}
			path := strings.TrimSpace(prefix + " " + c.Name)
			if len(c.Subcommands) > 0 {
				walk(path, c.Subcommands)
				continue
			}
			out = append(out, path)
		}
	}
	walk("", app.Commands)
	return out
}

// commandAt is the command at path.
func commandAt(app *cli.App, path string) *cli.Command {
	cmds := app.Commands
	var c *cli.Command
	for _, name := range strings.Fields(path) {
		c = findCommand(cmds, name)
		cmds = c.Subcommands
	}
	return c
}

// TestEveryCommandAcceptsTheCommonFlags: every command but the management
// ones parses each common flag, by its long name and by its one-letter
// alias, with a value (then --help, so that nothing runs). Not parallel:
// urfave/cli's help and version flags are globals every App writes.
func TestEveryCommandAcceptsTheCommonFlags(t *testing.T) {
	values := map[string]string{flagProcesses: "2", flagPort: "8000", flagLogLevel: "info"}
	for _, path := range leafCommands(newApp()) {
		if slices.Contains(managementCommands, path) {
			continue
		}
		for _, f := range commonFlags() {
			for _, name := range f.Names() {
				dash := "--"
				if len(name) == 1 {
					dash = "-"
				}
				value := values[f.Names()[0]]
				if value == "" {
					value = "x"
				}
				t.Run(path+" "+dash+name, func(t *testing.T) {
					app := newApp()
					app.Writer, app.ErrWriter = io.Discard, io.Discard
					args := append(append([]string{"mgw"}, strings.Fields(path)...), dash+name, value, "--help")
					if err := app.Run(args); err != nil {
						t.Fatalf("mgw %s %s %s: %v", path, dash+name, value, err)
					}
				})
			}
		}
	}
}

// TestHelpListsWhatEachCommandHonours: the common flags a command's help
// shows are those it acts on; the others are accepted but hidden.
func TestHelpListsWhatEachCommandHonours(t *testing.T) {
	t.Parallel()
	all := []string{flagConfig, flagConfigDir, flagRunDir, flagOrg, flagEnv, flagKey, flagSecret, flagProcesses, flagPort, flagLogLevel}
	want := map[string][]string{
		"start":         all,
		"verify":        all,
		"config show":   all,
		"stop":          {flagConfigDir, flagRunDir},
		"status":        {flagConfigDir, flagRunDir},
		"reload":        {flagConfig, flagConfigDir, flagRunDir, flagProcesses, flagPort},
		"init":          {flagConfigDir},
		"token get":     {flagConfig, flagConfigDir, flagOrg, flagEnv, "secret"}, // -s: the app's secret
		"token verify":  {flagConfig, flagConfigDir, flagOrg, flagEnv},
		"token decode":  {},
		"config import": {},
		"completion":    {},
	}
	app := newApp()
	for _, path := range leafCommands(app) {
		if slices.Contains(managementCommands, path) {
			continue
		}
		honoured, ok := want[path]
		if !ok {
			t.Errorf("mgw %s: add it to this table with the common flags it honours", path)
			continue
		}
		var shown []string
		for _, f := range visibleFlags(commandAt(app, path).Flags) {
			if slices.Contains(all, f.Names()[0]) {
				shown = append(shown, f.Names()[0])
			}
		}
		sort.Strings(shown)
		w := slices.Clone(honoured)
		sort.Strings(w)
		if !slices.Equal(shown, w) {
			t.Errorf("mgw %s --help lists the common flags %v, want %v", path, shown, w)
		}
	}
}
