package h1

import (
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// smallBody is how much of a body without a Content-Length the server
// holds back, so that a short answer goes out with its length and in one
// write; a longer one goes out chunked.
const smallBody = 2 << 10

// response is the http.ResponseWriter of one request on the fast path.
// Like net/http's, it sends the head at the first Write, Flush or the
// end of the handler: with the handler's Content-Length, with the length
// of a body that ended within smallBody, or chunked.
type response struct {
	c             *conn
	req           *http.Request
	header        http.Header
	status        int
	committed     bool  // the head is in the connection's write buffer
	contentLength int64 // from the handler's header; -1 when unknown
	written       int64
	chunked       bool
	pre           []byte // body held back before the head is sent
}

func (w *response) Header() http.Header { return w.header }

func (w *response) WriteHeader(code int) {
	if w.status != 0 {
		return
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		// An interim answer goes out at once; the final one follows.
		w.c.write(statusLine(code))
		w.writeFields()
		w.c.write(crlf)
		w.c.flush()
		return
	}
	w.status = code
	if cl := w.header["Content-Length"]; len(cl) == 1 {
		if n, ok := parseLength([]byte(cl[0])); ok {
			w.contentLength = n
		}
	}
}

// bodyAllowed reports whether the answer may have a body.
func (w *response) bodyAllowed() bool {
	return w.status != http.StatusNoContent && w.status != http.StatusNotModified && w.req.Method != http.MethodHead
}

func (w *response) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.bodyAllowed() {
		if w.req.Method == http.MethodHead {
			return len(p), nil
		}
		return 0, http.ErrBodyNotAllowed
	}
	if w.c.werr != nil {
		return 0, w.c.werr
	}
	if w.contentLength >= 0 && w.written+int64(len(p)) > w.contentLength {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	switch {
	case w.committed:
	case w.contentLength >= 0:
		w.commit(p)
	case len(w.pre)+len(p) <= smallBody:
		if w.pre == nil {
			w.pre = make([]byte, 0, smallBody)
		}
		w.pre = append(w.pre, p...)
		return len(p), nil
	default:
		w.chunked = true
		first := w.pre
		if len(first) == 0 {
			first = p
		}
		w.commit(first)
		w.writeChunk(w.pre)
		w.pre = w.pre[:0]
	}
	if w.chunked {
		w.writeChunk(p)
	} else {
		w.c.write(p)
	}
	if w.c.werr != nil {
		return 0, w.c.werr
	}
	return len(p), nil
}

// Flush sends the head and what was written so far.
func (w *response) Flush() {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.chunked = w.contentLength < 0 && w.bodyAllowed()
		w.commit(w.pre)
		if w.chunked {
			w.writeChunk(w.pre)
		} else {
			w.c.write(w.pre)
		}
		w.pre = w.pre[:0]
	}
	w.c.flush()
}

// finish completes the answer after the handler returned.
func (w *response) finish() {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	c := w.c
	switch {
	case !w.committed:
		if w.contentLength < 0 && w.bodyAllowed() {
			w.contentLength = int64(len(w.pre))
			w.header["Content-Length"] = []string{strconv.Itoa(len(w.pre))}
		}
		w.commit(w.pre)
		c.write(w.pre)
	case w.chunked:
		c.write(lastChunk)
	}
	if w.contentLength >= 0 && w.written < w.contentLength && w.bodyAllowed() {
		c.closeAfter = true // the body is shorter than announced
	}
	c.flush()
}

var lastChunk = []byte("0\r\n\r\n")

func (w *response) writeChunk(p []byte) {
	if len(p) == 0 {
		return
	}
	var b [18]byte
	h := strconv.AppendInt(b[:0], int64(len(p)), 16)
	h = append(h, '\r', '\n')
	w.c.write(h)
	w.c.write(p)
	w.c.write(crlf)
}

// commit writes the head; first is the start of the body, for sniffing
// a Content-Type the handler did not set.
func (w *response) commit(first []byte) {
	w.committed = true
	h := w.header
	delete(h, "Transfer-Encoding")
	switch {
	case w.status == http.StatusNotModified:
		// As net/http: a 304 has no body, so nothing that frames or
		// types one (RFC 9110 §15.4.5).
		delete(h, "Content-Length")
		delete(h, "Content-Type")
	case w.status == http.StatusNoContent || w.status < 200:
		// A 204 must not carry a Content-Length (RFC 9110 §8.6): a
		// client or proxy in front that believed one would read the
		// next answer as this one's body.
		delete(h, "Content-Length")
	}
	if w.chunked {
		delete(h, "Content-Length")
		h["Transfer-Encoding"] = chunkedValue
	}
	if _, ok := h["Content-Type"]; !ok && len(first) > 0 && w.bodyAllowed() {
		h["Content-Type"] = []string{http.DetectContentType(first)}
	}
	c := w.c
	if !c.closeAfter {
		if headerHasToken(h["Connection"], "close") {
			c.closeAfter = true
		}
	} else if _, ok := h["Connection"]; !ok {
		h["Connection"] = closeValue
	}
	c.write(statusLine(w.status))
	if _, ok := h["Date"]; !ok {
		c.write(dateLine())
	}
	w.writeFields()
	c.write(crlf)
}

var (
	chunkedValue = []string{"chunked"}
	closeValue   = []string{"close"}
)

// writeFields writes the header, turning CR and LF in a name or value
// into spaces so that no handler can split the answer.
func (w *response) writeFields() {
	c := w.c
	for k, vv := range w.header {
		for _, v := range vv {
			c.out = appendField(c.out, k, v)
			if len(c.out) > cap(c.out)/2 {
				c.flush()
			}
		}
	}
}

func appendField(b []byte, k, v string) []byte {
	b = appendClean(b, k)
	b = append(b, ':', ' ')
	b = appendClean(b, v)
	return append(b, '\r', '\n')
}

func appendClean(b []byte, s string) []byte {
	if strings.IndexByte(s, '\r') < 0 && strings.IndexByte(s, '\n') < 0 {
		return append(b, s...)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		b = append(b, c)
	}
	return b
}

// cachedDate holds the Date line of the current second.
var cachedDate atomic.Pointer[dateEntry]

type dateEntry struct {
	sec  int64
	line []byte
}

func dateLine() []byte {
	now := time.Now()
	if d := cachedDate.Load(); d != nil && d.sec == now.Unix() {
		return d.line
	}
	d := &dateEntry{sec: now.Unix(), line: []byte("Date: " + now.UTC().Format(http.TimeFormat) + "\r\n")}
	cachedDate.Store(d)
	return d.line
}
