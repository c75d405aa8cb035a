package mgwcmd

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"
)

// CLIReference renders the command line reference, docs/CLI.md, from the
// command definitions themselves, so that it cannot drift from them:
// every visible command and subcommand with its usage line, and every
// flag with its aliases, environment variables, default and meaning.
// The output depends on nothing but the definitions (TestCLIReferenceIsCurrent
// compares it with the file; `make docs` rewrites the file).
func CLIReference() string {
	app := newApp()
	var b strings.Builder
	b.WriteString("# mgw command line reference\n\n")
	b.WriteString("<!-- Generated from the command definitions in cmd/mgwcmd by `make docs`; do not edit. -->\n\n")
	fmt.Fprintf(&b, "`%s` is %s. Every flag is accepted after the command's name; a flag's\n", app.Name, app.Usage)
	b.WriteString("environment variables, tried in order, give its value when the flag is not\n")
	b.WriteString("given. `--help` (`-h`) prints a command's help, `mgw --version` the version.\n")
	b.WriteString("The configuration file's keys are in [CONFIG.md](CONFIG.md).\n\n")

	b.WriteString("| command | what it does |\n|---|---|\n")
	var walk func(prefix string, cmds []*cli.Command)
	walk = func(prefix string, cmds []*cli.Command) {
		for _, c := range cmds {
			if c.Hidden {
				continue
			}
			full := prefix + " " + c.Name
			fmt.Fprintf(&b, "| [`%s`](#%s) | %s |\n", full, anchor(full), cell(c.Usage))
			walk(full, c.Subcommands)
		}
	}
	walk(app.Name, app.Commands)

	// Flag sets many commands share are listed once.
	groups := []flagGroup{
		{"Common flags", "Every command but the management commands accepts these flags, so that\nscripts may pass the same set to each. A command's own section lists\nthose it honours; it accepts the others and ignores them (`mgw reload`\nrefuses those that are not the running instance's own).", commonFlags(), nil},
		{"Management flags", "The commands that change an Apigee org take these flags, named as edgemicro's.", mgmtFlags(true), nil},
	}
	for i := range groups {
		g := &groups[i]
		fmt.Fprintf(&b, "\n## %s\n\n%s\n\n%s", g.title, g.intro, flagHeader)
		g.rows = map[string]bool{}
		for _, f := range visibleFlags(g.flags) {
			row := flagRow(f)
			g.rows[row] = true
			b.WriteString(row)
		}
	}

	var render func(prefix string, cmds []*cli.Command)
	render = func(prefix string, cmds []*cli.Command) {
		for _, c := range cmds {
			if c.Hidden {
				continue
			}
			full := prefix + " " + c.Name
			renderCommand(&b, full, c, groups)
			render(full, c.Subcommands)
		}
	}
	render(app.Name, app.Commands)
	for strings.Contains(b.String(), "\n\n\n") {
		s := strings.ReplaceAll(b.String(), "\n\n\n", "\n\n")
		b.Reset()
		b.WriteString(s)
	}
	return b.String()
}

// flagGroup is a set of flags several commands share.
type flagGroup struct {
	title, intro string
	flags        []cli.Flag
	rows         map[string]bool // the rendered rows of flags
}

const flagHeader = "| flag | environment | default | meaning |\n|---|---|---|---|\n"

func renderCommand(b *strings.Builder, full string, c *cli.Command, groups []flagGroup) {
	fmt.Fprintf(b, "\n## %s\n\n", full)
	if c.Usage != "" {
		b.WriteString(sentence(c.Usage) + "\n\n")
	}
	if len(c.Aliases) > 0 {
		fmt.Fprintf(b, "Also: `%s`.\n\n", strings.Join(c.Aliases, "`, `"))
	}
	usage := full
	if len(c.Subcommands) > 0 {
		usage += " COMMAND"
	}
	if len(visibleFlags(c.Flags)) > 0 {
		usage += " [flags]"
	}
	if c.ArgsUsage != "" {
		usage += " " + c.ArgsUsage
	}
	fmt.Fprintf(b, "```\n%s\n```\n\n", usage)
	if c.Description != "" {
		b.WriteString(strings.TrimSpace(c.Description) + "\n\n")
	}
	if len(c.Subcommands) > 0 {
		b.WriteString("Commands: ")
		var names []string
		for _, s := range c.Subcommands {
			if !s.Hidden {
				names = append(names, fmt.Sprintf("[`%s`](#%s)", s.Name, anchor(full+" "+s.Name)))
			}
		}
		b.WriteString(strings.Join(names, ", ") + ".\n\n")
	}
	flags := visibleFlags(c.Flags)
	if len(flags) == 0 {
		return
	}
	// A command that takes every flag of a group says so, and lists only
	// its own.
	var rows []string
	for _, f := range flags {
		rows = append(rows, flagRow(f))
	}
	for _, g := range groups {
		n := 0
		for _, r := range rows {
			if g.rows[r] {
				n++
			}
		}
		if n != len(g.rows) {
			continue
		}
		fmt.Fprintf(b, "Takes the [%s](#%s)", strings.ToLower(g.title), anchor(g.title))
		rows = slices.DeleteFunc(rows, func(r string) bool { return g.rows[r] })
		if len(rows) == 0 {
			b.WriteString(".\n")
			return
		}
		b.WriteString(", and:\n\n")
		break
	}
	b.WriteString(flagHeader + strings.Join(rows, ""))
}

// visibleFlags returns the flags of a command that its help shows, in
// their order of definition.
func visibleFlags(flags []cli.Flag) []cli.Flag {
	var out []cli.Flag
	for _, f := range flags {
		if v, ok := f.(cli.VisibleFlag); ok && !v.IsVisible() {
			continue
		}
		out = append(out, f)
	}
	return out
}

// flagRow renders one flag as a row of the flag table.
func flagRow(f cli.Flag) string {
	d, ok := f.(cli.DocGenerationFlag)
	if !ok {
		return fmt.Sprintf("| %s | | | |\n", cell(strings.Join(f.Names(), ", ")))
	}
	placeholder, usage := unquote(d.GetUsage())
	if d.TakesValue() && placeholder == "" {
		placeholder = "value"
	}
	// Long names first, then the one-letter aliases, as in --help.
	names := append([]string(nil), f.Names()...)
	sort.SliceStable(names, func(i, j int) bool { return len(names[i]) > 1 && len(names[j]) == 1 })
	var shown []string
	for _, n := range names {
		dash := "--"
		if len(n) == 1 {
			dash = "-"
		}
		s := dash + n
		if d.TakesValue() && len(shown) == 0 {
			s += " " + placeholder
		}
		shown = append(shown, "`"+s+"`")
	}
	var env []string
	for _, e := range d.GetEnvVars() {
		env = append(env, "`"+e+"`")
	}
	def := ""
	if d.TakesValue() {
		def = d.GetDefaultText()
		if s, err := strconv.Unquote(def); err == nil {
			def = s
		}
		if def != "" {
			def = "`" + def + "`"
		}
	}
	if r, ok := f.(cli.RequiredFlag); ok && r.IsRequired() {
		def = "required"
	}
	return fmt.Sprintf("| %s | %s | %s | %s |\n", strings.Join(shown, ", "), strings.Join(env, ", "), cell(def), cell(usage))
}

// unquote takes the `PLACEHOLDER` out of a usage string, as cli does for --help.
func unquote(usage string) (string, string) {
	i := strings.IndexByte(usage, '`')
	if i < 0 {
		return "", usage
	}
	j := strings.IndexByte(usage[i+1:], '`')
	if j < 0 {
		return "", usage
	}
	name := usage[i+1 : i+1+j]
	return name, usage[:i] + name + usage[i+1+j+1:]
}

// cell escapes a table cell.
func cell(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "|", `\|`), "\n", " ")
}

// sentence capitalises s and ends it with a full stop.
func sentence(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return s
	}
	s = strings.ToUpper(s[:1]) + s[1:]
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}

// anchor is the fragment GitHub gives the heading "## text".
func anchor(text string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(text) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9'):
			b.WriteRune(r)
		}
	}
	return b.String()
}
