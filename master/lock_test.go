package master

import (
	"strings"
	"testing"
)

// TestLockRunDir: a second lock on a run dir fails at once, saying mgw is
// already running there; once the first holder closes it, it can be
// taken again.
func TestLockRunDir(t *testing.T) {
	dir := t.TempDir()
	first, err := lockRunDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if second, err := lockRunDir(dir); err == nil || !strings.Contains(err.Error(), "already running") {
		if second != nil {
			second.Close()
		}
		t.Fatalf("a second lock: %v, want an error saying mgw is already running", err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := lockRunDir(dir)
	if err != nil {
		t.Fatalf("taking the lock after its holder let go: %v", err)
	}
	again.Close()
}
