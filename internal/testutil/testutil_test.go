package testutil

import (
	"errors"
	"testing"
	"time"
)

func TestPollReportsWhetherTheConditionHeld(t *testing.T) {
	t.Parallel()
	n := 0
	if !Poll(10*time.Second, func() bool { n++; return n == 3 }) || n != 3 {
		t.Fatalf("Poll of a condition true at the third check: %d checks", n)
	}
	if Poll(0, func() bool { return false }) {
		t.Fatal("Poll of a condition never true reported true")
	}
}

func TestLoadCountsEachCall(t *testing.T) {
	t.Parallel()
	l := StartLoad(3, func(i int) error {
		if i%2 == 1 {
			return errors.New("odd")
		}
		return nil
	})
	Eventually(t, 10*time.Second, "calls", func() bool { return l.OK.Load() >= 10 && l.Failed.Load() >= 10 })
	l.Stop()
	ok, failed := l.OK.Load(), l.Failed.Load()
	if d := ok - failed; d < 0 || d > 3 {
		t.Fatalf("%d ok and %d failed from 3 goroutines alternating", ok, failed)
	}
}
