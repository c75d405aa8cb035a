// The framing of an answer's body (RFC 9112 §6.3): choosing it from the
// status and headers, reading a body by its length, by its chunks or to
// the end of the connection, and giving the connection back at its end.

package h1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"
)

// setBody chooses the framing of the answer's body (RFC 9112 §6.3) as
// net/http's ReadResponse does, refusing what it refuses: a
// Transfer-Encoding other than chunked alone, Content-Length values that
// differ or are not a number (whatever the status), a Trailer header
// naming a framing field.
func (cc *clientConn) setBody(req *http.Request, resp *http.Response) error {
	h := resp.Header
	// The Connection header stays, close or not (net/http drops it when
	// it says close): the fields it names are hop-by-hop, and a proxy
	// needs it to remove them; without it, "Connection: close, X-Secret"
	// would hand X-Secret to the client.
	var keep bool
	if conn := h["Connection"]; resp.ProtoMinor == 0 {
		keep = headerHasToken(conn, "keep-alive") && !headerHasToken(conn, "close")
	} else {
		keep = !headerHasToken(conn, "close")
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		keep = false // what follows is not HTTP
	}
	chunked := false
	if te, ok := h["Transfer-Encoding"]; ok {
		delete(h, "Transfer-Encoding")
		if resp.ProtoMinor == 1 { // HTTP/1.0 has no transfer codings
			// As net/http and nginx: chunked alone, or the answer is
			// refused; anything else leaves the body's end unknown.
			if len(te) != 1 || !strings.EqualFold(te[0], "chunked") {
				return errors.New("the answer has a Transfer-Encoding other than chunked")
			}
			chunked = true
			resp.TransferEncoding = chunkedValue
		}
	}
	length := int64(-1)
	if cl := h["Content-Length"]; len(cl) > 0 {
		for _, v := range cl[1:] {
			if v != cl[0] {
				return errors.New("the answer has differing Content-Length values")
			}
		}
		n, ok := parseLength([]byte(cl[0]))
		if !ok {
			return errors.New("the answer has a malformed Content-Length")
		}
		h["Content-Length"] = cl[:1]
		length = n
	}
	noBody := req.Method == http.MethodHead || resp.StatusCode < 200 ||
		resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified
	if chunked && !noBody {
		delete(h, "Content-Length")
	}
	if tr, ok := h["Trailer"]; ok && chunked {
		delete(h, "Trailer")
		for _, v := range tr {
			if hasToken([]byte(v), "Transfer-Encoding") || hasToken([]byte(v), "Content-Length") || hasToken([]byte(v), "Trailer") {
				return errors.New("the answer's Trailer header names a framing field")
			}
		}
	}
	resp.Close = !keep
	switch {
	case req.Method == http.MethodHead:
		resp.ContentLength = length
	case noBody:
		resp.ContentLength = 0
	case chunked:
		resp.ContentLength = -1
		resp.Body = &clientBody{cc: cc, keep: keep, chunked: true}
		return nil
	case length >= 0:
		resp.ContentLength = length
		resp.Body = &clientBody{cc: cc, keep: keep, remaining: length}
		return nil
	default:
		resp.ContentLength = -1 // until the target closes
		resp.Close = true
		resp.Body = &clientBody{cc: cc, remaining: -1}
		return nil
	}
	resp.Body = &clientBody{cc: cc, keep: keep}
	return nil
}

// clientBody reads an answer's body. At its end the connection goes back
// to the pool when it can carry another request; closed early, it closes
// the connection.
type clientBody struct {
	cc        *clientConn
	remaining int64 // -1: until EOF (unless chunked)
	chunked   bool
	chunkLeft int64 // bytes left in the current chunk
	excess    int64 // chunk overhead beyond what the data allows
	keep      bool
	done      bool // cc was released
	err       error
}

func (b *clientBody) Read(p []byte) (int, error) {
	if b.done {
		if b.err != nil {
			return 0, b.err
		}
		return 0, io.EOF
	}
	cc := b.cc
	if cc.deadline && (b.chunked || b.remaining < 0 || int64(cc.br.Buffered()) < b.remaining) {
		// The header timeout ends with the header; a body that is not
		// already here may take as long as the target takes.
		cc.setReadDeadline(time.Time{})
		cc.deadline = false
	}
	var n int
	var err error
	switch {
	case b.chunked:
		n, err = b.readChunked(p)
	case b.remaining == 0:
		err = io.EOF
	case b.remaining > 0:
		if int64(len(p)) > b.remaining {
			p = p[:b.remaining]
		}
		n, err = cc.br.Read(p)
		b.remaining -= int64(n)
		if b.remaining == 0 {
			err = io.EOF
		} else if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
	default:
		n, err = cc.br.Read(p)
	}
	if err != nil {
		b.release(err)
		if !errors.Is(err, io.EOF) {
			return n, err
		}
	}
	return n, err
}

func (b *clientBody) readChunked(p []byte) (int, error) {
	cc := b.cc
	if b.chunkLeft == 0 {
		size, err := b.chunkSize()
		if err != nil {
			return 0, err
		}
		if size == 0 {
			return 0, b.readTrailer()
		}
		b.chunkLeft = size
	}
	if int64(len(p)) > b.chunkLeft {
		p = p[:b.chunkLeft]
	}
	n, err := cc.br.Read(p)
	b.chunkLeft -= int64(n)
	if err != nil {
		return n, unexpected(err)
	}
	if b.chunkLeft == 0 {
		var end [2]byte
		if _, err := io.ReadFull(cc.br, end[:]); err != nil {
			return n, unexpected(err)
		}
		if end != [2]byte{'\r', '\n'} {
			return n, &ChunkError{"a chunk does not end with CRLF"}
		}
	}
	return n, nil
}

// ChunkError is a malformed chunked body: in an answer, the target's
// fault; in a request, the client's.
type ChunkError struct{ What string }

func (e *ChunkError) Error() string { return "malformed chunked body: " + e.What }

// maxChunkLine bounds a chunk-size line, extensions included, as net/http
// does.
const maxChunkLine = 4096

// chunkSize reads a chunk-size line as strictly as net/http: CRLF only,
// hex digits only (no sign, space or 0x before them; spaces and tabs
// after them), at most 16 of them and within int64, extensions dropped,
// and no more than 16 KiB of overhead beyond 16 bytes per chunk plus
// twice the chunk's data.
func (b *clientBody) chunkSize() (int64, error) {
	line, err := b.cc.br.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return 0, &ChunkError{"chunk-size line too long"}
	case err != nil:
		return 0, unexpected(err)
	}
	if i := bytes.IndexByte(line, '\r'); i < 0 || i != len(line)-2 {
		return 0, &ChunkError{"chunk-size line does not end with CRLF"}
	}
	line = line[:len(line)-2]
	if len(line) >= maxChunkLine {
		return 0, &ChunkError{"chunk-size line too long"}
	}
	b.excess += int64(len(line)) + 2
	for len(line) > 0 && (line[len(line)-1] == ' ' || line[len(line)-1] == '\t') {
		line = line[:len(line)-1]
	}
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	size, ok := parseChunkSize(line)
	if !ok {
		return 0, &ChunkError{"bad chunk size"}
	}
	b.excess = max(b.excess-16-2*size, 0)
	if b.excess > 16<<10 {
		return 0, &ChunkError{"too much besides data"}
	}
	return size, nil
}

// parseChunkSize reads 1 to 16 hex digits whose value fits an int64.
func parseChunkSize(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 16 {
		return 0, false
	}
	var n uint64
	for _, c := range v {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		n = n<<4 | uint64(c)
	}
	if n > 1<<63-1 {
		return 0, false
	}
	return int64(n), true
}

// maxTrailer bounds the trailer section after the last chunk.
const maxTrailer = 2 << 10

// readTrailer reads the trailer section after the last chunk, checks
// each field as a header's and drops it; it returns io.EOF at its end.
// Its lines must end with CRLF (net/http looks for a CRLF CRLF ahead
// before it reads a trailer), and it is bounded well within what
// net/http looks ahead.
func (b *clientBody) readTrailer() error {
	total := 0
	for {
		line, err := b.cc.br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			return &ChunkError{"trailer too large"}
		case err != nil:
			return unexpected(err)
		case len(line) < 2 || line[len(line)-2] != '\r':
			return &ChunkError{"a trailer line does not end with CRLF"}
		}
		line = line[:len(line)-2]
		if len(line) == 0 {
			return io.EOF
		}
		if total += len(line) + 2; total > maxTrailer {
			return &ChunkError{"trailer too large"}
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !validToken(line[:colon]) || !validValue(trimOWS(line[colon+1:])) {
			return &ChunkError{"malformed trailer field"}
		}
	}
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// release gives the connection back after the body ended with err.
func (b *clientBody) release(err error) {
	if b.done {
		return
	}
	b.done = true
	if !errors.Is(err, io.EOF) {
		b.err = err
	}
	if b.cc.unwatchCtx() {
		b.cc.close()
		return
	}
	if errors.Is(err, io.EOF) && b.keep && b.cc.br.Buffered() == 0 {
		b.cc.put()
		return
	}
	b.cc.close()
}

// Close releases the connection: to the pool when the body was read to
// its end or was empty, else by closing it.
func (b *clientBody) Close() error {
	if b.done {
		return nil
	}
	if !b.chunked && b.remaining == 0 {
		b.release(io.EOF)
		return nil
	}
	b.release(errors.New("body closed before its end"))
	return nil
}
