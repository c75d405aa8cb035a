package testutil

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

func TestPollReportsWhetherTheConditionHeld(t *testing.T) {
	t.Parallel()
	n := 0
	if !Poll(10*time.Second, func() bool { n++; return n == 3 }) || n != 3 {
		t.Fatalf("Poll of a condition true at the third check: %d checks", n)
	}
	if Poll(0, func() bool { return false }) {
		t.Fatal("Poll of a condition never true reported true")
	}
}

func TestLoadCountsEachCall(t *testing.T) {
	t.Parallel()
	l := StartLoad(3, func(i int) error {
		if i%2 == 1 {
			return errors.New("odd")
		}
		return nil
	})
	Eventually(t, 10*time.Second, "calls", func() bool { return l.OK.Load() >= 10 && l.Failed.Load() >= 10 })
	l.Stop()
	ok, failed := l.OK.Load(), l.Failed.Load()
	if d := ok - failed; d < 0 || d > 3 {
		t.Fatalf("%d ok and %d failed from 3 goroutines alternating", ok, failed)
	}
}

func TestRepeatMakesEveryCallAndKeepsTheFirstErrors(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	l := Repeat(4, 25, func(i int) error {
		calls.Add(1)
		if i%5 == 0 {
			return fmt.Errorf("call %d", i)
		}
		return nil
	})
	if calls.Load() != 100 || l.OK.Load() != 80 || l.Failed.Load() != 20 {
		t.Fatalf("%d calls, %d ok, %d failed; want 100, 80, 20", calls.Load(), l.OK.Load(), l.Failed.Load())
	}
	if errs := l.Errors(); len(errs) != keptErrors || !strings.HasPrefix(errs[0], "call ") {
		t.Fatalf("errors kept: %q", errs)
	}
}

// TestConnLoadReusesConnectionsAndFailsWhatIsNot2xx: the load keeps its
// connections while the server does, opens a new one after
// Connection: close, and counts a non-2xx answer and a cut connection as
// failed.
func TestConnLoadReusesConnectionsAndFailsWhatIsNot2xx(t *testing.T) {
	t.Parallel()
	var conns, requests atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		switch n := requests.Add(1); {
		case n%50 == 0:
			w.WriteHeader(http.StatusServiceUnavailable)
		case n%20 == 0:
			w.Header().Set("Connection", "close")
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	l := StartConnLoad(2, addr, "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello")
	Eventually(t, 10*time.Second, "400 requests", func() bool { return requests.Load() >= 400 })
	l.Stop()
	ok, failed, c := l.OK.Load(), l.Failed.Load(), conns.Load()
	if failed == 0 || len(l.Errors()) == 0 || !strings.Contains(l.Errors()[0], "status 503") {
		t.Fatalf("the 503s did not fail: %d failed, errors %q", failed, l.Errors())
	}
	if c < 2+ok/20/2 || c > ok/5 {
		t.Fatalf("%d connections for %d answers: want a new one only after each Connection: close", c, ok)
	}

	// A server that cuts every connection after its answer's head.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf")
			_ = c.Close()
		}
	}()
	cut := StartConnLoad(1, ln.Addr().String(), "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
	Eventually(t, 10*time.Second, "cut answers", func() bool { return cut.Failed.Load() >= 3 })
	cut.Stop()
	if cut.OK.Load() != 0 || !strings.HasPrefix(cut.Errors()[0], "body: ") {
		t.Fatalf("a cut body: %d ok, errors %q", cut.OK.Load(), cut.Errors())
	}
}

func TestDoOKWantsAWhole200(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/teapot":
			w.WriteHeader(http.StatusTeapot)
		case "/cut":
			w.Header().Set("Content-Length", "10")
			_, _ = io.WriteString(w, "half")
		default:
			_, _ = io.WriteString(w, "ok")
		}
	}))
	defer srv.Close()
	for path, want := range map[string]string{"/": "", "/teapot": "status 418", "/cut": "body: "} {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		err := DoOK(srv.Client(), req)
		if (want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), want) {
			t.Errorf("GET %s: %v, want %q", path, err, want)
		}
	}
	req, _ := http.NewRequest("GET", "http://127.0.0.1:1/", nil)
	if err := DoOK(srv.Client(), req); err == nil {
		t.Error("a refused connection was no error")
	}
}

func TestPreambleWithPutsKeysInEdgemicro(t *testing.T) {
	t.Parallel()
	var v struct {
		Edgemicro struct {
			Port           int      `toml:"port"`
			Address        string   `toml:"address"`
			TrustedProxies []string `toml:"trusted_proxies"`
			Logging        struct {
				Level     string `toml:"level"`
				ToConsole bool   `toml:"to_console"`
			} `toml:"logging"`
		} `toml:"edgemicro"`
		Proxies []struct {
			Name string `toml:"name"`
		} `toml:"proxies"`
	}
	src := strings.ReplaceAll(PreambleWith(`trusted_proxies = ["127.0.0.1"]`)+"[[proxies]]\nname = \"p\"\n", "${PORT}", "8000")
	md, err := toml.Decode(src, &v)
	if err != nil {
		t.Fatal(err)
	}
	e := v.Edgemicro
	if e.Port != 8000 || e.Address != "127.0.0.1" || len(e.TrustedProxies) != 1 || e.Logging.Level != "info" || !e.Logging.ToConsole || len(v.Proxies) != 1 || len(md.Undecoded()) != 0 {
		t.Fatalf("decoded %+v (undecoded %v) from\n%s", v, md.Undecoded(), src)
	}
	if Preamble != PreambleWith() {
		t.Fatal("Preamble is not PreambleWith()")
	}
}
