package integration

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// framingTarget answers with what it received, so a test can check that
// bodies and framing survive the gateway both ways.
func framingTarget(t *testing.T) *httptest.Server {
	t.Helper()
	big := bytes.Repeat([]byte("0123456789abcdef"), 5<<20/16) // 5 MiB
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch strings.TrimPrefix(r.URL.Path, "/v1") {
		case "/echo":
			b, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			sum := sha256.Sum256(b)
			w.Header().Set("X-Length", fmt.Sprint(len(b)))
			w.Header().Set("X-Chunked", fmt.Sprint(len(r.TransferEncoding) > 0))
			w.Header().Set("Content-Length", "64")
			_, _ = io.WriteString(w, hex.EncodeToString(sum[:]))
		case "/stream":
			for i := 0; i < 3; i++ {
				fmt.Fprintf(w, "part %d\n", i)
				w.(http.Flusher).Flush()
			}
		case "/big":
			w.Header().Set("Content-Length", fmt.Sprint(len(big)))
			_, _ = w.Write(big)
		case "/notmodified":
			w.WriteHeader(http.StatusNotModified)
		default:
			fmt.Fprintf(w, "%s %s", r.Method, r.URL.Path)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestProxyFraming sends bodies and answers of every framing through the
// real binary: the plain requests go through the hand-written HTTP/1.1
// path, chunked uploads and HTTP/1.0 through net/http's, and both must
// deliver every byte.
func TestProxyFraming(t *testing.T) {
	t.Parallel()
	tgt := framingTarget(t)
	in := newInstance(t, proxyConfig(tgt.URL))
	in.start(2)
	in.waitServing(2)

	payload := bytes.Repeat([]byte("mgw!"), 1<<20/4) // 1 MiB
	t.Run("body with a length", func(t *testing.T) {
		resp, err := http.Post(in.url("/api/echo"), "application/octet-stream", bytes.NewReader(payload))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(got) != sha(payload) || resp.Header.Get("X-Length") != fmt.Sprint(len(payload)) ||
			resp.Header.Get("X-Chunked") != "false" {
			t.Fatalf("%d %s length %s chunked %s", resp.StatusCode, got, resp.Header.Get("X-Length"), resp.Header.Get("X-Chunked"))
		}
	})
	t.Run("chunked body", func(t *testing.T) {
		// A reader without a length makes Go's client send it chunked.
		resp, err := http.Post(in.url("/api/echo"), "application/octet-stream", io.MultiReader(bytes.NewReader(payload)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got, _ := io.ReadAll(resp.Body)
		// The length is unknown all the way: the target gets it chunked.
		if resp.StatusCode != 200 || string(got) != sha(payload) || resp.Header.Get("X-Chunked") != "true" {
			t.Fatalf("%d %s chunked %s", resp.StatusCode, got, resp.Header.Get("X-Chunked"))
		}
	})
	t.Run("streamed answer", func(t *testing.T) {
		code, body := get(t, in.url("/api/stream"))
		if code != 200 || body != "part 0\npart 1\npart 2\n" {
			t.Fatalf("%d %q", code, body)
		}
	})
	t.Run("5 MiB answer", func(t *testing.T) {
		resp, err := http.Get(in.url("/api/big"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		if err != nil || len(got) != 5<<20 || resp.ContentLength != 5<<20 {
			t.Fatalf("read %d bytes, length %d: %v", len(got), resp.ContentLength, err)
		}
	})
	t.Run("HEAD and 304 have no body", func(t *testing.T) {
		resp, err := http.Head(in.url("/api/big"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.ContentLength != 5<<20 {
			t.Fatalf("HEAD: %d length %d", resp.StatusCode, resp.ContentLength)
		}
		// Raw, on one connection: a body after the 304 would be read as
		// the start of the next answer.
		answers := rawExchange(t, in.url(""), "GET /api/notmodified HTTP/1.1\r\nHost: x\r\n\r\nGET /api/after HTTP/1.1\r\nHost: x\r\n\r\n", 2)
		if answers[0] != "304 " || answers[1] != "200 GET /v1/after" {
			t.Fatalf("answers %q", answers)
		}
	})
	t.Run("pipelined and HTTP/1.0", func(t *testing.T) {
		answers := rawExchange(t, in.url(""), "GET /api/a HTTP/1.1\r\nHost: x\r\n\r\nGET /api/b HTTP/1.1\r\nHost: x\r\n\r\nGET /api/c HTTP/1.0\r\n\r\n", 3)
		want := []string{"200 GET /v1/a", "200 GET /v1/b", "200 GET /v1/c"}
		for i := range want {
			if answers[i] != want[i] {
				t.Fatalf("answers %q, want %q", answers, want)
			}
		}
	})
}

// rawExchange writes raw to the gateway at base on one connection and
// returns n answers as "status body".
func rawExchange(t *testing.T, base, raw string, n int) []string {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var out []string
	for i := 0; i < n; i++ {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("answer %d: %v (so far %q)", i, err, out)
		}
		b, _ := io.ReadAll(resp.Body)
		out = append(out, fmt.Sprintf("%d %s", resp.StatusCode, b))
	}
	return out
}
