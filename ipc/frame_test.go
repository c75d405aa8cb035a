package ipc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"runtime"
	"testing"
	"testing/iotest"
	"time"
)

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc string
		kind Kind
		in   any
		out  any
	}{
		{"hello", KindHello, &Hello{WorkerID: 3, PID: 42, Protocol: ProtocolVersion}, &Hello{}},
		{"config", KindConfig, &Config{Revision: 7, Snapshot: []byte(`{"a":1}`)}, &Config{}},
		{"ack with error", KindAck, &Ack{Revision: 6, Error: "bad"}, &Ack{}},
		{"ready", KindReady, &Ready{Revision: 1}, &Ready{}},
		{"drain", KindDrain, &Drain{Grace: time.Second, Timeout: 30 * time.Second}, &Drain{}},
		{"stats", KindStats, &Stats{Requests: 1 << 40, Active: 3}, &Stats{}},
		{"control", KindControl, &Control{Command: CommandStop, Timeout: 5 * time.Second}, &Control{}},
		{"reply", KindReply, &Reply{OK: true, Status: &Status{MasterPID: 1, Workers: []WorkerStatus{{PID: 2}}}}, &Reply{}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			f, err := Marshal(tc.kind, tc.in)
			if err != nil {
				t.Fatal(err)
			}
			b, err := AppendFrame(nil, f)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ReadFrame(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("ReadFrame: %v", err)
			}
			if got.Kind != tc.kind {
				t.Fatalf("kind = %v, want %v", got.Kind, tc.kind)
			}
			if err := got.Decode(tc.out); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(tc.in, tc.out) {
				t.Fatalf("round trip: got %+v, want %+v", tc.out, tc.in)
			}
		})
	}
}

func header(version byte, kind Kind, n uint32) []byte {
	h := []byte{'M', 'G', version, byte(kind), 0, 0, 0, 0}
	binary.BigEndian.PutUint32(h[4:], n)
	return h
}

func TestReadFrameRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc string
		in   []byte
		want error
	}{
		{"empty stream is a clean EOF", nil, io.EOF},
		{"short header", []byte("MG\x01"), io.ErrUnexpectedEOF},
		{"bad magic", []byte("GET / HTTP/1.1\r\n"), ErrMagic},
		{"other version", header(2, KindHello, 2), ErrVersion},
		{"oversize length, nothing allocated", header(1, KindConfig, MaxFrameSize+1), ErrFrameSize},
		{"max uint32 length", header(1, KindConfig, 0xffffffff), ErrFrameSize},
		{"payload cut short", append(header(1, KindAck, 10), "{}"...), io.ErrUnexpectedEOF},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			_, err := ReadFrame(bytes.NewReader(tc.in))
			if !errors.Is(err, tc.want) {
				t.Fatalf("ReadFrame error = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestUnknownKindStillDecodes(t *testing.T) {
	t.Parallel()
	b, _ := AppendFrame(nil, Frame{Kind: 200, Payload: []byte(`{"future":true}`)})
	f, err := ReadFrame(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if f.Kind != 200 || f.Kind.String() != "kind(200)" {
		t.Fatalf("got kind %v", f.Kind)
	}
}

func TestAppendFrameRejectsOversize(t *testing.T) {
	t.Parallel()
	_, err := AppendFrame(nil, Frame{Kind: KindConfig, Payload: make([]byte, MaxFrameSize+1)})
	if !errors.Is(err, ErrFrameSize) {
		t.Fatalf("err = %v, want ErrFrameSize", err)
	}
}

func TestPairCarriesFrames(t *testing.T) {
	t.Parallel()
	parent, childFile, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	defer parent.Close()
	child, err := FileConn(childFile)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = child.Send(KindHello, Hello{WorkerID: 1, PID: 9}) }()
	f, err := parent.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var h Hello
	if err := f.Decode(&h); err != nil || h.PID != 9 {
		t.Fatalf("hello = %+v, %v", h, err)
	}
	child.Close()
	if _, err := parent.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("after peer close: %v, want io.EOF", err)
	}
}

func FuzzReadFrame(f *testing.F) {
	ok, _ := AppendFrame(nil, Frame{Kind: KindAck, Payload: []byte(`{"revision":3}`)})
	f.Add(ok)
	f.Add(header(1, KindConfig, MaxFrameSize+1))
	f.Add([]byte("MG\x01\x02\x00\x00\x00\x05{\"a\":"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		for {
			fr, err := ReadFrame(r)
			if err != nil {
				return
			}
			if len(fr.Payload) > MaxFrameSize {
				t.Fatalf("payload of %d bytes accepted", len(fr.Payload))
			}
			// Every payload type must decode or fail, never panic.
			for _, v := range []any{&Hello{}, &Config{}, &Ack{}, &Drain{}, &Stats{}, &Control{}, &Reply{}} {
				_ = fr.Decode(v)
			}
			b, err := AppendFrame(nil, fr)
			if err != nil {
				t.Fatalf("re-encoding a decoded frame: %v", err)
			}
			again, err := ReadFrame(bytes.NewReader(b))
			if err != nil || again.Kind != fr.Kind || !bytes.Equal(again.Payload, fr.Payload) {
				t.Fatalf("re-decoding: %v", err)
			}
		}
	})
}

func TestRecordsFrameRoundTrip(t *testing.T) {
	t.Parallel()
	got := SplitRecords([]byte(`{"a":1}` + "\n" + `{"b":"x\ny"}` + "\n{}\n"))
	if len(got) != 3 || string(got[1]) != `{"b":"x\ny"}` {
		t.Fatalf("round trip: %q", got)
	}
	if n := len(SplitRecords([]byte("\n\n{}\n\n{}"))); n != 2 {
		t.Fatalf("empty lines: %d records", n)
	}
}

// FuzzSplitRecords: any payload splits without a panic into lines that
// hold no newline and, joined again, give the payload's non-empty lines.
func FuzzSplitRecords(f *testing.F) {
	f.Add([]byte("{}\n{\"a\":1}\n"))
	f.Fuzz(func(t *testing.T, payload []byte) {
		recs := SplitRecords(payload)
		for _, r := range recs {
			if len(r) == 0 || bytes.IndexByte(r, '\n') >= 0 {
				t.Fatalf("bad record %q", r)
			}
		}
		again := SplitRecords(append(bytes.Join(recs, []byte("\n")), '\n'))
		if len(again) != len(recs) {
			t.Fatalf("%d records, %d after a round trip", len(recs), len(again))
		}
	})
}

// TestReadFrameAllocatesAsItArrives: a header that announces the
// largest payload and a few bytes after it cost about payloadChunk, not
// MaxFrameSize; a payload larger than a chunk still arrives whole.
func TestReadFrameAllocatesAsItArrives(t *testing.T) {
	hdr := []byte{'M', 'G', ProtocolVersion, byte(KindRecords), 0, 0, 0, 0}
	binary.BigEndian.PutUint32(hdr[4:], MaxFrameSize)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := ReadFrame(bytes.NewReader(append(hdr, "short"...)))
	runtime.ReadMemStats(&after)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v, want unexpected EOF", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 2*payloadChunk {
		t.Fatalf("a 5-byte payload announced as %d bytes allocated %d bytes", MaxFrameSize, got)
	}

	big := bytes.Repeat([]byte("0123456789"), 100_000) // 1 MB, many chunks
	b, err := AppendFrame(nil, Frame{Kind: KindRecords, Payload: big})
	if err != nil {
		t.Fatal(err)
	}
	f, err := ReadFrame(iotest.OneByteReader(bytes.NewReader(b)))
	if err != nil || !bytes.Equal(f.Payload, big) {
		t.Fatalf("big frame: %v, %d bytes", err, len(f.Payload))
	}
}

// TestLargeFramesGoWholeAndIntoTheReadersBuffer: a large payload, written
// with writev rather than copied behind its header, arrives whole and in
// order with the small frames around it, and RecvInto reads it into the
// buffer the reader gives for its kind, and only for that kind.
func TestLargeFramesGoWholeAndIntoTheReadersBuffer(t *testing.T) {
	t.Parallel()
	parent, childFile, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	defer parent.Close()
	child, err := FileConn(childFile)
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte(`{"n":1}`+"\n"), 40_000) // 320 KB
	go func() {
		defer child.Close()
		for _, f := range []Frame{
			{Kind: KindReady, Payload: []byte(`{}`)},
			{Kind: KindRecords, Payload: big},
			{Kind: KindStats, Payload: bytes.Repeat([]byte(" "), vectorBytes+1)},
			{Kind: KindRecords, Payload: big[:vectorBytes-1]},
		} {
			if err := child.SendFrame(f); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	mine := make([]byte, 0, len(big))
	asked := 0
	into := func(k Kind, n int) []byte {
		if k != KindRecords {
			return nil
		}
		asked++
		return mine
	}
	for i, want := range []struct {
		kind Kind
		n    int
		mine bool
	}{{KindReady, 2, false}, {KindRecords, len(big), true}, {KindStats, vectorBytes + 1, false}, {KindRecords, vectorBytes - 1, true}} {
		f, err := parent.RecvInto(into)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if f.Kind != want.kind || len(f.Payload) != want.n {
			t.Fatalf("frame %d: %s of %d bytes, want %s of %d", i, f.Kind, len(f.Payload), want.kind, want.n)
		}
		if inMine := &f.Payload[0] == &mine[:1][0]; inMine != want.mine {
			t.Fatalf("frame %d: read into the given buffer %v, want %v", i, inMine, want.mine)
		}
		if f.Kind == KindRecords && !bytes.Equal(f.Payload, big[:want.n]) {
			t.Fatalf("frame %d: payload changed on the way", i)
		}
	}
	if asked != 2 {
		t.Fatalf("the buffer was asked for %d times, want 2", asked)
	}
	if _, err := parent.RecvInto(into); !errors.Is(err, io.EOF) {
		t.Fatalf("after peer close: %v, want io.EOF", err)
	}
}

// BenchmarkSendRecordsFrame sends a worker's records frame (128 KiB of
// JSON lines) over a socketpair, read by the other end.
func BenchmarkSendRecordsFrame(b *testing.B) {
	parent, childFile, err := Pair()
	if err != nil {
		b.Fatal(err)
	}
	defer parent.Close()
	child, err := FileConn(childFile)
	if err != nil {
		b.Fatal(err)
	}
	defer child.Close()
	go func() { _, _ = io.Copy(io.Discard, parent.NetConn()) }()
	payload := bytes.Repeat([]byte(`{"recordType":"APIAnalytics","apiproxy":"api","response_status_code":200}`+"\n"), (128<<10)/76)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if err := child.SendFrame(Frame{Kind: KindRecords, Payload: payload}); err != nil {
			b.Fatal(err)
		}
	}
}
