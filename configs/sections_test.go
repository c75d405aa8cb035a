package configs

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
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
	AllowSection("sectiontest", nil)
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

// TestSectionErrorsSayLineAndSuggestion: Parse decodes every plugin
// section into its registered settings, whether or not the plugin runs,
// and an unknown key says its line and the key it is closest to.
func TestSectionErrorsSayLineAndSuggestion(t *testing.T) {
	t.Parallel()
	AllowSection("checked", sectionSettings{})
	tests := []struct {
		desc, toml string
		want       string // a part of the error wanted, "" for none
	}{
		{"a good section", "[checked]\nallow = 3\n", ""},
		{"a typo, with the line and a suggestion",
			"[edgemicro]\nport = 8000\n\n[checked]\nallow = 3\nalow = 4\n", `[checked]: unknown key "alow" (line 6) (did you mean "allow"?)`},
		{"a typo far from every key gets no suggestion", "[checked]\nzzzzzz = 1\n", `[checked]: unknown key "zzzzzz" (line 2)` + "\n"},
		{"a key of a nested table",
			"[checked]\nallow = 1\n[checked.inner]\nsise = 3\n", `[checked]: unknown key "inner.sise" (line 4) (did you mean "size"?)`},
		{"a dotted key", "[checked]\ninner.sise = 3\n", `unknown key "inner.sise" (line 2)`},
		{"a key of an inline table in a list on several lines",
			"[checked]\nlist = [\n  {size = 1},\n  {sise = 2},\n]\n", `unknown key "list.1.sise" (line 4) (did you mean "size"?)`},
		{"a key of the second of an array of tables",
			"[[checked.list]]\nsize = 1\n[[checked.list]]\nsize = 2\nsise = 2\n", `unknown key "list.1.sise" (line 5)`},
		{"a key of a table in a map", "[checked.byName.x]\nsise = 1\n", `unknown key "byName.x.sise" (line 2)`},
		{"the same key name in another table is not taken for it",
			"[edgemicro]\nport = 1\n[checked]\nport = 2\n", `unknown key "port" (line 4)`},
		{"a value of the wrong type says its line", "[checked]\n\nallow = \"three\"\n", `key "allow" wants an integer, not a string (line 3)`},
		{"a typo and a problem elsewhere are both said",
			"[checked]\nalow = 1\n[[proxies]]\nname = \"p\"\nbase_path = \"/p\"\n", `unknown key "alow"`},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tc.toml), testEnv)
			switch {
			case tc.want == "" && err != nil:
				t.Fatal(err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error()+"\n", tc.want)):
				t.Fatalf("err = %v, want it to say %q", err, tc.want)
			}
		})
	}
}

// TestSectionErrorIsTyped: the error of a plugin section's unknown key is
// an *UnknownKeyError with its section, key, line and suggestion, through
// Parse and through Section alike.
func TestSectionErrorIsTyped(t *testing.T) {
	t.Parallel()
	AllowSection("typedcheck", sectionSettings{})
	AllowSection("unchecked", nil)
	src := "[unchecked]\nallow = 1\n\n[unchecked.inner]\nsise = 1\n"
	_, err := Parse([]byte("[typedcheck]\n\nalow = 1\n"), testEnv)
	want := UnknownKeyError{Section: "typedcheck", Key: "alow", Line: 3, Suggestion: "allow"}
	if uk, ok := errors.AsType[*UnknownKeyError](err); !ok || *uk != want {
		t.Fatalf("Parse: err = %#v, want %#v", err, want)
	}
	snap, err := Parse([]byte(src), testEnv)
	if err != nil {
		t.Fatalf("a section registered without settings is left to its plugin, but Parse said %v", err)
	}
	err = snap.Config.Section("unchecked", &sectionSettings{})
	want = UnknownKeyError{Section: "unchecked", Key: "inner.sise", Line: 5, Suggestion: "size"}
	if uk, ok := errors.AsType[*UnknownKeyError](err); !ok || *uk != want {
		t.Fatalf("Section: err = %#v, want %#v", err, want)
	}
}

func TestKeyLine(t *testing.T) {
	t.Parallel()
	src := `# a comment naming port = 1
[edgemicro]
port = 8000 # port = 2

[a]
x = 1
"quoted.key" = 2
b.c = 3
inline = { d = 1, e = { f = 2 } }
list = [
  { g = 1 }, # g = 9
  { g = 2,
    h = 3 },
]
[a.sub]
x = 4
[[t]]
y = 1
[[t]]
y = 2
[t.sub]
z = 5
[[t.inner]]
w = 6
`
	tests := []struct {
		path string
		line int
	}{
		{"edgemicro.port", 3},
		{"edgemicro", 2},
		{"a.x", 6},
		{"a.quoted.key", 5}, // a dotted path cannot name a quoted key with a dot: the table is near
		{"a.b.c", 8},
		{"a.inline.e.f", 9},
		{"a.list.1.h", 13},
		{"a.list.0.g", 11},
		{"a.sub.x", 16},
		{"a.sub.nosuch", 15},
		{"a.nosuch", 5},
		{"t.1.y", 20},
		{"t.0.y", 18},
		{"t.1.sub.z", 22},
		{"t.1.inner.0.w", 24},
		{"nosuch.x", 0},
	}
	for _, tc := range tests {
		if got := keyLine([]byte(src), strings.Split(tc.path, ".")); got != tc.line {
			t.Errorf("keyLine(%s) = %d, want %d", tc.path, got, tc.line)
		}
	}
}

// FuzzKeyLine: keyLine reads any text without panicking and names a line
// the text has; a line it calls the key's own holds the key's last part
// (or, for an entry of an array, is where the entry is), and when the
// text is TOML the key is one toml.Decode found.
func FuzzKeyLine(f *testing.F) {
	f.Add("[a]\nx = 1\n[[t]]\ny = [\n {z = 1},\n]\n", "t.0.y.0.z")
	f.Add("a.b = { c = \"]\" }\n[x . \"y.z\"]\n", "a.b.c")
	f.Add("[[a]]\n[[a.b]]\nc=1\n[a.b.d]\n", "a.0.b.0.d")
	f.Add("[a]\ntext = \"\"\"\n[b]\nlevel = 1\n\"\"\"\n", "b.level")
	f.Add("[a]\ns = '''\nk = 1\n'''\n", "a.k")
	f.Add("xs = [\n  { url = 1 },\n  { k = 2 },\n]\n", "xs.1.url")
	f.Add("x = [\n  \"url = 1\",\n]\n", "x.0.url")
	f.Fuzz(func(t *testing.T, src, key string) {
		path := strings.Split(key, ".")
		n, exact := findKey([]byte(src), path)
		lines := strings.Split(src, "\n")
		if n < 0 || n > len(lines) {
			t.Fatalf("line %d of a text of %d lines", n, len(lines))
		}
		if !exact {
			return
		}
		last := path[len(path)-1]
		if _, err := strconv.Atoi(last); err == nil {
			last = "" // an entry of an array: its line need not name it
		}
		if n == 0 || !strings.Contains(lines[n-1], last) && !strings.Contains(lines[n-1], `\`) {
			t.Fatalf("line %d (%q) is said to be %q's own", n, lines[max(n-1, 0)], key)
		}
		var decoded map[string]any
		if _, err := toml.Decode(src, &decoded); err == nil && !hasPath(decoded, path) {
			t.Fatalf("line %d (%q) is said to be %q's own, but the TOML has no such key", n, lines[n-1], key)
		}
	})
}
