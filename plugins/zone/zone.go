package zone

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	magic      = "MGWZONE1"
	headerSize = 64
	slotSize   = 16
	// DefaultSlots holds 65,536 limit keys (app × product identifiers and
	// spike arrests) in 1 MiB.
	DefaultSlots = 1 << 16
)

// epoch is the zero of the times kept in the zone: packing seconds since
// 2020 in 32 bits lasts until 2156.
var epoch = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// ErrFull means every slot holds another key.
var ErrFull = errors.New("limit zone full")

// Zone is a mapped table of slots.
type Zone struct {
	data  []byte
	slots uint64
	file  *os.File
	// inMemory says why the zone lives in memory, not in its file.
	inMemory string
}

// Open maps the zone file at path, creating (or re-creating, when it is
// not a zone of this layout) it with the given number of slots.
//
// Every page of the file is reserved (fallocate) before it is mapped: a
// sparse file would get its blocks only when a worker first writes a
// slot, and on a full disk that write is a SIGBUS in every worker. When
// the file cannot be reserved (full disk, a file system without
// fallocate), the zone lives in memory that cannot fault instead (a
// sealed-size memfd with its pages reserved, holding what the file held),
// and InMemory says why; limits then survive a reload only while a
// generation that holds it runs. When neither works, Open fails.
func Open(path string, slots int) (*Zone, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening limit zone: %w", err)
	}
	size := int64(headerSize + slots*slotSize)
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("opening limit zone: %w", err)
	}
	if st.Size() != size || !hasHeader(f, uint64(slots)) {
		if err := f.Truncate(0); err != nil {
			f.Close()
			return nil, fmt.Errorf("resetting limit zone: %w", err)
		}
		if err := f.Truncate(size); err != nil {
			f.Close()
			return nil, fmt.Errorf("sizing limit zone: %w", err)
		}
		if err := reserveFile(f, size); err != nil {
			return inMemory(f, size, slots, err)
		}
		hdr := make([]byte, headerSize)
		copy(hdr, magic)
		binary.LittleEndian.PutUint64(hdr[8:], uint64(slots))
		if _, err := f.WriteAt(hdr, 0); err != nil {
			f.Close()
			return nil, fmt.Errorf("writing limit zone: %w", err)
		}
	} else if err := reserveFile(f, size); err != nil {
		return inMemory(f, size, slots, err)
	}
	z, err := Map(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return z, nil
}

// reserveFile reserves the zone file's blocks; tests replace it.
var reserveFile = reserve

// reserve allocates every block of f's first size bytes.
func reserve(f *os.File, size int64) error {
	for {
		err := unix.Fallocate(int(f.Fd()), 0, 0, size)
		if err != unix.EINTR {
			return err
		}
	}
}

// inMemory makes the zone a memfd holding what file held (a fresh zone
// when it held none), with every page reserved, and closes file.
func inMemory(file *os.File, size int64, slots int, diskErr error) (*Zone, error) {
	defer file.Close()
	fail := func(err error) (*Zone, error) {
		return nil, fmt.Errorf("reserving the limit zone: on disk (%s): %w; in memory: %w", file.Name(), diskErr, err)
	}
	fd, err := unix.MemfdCreate("mgw.zone", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return fail(err)
	}
	m := os.NewFile(uintptr(fd), "mgw.zone (memory)")
	if err := m.Truncate(size); err != nil {
		m.Close()
		return fail(err)
	}
	if err := reserve(m, size); err != nil {
		m.Close()
		return fail(err)
	}
	// The size can never change under a mapping: no SIGBUS past its end.
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW); err != nil {
		m.Close()
		return fail(err)
	}
	buf := make([]byte, size)
	if n, err := file.ReadAt(buf, 0); (err != nil && !errors.Is(err, io.EOF)) || n != int(size) || !validHeader(buf, uint64(slots)) {
		clear(buf)
		copy(buf, magic)
		binary.LittleEndian.PutUint64(buf[8:], uint64(slots))
	}
	if _, err := m.WriteAt(buf, 0); err != nil {
		m.Close()
		return fail(err)
	}
	z, err := Map(m)
	if err != nil {
		m.Close()
		return nil, err
	}
	z.inMemory = fmt.Sprintf("%s could not be reserved: %v", file.Name(), diskErr)
	return z, nil
}

// InMemory returns why the zone is not the file in the run dir, or "".
func (z *Zone) InMemory() string { return z.inMemory }

func validHeader(hdr []byte, slots uint64) bool {
	return len(hdr) >= headerSize && string(hdr[:8]) == magic && binary.LittleEndian.Uint64(hdr[8:]) == slots
}

func hasHeader(f *os.File, slots uint64) bool {
	hdr := make([]byte, headerSize)
	if _, err := f.ReadAt(hdr, 0); err != nil {
		return false
	}
	return string(hdr[:8]) == magic && binary.LittleEndian.Uint64(hdr[8:]) == slots
}

// Map maps an open zone file (a worker's inherited descriptor). The
// zone keeps f; Close closes it.
func Map(f *os.File) (*Zone, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("mapping limit zone: %w", err)
	}
	if st.Size() < headerSize {
		return nil, errors.New("mapping limit zone: file too small")
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mapping limit zone: %w", err)
	}
	if string(data[:8]) != magic {
		_ = syscall.Munmap(data)
		return nil, errors.New("mapping limit zone: not a zone file")
	}
	slots := binary.LittleEndian.Uint64(data[8:])
	if headerSize+slots*slotSize != uint64(len(data)) {
		_ = syscall.Munmap(data)
		return nil, errors.New("mapping limit zone: size does not match its header")
	}
	return &Zone{data: data, slots: slots, file: f}, nil
}

// New returns a zone in this process's memory only (tests, and a worker
// started without a master).
func New(slots int) *Zone {
	// Backed by uint64s so that every word is 8-byte aligned.
	words := make([]uint64, (headerSize+slots*slotSize)/8)
	data := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), len(words)*8)
	copy(data, magic)
	binary.LittleEndian.PutUint64(data[8:], uint64(slots))
	return &Zone{data: data, slots: uint64(slots)}
}

// File is the zone's file, to hand to workers; nil for a private zone.
func (z *Zone) File() *os.File { return z.file }

// Close unmaps the zone.
func (z *Zone) Close() error {
	if z.file == nil {
		return nil
	}
	err := syscall.Munmap(z.data)
	z.file.Close()
	return err
}

func (z *Zone) word(i uint64, off int) *uint64 {
	return (*uint64)(unsafe.Pointer(&z.data[headerSize+i*slotSize+uint64(off)]))
}

// Slot is one key's state.
type Slot struct{ state *uint64 }

// Slot finds key's slot, claiming a free one the first time.
func (z *Zone) Slot(key string) (Slot, error) {
	h := fnv.New64a()
	_, _ = h.Write([]byte(key))
	sum := h.Sum64()
	if sum == 0 {
		sum = 1
	}
	for probe := range z.slots {
		i := (sum + probe) % z.slots
		k := z.word(i, 0)
		cur := atomic.LoadUint64(k)
		if cur == 0 && atomic.CompareAndSwapUint64(k, 0, sum) {
			cur = sum
		} else if cur == 0 {
			cur = atomic.LoadUint64(k)
		}
		if cur == sum {
			return Slot{state: z.word(i, 8)}, nil
		}
	}
	return Slot{}, ErrFull
}

// Window is the outcome of a quota check.
type Window struct {
	// Used counts the requests of the window, this one included when Allowed.
	Used    uint32
	Allowed bool
	// End is when the window closes.
	End time.Time
}

// Take counts one request against allow in the slot's window. A window
// opens with the first request counted and closes at end(start); a
// request past the limit is not counted.
func (s Slot) Take(allow uint32, now time.Time, end func(start time.Time) time.Time) Window {
	nowS := uint64(max(0, now.Sub(epoch)/time.Second))
	for {
		old := atomic.LoadUint64(s.state)
		start, used := old>>32, uint32(old)
		windowEnd := end(epoch.Add(time.Duration(start) * time.Second))
		if old == 0 || !now.Before(windowEnd) {
			start, used = nowS, 0
			windowEnd = end(epoch.Add(time.Duration(start) * time.Second))
		}
		if used >= allow {
			return Window{Used: used, End: windowEnd}
		}
		if atomic.CompareAndSwapUint64(s.state, old, start<<32|uint64(used+1)) {
			return Window{Used: used + 1, Allowed: true, End: windowEnd}
		}
	}
}

// Reserve schedules one request at interval after the previous one (the
// generic cell rate algorithm). A request up to burst early is admitted at
// once; one that would have to wait up to maxWait is admitted after wait;
// any other is refused (ok false) and takes no place.
func (s Slot) Reserve(now time.Time, interval, burst, maxWait time.Duration) (wait time.Duration, ok bool) {
	n := uint64(max(0, now.Sub(epoch)))
	for {
		old := atomic.LoadUint64(s.state)
		tat := max(old, n)
		ahead := time.Duration(tat - n)
		if ahead > burst+maxWait {
			return 0, false
		}
		if atomic.CompareAndSwapUint64(s.state, old, tat+uint64(interval)) {
			return max(0, ahead-burst), true
		}
	}
}

// Load returns the slot's state word.
func (s Slot) Load() uint64 { return atomic.LoadUint64(s.state) }

// Add adds delta (two's complement to subtract) and returns the new word.
func (s Slot) Add(delta uint64) uint64 { return atomic.AddUint64(s.state, delta) }

// Store sets the state word.
func (s Slot) Store(v uint64) { atomic.StoreUint64(s.state, v) }

// CompareAndSwap sets the word to next if it is old.
func (s Slot) CompareAndSwap(old, next uint64) bool {
	return atomic.CompareAndSwapUint64(s.state, old, next)
}

// PackCount packs a count and an absolute time (whole seconds) into one
// word, as a remote quota answer is kept: count in the low 32 bits.
func PackCount(count uint32, t time.Time) uint64 {
	return uint64(max(0, t.Sub(epoch)/time.Second))<<32 | uint64(count)
}

// UnpackCount reverses PackCount; a zero word gives a zero time.
func UnpackCount(w uint64) (uint32, time.Time) {
	if w == 0 {
		return 0, time.Time{}
	}
	return uint32(w), epoch.Add(time.Duration(w>>32) * time.Second)
}
