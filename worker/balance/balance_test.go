package balance

import (
	"os"
	"strconv"
	"testing"
)

func TestOver(t *testing.T) {
	tests := []struct {
		desc   string
		counts []int64 // -1: absent
		over   []bool
	}{
		{desc: "alone", counts: []int64{50, -1}, over: []bool{false, false}},
		{desc: "even", counts: []int64{32, 32}, over: []bool{false, false}},
		{desc: "one more is within the slack", counts: []int64{2, 1}, over: []bool{false, false}},
		{desc: "burst on one worker", counts: []int64{5, 0}, over: []bool{true, false}},
		{desc: "an eighth over the mean is allowed", counts: []int64{36, 28}, over: []bool{false, false}},
		{desc: "more is not", counts: []int64{38, 26}, over: []bool{true, false}},
		{desc: "absent workers do not count", counts: []int64{10, -1, 9, -1}, over: []bool{false, false, false, false}},
		{desc: "four workers, one empty", counts: []int64{12, 12, 12, 0}, over: []bool{true, true, true, false}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			tb := New(len(tc.counts))
			for i, c := range tc.counts {
				if c >= 0 {
					tb.Join(i)
					tb.Add(i, c)
				}
			}
			for i, want := range tc.over {
				if got := tb.Over(i); got != want {
					t.Errorf("worker %d (counts %v): Over = %v, want %v", i, tc.counts, got, want)
				}
			}
		})
	}
}

// TestSharedAcrossMappings: what one mapping of the descriptor writes,
// another reads, as a worker and the master see one table.
func TestSharedAcrossMappings(t *testing.T) {
	master, err := Create(3)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = master.Close() }()
	dup, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(int(master.File().Fd())), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	worker, err := Map(dup)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = worker.Close() }()
	if worker.Len() != 3 || master.Count(1) != -1 {
		t.Fatalf("fresh table: len %d, count %d", worker.Len(), master.Count(1))
	}
	worker.Join(1)
	worker.Add(1, 5)
	worker.Add(1, -2)
	if got := master.Count(1); got != 3 {
		t.Fatalf("master sees %d connections, want 3", got)
	}
	master.Leave(1)
	if got := worker.Count(1); got != -1 {
		t.Fatalf("after Leave the worker sees %d, want absent", got)
	}
	worker.Add(7, 1) // out of range: ignored
	worker.Join(-1)
}

func TestMapRejectsOddSizes(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "table")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(lineSize + 8); err != nil {
		t.Fatal(err)
	}
	if _, err := Map(f); err == nil {
		t.Fatal("a table of 72 bytes mapped")
	}
}
