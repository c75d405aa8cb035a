package configs

import (
	"errors"
	"strings"
	"testing"
)

type sectionInner struct {
	Size int `json:"size"`
}

type sectionSettings struct {
	Allow  int                     `json:"allow"`
	Names  []string                `json:"names"`
	Inner  sectionInner            `json:"inner"`
	List   []sectionInner          `json:"list"`
	ByName map[string]sectionInner `json:"byName"`
	Free   map[string]int          `json:"free"`
	Any    any                     `json:"any"`
	Excl   StringList              `json:"excl"`
	sectionEmbedded
}

type sectionEmbedded struct {
	Deep bool `json:"deep"`
}

func TestSectionDecodesStrictly(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc, toml string
		unknown    string // the Key of the *UnknownKeyError wanted
		err        string // a part of another error wanted
		allow      int
	}{
		{"a known key", "allow = 3", "", "", 3},
		{"the chain's excludeUrls is taken out", "allow = 3\nexcludeUrls = \"/x\"", "", "", 3},
		{"a key in another case matches, as encoding/json does", "Allow = 4", "", "", 4},
		{"an embedded struct's keys", "deep = true", "", "", 0},
		{"maps, interfaces and self-decoding types take any key", "free = {a = 1}\nany = {b = 2}\nexcl = \"/a,/b\"\nbyName.x.size = 1", "", "", 0},
		{"a typo", "alow = 3", "alow", "", 0},
		{"a key of a nested table", "inner.sise = 3", "inner.sise", "", 0},
		{"a key of a table in a list", "list = [{size = 1}, {sise = 2}]", "list.1.sise", "", 0},
		{"a key of a table in a map", "byName.x.sise = 1", "byName.x.sise", "", 0},
		{"a value of the wrong type names its key", "allow = \"three\"", "", `key "allow" wants an integer, not a string`, 0},
		{"a nested value of the wrong type names its path", "inner.size = [1]", "", `key "inner.size" wants an integer`, 0},
	}
	AllowSection("sectiontest")
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			snap, err := Parse([]byte("[sectiontest]\n"+tc.toml+"\n"), func(string) (string, bool) { return "", false })
			if err != nil {
				t.Fatal(err)
			}
			var s sectionSettings
			err = snap.Config.Section("sectiontest", &s)
			switch uk, ok := errors.AsType[*UnknownKeyError](err); {
			case tc.unknown != "":
				if !ok || uk.Section != "sectiontest" || uk.Key != tc.unknown {
					t.Fatalf("err = %#v, want an *UnknownKeyError for %q", err, tc.unknown)
				}
			case tc.err != "":
				if err == nil || ok || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one containing %q", err, tc.err)
				}
			case err != nil:
				t.Fatal(err)
			case s.Allow != tc.allow:
				t.Fatalf("allow = %d, want %d", s.Allow, tc.allow)
			}
		})
	}
}
