package worker

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
)

// mockTarget is the built-in target behind mock:// URLs. It answers every
// request with a JSON echo of what reached it, after mgw's rewriting, so a
// new user sees the whole path of a request without running a target.
type mockTarget struct{}

// mockBodyLimit bounds how much of a request body the echo repeats.
const mockBodyLimit = 64 << 10

type echo struct {
	Method  string              `json:"method"`
	Path    string              `json:"path"`
	Query   string              `json:"query,omitempty"`
	Host    string              `json:"host"`
	Headers map[string][]string `json:"headers"`
	Body    string              `json:"body,omitempty"`
}

func (mockTarget) RoundTrip(r *http.Request) (*http.Response, error) {
	e := echo{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Host: r.Host, Headers: r.Header}
	if r.Body != nil {
		b, err := io.ReadAll(io.LimitReader(r.Body, mockBodyLimit))
		_ = r.Body.Close()
		if err != nil {
			return nil, err
		}
		e.Body = string(b)
	}
	b, _ := json.MarshalIndent(e, "", "  ")
	b = append(b, '\n')
	return &http.Response{
		StatusCode:    http.StatusOK,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {"application/json"}, "Content-Length": {strconv.Itoa(len(b))}},
		Body:          io.NopCloser(bytes.NewReader(b)),
		ContentLength: int64(len(b)),
		Request:       r,
	}, nil
}
