package configs

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/BurntSushi/toml"
)

//go:embed default.toml
var defaultTOML []byte

// DefaultSource is the Source of a Snapshot built from the embedded default.
const DefaultSource = "embedded default"

// DefaultTOML returns the embedded default configuration file, as
// `mgw init` writes it.
func DefaultTOML() []byte { return bytes.Clone(defaultTOML) }

// Snapshot is one complete, validated configuration. It is never modified
// after it is published; a change builds a new Snapshot.
type Snapshot struct {
	// Revision is assigned by the master and strictly increases.
	Revision uint64 `json:"revision"`
	// Source names where the configuration came from: a file path or DefaultSource.
	Source string `json:"source"`
	// Checksum is the hex SHA-256 of the resolved source text; equal
	// checksums mean an edit changed nothing.
	Checksum string `json:"checksum"`
	Config   Config `json:"config"`
	// Org and Env name the Apigee org and environment (Edge mode, and
	// local mode when given); quota identifiers and analytics use them.
	Org string `json:"org,omitempty"`
	Env string `json:"env,omitempty"`
	// Keys verify and, in local mode, sign the JWTs of the auth plugins.
	Keys Keys `json:"keys"`
	// TLS holds the content of the certificate files the config names.
	TLS TLSMaterial `json:"tls"`
}

// Keys are the key material of one snapshot, all PEM or JSON text so the
// snapshot stays plain data.
type Keys struct {
	// PublicKeys verify RS256 tokens: PEM certificates or public keys.
	PublicKeys []string `json:"public_keys,omitempty"`
	// JWKS is Edge's {"keys":[JWK…]}; when present a token's kid selects
	// its key.
	JWKS json.RawMessage `json:"jwks,omitempty"`
	// PrivateKey signs the tokens that local mode issues (PEM); its
	// public key is PublicKeys[0].
	PrivateKey string `json:"private_key,omitempty"`
}

// LookupEnv looks up an environment variable; os.LookupEnv is one.
type LookupEnv func(string) (string, bool)

// Load reads and parses the file at path.
func Load(path string, env LookupEnv) (*Snapshot, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", ExplainAccess(err))
	}
	if empty(src) {
		return nil, fmt.Errorf("config %s is empty (nothing but blanks and comments): write the settings into it, or take the commented file `mgw init` writes", path)
	}
	s, err := Parse(src, env)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	s.Source = path
	return s, nil
}

// empty reports whether src holds nothing but blanks and comments.
func empty(src []byte) bool {
	for _, line := range bytes.Split(src, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) > 0 && line[0] != '#' {
			return false
		}
	}
	return true
}

// Default parses the embedded default configuration.
func Default(env LookupEnv) (*Snapshot, error) {
	s, err := Parse(defaultTOML, env)
	if err != nil {
		return nil, fmt.Errorf("embedded default config: %w", err)
	}
	s.Source = DefaultSource
	return s, nil
}

// Parse substitutes ${VAR} references, decodes src strictly over
// Defaults, normalizes and validates it.
func Parse(src []byte, env LookupEnv) (*Snapshot, error) {
	resolved, err := Substitute(src, env)
	if err != nil {
		return nil, err
	}
	cfg := Defaults()
	md, err := toml.NewDecoder(bytes.NewReader(resolved)).Decode(&cfg)
	if err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return nil, tomlTerms(fmt.Errorf("line %d: %s", perr.Position.Line, perr.Message))
		}
		return nil, tomlTerms(err)
	}
	var errs []error
	for _, k := range md.Undecoded() {
		if sectionAllowed(k[0]) {
			continue // a plugin's section: kept below, checked by the plugin
		}
		errs = append(errs, fmt.Errorf("unknown key %q%s%s", k.String(), lineOf(resolved, k), didYouMean(k)))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err := cfg.keepSections(resolved); err != nil {
		return nil, err
	}
	cfg.src = resolved
	sectionErr := cfg.checkSections() // said with the problems below
	cfg.normalize()
	if !cfg.EdgeMode() && len(cfg.Edgemicro.Proxies) > 0 {
		return nil, errors.Join(sectionErr, errors.New("edgemicro.proxies keeps Edge proxies by name and is for Edge mode ([edge_config]); in local mode list the [[proxies]] to serve"))
	}
	if cfg.EdgeMode() && (len(cfg.Proxies) > 0 || len(cfg.Products) > 0) {
		return nil, errors.Join(sectionErr, errors.New("[[proxies]] and [[products]] are for local mode; with [edge_config] they come from Edge"))
	}
	if err := errors.Join(sectionErr, cfg.Validate()); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(resolved)
	return &Snapshot{Checksum: hex.EncodeToString(sum[:]), Config: cfg}, nil
}

// keepSections stores the plugin sections of the file as plain data.
func (c *Config) keepSections(resolved []byte) error {
	var all map[string]any
	if _, err := toml.NewDecoder(bytes.NewReader(resolved)).Decode(&all); err != nil {
		return err
	}
	for k, v := range all {
		if !sectionAllowed(k) {
			continue
		}
		if _, ok := v.(map[string]any); !ok {
			return fmt.Errorf("%s must be a table ([%s])", k, k)
		}
		if c.Sections == nil {
			c.Sections = map[string]any{}
		}
		c.Sections[k] = v
	}
	return nil
}

// lineOf finds the line where key is assigned, for error messages: the
// key itself where findKey finds it, else (a key below an array of
// tables, which toml.Key does not number) the first line that assigns
// its last part. It returns "" when it cannot tell.
func lineOf(src []byte, k toml.Key) string {
	if len(k) == 0 {
		return ""
	}
	if n, exact := findKey(src, k); exact {
		return lineNote(n)
	}
	last := regexp.QuoteMeta(k[len(k)-1])
	re := regexp.MustCompile(`^\s*(\[+\s*)?("?` + last + `"?)\s*(=|\]|\.)`)
	for i, line := range strings.Split(string(src), "\n") {
		if re.MatchString(line) {
			return fmt.Sprintf(" (line %d)", i+1)
		}
	}
	return ""
}

var varRef = regexp.MustCompile(`\$\$|\$\{([^}]*)\}`)
var varName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Substitute replaces every ${VAR} in src by the variable's value, before
// TOML decoding, so a reference works for numbers and booleans too
// (port = ${PORT}). "$$" stands for a literal "$". Comments are left alone.
// A reference to an unset variable is an error naming it and its line.
func Substitute(src []byte, env LookupEnv) ([]byte, error) {
	var errs []error
	lines := bytes.SplitAfter(src, []byte("\n"))
	for i, line := range lines {
		code, comment := splitComment(line)
		code = varRef.ReplaceAllFunc(code, func(m []byte) []byte {
			if string(m) == "$$" {
				return []byte("$")
			}
			name := string(m[2 : len(m)-1])
			if !varName.MatchString(name) {
				errs = append(errs, fmt.Errorf("line %d: %q is not a valid variable reference", i+1, m))
				return m
			}
			v, ok := env(name)
			if !ok {
				errs = append(errs, fmt.Errorf("line %d: environment variable %s is not set", i+1, name))
				return m
			}
			return []byte(v)
		})
		lines[i] = append(code, comment...)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return bytes.Join(lines, nil), nil
}

// splitComment splits a TOML line before a # that is not inside a
// one-line string. (A # inside a multi-line string is taken for a
// comment; such strings are rare in mgw.toml.)
func splitComment(line []byte) (code, comment []byte) {
	cut := -1
	outsideStrings(string(line), func(i int) bool {
		if line[i] == '#' {
			cut = i
		}
		return cut < 0
	})
	if cut < 0 {
		return bytes.Clone(line), nil
	}
	return bytes.Clone(line[:cut]), line[cut:]
}

// outsideStrings calls f with the index of each byte of s that is
// neither inside a one-line TOML string nor one of its quotes, until f
// returns false.
func outsideStrings(s string, f func(i int) bool) {
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote == '"' && c == '\\':
			i++
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
		case c == '"' || c == '\'':
			quote = c
		case !f(i):
			return
		}
	}
}

// normalize puts equivalent spellings into one form.
func (c *Config) normalize() {
	c.NormalizeProxies()
	c.normalizeRest()
}

// NormalizeProxies puts base paths into one form; the Edge client calls
// it after adding downloaded proxies.
func (c *Config) NormalizeProxies() {
	for i := range c.Proxies {
		p := &c.Proxies[i]
		if len(p.BasePath) > 1 {
			p.BasePath = strings.TrimRight(p.BasePath, "/")
			if p.BasePath == "" {
				p.BasePath = "/"
			}
		}
	}
}

func (c *Config) normalizeRest() {
	if c.Metrics != nil && c.Metrics.Address == "" {
		c.Metrics.Address = "127.0.0.1"
	}
	if c.EdgeConfig != nil && c.EdgeConfig.ProxyPattern == "" {
		c.EdgeConfig.ProxyPattern = "edgemicro_*"
	}
	for i := range c.Products {
		if p := &c.Products[i]; p.Quota > 0 && p.QuotaInterval == 0 {
			p.QuotaInterval = 1
		}
	}
	if c.Edgemicro.Plugins.Sequence == nil {
		c.Edgemicro.Plugins.Sequence = []string{}
	}
	c.Edgemicro.Logging.Level = strings.ToLower(c.Edgemicro.Logging.Level)
}

// MarshalJSON-free helpers for the IPC wire.

// Encode returns the JSON form of s sent to workers.
func (s *Snapshot) Encode() ([]byte, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encoding snapshot: %w", err)
	}
	return b, nil
}

// Decode parses a Snapshot received over IPC and validates it again, as
// a cheap defence against a skewed peer.
func Decode(b []byte) (*Snapshot, error) {
	var s Snapshot
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("decoding snapshot: %w", err)
	}
	if err := s.Config.Validate(); err != nil {
		return nil, fmt.Errorf("snapshot %d: %w", s.Revision, err)
	}
	return &s, nil
}
