package logkey

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// notYetMigrated lists the packages (directories from the module root)
// whose log lines do not use the vocabulary yet; the test skips their
// findings. Whoever migrates a package removes it here: the test fails
// while a listed package has nothing left to migrate.
var notYetMigrated = map[string]bool{}

// modulePath is the import path of the module's root.
const modulePath = "github.com/mgw-gateway/mgw"

// fieldMethods are zerolog's Event and Context methods that take a field
// name first and a value second.
var fieldMethods = map[string]bool{}

func init() {
	for _, m := range strings.Fields(`Str Strs Stringer Stringers Bytes Hex RawJSON RawCBOR
		Int Ints Int8 Ints8 Int16 Ints16 Int32 Ints32 Int64 Ints64
		Uint Uints Uint8 Uints8 Uint16 Uints16 Uint32 Uints32 Uint64 Uints64
		Float32 Floats32 Float64 Floats64 Bool Bools Dur Durs Time Times TimeDiff
		AnErr Errs Interface Any Dict Array Object IPAddr IPPrefix MACAddr Type`) {
		fieldMethods[m] = true
	}
}

// source is the module's non-test Go code, parsed.
type source struct {
	fset *token.FileSet
	// files by package directory (relative to the module root).
	files map[string][]*ast.File
	// consts holds the package-level constants of each package directory.
	consts map[string]map[string]bool
}

func parseModule(t *testing.T, root string) *source {
	t.Helper()
	s := &source{fset: token.NewFileSet(), files: map[string][]*ast.File{}, consts: map[string]map[string]bool{}}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "bin" || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(s.fset, path, nil, 0)
		if err != nil {
			return err
		}
		dir, _ := filepath.Rel(root, filepath.Dir(path))
		dir = filepath.ToSlash(dir)
		s.files[dir] = append(s.files[dir], f)
		if s.consts[dir] == nil {
			s.consts[dir] = map[string]bool{}
		}
		for _, decl := range f.Decls {
			if g, ok := decl.(*ast.GenDecl); ok && g.Tok == token.CONST {
				for _, spec := range g.Specs {
					for _, n := range spec.(*ast.ValueSpec).Names {
						s.consts[dir][n.Name] = true
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// imports maps the names a file imports packages under to their paths.
func imports(f *ast.File) map[string]string {
	m := map[string]string{}
	for _, im := range f.Imports {
		path, _ := strconv.Unquote(im.Path.Value)
		name := path[strings.LastIndex(path, "/")+1:]
		if im.Name != nil {
			name = im.Name.Name
		}
		m[name] = path
	}
	return m
}

// constant reports whether e is a constant string expression: literals,
// constants of the module and their concatenation.
func (s *source) constant(dir string, imp map[string]string, e ast.Expr) bool {
	switch e := e.(type) {
	case *ast.BasicLit:
		return e.Kind == token.STRING
	case *ast.ParenExpr:
		return s.constant(dir, imp, e.X)
	case *ast.BinaryExpr:
		return e.Op == token.ADD && s.constant(dir, imp, e.X) && s.constant(dir, imp, e.Y)
	case *ast.Ident:
		if e.Obj != nil {
			return e.Obj.Kind == ast.Con
		}
		return s.consts[dir][e.Name]
	case *ast.SelectorExpr:
		pkg, ok := e.X.(*ast.Ident)
		if !ok || pkg.Obj != nil {
			return false
		}
		path, ok := imp[pkg.Name]
		if !ok || !strings.HasPrefix(path, modulePath+"/") {
			return false
		}
		return s.consts[strings.TrimPrefix(path, modulePath+"/")][e.Sel.Name]
	}
	return false
}

// violations lists, by package directory, every log field named other
// than by a constant of this package, and every message that is not a
// constant string.
func (s *source) violations() map[string][]string {
	out := map[string][]string{}
	for dir, files := range s.files {
		for _, f := range files {
			imp := imports(f)
			ast.Inspect(f, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				if pkg, ok := sel.X.(*ast.Ident); ok && pkg.Obj == nil && imp[pkg.Name] != "" {
					return true // a package's function (rand.Int), not a logger's method
				}
				at := s.fset.Position(call.Pos())
				where := fmt.Sprintf("%s:%d", filepath.ToSlash(at.Filename), at.Line)
				name := sel.Sel.Name
				switch {
				case fieldMethods[name] && len(call.Args) == 2:
					if !s.vocabulary(imp, call.Args[0]) {
						out[dir] = append(out[dir], where+": field "+name+"("+render(s.fset, call.Args[0])+", …) is not named by a logkey constant")
					}
				case name == "Fields" && len(call.Args) == 1:
					out[dir] = append(out[dir], where+": Fields names fields outside the vocabulary: use typed fields named by logkey constants")
				case name == "Msgf":
					out[dir] = append(out[dir], where+": Msgf puts values into the message: use Msg with a constant string and put the values in fields")
				case name == "Msg" && len(call.Args) == 1 && !s.constant(dir, imp, call.Args[0]):
					out[dir] = append(out[dir], where+": Msg("+render(s.fset, call.Args[0])+") is not a constant string: put the values in fields")
				}
				return true
			})
		}
	}
	return out
}

// vocabulary reports whether e is one of this package's constants.
func (s *source) vocabulary(imp map[string]string, e ast.Expr) bool {
	sel, ok := e.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	pkg, ok := sel.X.(*ast.Ident)
	return ok && imp[pkg.Name] == modulePath+"/internal/logkey" && s.consts["internal/logkey"][sel.Sel.Name]
}

func render(fset *token.FileSet, e ast.Expr) string {
	from, to := fset.Position(e.Pos()), fset.Position(e.End())
	b, err := os.ReadFile(from.Filename)
	if err != nil || to.Offset > len(b) {
		return "…"
	}
	return string(b[from.Offset:to.Offset])
}

// TestEveryLogLineUsesTheVocabulary fails on a log field named by a
// string literal (or anything but a constant of this package), and on a
// message built from values, in every package not listed in
// notYetMigrated; and on a listed package that has nothing left to
// migrate.
func TestEveryLogLineUsesTheVocabulary(t *testing.T) {
	found := parseModule(t, "../..").violations()
	var dirs []string
	for dir := range found {
		dirs = append(dirs, dir)
	}
	sort.Strings(dirs)
	for _, dir := range dirs {
		if notYetMigrated[dir] {
			t.Logf("%s: %d log calls still to migrate", dir, len(found[dir]))
			continue
		}
		for _, v := range found[dir] {
			t.Error(v)
		}
	}
	for dir := range notYetMigrated {
		if len(found[dir]) == 0 {
			t.Errorf("%s has no log call left to migrate: remove it from notYetMigrated in internal/logkey/vocab_test.go", dir)
		}
	}
}

// TestTheVocabularyCheckFindsLiterals: the check finds each kind of
// line it must refuse, and accepts the ones it must accept.
func TestTheVocabularyCheckFindsLiterals(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "p"), 0o755); err != nil {
		t.Fatal(err)
	}
	code := `package p

import (
	"fmt"

	"github.com/rs/zerolog"

	"github.com/mgw-gateway/mgw/internal/logkey"
)

const done = "done"

func f(log zerolog.Logger, c interface{ Int(string) int }, why string, n int) {
	const local = "local"
	log.Info().Int("pid", 1).Msg("literal key")                      // 1
	log.Info().AnErr("err", nil).Msg("literal error key")            // 2
	log.With().Str("component", "x").Logger()                         // 3
	log.Info().Msg("dropped: " + why)                                // 4
	log.Info().Msg(fmt.Sprintf("n=%d", n))                           // 5
	log.Info().Msgf("n=%d", n)                                       // 6
	log.Info().Fields(map[string]any{"a": 1}).Msg("fields")          // 7
	log.Info().Str(logkey.Proxy, why).Int(logkey.PID, n).Msg("fine")
	log.Info().Msg(done + " and " + local)
	log.Info().Msg("a " + logkey.Proxy)
	_ = c.Int("id") // a flag, not a field
	_ = fmt.Sprint("a", "b") // a function of a package
}
`
	if err := os.WriteFile(filepath.Join(dir, "p", "p.go"), []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	s := parseModule(t, dir)
	// The logkey constants come from this package.
	own := parseModule(t, ".")
	s.consts["internal/logkey"] = own.consts["."]
	got := s.violations()["p"]
	if len(got) != 7 {
		t.Fatalf("found %d violations, want 7 (lines marked 1 to 7):\n%s", len(got), strings.Join(got, "\n"))
	}
	for i, v := range got {
		if !strings.Contains(v, fmt.Sprintf("p.go:%d:", 15+i)) {
			t.Errorf("violation %d is %q, want one on line %d", i+1, v, 15+i)
		}
	}
}
