package balance

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// lineSize keeps each worker's counter in its own cache line, so that
// workers counting connections do not contend for one line.
const lineSize = 64

// Table holds, per worker, 0 while the worker is absent and 1 + its open
// connections while it serves.
type Table struct {
	data []byte
	n    int
	file *os.File
}

// Create makes a table for n workers in anonymous shared memory.
func Create(n int) (*Table, error) {
	if n < 1 {
		return nil, errors.New("balance table: no workers")
	}
	fd, err := unix.MemfdCreate("mgw-balance", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("creating balance table: %w", err)
	}
	f := os.NewFile(uintptr(fd), "mgw-balance")
	if err := f.Truncate(int64(n * lineSize)); err != nil {
		f.Close()
		return nil, fmt.Errorf("sizing balance table: %w", err)
	}
	t, err := Map(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return t, nil
}

// Map maps a table's descriptor (a worker's inherited one). The table
// keeps f; Close closes it.
func Map(f *os.File) (*Table, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("mapping balance table: %w", err)
	}
	if st.Size() < lineSize || st.Size()%lineSize != 0 {
		return nil, fmt.Errorf("mapping balance table: size %d is not a whole number of slots", st.Size())
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mapping balance table: %w", err)
	}
	return &Table{data: data, n: int(st.Size() / lineSize), file: f}, nil
}

// New returns a table in this process's memory only (tests).
func New(n int) *Table {
	words := make([]uint64, n*lineSize/8)
	return &Table{data: unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), len(words)*8), n: n}
}

// File is the table's descriptor, to hand to workers; nil for New's.
func (t *Table) File() *os.File { return t.file }

// Len is the number of workers the table is for.
func (t *Table) Len() int { return t.n }

// Close unmaps the table.
func (t *Table) Close() error {
	if t.file == nil {
		return nil
	}
	err := syscall.Munmap(t.data)
	t.file.Close()
	return err
}

func (t *Table) word(i int) *int64 {
	return (*int64)(unsafe.Pointer(&t.data[i*lineSize]))
}

// Join marks worker i present with no connections; a worker calls it
// when it starts accepting.
func (t *Table) Join(i int) {
	if i >= 0 && i < t.n {
		atomic.StoreInt64(t.word(i), 1)
	}
}

// Leave marks worker i absent; the master calls it when the worker has
// exited.
func (t *Table) Leave(i int) {
	if i >= 0 && i < t.n {
		atomic.StoreInt64(t.word(i), 0)
	}
}

// Add changes worker i's count of open connections by delta.
func (t *Table) Add(i int, delta int64) {
	if i >= 0 && i < t.n {
		atomic.AddInt64(t.word(i), delta)
	}
}

// Count is worker i's open connections, or -1 while it is absent.
func (t *Table) Count(i int) int64 {
	if i < 0 || i >= t.n {
		return -1
	}
	return atomic.LoadInt64(t.word(i)) - 1
}

// Over reports whether worker i holds more connections than the mean of
// the present workers plus a slack of one and an eighth of the mean, so
// that a few connections never cause a wait and a worker need not hold
// exactly its share.
func (t *Table) Over(i int) bool {
	mine := t.Count(i)
	if mine < 0 {
		return false
	}
	var sum, present int64
	for j := range t.n {
		if c := t.Count(j); c >= 0 {
			sum += c
			present++
		}
	}
	if present < 2 {
		return false
	}
	// mine > mean + 1 + mean/8, in integers: 8·present·mine > 9·sum + 8·present.
	return 8*present*mine > 9*sum+8*present
}
