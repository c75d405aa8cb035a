package plugins

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/internal/logkey"
	"github.com/mgw-gateway/mgw/plugins/zone"
)

// Plugin is one step of a proxy's chain.
type Plugin interface {
	// ServeHTTP handles r. To continue it calls next, which is never nil;
	// to stop it writes a response and returns without calling next.
	ServeHTTP(w http.ResponseWriter, r *http.Request, next http.Handler)
}

// Env carries what a plugin may need from the process that runs it.
type Env struct {
	// Logger is tagged with the worker; Chain adds the proxy and plugin names.
	Logger zerolog.Logger
	// APIKeys verifies API keys. Nil where no request is served (the
	// master's check of a configuration).
	APIKeys KeyVerifier
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// Shared holds what a plugin builds once per configuration revision
	// and shares between the proxies' instances (parsed keys, caches).
	Shared *Shared
	// Zone is the instance's shared limit memory. Nil where no request is
	// served; a limit plugin then uses a private one.
	Zone *zone.Zone
	// Analytics receives the records of the analytics plugin. Nil where
	// no request is served.
	Analytics RecordSink
	// WatchQuota asks the master to keep a quota identifier in step with
	// Edge (the quota plugin's edge backend). Nil where no request is served.
	WatchQuota func(identifier string, allow uint32, interval int, timeUnit string)
}

// RecordSink takes analytics records, each one JSON object. It copies
// rec before it returns, and must not block.
type RecordSink interface {
	Record(rec []byte)
}

// KeyVerifier turns an API key into the claims of the app it belongs to.
type KeyVerifier interface {
	// VerifyAPIKey returns either a JWT to verify (Edge mode) or the
	// claims themselves (local mode). A key that is not valid gives an
	// error wrapping ErrKeyRejected.
	VerifyAPIKey(ctx context.Context, key string) (KeyResult, error)
}

// KeyResult is what a KeyVerifier found for a key.
type KeyResult struct {
	Token  string
	Claims map[string]any
}

// ErrKeyRejected means the key is unknown or revoked.
var ErrKeyRejected = errors.New("api key rejected")

// Shared is a per-revision store of values built once.
type Shared struct {
	mu sync.Mutex
	m  map[string]sharedValue
}

type sharedValue struct {
	v   any
	err error
}

// NewShared returns an empty store.
func NewShared() *Shared { return &Shared{m: map[string]sharedValue{}} }

// SharedValue returns the value of type T stored in s under name,
// building it first if needed: the first plugin instance of a revision
// builds it, the others get the same value (or the same error). A value
// stored under name with another type is an error, since two plugins
// then use one name for different things; prefix names with the plugin's.
func SharedValue[T any](s *Shared, name string, build func() (T, error)) (T, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var zero T
	if sv, ok := s.m[name]; ok {
		if sv.err != nil {
			return zero, sv.err
		}
		v, ok := sv.v.(T)
		if !ok {
			return zero, fmt.Errorf("shared value %q is a %T, not a %T", name, sv.v, zero)
		}
		return v, nil
	}
	v, err := build()
	s.m[name] = sharedValue{v, err}
	return v, err
}

// Factory builds one proxy's instance of a plugin from the configuration.
// It returns a nil Plugin when, as configured, the plugin has nothing to
// do for that proxy.
type Factory func(env Env, snap *configs.Snapshot, proxy *configs.Proxy) (Plugin, error)

// Spec describes a plugin to the registry.
type Spec struct {
	// Name is what edgemicro.plugins.sequence lists.
	Name string
	// Section is the top-level table of mgw.toml holding the plugin's
	// settings, decoded with Config.Section; "" for none.
	Section string
	// Settings is a value of the struct the plugin decodes its Section
	// into (its json tags are the keys); required with a Section. Every
	// configuration is checked against it, whether or not the plugin is
	// in the sequence, so a typo in the section of a plugin that does not
	// run is an error too, not a setting silently ignored.
	Settings any
	// New builds the plugin for one proxy.
	New Factory
}

var (
	mu       sync.RWMutex
	registry = map[string]Spec{}
)

// Register makes a plugin available under its name and lets its section
// appear in mgw.toml, holding the keys of its Settings. It panics when the
// name is empty or already taken, or a Section comes without Settings,
// since that is a programming error.
func Register(s Spec) {
	mu.Lock()
	defer mu.Unlock()
	if s.Name == "" || s.New == nil {
		panic("plugins: Register with an empty name or nil factory")
	}
	if _, dup := registry[s.Name]; dup {
		panic("plugins: " + s.Name + " registered twice")
	}
	if s.Section != "" && s.Settings == nil {
		panic("plugins: " + s.Name + " has a Section but no Settings to check it against")
	}
	registry[s.Name] = s
	if s.Section != "" {
		configs.AllowSection(s.Section, s.Settings)
	}
}

// Names returns the registered plugin names, sorted.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Sections returns the section of mgw.toml each registered plugin owns,
// by plugin name; plugins without a section are left out.
func Sections() map[string]string {
	mu.RLock()
	defer mu.RUnlock()
	out := map[string]string{}
	for n, s := range registry {
		if s.Section != "" {
			out[n] = s.Section
		}
	}
	return out
}

// SectionSettings returns the Settings of each registered plugin's
// section, by section: what the section is checked against and what
// docs/CONFIG.md must describe.
func SectionSettings() map[string]any {
	mu.RLock()
	defer mu.RUnlock()
	out := map[string]any{}
	for _, s := range registry {
		if s.Section != "" {
			out[s.Section] = s.Settings
		}
	}
	return out
}

func lookup(name string) (Spec, bool) {
	mu.RLock()
	defer mu.RUnlock()
	s, ok := registry[name]
	return s, ok
}

// Analytics is the name of the plugin that always runs first when
// analytics are on.
const Analytics = "analytics"

// Sequence is the plugin order of snap: analytics first when it is on,
// then edgemicro.plugins.sequence.
func Sequence(snap *configs.Snapshot) ([]string, error) {
	seq := snap.Config.Edgemicro.Plugins.Sequence
	if i := slices.Index(seq, Analytics); i > 0 {
		return nil, fmt.Errorf("edgemicro.plugins.sequence: %s always runs first; list it first or not at all", Analytics)
	} else if i == 0 {
		seq = seq[1:]
	}
	if AnalyticsOn(&snap.Config) {
		if _, ok := lookup(Analytics); ok {
			seq = append([]string{Analytics}, seq...)
		}
	}
	return seq, nil
}

// AnalyticsOn reports whether requests yield analytics records: in Edge
// mode unless [analytics] enabled = false, in local mode when [analytics]
// is present and not disabled.
func AnalyticsOn(c *configs.Config) bool {
	var s struct {
		Enabled *bool `json:"enabled"`
	}
	raw, _ := c.Sections[Analytics].(map[string]any)
	if v, ok := raw["enabled"].(bool); ok {
		s.Enabled = &v
	}
	if s.Enabled != nil {
		return *s.Enabled
	}
	return c.EdgeMode() || c.HasSection(Analytics)
}

// Check reports every plugin of cfg's sequence that is not registered,
// and every error a factory returns for any proxy.
func Check(snap *configs.Snapshot, env Env) error {
	var errs []error
	if env.Shared == nil {
		env.Shared = NewShared()
	}
	for i := range snap.Config.Proxies {
		if _, err := Chain(env, snap, &snap.Config.Proxies[i], http.NotFoundHandler()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Chain builds proxy's chain around final: the plugins of
// edgemicro.plugins.sequence in order, the first one outermost.
func Chain(env Env, snap *configs.Snapshot, proxy *configs.Proxy, final http.Handler) (http.Handler, error) {
	seq, err := Sequence(snap)
	if err != nil {
		return nil, err
	}
	global := snap.Config.Edgemicro.Plugins.ExcludeUrls
	if env.Now == nil {
		env.Now = time.Now
	}
	if env.Shared == nil {
		env.Shared = NewShared()
	}
	h := final
	for _, name := range slices.Backward(seq) {
		spec, ok := lookup(name)
		if !ok {
			return nil, fmt.Errorf("edgemicro.plugins.sequence: unknown plugin %q (known: %v)", name, Names())
		}
		penv := env
		penv.Logger = env.Logger.With().Str(logkey.Proxy, proxy.Name).Str(logkey.Plugin, name).Logger()
		p, err := spec.New(penv, snap, proxy)
		if err != nil {
			return nil, fmt.Errorf("plugin %s for proxy %q: %w", name, proxy.Name, err)
		}
		section := spec.Section
		if section == "" {
			section = spec.Name
		}
		own, err := snap.Config.ExcludeURLs(section)
		if err != nil {
			return nil, fmt.Errorf("plugin %s for proxy %q: %w", name, proxy.Name, err)
		}
		if p == nil {
			continue
		}
		var excl []string
		if name != Analytics {
			excl = append(excl, global...)
		}
		excl = append(excl, own...)
		h = link{name: name, p: p, next: h, exclude: compileExcludes(excl)}
	}
	return h, nil
}

// link binds a plugin to the rest of its chain.
type link struct {
	name    string
	p       Plugin
	next    http.Handler
	exclude []*regexp.Regexp
}

func (l link) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	for _, re := range l.exclude {
		if re.MatchString(r.URL.Path) {
			l.next.ServeHTTP(w, r)
			return
		}
	}
	if x := ExchangeOf(r); x != nil {
		x.Plugin = l.name
	}
	l.p.ServeHTTP(w, r, l.next)
}

// compileExcludes turns excludeUrls patterns (* matches any run of
// characters, the query ignored) into anchored expressions.
func compileExcludes(patterns []string) []*regexp.Regexp {
	var out []*regexp.Regexp
	for _, p := range patterns {
		p, _, _ = strings.Cut(p, "?")
		parts := strings.Split(p, "*")
		for i := range parts {
			parts[i] = regexp.QuoteMeta(parts[i])
		}
		out = append(out, regexp.MustCompile("^"+strings.Join(parts, ".*")+"$"))
	}
	return out
}
