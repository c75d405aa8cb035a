package configdoc

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// outside matches citations of notes that are not part of the repository
// (a contract and a survey of edgemicro kept beside it while mgw was
// built), which a reader of a clone cannot follow. It is assembled from
// parts so that this file does not match itself.
var outside = regexp.MustCompile(`\b` + "SP" + `EC\b|` + "EDGE" + `MICRO\.md|\.\./` + "shared" + `\b`)

// TestDocsCiteOnlyTheRepository fails on every comment or document that
// cites those notes: cite docs/CONFIG.md, docs/CLI.md,
// docs/COMPATIBILITY.md, docs/ARCHITECTURE.md or docs/OPERATIONS.md
// instead, or state the fact itself.
func TestDocsCiteOnlyTheRepository(t *testing.T) {
	root := "../.."
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
		switch filepath.Ext(path) {
		case ".go", ".md", ".sh", ".toml", ".yml", ".yaml":
		default:
			if filepath.Base(filepath.Dir(path)) != "scripts" && d.Name() != "Makefile" {
				return nil
			}
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			if outside.MatchString(line) {
				rel, _ := filepath.Rel(root, path)
				t.Errorf("%s:%d cites a file outside the repository: cite the repository's own docs (docs/*.md) or state the fact: %s", rel, i+1, strings.TrimSpace(line))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// mdLink matches a markdown link's target: [text](target).
var mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// TestDocLinksResolve fails on every relative link of README.md and
// docs/*.md whose file does not exist in the repository.
func TestDocLinksResolve(t *testing.T) {
	files, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, "../../README.md")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			for _, m := range mdLink.FindAllStringSubmatch(line, -1) {
				target, _, _ := strings.Cut(m[1], "#")
				if target == "" || strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				if _, err := os.Stat(filepath.Join(filepath.Dir(f), target)); err != nil {
					rel, _ := filepath.Rel("../..", f)
					t.Errorf("%s:%d links to %s, which does not exist: fix the link or add the file", rel, i+1, m[1])
				}
			}
		}
	}
}
