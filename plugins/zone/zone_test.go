package zone

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func minutes(n int) func(time.Time) time.Time {
	return func(s time.Time) time.Time { return s.Add(time.Duration(n) * time.Minute) }
}

func TestTakeIsExactUnderContention(t *testing.T) {
	t.Parallel()
	z := New(64)
	s, err := z.Slot("org.env.app.product")
	if err != nil {
		t.Fatal(err)
	}
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				if s.Take(5000, t0, minutes(1)).Allowed {
					admitted.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := admitted.Load(); n != 5000 {
		t.Fatalf("admitted %d of 16000 against a limit of 5000", n)
	}
}

func TestWindowOpensWithTheFirstRequest(t *testing.T) {
	t.Parallel()
	z := New(8)
	s, _ := z.Slot("k")
	at := t0.Add(30 * time.Second)
	for i := 1; i <= 3; i++ {
		w := s.Take(3, at, minutes(1))
		if !w.Allowed || w.Used != uint32(i) || !w.End.Equal(at.Add(time.Minute)) {
			t.Fatalf("request %d: %+v", i, w)
		}
	}
	if w := s.Take(3, at.Add(59*time.Second), minutes(1)); w.Allowed || w.Used != 3 {
		t.Fatalf("fourth request in the window: %+v", w)
	}
	if w := s.Take(3, at.Add(time.Minute), minutes(1)); !w.Allowed || w.Used != 1 {
		t.Fatalf("first request of the next window: %+v", w)
	}
}

func TestSlotsAreDistinctAndStable(t *testing.T) {
	t.Parallel()
	z := New(4)
	a1, _ := z.Slot("a")
	b, _ := z.Slot("b")
	a2, _ := z.Slot("a")
	if a1.state != a2.state || a1.state == b.state {
		t.Fatal("slot lookup is not stable per key")
	}
	for _, k := range []string{"c", "d"} {
		if _, err := z.Slot(k); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := z.Slot("e"); !errors.Is(err, ErrFull) {
		t.Fatalf("fifth key in four slots: %v", err)
	}
}

func TestReserveSmoothsWithBurstAndQueue(t *testing.T) {
	t.Parallel()
	z := New(4)
	s, _ := z.Slot("spike")
	interval := 50 * time.Millisecond // 20 per second
	admitted := 0
	for i := range 600 { // 200 per second for 3 s
		now := t0.Add(time.Duration(i) * 5 * time.Millisecond)
		if _, ok := s.Reserve(now, interval, 2*interval, 0); ok {
			admitted++
		}
	}
	if admitted < 60 || admitted > 63 {
		t.Fatalf("admitted %d in 3 s at 20/s with a burst of 2", admitted)
	}
	q, _ := z.Slot("queue")
	if w, ok := q.Reserve(t0, interval, 0, 100*time.Millisecond); !ok || w != 0 {
		t.Fatalf("first: %v %v", w, ok)
	}
	if w, ok := q.Reserve(t0, interval, 0, 100*time.Millisecond); !ok || w != interval {
		t.Fatalf("second waits one interval: %v %v", w, ok)
	}
	if w, ok := q.Reserve(t0, interval, 0, 100*time.Millisecond); !ok || w != 2*interval {
		t.Fatalf("third waits two: %v %v", w, ok)
	}
	if _, ok := q.Reserve(t0, interval, 0, 100*time.Millisecond); ok {
		t.Fatal("fourth is past the queue")
	}
}

// TestSharedAcrossProcesses maps one zone file in four processes that
// count against one limit: together they admit exactly the limit.
func TestSharedAcrossProcesses(t *testing.T) {
	if os.Getenv("ZONE_CHILD") != "" {
		z, err := Open(os.Getenv("ZONE_PATH"), 64)
		if err != nil {
			t.Fatal(err)
		}
		s, _ := z.Slot("shared")
		n := 0
		for range 2000 {
			if s.Take(3000, time.Now(), minutes(60)).Allowed {
				n++
			}
		}
		_, _ = os.Stdout.WriteString(strconv.Itoa(n) + "\n")
		return
	}
	t.Parallel()
	path := filepath.Join(t.TempDir(), "zone")
	z, err := Open(path, 64)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = z.Close() }()
	var wg sync.WaitGroup
	counts := make([]int, 4)
	for i := range counts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(os.Args[0], "-test.run=^TestSharedAcrossProcesses$")
			cmd.Env = append(os.Environ(), "ZONE_CHILD=1", "ZONE_PATH="+path)
			out, err := cmd.Output()
			if err != nil {
				t.Error(err)
				return
			}
			for _, line := range strings.Fields(string(out)) {
				if n, err := strconv.Atoi(line); err == nil {
					counts[i] = n
				}
			}
		}()
	}
	wg.Wait()
	total := 0
	for _, n := range counts {
		total += n
	}
	if total != 3000 {
		t.Fatalf("four processes admitted %v = %d against a limit of 3000", counts, total)
	}
	// The file is reused as it is by the next opener: the window holds.
	z2, err := Open(path, 64)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := z2.Slot("shared")
	if s.Take(3000, time.Now(), minutes(60)).Allowed {
		t.Fatal("a reopened zone forgot the window")
	}
}

// TestOpenReservesTheFile: the zone file has every block allocated, so a
// write through the mapping can never meet a full disk.
func TestOpenReservesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mgw.zone")
	z, err := Open(path, 1024)
	if err != nil {
		t.Fatal(err)
	}
	defer z.Close()
	if z.InMemory() != "" {
		t.Skipf("the temp dir's file system cannot reserve: %s", z.InMemory())
	}
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	if size := int64(headerSize + 1024*slotSize); st.Blocks*512 < size {
		t.Fatalf("%d bytes allocated for a %d-byte zone: sparse", st.Blocks*512, size)
	}
}

// TestOpenFallsBackToMemory: when the file cannot be reserved, the zone
// lives in a memfd that holds what the file held and is shared like it.
func TestOpenFallsBackToMemory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mgw.zone")
	z, err := Open(path, 1024)
	if err != nil {
		t.Fatal(err)
	}
	s, err := z.Slot("kept")
	if err != nil {
		t.Fatal(err)
	}
	s.Store(42)
	z.Close()

	reserveFile = func(*os.File, int64) error { return syscall.ENOSPC }
	defer func() { reserveFile = reserve }()
	z, err = Open(path, 1024)
	if err != nil {
		t.Fatal(err)
	}
	defer z.Close()
	if why := z.InMemory(); !strings.Contains(why, "no space left") {
		t.Fatalf("InMemory() = %q", why)
	}
	if s, _ := z.Slot("kept"); s.Load() != 42 {
		t.Fatalf("the in-memory zone lost the file's slot: %d", s.Load())
	}
	// A second mapping (a worker's) sees the same memory.
	w, err := Map(dupFile(t, z.File()))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ws, _ := w.Slot("new")
	ws.Store(7)
	if s, _ := z.Slot("new"); s.Load() != 7 {
		t.Fatal("the second mapping does not share the zone")
	}
}

func dupFile(t *testing.T, f *os.File) *os.File {
	t.Helper()
	fd, err := syscall.Dup(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	return os.NewFile(uintptr(fd), "dup")
}
