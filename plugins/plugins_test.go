package plugins

import (
	"errors"
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

// typedSettings are the keys of [typed].
type typedSettings struct {
	Greeting string `json:"greeting"`
}

func init() {
	for _, n := range []string{"a", "b", "stop"} {
		Register(Spec{Name: "test-" + n, Section: "test-" + n, Settings: struct{}{}, New: func(Env, *configs.Snapshot, *configs.Proxy) (Plugin, error) { return tracer{name: n}, nil }})
	}
	Register(Spec{Name: Analytics, Section: Analytics, Settings: struct{}{}, New: func(Env, *configs.Snapshot, *configs.Proxy) (Plugin, error) { return tracer{name: Analytics}, nil }})
	Register(Spec{Name: "test-typed", Section: "typed", Settings: typedSettings{}, New: func(_ Env, s *configs.Snapshot, _ *configs.Proxy) (Plugin, error) {
		var cfg typedSettings
		if err := s.Config.Section("typed", &cfg); err != nil {
			return nil, err
		}
		return tracer{name: cfg.Greeting}, nil
	}})
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
	Register(Spec{Name: "test-a", New: func(Env, *configs.Snapshot, *configs.Proxy) (Plugin, error) { return nil, nil }})
}

func TestRegisterASectionWithoutSettingsPanics(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Fatal("registering a section without its settings did not panic")
		}
	}()
	Register(Spec{Name: "test-nosettings", Section: "nosettings", New: func(Env, *configs.Snapshot, *configs.Proxy) (Plugin, error) { return nil, nil }})
}

// chainTrace parses a config, builds the chain of its first proxy and
// returns the X-Trace of a request for path.
func chainTrace(t *testing.T, toml, path string) (string, error) {
	t.Helper()
	snap, err := configs.Parse([]byte(toml+"\n[[proxies]]\nname = \"p\"\nbase_path = \"/p\"\nurl = \"mock://echo\"\n"), func(string) (string, bool) { return "", false })
	if err != nil {
		return "", err
	}
	h, err := Chain(Env{Logger: zerolog.Nop()}, snap, &snap.Config.Proxies[0], http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("X-Trace", "target")
	}))
	if err != nil {
		return "", err
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	return strings.Join(rec.Header()["X-Trace"], ","), nil
}

func TestContract(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc, toml, path, trace, err string
	}{
		{"analytics runs first when on, response hooks in reverse",
			"[edgemicro.plugins]\nsequence = [\"test-a\"]\n[analytics]\n", "/p/x", "in:analytics,in:a,target,out:a,out:analytics", ""},
		{"analytics listed first is the same",
			"[edgemicro.plugins]\nsequence = [\"analytics\", \"test-a\"]\n[analytics]\n", "/p/x", "in:analytics,in:a,target,out:a,out:analytics", ""},
		{"analytics off in local mode without its section",
			"[edgemicro.plugins]\nsequence = [\"test-a\"]\n", "/p/x", "in:a,target,out:a", ""},
		{"analytics listed elsewhere is an error",
			"[edgemicro.plugins]\nsequence = [\"test-a\", \"analytics\"]\n", "/p/x", "", "always runs first"},
		{"global excludeUrls: only analytics runs",
			"[edgemicro.plugins]\nsequence = [\"test-a\", \"test-b\"]\nexcludeUrls = \"/p/health,/p/static/*\"\n[analytics]\n", "/p/static/x.css?v=1", "in:analytics,target,out:analytics", ""},
		{"a plugin's own excludeUrls",
			"[edgemicro.plugins]\nsequence = [\"test-a\", \"test-b\"]\n[test-b]\nexcludeUrls = [\"/p/open\"]\n", "/p/open", "in:a,target,out:a", ""},
		{"excludeUrls do not match other paths",
			"[edgemicro.plugins]\nsequence = [\"test-a\", \"test-b\"]\n[test-b]\nexcludeUrls = [\"/p/open\"]\n", "/p/opened", "in:a,in:b,target,out:b,out:a", ""},
		{"a typed section reaches its plugin",
			"[edgemicro.plugins]\nsequence = [\"test-typed\"]\n[typed]\ngreeting = \"hi\"\n", "/p", "in:hi,target,out:hi", ""},
		{"an unknown key of a typed section is an error naming it",
			"[edgemicro.plugins]\nsequence = [\"test-typed\"]\n[typed]\ngreting = \"hi\"\n", "/p", "", `[typed]: unknown key "greting"`},
		{"an unknown key of the section of a plugin not in the sequence is an error, with its line and a suggestion",
			"[edgemicro.plugins]\nsequence = [\"test-a\"]\n[typed]\ngreting = \"hi\"\n", "/p", "", `[typed]: unknown key "greting" (line 4) (did you mean "greeting"?)`},
		{"a section of a plugin not in the sequence that decodes is accepted",
			"[edgemicro.plugins]\nsequence = [\"test-a\"]\n[typed]\ngreeting = \"hi\"\n", "/p", "in:a,target,out:a", ""},
		{"a typed section's excludeUrls is the chain's, not the plugin's",
			"[edgemicro.plugins]\nsequence = [\"test-typed\"]\n[typed]\ngreeting = \"hi\"\nexcludeUrls = \"/p/open\"\n", "/p/open", "target", ""},
		{"an excludeUrls that is not strings is an error naming it",
			"[edgemicro.plugins]\nsequence = [\"test-a\"]\n[test-a]\nexcludeUrls = 3\n", "/p", "", `[test-a]: key "excludeUrls"`},
		{"a section of no plugin is an unknown key",
			"[nosuch]\nx = 1\n", "/p", "", `unknown key "nosuch`},
		{"a misspelt section is an unknown key with a suggestion",
			"[edgemicro.plugins]\nsequence = [\"test-a\"]\n[tyqed]\ngreeting = \"hi\"\n", "/p", "", `unknown key "tyqed" (line 3) (did you mean "typed"?)`},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			trace, err := chainTrace(t, tc.toml, tc.path)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || trace != tc.trace {
				t.Fatalf("trace %q (err %v), want %q", trace, err, tc.trace)
			}
		})
	}
}

func TestSharedValueIsBuiltOnceAndTyped(t *testing.T) {
	t.Parallel()
	s := NewShared()
	builds := 0
	build := func() (*int, error) { builds++; n := 7; return &n, nil }
	a, err := SharedValue(s, "n", build)
	if err != nil {
		t.Fatal(err)
	}
	b, err := SharedValue(s, "n", build)
	if err != nil || a != b || builds != 1 {
		t.Fatalf("second lookup: %p, %v after %d builds; want %p, nil after 1", b, err, builds, a)
	}
	if _, err := SharedValue(s, "n", func() (string, error) { return "x", nil }); err == nil {
		t.Fatal("a lookup of another type under the same name: want an error")
	}
	failed := errors.New("broken")
	if _, err := SharedValue(s, "bad", func() (int, error) { return 0, failed }); !errors.Is(err, failed) {
		t.Fatalf("build error = %v", err)
	}
	if _, err := SharedValue(s, "bad", func() (int, error) { t.Fatal("rebuilt after an error"); return 0, nil }); !errors.Is(err, failed) {
		t.Fatalf("stored build error = %v", err)
	}
}
