package ipc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// ProtocolVersion is the version byte of every frame. A frame of another
// version is rejected with ErrVersion.
const ProtocolVersion = 1

// HeaderSize is the size of a frame header in bytes.
const HeaderSize = 8

// MaxFrameSize bounds the payload of one frame. It is checked before the
// payload is read, which is allocated as it arrives.
const MaxFrameSize = 16 << 20

const magic0, magic1 = 'M', 'G'

// Errors returned by ReadFrame. Each is wrapped with details; test with errors.Is.
var (
	ErrMagic     = errors.New("ipc: bad frame magic")
	ErrVersion   = errors.New("ipc: unsupported protocol version")
	ErrFrameSize = errors.New("ipc: frame too large")
)

// Kind names the type of a message's payload.
type Kind uint8

// The message kinds. Values are part of the wire format: never renumber.
const (
	KindHello   Kind = 1  // worker → master: Hello
	KindConfig  Kind = 2  // master → worker: Config
	KindAck     Kind = 3  // worker → master: Ack
	KindReady   Kind = 4  // worker → master: Ready
	KindDrain   Kind = 5  // master → worker: Drain
	KindStats   Kind = 6  // worker → master: Stats
	KindKeyAsk  Kind = 7  // worker → master: KeyAsk
	KindKeyTell Kind = 8  // master → worker: KeyTell
	KindRecords Kind = 9  // worker → master: analytics records
	KindQuota   Kind = 10 // worker → master: QuotaWatch
	KindControl Kind = 16 // command line → master: Control
	KindReply   Kind = 17 // master → command line: Reply
)

var kindNames = map[Kind]string{
	KindHello: "hello", KindConfig: "config", KindAck: "ack", KindReady: "ready",
	KindDrain: "drain", KindStats: "stats", KindKeyAsk: "key-ask", KindKeyTell: "key-tell", KindRecords: "records", KindQuota: "quota-watch", KindControl: "control", KindReply: "reply",
}

// String returns the kind's name, or "kind(N)" for an unknown kind.
func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Frame is one decoded frame: a kind and its raw JSON payload.
type Frame struct {
	Kind    Kind
	Payload []byte
}

// AppendFrame appends the encoding of f to dst and returns the result.
// It fails only when the payload exceeds MaxFrameSize.
func AppendFrame(dst []byte, f Frame) ([]byte, error) {
	if len(f.Payload) > MaxFrameSize {
		return dst, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameSize, len(f.Payload), MaxFrameSize)
	}
	dst = append(dst, magic0, magic1, ProtocolVersion, byte(f.Kind))
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(f.Payload)))
	return append(dst, f.Payload...), nil
}

// ReadFrame reads one frame from r. It returns io.EOF only when r ends
// cleanly between frames; a frame cut short is io.ErrUnexpectedEOF.
func ReadFrame(r io.Reader) (Frame, error) {
	return readFrame(r, nil)
}

// readFrame is ReadFrame, reading the payload into the memory buf
// returns for the frame's kind and length when buf is set and returns a
// slice.
func readFrame(r io.Reader, buf func(Kind, int) []byte) (Frame, error) {
	var h [HeaderSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return Frame{}, err
	}
	if h[0] != magic0 || h[1] != magic1 {
		return Frame{}, fmt.Errorf("%w: %q", ErrMagic, h[:2])
	}
	if h[2] != ProtocolVersion {
		return Frame{}, fmt.Errorf("%w: %d, want %d", ErrVersion, h[2], ProtocolVersion)
	}
	n := binary.BigEndian.Uint32(h[4:])
	if n > MaxFrameSize {
		return Frame{}, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameSize, n, MaxFrameSize)
	}
	f := Frame{Kind: Kind(h[3])}
	var p []byte
	var err error
	if b := bufFor(buf, f.Kind, int(n)); b != nil {
		p = b[:n]
		_, err = io.ReadFull(r, p)
	} else {
		p, err = readPayload(r, int(n))
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, fmt.Errorf("reading %s payload: %w", f.Kind, err)
	}
	f.Payload = p
	return f, nil
}

func bufFor(buf func(Kind, int) []byte, k Kind, n int) []byte {
	if buf == nil || n == 0 {
		return nil
	}
	if b := buf(k, n); cap(b) >= n {
		return b
	}
	return nil
}

// payloadChunk is how much of a payload is allocated before any of it
// has arrived.
const payloadChunk = 64 << 10

// readPayload reads n bytes, growing the buffer (doubling) as they
// arrive: a peer that announces 16 MiB and sends nothing costs
// payloadChunk, not the 16 MiB it announced.
func readPayload(r io.Reader, n int) ([]byte, error) {
	buf := make([]byte, 0, min(n, payloadChunk))
	for len(buf) < n {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(n-len(buf), cap(buf)))
		}
		end := min(cap(buf), n)
		if _, err := io.ReadFull(r, buf[len(buf):end]); err != nil {
			return nil, err
		}
		buf = buf[:end]
	}
	return buf, nil
}
