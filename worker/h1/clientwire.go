// The client's wire: writing a request's head and body to the target,
// and reading the answer's head (1xx heads included, within one bound)
// line by line, in place in the reader's buffer when it can.

package h1

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// maxResponseHead bounds a target's status line and headers.
const maxResponseHead = 1 << 20

// roundTrip writes req and reads the head of the answer.
func (cc *clientConn) roundTrip(req *http.Request) (*http.Response, error) {
	if err := cc.writeRequest(req); err != nil {
		var be errBody
		if errors.As(err, &be) {
			return nil, err
		}
		return nil, errStale{err}
	}
	if d := cc.t.ResponseHeaderTimeout; d > 0 {
		cc.setReadDeadline(time.Now().Add(d))
		cc.deadline = true
	}
	budget := maxResponseHead // for the final head and every 1xx before it, as net/http
	for {
		resp, err := cc.readResponse(req, &budget)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			if !asksUpgrade(req) {
				return nil, ErrUnsolicitedSwitch
			}
			resp.Close = true // the connection is the new protocol's now
			return resp, nil
		}
		if resp.StatusCode >= 200 {
			return resp, nil
		}
		// 1xx: the final answer follows
	}
}

// ErrUnsolicitedSwitch is a 101 Switching Protocols answer to a request
// that asked for no upgrade. Relaying it would hand the client a
// connection in a protocol it did not ask for; the connection is closed.
var ErrUnsolicitedSwitch = errors.New("the target switched protocols (101) although the request asked for no upgrade")

// asksUpgrade reports whether req asks the target to switch protocols.
func asksUpgrade(req *http.Request) bool {
	return len(req.Header["Upgrade"]) > 0 && headerHasToken(req.Header["Connection"], "upgrade")
}

func (cc *clientConn) writeRequest(req *http.Request) error {
	w := cc.bw
	uri := req.URL.RequestURI()
	if !validTarget(uri) {
		// A space or control byte would end or split the request line.
		return errBody{errors.New("the request target has bytes a request line cannot carry")}
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	_, _ = w.WriteString(req.Method)
	_ = w.WriteByte(' ')
	_, _ = w.WriteString(uri)
	_, _ = w.WriteString(" HTTP/1.1\r\nHost: ")
	_, _ = w.Write(appendClean(nil, host))
	_, _ = w.WriteString("\r\n")
	var scratch [256]byte
	for k, vv := range req.Header {
		switch len(k) { // the framing is the client's own, whatever the key's case
		case len("Host"), len("Content-Length"), len("Transfer-Encoding"):
			if strings.EqualFold(k, "Host") || strings.EqualFold(k, "Content-Length") || strings.EqualFold(k, "Transfer-Encoding") {
				continue
			}
		}
		for _, v := range vv {
			_, _ = w.Write(appendField(scratch[:0], k, v))
		}
	}
	hasBody := req.Body != nil && req.Body != http.NoBody
	switch {
	case hasBody && req.ContentLength <= 0: // unknown length, as in net/http
		_, _ = w.WriteString("Transfer-Encoding: chunked\r\n")
	case req.ContentLength > 0:
		_, _ = w.WriteString("Content-Length: ")
		_, _ = w.WriteString(strconv.FormatInt(max(req.ContentLength, 0), 10))
		_, _ = w.WriteString("\r\n")
	case req.Method == http.MethodPost || req.Method == http.MethodPut || req.Method == http.MethodPatch:
		_, _ = w.WriteString("Content-Length: 0\r\n")
	}
	_, _ = w.WriteString("\r\n")
	if hasBody {
		if err := cc.writeBody(req); err != nil {
			return err
		}
	}
	return w.Flush()
}

// errBody marks a failure to read the request body, which is the
// client's, not the target's; it is never retried.
type errBody struct{ err error }

func (e errBody) Error() string { return e.err.Error() }
func (e errBody) Unwrap() error { return e.err }

func (cc *clientConn) writeBody(req *http.Request) error {
	chunked := req.ContentLength <= 0
	defer req.Body.Close()
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	var sent int64
	for {
		n, rerr := req.Body.Read(buf)
		if n > 0 {
			if chunked {
				_, _ = fmt.Fprintf(cc.bw, "%x\r\n", n)
			}
			if _, err := cc.bw.Write(buf[:n]); err != nil {
				return err
			}
			if chunked {
				_, _ = cc.bw.WriteString("\r\n")
			}
			sent += int64(n)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return errBody{rerr}
		}
	}
	if chunked {
		_, _ = cc.bw.WriteString("0\r\n\r\n")
	} else if sent != req.ContentLength {
		return errBody{fmt.Errorf("request body: %d bytes, announced %d", sent, req.ContentLength)}
	}
	return nil
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// readResponse reads one answer's head and sets up its body. budget is
// what is left of maxResponseHead for the heads of this request's
// answers: the interim (1xx) ones count, so that a target cannot keep a
// round trip reading 1xx heads for as long as its timeout allows.
func (cc *clientConn) readResponse(req *http.Request, budget *int) (*http.Response, error) {
	if _, err := cc.br.Peek(1); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isReset(err) {
			return nil, errStale{io.ErrUnexpectedEOF}
		}
		return nil, err
	}
	ls := cc.lines()
	line, err := ls.next()
	if err != nil {
		return nil, err
	}
	if *budget -= len(line) + 2; *budget < 0 {
		return nil, errHeadTooLarge
	}
	resp := &http.Response{Request: req, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' || (line[7] != '0' && line[7] != '1') {
		return nil, errors.New("the answer's status line is malformed")
	}
	if line[7] == '0' {
		resp.Proto, resp.ProtoMinor = "HTTP/1.0", 0
	}
	code, err := strconv.Atoi(string(line[9:12]))
	if err != nil || code < 100 || code > 999 || len(line) > 12 && line[12] != ' ' {
		return nil, errors.New("the answer's status line is malformed")
	}
	resp.StatusCode = code
	resp.Status = ls.str(line[9:])

	header, err := readHeader(&ls, budget)
	if err != nil {
		return nil, err
	}
	ls.done()
	resp.Header = header
	return resp, cc.setBody(req, resp)
}

// errHeadTooLarge is an answer whose heads, its 1xx ones included, pass
// maxResponseHead.
var errHeadTooLarge = errors.New("the answer's header is too large")

// readHeader reads header lines up to the blank line, within budget.
func readHeader(ls *lineSource, budget *int) (http.Header, error) {
	h := make(http.Header, 8)
	var values []string // one backing array for single values, when the head is buffered
	if ls.head != nil {
		values = make([]string, ls.count)
	}
	for {
		line, err := ls.next()
		if err != nil {
			return nil, err
		}
		if *budget -= len(line) + 2; *budget < 0 {
			return nil, errHeadTooLarge
		}
		if len(line) == 0 {
			return h, nil
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !validToken(line[:colon]) {
			return nil, errors.New("the answer has a malformed header line")
		}
		v := trimOWS(line[colon+1:])
		if !validValue(v) {
			return nil, errors.New("the answer has a malformed header value")
		}
		name := line[:colon]
		k, common := commonKeys[string(name)]
		switch {
		case common:
		case isCanonical(name):
			k = ls.str(name)
		default:
			k = canonicalKey(name)
		}
		val := ls.str(v)
		if vv, ok := h[k]; ok || len(values) == 0 {
			h[k] = append(vv, val)
			continue
		}
		values[0] = val
		h[k] = values[:1:1]
		values = values[1:]
	}
}

// lineSource gives the lines of an answer's head. When the whole head is
// already in the reader's buffer, as it nearly always is, its lines are
// slices of the buffer and its strings pieces of one copy of the head;
// otherwise it reads line by line.
type lineSource struct {
	cc    *clientConn
	head  []byte // the buffered head, or nil
	count int    // its lines
	all   string // one copy of head
	pos   int
	long  []byte
}

func (cc *clientConn) lines() lineSource {
	ls := lineSource{cc: cc}
	buf, _ := cc.br.Peek(cc.br.Buffered())
	for pos := 0; ; {
		i := bytes.IndexByte(buf[pos:], '\n')
		if i < 0 {
			return ls // not all here
		}
		line := buf[pos : pos+i]
		pos += i + 1
		ls.count++
		if len(line) == 0 || len(line) == 1 && line[0] == '\r' {
			ls.head = buf[:pos]
			ls.all = string(ls.head)
			return ls
		}
	}
}

func (ls *lineSource) next() ([]byte, error) {
	if ls.head == nil {
		return ls.cc.readLine(ls.long[:0])
	}
	rest := ls.head[ls.pos:]
	i := bytes.IndexByte(rest, '\n')
	if i < 0 {
		return nil, io.ErrUnexpectedEOF // cannot happen: lines() saw the blank line
	}
	ls.pos += i + 1
	line := rest[:i]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, nil
}

// str returns x, a line or a piece of one, as a string.
func (ls *lineSource) str(x []byte) string {
	if ls.head == nil {
		return string(x)
	}
	off := cap(ls.head) - cap(x)
	return ls.all[off : off+len(x)]
}

// done consumes the buffered head.
func (ls *lineSource) done() {
	if ls.head != nil {
		_, _ = ls.cc.br.Discard(len(ls.head))
	}
}

// readLine returns the next line without its CRLF (or bare LF). A line
// longer than the reader's buffer is gathered in long.
func (cc *clientConn) readLine(long []byte) ([]byte, error) {
	for {
		b, err := cc.br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if len(long)+len(b) > maxResponseHead {
				return nil, errors.New("the answer's header is too large")
			}
			long = append(long, b...)
			continue
		}
		if err != nil {
			return nil, err
		}
		if long != nil {
			b = append(long, b...)
		}
		b = b[:len(b)-1]
		if len(b) > 0 && b[len(b)-1] == '\r' {
			b = b[:len(b)-1]
		}
		return b, nil
	}
}

func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
