package plugins

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"sync"

	"github.com/rs/zerolog"

	"github.com/mgw-gateway/mgw/configs"
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
}

// Factory builds one proxy's instance of a plugin from the configuration.
type Factory func(env Env, cfg *configs.Config, proxy *configs.Proxy) (Plugin, error)

var (
	mu       sync.RWMutex
	registry = map[string]Factory{}
)

// Register makes a plugin available under name. It panics when the name
// is empty or already taken, since that is a programming error.
func Register(name string, f Factory) {
	mu.Lock()
	defer mu.Unlock()
	if name == "" || f == nil {
		panic("plugins: Register with an empty name or nil factory")
	}
	if _, dup := registry[name]; dup {
		panic("plugins: " + name + " registered twice")
	}
	registry[name] = f
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

func lookup(name string) (Factory, bool) {
	mu.RLock()
	defer mu.RUnlock()
	f, ok := registry[name]
	return f, ok
}

// Check reports every plugin of cfg's sequence that is not registered,
// and every error a factory returns for any proxy.
func Check(cfg *configs.Config, env Env) error {
	var errs []error
	for i := range cfg.Proxies {
		if _, err := Chain(env, cfg, &cfg.Proxies[i], http.NotFoundHandler()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Chain builds proxy's chain around final: the plugins of
// edgemicro.plugins.sequence in order, the first one outermost.
func Chain(env Env, cfg *configs.Config, proxy *configs.Proxy, final http.Handler) (http.Handler, error) {
	seq := cfg.Edgemicro.Plugins.Sequence
	h := final
	for _, name := range slices.Backward(seq) {
		f, ok := lookup(name)
		if !ok {
			return nil, fmt.Errorf("edgemicro.plugins.sequence: unknown plugin %q (known: %v)", name, Names())
		}
		penv := env
		penv.Logger = env.Logger.With().Str("proxy", proxy.Name).Str("plugin", name).Logger()
		p, err := f(penv, cfg, proxy)
		if err != nil {
			return nil, fmt.Errorf("plugin %s for proxy %q: %w", name, proxy.Name, err)
		}
		h = link{p: p, next: h}
	}
	return h, nil
}

// link binds a plugin to the rest of its chain.
type link struct {
	p    Plugin
	next http.Handler
}

func (l link) ServeHTTP(w http.ResponseWriter, r *http.Request) { l.p.ServeHTTP(w, r, l.next) }
