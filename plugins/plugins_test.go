package plugins

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/mgw-gateway/mgw/configs"
)

// tracer appends its name on the way in and out, so the order of request
// and response hooks is visible; "stop" answers without calling next.
type tracer struct{ name string }

func (p tracer) ServeHTTP(w http.ResponseWriter, r *http.Request, next http.Handler) {
	w.Header().Add("X-Trace", "in:"+p.name)
	if p.name == "stop" {
		w.WriteHeader(http.StatusTeapot)
		return
	}
	next.ServeHTTP(w, r)
	w.Header().Add("X-Trace", "out:"+p.name)
}

func init() {
	for _, n := range []string{"a", "b", "stop"} {
		Register("test-"+n, func(Env, *configs.Snapshot, *configs.Proxy) (Plugin, error) { return tracer{name: n}, nil })
	}
}

func TestChainOrder(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc   string
		seq    []string
		status int
		trace  string
	}{
		{"empty sequence reaches the target", nil, 200, "target"},
		{"request hooks in order, response hooks in reverse", []string{"test-a", "test-b"}, 200, "in:a,in:b,target,out:b,out:a"},
		{"a plugin stops the chain", []string{"test-a", "test-stop", "test-b"}, 418, "in:a,in:stop,out:a"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			cfg := configs.Defaults()
			cfg.Edgemicro.Plugins.Sequence = tc.seq
			final := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Header().Add("X-Trace", "target") })
			h, err := Chain(Env{Logger: zerolog.Nop()}, &configs.Snapshot{Config: cfg}, &configs.Proxy{Name: "p"}, final)
			if err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
			if got := strings.Join(rec.Header()["X-Trace"], ","); got != tc.trace || rec.Code != tc.status {
				t.Fatalf("trace %q status %d, want %q %d", got, rec.Code, tc.trace, tc.status)
			}
		})
	}
}

func TestUnknownPluginIsAConfigError(t *testing.T) {
	t.Parallel()
	cfg := configs.Defaults()
	cfg.Proxies = []configs.Proxy{{Name: "p", BasePath: "/p", URL: "http://h"}}
	cfg.Edgemicro.Plugins.Sequence = []string{"no-such-plugin"}
	err := Check(&configs.Snapshot{Config: cfg}, Env{Logger: zerolog.Nop()})
	if err == nil || !strings.Contains(err.Error(), `unknown plugin "no-such-plugin"`) {
		t.Fatalf("Check = %v", err)
	}
}

func TestRegisterTwicePanics(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Fatal("registering a name twice did not panic")
		}
	}()
	Register("test-a", func(Env, *configs.Snapshot, *configs.Proxy) (Plugin, error) { return nil, nil })
}
