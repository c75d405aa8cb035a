package fakeedge

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"net/http"
)

// Answer makes endpoint answer 200 with body from now on (a broken proxy
// or cache in front of Edge answering `{}`, say); "" restores it.
func (s *Server) Answer(endpoint, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.answers == nil {
		s.answers = map[string]string{}
	}
	if body == "" {
		delete(s.answers, endpoint)
		return
	}
	s.answers[endpoint] = body
}

// SetETags makes the bootstrap and products answers carry an ETag (a
// hash of the body) and answer If-None-Match with 304, as a CDN in front
// of Edge may.
func (s *Server) SetETags(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.etags = on
}

// NotModified is how many 304s endpoint has answered.
func (s *Server) NotModified(endpoint string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.notModified[endpoint]
}

// answerAs writes what endpoint answers to r, applying Answer and SetETags
// around h.
func (s *Server) answerAs(name string, w http.ResponseWriter, r *http.Request, h http.HandlerFunc) {
	s.mu.Lock()
	body, fixed := s.answers[name]
	etags := s.etags && (name == Bootstrap || name == Products)
	s.mu.Unlock()
	if !fixed && !etags {
		h(w, r)
		return
	}
	rec := &recorder{header: http.Header{}, status: http.StatusOK}
	if fixed {
		rec.header.Set("Content-Type", "application/json")
		rec.body.WriteString(body)
	} else {
		h(rec, r)
	}
	for k, v := range rec.header {
		w.Header()[k] = v
	}
	if etags && rec.status == http.StatusOK {
		tag := fmt.Sprintf(`"%x"`, sha256.Sum256(rec.body.Bytes()))
		w.Header().Set("ETag", tag)
		if r.Header.Get("If-None-Match") == tag {
			s.mu.Lock()
			if s.notModified == nil {
				s.notModified = map[string]int{}
			}
			s.notModified[name]++
			s.mu.Unlock()
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	w.WriteHeader(rec.status)
	_, _ = w.Write(rec.body.Bytes())
}

// recorder keeps a handler's answer so that it can be tagged.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) WriteHeader(status int)      { r.status = status }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
