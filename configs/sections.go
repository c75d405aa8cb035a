package configs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// Plugin sections: a plugin registered with a section name owns the
// top-level table of that name ([spikearrest], [quotas], [cors] …). The
// file keeps it as plain data; the plugin decodes it into its own typed
// settings with Section, strictly.
var (
	sectionsMu sync.RWMutex
	sections   = map[string]bool{}
)

// AllowSection lets name be a top-level table of mgw.toml, kept for the
// plugin that owns it. plugins.Register calls it.
func AllowSection(name string) {
	sectionsMu.Lock()
	defer sectionsMu.Unlock()
	sections[name] = true
}

func sectionAllowed(name string) bool {
	sectionsMu.RLock()
	defer sectionsMu.RUnlock()
	return sections[name]
}

// Section decodes the plugin section name into v (a pointer to the
// plugin's settings struct, with json tags named like the TOML keys). A
// key v does not have is an error naming it. A missing section leaves v
// as it is.
func (c *Config) Section(name string, v any) error {
	raw, ok := c.Sections[name]
	if !ok {
		return nil
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return fmt.Errorf("[%s]: %w", name, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		msg := err.Error()
		if k, found := strings.CutPrefix(msg, "json: unknown field "); found {
			return fmt.Errorf("[%s]: unknown key %s", name, k)
		}
		if _, found := strings.CutPrefix(msg, "json: cannot unmarshal "); found {
			return fmt.Errorf("[%s]: a value has the wrong type: %s", name, strings.TrimPrefix(msg, "json: "))
		}
		return fmt.Errorf("[%s]: %w", name, err)
	}
	return nil
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
// auth sections, or the excludeUrls key of a plugin section.
func (c *Config) ExcludeURLs(section string) StringList {
	switch section {
	case "oauth", "apikeys", "oauthv2":
		a := map[string]*Auth{"oauth": c.OAuth, "apikeys": c.APIKeys, "oauthv2": c.OAuthV2}[section]
		if a != nil {
			return a.ExcludeUrls
		}
		return nil
	}
	var s struct {
		ExcludeUrls StringList `json:"excludeUrls"`
	}
	raw, _ := c.Sections[section].(map[string]any)
	if v, ok := raw["excludeUrls"]; ok {
		b, _ := json.Marshal(map[string]any{"excludeUrls": v})
		_ = json.Unmarshal(b, &s)
	}
	return s.ExcludeUrls
}
