// Package configdoc keeps docs/CONFIG.md true: it reads which keys the
// document describes under which section heading, walks the Go types
// that decode mgw.toml for the keys that exist, and names every
// difference together with the edit that removes it. The tests of
// configs (the typed sections) and plugins/builtin (the plugins'
// sections) use it, so a key added in code without a line in the
// document fails a test that says what to write where. Its own test
// keeps every comment and document citing only files of the repository.
package configdoc

import (
	"bufio"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Path is where the configuration reference lives, from the module root.
const Path = "docs/CONFIG.md"

// Doc is what CONFIG.md describes: for each section (edgemicro.logging,
// proxies, quotas …) the keys that have a row in its table.
type Doc map[string]map[string]Row

// Row is one key's row: its cells by the column names of the table's
// header (key, type, default, unit, applies, edgemicro, meaning).
type Row map[string]string

var (
	// A section heading names the section in backticks: ## `[edgemicro]`
	// or ## `[[proxies]]`, with any words around it.
	headingRe = regexp.MustCompile("^#+\\s.*?`\\[\\[?([A-Za-z0-9_.-]+)\\]\\]?`")
	// A key is the first backticked word of a table row: | `port` | …
	rowRe = regexp.MustCompile("^\\|\\s*`([^`]+)`")
)

// Read parses the document at path. Rows before the first section
// heading, and headings that name no section, belong to no section.
func Read(path string) (Doc, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading the configuration reference: %w", err)
	}
	defer f.Close()
	doc := Doc{}
	section := ""
	var columns []string // the header of the current table
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") {
			section, columns = "", nil
			if m := headingRe.FindStringSubmatch(line); m != nil {
				section = m[1]
				if doc[section] == nil {
					doc[section] = map[string]Row{}
				}
			}
			continue
		}
		if !strings.HasPrefix(line, "|") || section == "" {
			continue
		}
		cells := splitRow(line)
		if m := rowRe.FindStringSubmatch(line); m != nil {
			row := Row{}
			for i, c := range cells {
				if i < len(columns) {
					row[columns[i]] = c
				}
			}
			doc[section][m[1]] = row
		} else if len(cells) > 0 && cells[0] == "key" {
			columns = cells
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading the configuration reference: %w", err)
	}
	return doc, nil
}

// splitRow returns the trimmed cells of a table row, honouring \| escapes.
func splitRow(line string) []string {
	line = strings.TrimSuffix(strings.TrimPrefix(line, "|"), "|")
	var cells []string
	var cur strings.Builder
	for i := 0; i < len(line); i++ {
		switch {
		case line[i] == '\\' && i+1 < len(line) && line[i+1] == '|':
			cur.WriteByte('|')
			i++
		case line[i] == '|':
			cells = append(cells, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteByte(line[i])
		}
	}
	return append(cells, strings.TrimSpace(cur.String()))
}

// Keys walks the struct type t, decoded with the struct tag tag ("toml"
// or "json"), as the section named section, and adds to out every key
// of it and of its sub-tables: out[section] lists the section's own
// keys, and a struct-valued field (or a list of structs, an array of
// tables) is the sub-section section.key. A section without keys of its
// own (such as [targets.ssl]) still appears, with none.
func Keys(t reflect.Type, tag, section string, out map[string][]string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if _, ok := out[section]; !ok {
		out[section] = nil
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get(tag), ",")
		if name == "-" || name == "" {
			continue
		}
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct {
			sub := name
			if section != "" {
				sub = section + "." + name
			}
			Keys(ft, tag, sub, out)
			continue
		}
		out[section] = append(out[section], name)
	}
}

// Missing returns one message for every key of want that doc lacks,
// each saying which row to add under which heading, sorted.
func Missing(doc Doc, want map[string][]string) []string {
	var msgs []string
	for section, keys := range want {
		if len(keys) == 0 {
			continue
		}
		documented, ok := doc[section]
		if !ok {
			msgs = append(msgs, fmt.Sprintf("%s has no heading for [%s] (keys %s): add a heading that names it in backticks, such as \"## `[%s]`\", with a table of its keys, one row each beginning | `key` |",
				Path, section, strings.Join(sorted(keys), ", "), section))
			continue
		}
		for _, k := range keys {
			if _, ok := documented[k]; !ok {
				msgs = append(msgs, fmt.Sprintf("%s does not describe %s.%s: add a row beginning | `%s` | (type, default, unit, meaning, edgemicro's name, when it applies) to the table under the heading of `[%s]`",
					Path, section, k, k, section))
			}
		}
	}
	sort.Strings(msgs)
	return msgs
}

// Defaults walks v, a struct holding every default of the section named
// section (and of its sub-tables), and returns one message for every key
// whose default is not zero and whose row's default cell in doc does not
// show it. A key without a row is left to Missing.
func Defaults(doc Doc, v reflect.Value, tag, section string) []string {
	var msgs []string
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get(tag), ",")
		if !f.IsExported() || name == "-" || name == "" {
			continue
		}
		fv := v.Field(i)
		key := name
		if section != "" {
			key = section + "." + name
		}
		var want string
		switch fv.Kind() {
		case reflect.Struct, reflect.Pointer:
			msgs = append(msgs, Defaults(doc, fv, tag, key)...)
			continue
		case reflect.Int, reflect.Int64, reflect.Int32:
			if fv.Int() != 0 {
				want = fmt.Sprint(fv.Int())
			}
		case reflect.Bool:
			if fv.Bool() {
				want = "true"
			}
		case reflect.String:
			want = fv.String()
		}
		if want == "" {
			continue
		}
		row, ok := doc[section][name]
		if cell := row["default"]; ok && !strings.Contains(cell, want) {
			msgs = append(msgs, fmt.Sprintf("%s gives the default of %s as %q, but mgw's default is %s: write %s in the default column of its row under the heading of `[%s]`",
				Path, key, cell, want, want, section))
		}
	}
	sort.Strings(msgs)
	return msgs
}

// Applies are the values of the applies column: a file edit applies the
// key to running workers, or it waits for mgw reload.
var Applies = []string{"edit", "reload"}

// Incomplete returns one message for every row of doc that leaves its
// type, default, edgemicro or meaning cell empty, or whose applies cell
// is not one of Applies. The unit cell may be empty.
func Incomplete(doc Doc) []string {
	var msgs []string
	for section, rows := range doc {
		for key, row := range rows {
			for _, col := range []string{"type", "default", "edgemicro", "meaning"} {
				if row[col] == "" {
					msgs = append(msgs, fmt.Sprintf("%s: the row of %s.%s has no %s: fill its %s column (the table's header names the columns: | key | type | default | unit | applies | edgemicro | meaning |)",
						Path, section, key, col, col))
				}
			}
			if !slices.Contains(Applies, row["applies"]) {
				msgs = append(msgs, fmt.Sprintf("%s: the row of %s.%s says it applies on %q: write edit (a saved file applies it in place) or reload (it waits for mgw reload)",
					Path, section, key, row["applies"]))
			}
		}
	}
	sort.Strings(msgs)
	return msgs
}

// Extra returns one message for every key doc describes in one of the
// sections of want that want does not have: a row for a key mgw does
// not read. allowed lists keys every one of those sections accepts
// besides its own.
func Extra(doc Doc, want map[string][]string, allowed ...string) []string {
	var msgs []string
	for section, keys := range want {
		have := map[string]bool{}
		for _, k := range append(keys, allowed...) {
			have[k] = true
		}
		for k := range doc[section] {
			if !have[k] {
				msgs = append(msgs, fmt.Sprintf("%s describes %s.%s, which mgw does not read: remove its row under the heading of `[%s]`, or fix the key's spelling",
					Path, section, k, section))
			}
		}
	}
	sort.Strings(msgs)
	return msgs
}

func sorted(s []string) []string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return s
}
