package mgwcmd

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/mgw-gateway/mgw/internal/logkey"
	"github.com/mgw-gateway/mgw/internal/testutil"
)

// TestLogCapHoldsForEveryWriter: writers with their own descriptors and
// locks (as the master and the workers have) append lines to one log
// file with a small cap; every file, the current one and the rotated
// ones, stays within the cap, every line is whole, and none is lost.
func TestLogCapHoldsForEveryWriter(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	const (
		writers = 4
		lines   = 400
		limit   = 4096
	)
	var wg sync.WaitGroup
	for w := range writers {
		lf := newLogFile(path, -1, logSettings{maxFiles: 1000})
		lf.maxBytes = limit
		// The order under the lock is what this test checks, not the
		// bound on a wait (TestLogWriteNeverWaitsForAStoppedHolder): four
		// writers back to back under -race on a busy machine may leave
		// one without a turn for longer than defaultLockWait.
		lf.lockWait = time.Minute
		if err := lf.Reopen(); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range lines {
				// Lines of different lengths, some batches of several.
				line := fmt.Sprintf("{\"writer\":%d,\"line\":%d,\"pad\":%q}\n", w, i, strings.Repeat("x", i%97))
				if _, err := lf.Write([]byte(line)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	files, _ := filepath.Glob(path + "*")
	if len(files) < 10 {
		t.Fatalf("%d files: the cap never rotated the log", len(files))
	}
	seen := 0
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() > limit {
			t.Errorf("%s has %d bytes, over the cap of %d", f, st.Size(), limit)
		}
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			if l := sc.Text(); !strings.HasPrefix(l, `{"writer":`) || !strings.HasSuffix(l, `"}`) {
				t.Errorf("%s: a broken line %q", f, l)
			}
			seen++
		}
		_ = fh.Close()
	}
	if seen != writers*lines {
		t.Fatalf("%d lines in the files, want %d", seen, writers*lines)
	}
}

// TestLogCapFollowsEdits: max_size_mb written into the config applies to
// a writer within followEvery, without a restart.
func TestLogCapFollowsEdits(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "mgw.toml")
	if err := os.WriteFile(cfg, []byte("[edgemicro]\nport = 1\n[edgemicro.logging]\ndir = \""+dir+"\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	lf, err := openAccessLog(filepath.Join(dir, "access.log"), settingsFrom(cfg, ""))
	if err != nil {
		t.Fatal(err)
	}
	big := []byte(strings.Repeat("x", 600<<10) + "\n")
	if _, err := lf.Write(big); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte("[edgemicro]\nport = 1\n[edgemicro.logging]\ndir = \""+dir+"\"\nmax_size_mb = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	lf.followed = time.Time{} // as if followEvery had passed
	if _, err := lf.Write(big); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(lf.path + ".1"); err != nil {
		t.Fatalf("the second write passed the new cap without a rotation: %v", err)
	}
}

// BenchmarkLogFileWrite: one 32 KiB batch of access lines (a worker's
// buffer) appended with and without the size cap, whose check adds an
// flock, a stat and an fstat to each write.
func BenchmarkLogFileWrite(b *testing.B) {
	batch := []byte(strings.Repeat(strings.Repeat("x", 199)+"\n", 32<<10/200))
	for _, capMB := range []int{0, 1 << 10} {
		b.Run(fmt.Sprintf("max_size_mb=%d", capMB), func(b *testing.B) {
			lf, err := openAccessLog(filepath.Join(b.TempDir(), "access.log"), logSettings{maxSizeMB: capMB})
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(batch)))
			for b.Loop() {
				if _, err := lf.Write(batch); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestLogWriteNeverWaitsForAStoppedHolder: another process holds the log
// directory's lock and never lets it go (as a SIGSTOPped worker does): a
// write still returns, its line reaches the file, a warning says the lock
// was not taken, nothing rotates, the master's Rotate returns, and once
// the lock is let go the writes take it again.
func TestLogWriteNeverWaitsForAStoppedHolder(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "mgw.log")
	lf := newLogFile(path, -1, logSettings{maxSizeMB: 1})
	lf.lockWait = 20 * time.Millisecond
	lf.maxBytes = 10 // every line would rotate the file, with the lock
	if err := lf.Reopen(); err != nil {
		t.Fatal(err)
	}
	var warnings testutil.Buffer
	lf.warnTo(zerolog.New(&warnings))
	holder, err := os.Open(dir) // another open file description: another process's lock
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if err := unix.Flock(int(holder.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	returns := func(what string, f func()) {
		t.Helper()
		done := make(chan struct{})
		go func() { defer close(done); f() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s still waits for the lock held by another process after 10 s", what)
		}
	}
	for i := range 3 {
		returns("Write", func() {
			if _, err := fmt.Fprintf(lf, "line %d\n", i); err != nil {
				t.Error(err)
			}
		})
	}
	returns("Rotate", func() {
		if rotated, err := lf.Rotate(time.Now().Add(time.Hour)); rotated || err != nil {
			t.Errorf("Rotate with the lock held elsewhere: rotated %v, %v", rotated, err)
		}
	})
	// Without the lock no process rotates: the renames of several,
	// unordered, would shift one rotated file onto another.
	b, _ := os.ReadFile(path)
	if string(b) != "line 0\nline 1\nline 2\n" {
		t.Fatalf("the file has %q", b)
	}
	if _, err := os.Stat(path + ".1"); err == nil {
		t.Fatal("the file was rotated without the lock")
	}
	w := warnings.String()
	if strings.Count(w, msgUnlocked) != 1 || !strings.Contains(w, `"`+logkey.Path+`":"`+path+`"`) {
		t.Fatalf("want one warning that the lock was not taken, got %q", w)
	}
	// Let go: the wait given up ends, and a later write takes the lock.
	if err := unix.Flock(int(holder.Fd()), unix.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		lf.mu.Lock()
		now := time.Now()
		_, locked := lf.flock(now)
		lf.mu.Unlock()
		if locked {
			_ = unix.Flock(int(lf.lock.Fd()), unix.LOCK_UN)
			break
		}
		if now.After(deadline) {
			t.Fatal("the lock let go is never taken again")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestLogDirUnlockableWarns: a log directory that cannot be opened (for
// the lock) is said once: the cap is then approximate.
func TestLogDirUnlockableWarns(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "gone")
	lf := newLogFile(filepath.Join(dir, "mgw.log"), -1, logSettings{maxSizeMB: 1})
	var warnings strings.Builder
	lf.warnTo(zerolog.New(&warnings))
	if lf.lock != nil || strings.Count(warnings.String(), msgLockless) != 1 {
		t.Fatalf("lock %v, warnings %q", lf.lock, warnings.String())
	}
}

// TestLogDirFlockUnsupportedWarns: a log directory that opens but cannot
// be flocked (EBADF, as on some NFS mounts; here an O_PATH descriptor) is
// said once, and the file still rotates at the cap, unordered.
func TestLogDirFlockUnsupportedWarns(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "mgw.log")
	lf := newLogFile(path, -1, logSettings{maxSizeMB: 1})
	d, err := os.OpenFile(dir, unix.O_PATH, 0)
	if err != nil {
		t.Fatal(err)
	}
	_ = lf.lock.Close()
	lf.lock, lf.maxBytes = d, 10
	if err := lf.Reopen(); err != nil {
		t.Fatal(err)
	}
	var warnings testutil.Buffer
	lf.warnTo(zerolog.New(&warnings))
	for i := range 3 {
		if _, err := fmt.Fprintf(lf, "line %d is long enough\n", i); err != nil {
			t.Fatal(err)
		}
	}
	w := warnings.String()
	if strings.Count(w, msgLockless) != 1 {
		t.Fatalf("want one warning that the cap is approximate, got %q", w)
	}
	if _, err := os.Stat(path + ".2"); err != nil {
		t.Fatalf("the file did not rotate at the cap without the lock: %v", err)
	}
}
