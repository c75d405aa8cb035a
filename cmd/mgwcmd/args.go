package mgwcmd

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// flagsFirst moves the flags of the command line's (sub)command in front
// of its arguments, so that `mgw config import FILE.yaml --output F` reads
// as `mgw config import --output F FILE.yaml`. urfave/cli stops reading
// flags at the first argument; the README writes flags after arguments
// (and ops scripts do), so every command accepts both orders. A flag's
// value stays with it; everything after "--" stays an argument.
func flagsFirst(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	// The command path: program, global flags, command, subcommands.
	out := []string{args[0]}
	cmds := app.Commands
	var cmd *cli.Command
	i := 1
	for ; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "-") {
			out = append(out, a)
			continue
		}
		next := findCommand(cmds, a)
		if next == nil {
			break
		}
		out = append(out, a)
		cmd, cmds = next, next.Subcommands
		if len(cmds) == 0 {
			i++
			break
		}
	}
	if cmd == nil || i >= len(args) {
		return args
	}
	var flags, positional []string
	for ; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			positional = append(positional, args[i+1:]...)
			i = len(args)
		case a == "-" || !strings.HasPrefix(a, "-"):
			positional = append(positional, a)
		default:
			flags = append(flags, a)
			if takesValue(cmd, a) && i+1 < len(args) {
				i++
				flags = append(flags, args[i])
			}
		}
	}
	out = append(out, flags...)
	for _, p := range positional {
		if strings.HasPrefix(p, "-") && p != "-" {
			out = append(out, "--")
			break
		}
	}
	return append(out, positional...)
}

// findCommand returns the command named (or aliased) name, or nil.
func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

// takesValue reports whether the flag token a (-x, --name; not --name=v)
// names a flag of cmd that takes a value.
func takesValue(cmd *cli.Command, a string) bool {
	if strings.Contains(a, "=") {
		return false
	}
	name := strings.TrimLeft(a, "-")
	for _, f := range cmd.Flags {
		for _, n := range f.Names() {
			if n == name {
				if d, ok := f.(cli.DocGenerationFlag); ok {
					return d.TakesValue()
				}
				return true
			}
		}
	}
	return false
}

// unknownCommand returns an error when the command line names a command
// (or a subcommand) mgw does not have: exit 1, the status of a usage
// error (3 means "not running"). It returns nil otherwise.
func unknownCommand(app *cli.App, args []string) error {
	cmds := app.Commands
	path := "mgw"
	for _, a := range args[1:] {
		if strings.HasPrefix(a, "-") {
			if cmds == nil {
				return nil
			}
			continue
		}
		if cmds == nil {
			return nil // an argument
		}
		if a == "help" || a == "h" {
			return nil
		}
		c := findCommand(cmds, a)
		if c == nil {
			return cli.Exit(fmt.Sprintf("unknown command %q: see `%s --help`", path+" "+a, path), 1)
		}
		path += " " + a
		cmds = c.Subcommands
		if len(cmds) == 0 {
			return nil
		}
	}
	return nil
}
