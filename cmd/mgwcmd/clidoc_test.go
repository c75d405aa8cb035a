package mgwcmd

import (
	"flag"
	"os"
	"testing"
)

var updateDocs = flag.Bool("update", false, "rewrite docs/CLI.md from the command definitions")

// TestCLIReferenceIsCurrent keeps docs/CLI.md equal to what the command
// definitions render, so the reference cannot drift from the code.
func TestCLIReferenceIsCurrent(t *testing.T) {
	const path = "../../docs/CLI.md"
	got := CLIReference()
	if *updateDocs {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading docs/CLI.md: %v: run `go test ./cmd/mgwcmd -run TestCLIReferenceIsCurrent -update`", err)
	}
	if string(want) != got {
		t.Fatal("docs/CLI.md is stale: run `go test ./cmd/mgwcmd -run TestCLIReferenceIsCurrent -update`")
	}
}

// TestCLIReferenceIsDeterministic renders twice, with the environment
// variables of the flags set, and expects the same text: the reference
// must not depend on the machine or the shell that renders it.
func TestCLIReferenceIsDeterministic(t *testing.T) {
	first := CLIReference()
	t.Setenv("EDGEMICRO_PROCESSES", "7")
	t.Setenv("MGW_CONFIG_DIR", "/elsewhere")
	if CLIReference() != first {
		t.Fatal("the CLI reference changed with the environment")
	}
}
