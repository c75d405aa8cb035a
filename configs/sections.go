package configs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Plugin sections: a plugin registered with a section name owns the
// top-level table of that name ([spikearrest], [quotas], [cors] …). The
// file keeps it as plain data; the plugin decodes it into its own typed
// settings with Section, strictly. Parse decodes every section of the
// file once into the settings its plugin registered, whether or not the
// plugin is in the sequence, so a typo is found in every section.
var (
	sectionsMu sync.RWMutex
	sections   = map[string]reflect.Type{} // a section → its settings type (nil: not given)
)

// AllowSection lets name be a top-level table of mgw.toml, kept for the
// plugin that owns it. settings is a value of the plugin's settings
// struct (its json tags are the keys): Parse decodes the table into a new
// one strictly, so that an unknown key is an error even when the plugin
// is not in edgemicro.plugins.sequence. A nil settings leaves the check
// to the plugin, when it runs. plugins.Register calls it.
func AllowSection(name string, settings any) {
	sectionsMu.Lock()
	defer sectionsMu.Unlock()
	t := reflect.TypeOf(settings)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	sections[name] = t
}

func sectionAllowed(name string) bool {
	sectionsMu.RLock()
	defer sectionsMu.RUnlock()
	_, ok := sections[name]
	return ok
}

func sectionType(name string) reflect.Type {
	sectionsMu.RLock()
	defer sectionsMu.RUnlock()
	return sections[name]
}

// checkSections decodes every plugin section of c into a new value of the
// settings its plugin registered, and returns every error.
func (c *Config) checkSections() error {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(c.Sections)) {
		if t := sectionType(name); t != nil {
			if err := c.Section(name, reflect.New(t).Interface()); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// ChainKeys are the keys of a plugin section that the chain reads for
// every plugin (excludeUrls: the paths the plugin lets through). Section
// strips them before a plugin decodes its settings, so a plugin's
// Settings struct declares only the keys the plugin itself reads.
var ChainKeys = []string{"excludeUrls"}

// UnknownKeyError is a key of a plugin section that the plugin's settings
// do not have (a typo, or a key of another plugin). Key is the dotted path
// below the section for a key of a nested table; an entry of a list is
// numbered from 0 (list.1.name).
type UnknownKeyError struct {
	Section string
	Key     string
	// Line is the line of the file the key is written on, or 0 when the
	// configuration was not read from a file (a snapshot from IPC).
	Line int
	// Suggestion is the key of the same table closest to Key's last
	// part, when it is close enough to be a typo; else "".
	Suggestion string
}

func (e *UnknownKeyError) Error() string {
	return fmt.Sprintf("[%s]: unknown key %q%s%s", e.Section, e.Key, lineNote(e.Line), suggestion(e.Suggestion))
}

// lineNote is " (line n)", or "" for 0.
func lineNote(n int) string {
	if n <= 0 {
		return ""
	}
	return fmt.Sprintf(" (line %d)", n)
}

// Section decodes the plugin section name into v, a pointer to the
// plugin's settings struct whose json tags name the TOML keys. The chain's
// own keys (ChainKeys) are taken out first. A key v does not have is an
// *UnknownKeyError; a value of the wrong type is an error naming its key.
// Both say the key's line when c was parsed from a file.
// A missing section leaves v as it is.
func (c *Config) Section(name string, v any) error {
	raw, ok := c.Sections[name]
	if !ok {
		return nil
	}
	if m, ok := raw.(map[string]any); ok {
		own := make(map[string]any, len(m))
		for k, val := range m {
			if !slices.Contains(ChainKeys, k) {
				own[k] = val
			}
		}
		raw = own
	}
	if path, known, found := unknownKey(raw, reflect.TypeOf(v)); found {
		return &UnknownKeyError{
			Section:    name,
			Key:        strings.Join(path, "."),
			Line:       keyLine(c.src, append([]string{name}, path...)),
			Suggestion: closest(path[len(path)-1], known),
		}
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return fmt.Errorf("[%s]: %w", name, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields() // unknownKey found them all; this is a second guard
	if err := dec.Decode(v); err != nil {
		if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok && te.Field != "" {
			line := keyLine(c.src, append([]string{name}, strings.Split(te.Field, ".")...))
			return fmt.Errorf("[%s]: key %q wants %s, not a %s%s", name, te.Field, goKind(te.Type), te.Value, lineNote(line))
		}
		return fmt.Errorf("[%s]: %w", name, err)
	}
	return nil
}

// goKind names a Go type for an operator: "a number", "a list" …
func goKind(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a table"
	}
	return t.String()
}

// unknownKey walks data (a decoded TOML table) against t, the type it
// will be decoded into, and returns the path of the first key (in sorted
// order) that t has no field for, with the keys the table there may hold.
// Types that decode themselves, maps and interfaces accept any key.
func unknownKey(data any, t reflect.Type) (path, known []string, found bool) {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || reflect.PointerTo(t).Implements(jsonUnmarshaler) {
		return nil, nil, false
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := data.(map[string]any)
		if !ok {
			return nil, nil, false // a type error, reported by the decoder
		}
		fields := jsonFields(t, nil)
		for _, k := range slices.Sorted(maps.Keys(m)) {
			ft, ok := fields[k]
			if !ok {
				ft, ok = foldedField(fields, k)
			}
			if !ok {
				return []string{k}, slices.Sorted(maps.Keys(fields)), true
			}
			if sub, known, found := unknownKey(m[k], ft); found {
				return append([]string{k}, sub...), known, true
			}
		}
	case reflect.Map:
		m, ok := data.(map[string]any)
		if !ok {
			return nil, nil, false
		}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if sub, known, found := unknownKey(m[k], t.Elem()); found {
				return append([]string{k}, sub...), known, true
			}
		}
	case reflect.Slice, reflect.Array:
		// An array of tables ([[x]]) decodes as []map[string]any, an
		// inline array as []any.
		list := reflect.ValueOf(data)
		if list.Kind() != reflect.Slice {
			return nil, nil, false
		}
		for i := range list.Len() {
			if sub, known, found := unknownKey(list.Index(i).Interface(), t.Elem()); found {
				return append([]string{strconv.Itoa(i)}, sub...), known, true
			}
		}
	}
	return nil, nil, false
}

// foldedField finds the field of key ignoring case, the match
// encoding/json falls back to.
func foldedField(fields map[string]reflect.Type, key string) (reflect.Type, bool) {
	for name, t := range fields {
		if strings.EqualFold(name, key) {
			return t, true
		}
	}
	return nil, false
}

var jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()

// jsonFields maps the keys encoding/json decodes into struct t to their
// field types, following embedded structs as encoding/json does.
func jsonFields(t reflect.Type, into map[string]reflect.Type) map[string]reflect.Type {
	if into == nil {
		into = map[string]reflect.Type{}
	}
	for f := range t.Fields() {
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		ft := f.Type
		if f.Anonymous && name == "" {
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				jsonFields(ft, into)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if _, taken := into[name]; !taken {
			into[name] = ft
		}
	}
	return into
}

// HasSection reports whether the file has the section name.
func (c *Config) HasSection(name string) bool {
	_, ok := c.Sections[name]
	return ok
}

// StringList is a list of strings that may also be written as one
// comma-separated string, as edgemicro writes excludeUrls.
type StringList []string

// UnmarshalTOML accepts a string or an array of strings.
func (l *StringList) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case string:
		*l = splitList(v)
	case []any:
		out := make(StringList, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return errors.New("a list of strings holds a non-string")
			}
			out = append(out, s)
		}
		*l = out
	default:
		return fmt.Errorf("want a string or a list of strings, not %T", v)
	}
	return nil
}

// UnmarshalJSON accepts a string or an array of strings.
func (l *StringList) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*l = splitList(s)
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return errors.New("want a string or a list of strings")
	}
	*l = list
	return nil
}

func splitList(s string) StringList {
	out := StringList{}
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// ExcludeURLs returns the excludeUrls of a plugin's section: the typed
// auth sections, or the excludeUrls key of a plugin section. A value that
// is neither a string nor a list of strings is an error naming the key.
func (c *Config) ExcludeURLs(section string) (StringList, error) {
	switch section {
	case "oauth", "apikeys", "oauthv2":
		a := map[string]*Auth{"oauth": c.OAuth, "apikeys": c.APIKeys, "oauthv2": c.OAuthV2}[section]
		if a != nil {
			return a.ExcludeUrls, nil
		}
		return nil, nil
	}
	raw, _ := c.Sections[section].(map[string]any)
	v, ok := raw["excludeUrls"]
	if !ok {
		return nil, nil
	}
	var l StringList
	b, err := json.Marshal(v)
	if err == nil {
		err = l.UnmarshalJSON(b)
	}
	if err != nil {
		return nil, fmt.Errorf("[%s]: key \"excludeUrls\": %w", section, err)
	}
	return l, nil
}
