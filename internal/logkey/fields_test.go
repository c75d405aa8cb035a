package logkey

import (
	"flag"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the Log fields table of docs/OPERATIONS.md from the constants")

// The table sits between these lines of docs/OPERATIONS.md.
const (
	tableStart = "<!-- Log fields: generated from internal/logkey by `go test ./internal/logkey -run TestLogFieldsTableIsCurrent -update`; do not edit. -->"
	tableEnd   = "<!-- End of log fields. -->"
)

// field is one name of the vocabulary, as its constant declares it.
type field struct {
	constant, name, meaning, unit string
}

var snakeCase = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// fields reads the constants of logkey.go with their doc comments, in
// the order they are declared, leaving out the values of Component and
// Subsystem.
func fields(t *testing.T) []field {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "logkey.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	var out []field
	for _, decl := range f.Decls {
		g, ok := decl.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			c := vs.Names[0].Name
			if c != "Component" && strings.HasPrefix(c, "Component") || c != "Subsystem" && strings.HasPrefix(c, "Subsystem") {
				continue
			}
			lit, ok := vs.Values[0].(*ast.BasicLit)
			if !ok {
				t.Fatalf("%s is not a string literal", c)
			}
			name, _ := strconv.Unquote(lit.Value)
			doc := strings.Join(strings.Fields(vs.Doc.Text()), " ")
			if !strings.HasPrefix(doc, c+" ") {
				t.Errorf("the comment of %s does not start with its name: %q", c, doc)
			}
			meaning := strings.TrimPrefix(strings.TrimPrefix(doc, c+" "), "is ")
			unit := ""
			switch {
			case strings.HasSuffix(name, "_ms"):
				unit = "milliseconds"
				meaning = strings.TrimSuffix(meaning, ", in milliseconds.") + "."
			case strings.Contains(meaning, "RFC 3339"):
				unit = "time (RFC 3339)"
			case strings.HasPrefix(meaning, "how many"):
				unit = "count"
			}
			out = append(out, field{constant: c, name: name, meaning: meaning, unit: unit})
		}
	}
	return out
}

// TestTheVocabularyIsConsistent: each name is snake_case and has one
// constant; a duration's name ends in _ms and its comment says
// milliseconds, and no other does.
func TestTheVocabularyIsConsistent(t *testing.T) {
	seen := map[string]string{}
	for _, f := range fields(t) {
		if other, dup := seen[f.name]; dup {
			t.Errorf("%s and %s both name %q", f.constant, other, f.name)
		}
		seen[f.name] = f.constant
		if !snakeCase.MatchString(f.name) {
			t.Errorf("%s = %q is not snake_case", f.constant, f.name)
		}
		ms := strings.HasSuffix(f.name, "_ms")
		if ms != strings.HasSuffix(f.constant, "MS") || (f.unit == "milliseconds") != ms || strings.Contains(f.meaning, "millisecond") {
			t.Errorf("%s = %q: a duration's constant ends in MS, its name in _ms and its comment in \", in milliseconds.\"; no other's does", f.constant, f.name)
		}
	}
	if len(seen) < 40 {
		t.Errorf("found %d fields in logkey.go: is the parse broken?", len(seen))
	}
}

// table renders the fields as docs/OPERATIONS.md shows them.
func table(fs []field) string {
	var b strings.Builder
	b.WriteString(tableStart + "\n\n| field | meaning | unit |\n| --- | --- | --- |\n")
	for _, f := range fs {
		b.WriteString("| `" + f.name + "` | " + strings.ReplaceAll(f.meaning, "|", `\|`) + " | " + f.unit + " |\n")
	}
	b.WriteString("\n" + tableEnd)
	return b.String()
}

// TestLogFieldsTableIsCurrent keeps the Log fields table of
// docs/OPERATIONS.md equal to what the constants render, so that what
// operators read cannot drift from what the processes write.
func TestLogFieldsTableIsCurrent(t *testing.T) {
	const path = "../../docs/OPERATIONS.md"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i, j := strings.Index(doc, tableStart), strings.Index(doc, tableEnd)
	if i < 0 || j < i {
		t.Fatalf("docs/OPERATIONS.md has no Log fields table between %q and %q", tableStart, tableEnd)
	}
	got := table(fields(t))
	current := doc[i : j+len(tableEnd)]
	if current == got {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(doc[:i]+got+doc[j+len(tableEnd):]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatal("the Log fields table of docs/OPERATIONS.md is stale: run `go test ./internal/logkey -run TestLogFieldsTableIsCurrent -update`")
}
