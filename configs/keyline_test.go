package configs

import (
	"strconv"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// TestKeyLineSkipsValues: text inside a value (a multi-line string, a
// quoted string) is never taken for a key, and the entries of an array
// over several lines are told apart.
func TestKeyLineSkipsValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc, src, path string
		line            int
		exact           bool
	}{
		{"a table and key inside a \"\"\" string",
			"[a]\ntext = \"\"\"\n[b]\nlevel = 1\n\"\"\"\n[b]\nlevel = 2\n", "b.level", 7, true},
		{"the key of a \"\"\" string is the key before it",
			"[a]\ntext = \"\"\"\n[b]\nlevel = 1\n\"\"\"\n[b]\nlevel = 2\n", "a.text", 2, true},
		{"a key inside a ''' string",
			"[a]\ns = '''\nk = 1\n'''\nk = 2\n", "a.k", 5, true},
		{"a \"\"\" string with an escaped quote and closed after two quotes of its own",
			"[a]\ns = \"\"\"x \\\"\"\"\nk = 1\n\"\"\"\"\"\nk = 2\n", "a.k", 5, true},
		{"a \"\"\" string on one line", "[a]\ns = \"\"\"k = 1\"\"\"\nk = 2\n", "a.k", 3, true},
		{"a ''' string with a key in an inline table",
			"[a]\nt = { s = '''\nk = 1''', k = 2 }\n", "a.t.k", 3, true},
		{"the second entry of an array of inline tables",
			"[a]\nxs = [\n  { url = \"x\" },\n  { url = \"y\" },\n]\n", "a.xs.1.url", 4, true},
		{"the first entry of an array of inline tables",
			"[a]\nxs = [\n  { url = \"x\" },\n  { url = \"y\" },\n]\n", "a.xs.0.url", 3, true},
		{"an entry of an array",
			"[a]\nxs = [\n  1,\n  2,\n]\n", "a.xs.1", 4, true},
		{"an entry of an array in an inline table in an array",
			"[a]\nxs = [\n  { u = [\n    { k = 1 },\n    { k = 2 } ] },\n]\n", "a.xs.0.u.1.k", 5, true},
		{"a quoted value that looks like the key, in an array",
			"[a]\nxs = [\n  \"url = 1\",\n  { url = 2 },\n]\n", "a.xs.1.url", 4, true},
		{"a quoted value that looks like the key, in an inline table",
			"[a]\nx = { note = \"y = 1\" }\n", "a.x.y", 2, false},
		{"a quoted value with a bracket, then the key",
			"[a]\nx = [\n  \"]\", '}', \"#\",\n  { k = 1 } ]\n", "a.x.3.k", 4, true},
		{"a value nested deeper than the scan reads is skipped whole",
			"a = " + strings.Repeat("[", maxKeyDepth+5) + "{ b = \"\"\"\n]]\"\"\" }" + strings.Repeat("]", maxKeyDepth+5) + "\nb = 1\n", "b", 3, true},
		{"a comment that looks like a key", "[a]\nx = [ # k = 1\n  { k = 2 } ]\n", "a.x.0.k", 3, true},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			if _, err := toml.Decode(tc.src, new(map[string]any)); err != nil {
				t.Fatalf("the test's TOML is not valid: %v", err)
			}
			n, exact := findKey([]byte(tc.src), strings.Split(tc.path, "."))
			if n != tc.line || exact != tc.exact {
				t.Fatalf("findKey(%s) = line %d exact %v, want line %d exact %v", tc.path, n, exact, tc.line, tc.exact)
			}
		})
	}
}

// FuzzKeyLineGenerated writes a TOML text from the fuzzer's choices —
// tables, arrays of tables, dotted and quoted keys, multi-line strings
// holding text that looks like keys and headers, inline tables and
// arrays over several lines — knowing the line of every key and array
// entry it writes, and checks that findKey finds each exactly there.
// toml.Decode checks that the text is TOML and that each path is in it.
func FuzzKeyLineGenerated(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 1, 3, 2, 2, 0, 1, 0, 0, 3, 4, 1, 1, 1})
	f.Add([]byte{4, 3, 6, 3, 5, 1, 5, 2, 6, 6, 2, 1, 0, 4, 9, 7, 7, 7, 1})
	f.Add([]byte("generated toml with multi-line strings and arrays of tables"))
	f.Fuzz(func(t *testing.T, choices []byte) {
		g := &tomlGen{data: choices, line: 1, seen: map[string]bool{}, arrays: map[string]int{}}
		g.document()
		doc := g.b.String()
		var decoded map[string]any
		if _, err := toml.Decode(doc, &decoded); err != nil {
			t.Fatalf("the generator wrote no TOML (%v):\n%s", err, doc)
		}
		for _, w := range g.want {
			if !hasPath(decoded, w.path) {
				t.Fatalf("the generator's path %q is not in its TOML:\n%s", w.path, doc)
			}
			if n, exact := findKey([]byte(doc), w.path); n != w.line || !exact {
				t.Fatalf("findKey(%q) = line %d exact %v, want line %d exact:\n%s", w.path, n, exact, w.line, numbered(doc))
			}
		}
	})
}

func numbered(doc string) string {
	var b strings.Builder
	for i, l := range strings.Split(doc, "\n") {
		b.WriteString(strconv.Itoa(i+1) + "\t" + l + "\n")
	}
	return b.String()
}

func hasPath(v any, path []string) bool {
	for _, p := range path {
		switch c := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = c[p]; !ok {
				return false
			}
		case []map[string]any:
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(c) {
				return false
			}
			v = c[i]
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(c) {
				return false
			}
			v = c[i]
		default:
			return false
		}
	}
	return true
}

// tomlGen writes a TOML text from a stream of choices and remembers the
// line of each key, table and array entry it writes.
type tomlGen struct {
	data   []byte
	b      strings.Builder
	line   int
	want   []genKey
	seen   map[string]bool // paths written, so that only the first is wanted
	arrays map[string]int  // an array of tables' path → its entries so far
}

type genKey struct {
	path []string
	line int
}

func (g *tomlGen) pick(n int) int {
	if len(g.data) == 0 {
		return 0
	}
	c := int(g.data[0]) % n
	g.data = g.data[1:]
	return c
}

func (g *tomlGen) write(s string) {
	g.b.WriteString(s)
	g.line += strings.Count(s, "\n")
}

func (g *tomlGen) record(path []string) {
	k := strings.Join(path, "\x00")
	if !g.seen[k] {
		g.seen[k] = true
		g.want = append(g.want, genKey{append([]string(nil), path...), g.line})
	}
}

// genKeys are the keys a table's entries are written with: their text
// and their parts. No two share a first part, except a spelling of the
// same key.
var genKeys = []struct {
	text  string
	parts []string
}{
	{"url", []string{"url"}},
	{"k", []string{"k"}},
	{"level", []string{"level"}},
	{`"quoted.key"`, []string{"quoted.key"}},
	{"'lit'", []string{"lit"}},
	{`"b"`, []string{"b"}},
	{"d . e", []string{"d", "e"}},
	{`xs."u"`, []string{"xs", "u"}},
}

// genLines are the lines inside multi-line strings: text that would be
// a key or a header outside one.
var genLines = []string{"[b]", "[[t]]", "level = 1", "k = 2", `url = "x"`, "xs = [", "  { url = 1 },", "]", "# c", "d.e = 1", `"b" = {`}

var genStrings = []string{`"url = 1"`, `"k = 2, level = 3"`, `"[b]"`, `"# x"`, `"a\"b = c"`, `'k = 1'`, `'[[t]]'`, `"}"`, `"]"`, "1", "true", "2.5"}

func (g *tomlGen) document() {
	tables := []struct {
		text  string
		parts []string
	}{{"[a]", []string{"a"}}, {"[b]", []string{"b"}}, {`["x.y"]`, []string{"x.y"}}, {"[ a . sub ]", []string{"a", "sub"}}}
	for range g.pick(6) + 1 {
		var table []string
		switch c := g.pick(len(tables) + 2); {
		case c < len(tables):
			table = tables[c].parts
			g.record(table)
			g.write(tables[c].text + "\n")
			tables = append(tables[:c], tables[c+1:]...)
		case c == len(tables) || g.arrays["t"] == 0:
			table = []string{"t", strconv.Itoa(g.arrays["t"])}
			g.arrays["t"]++
			g.record(table[:1])
			g.record(table)
			g.write("[[t]]\n")
		default:
			parent := strconv.Itoa(g.arrays["t"] - 1)
			k := "t." + parent + ".inner"
			table = []string{"t", parent, "inner", strconv.Itoa(g.arrays[k])}
			g.arrays[k]++
			g.record(table[:3])
			g.record(table)
			g.write("[[ t.inner ]]\n")
		}
		g.entries(table)
	}
}

// entries writes up to three key = value lines of the table at path.
func (g *tomlGen) entries(path []string) {
	used := map[string]bool{}
	for range g.pick(4) {
		k := genKeys[g.pick(len(genKeys))]
		if used[k.parts[0]] {
			continue
		}
		used[k.parts[0]] = true
		p := append(append([]string(nil), path...), k.parts...)
		g.record(p)
		g.write([]string{"", "  "}[g.pick(2)] + k.text + []string{" = ", "=", "  =  "}[g.pick(3)])
		g.value(p, 0)
		g.write([]string{"\n", " # k = 1\n", "\n\n"}[g.pick(3)])
	}
}

// value writes a value of the key at path; depth bounds its nesting.
func (g *tomlGen) value(path []string, depth int) {
	n := 8
	if depth > 1 {
		n = 5
	}
	switch g.pick(n) {
	case 0, 1:
		g.write(genStrings[g.pick(len(genStrings))])
	case 2, 3:
		q := []string{`"""`, "'''"}[g.pick(2)]
		g.write(q + []string{"\n", ""}[g.pick(2)])
		for range g.pick(4) {
			g.write(genLines[g.pick(len(genLines))] + "\n")
		}
		g.write([]string{"", `"`, `""`}[g.pick(3)]) // a string may end in quotes of its own
		g.write(q)
	case 4:
		g.write("1")
	case 5:
		g.write("{")
		used := map[string]bool{}
		for i := range g.pick(3) {
			k := genKeys[g.pick(len(genKeys))]
			if used[k.parts[0]] {
				continue
			}
			used[k.parts[0]] = true
			if i > 0 && len(used) > 1 {
				g.write(",")
			}
			p := append(append([]string(nil), path...), k.parts...)
			g.record(p)
			g.write(" " + k.text + " = ")
			g.value(p, depth+1)
		}
		g.write(" }")
	default:
		multi := g.pick(2) == 0
		g.write("[")
		for i := range g.pick(4) {
			if multi {
				g.write("\n  ")
			} else if i > 0 {
				g.write(" ")
			}
			p := append(append([]string(nil), path...), strconv.Itoa(i))
			g.record(p)
			g.value(p, depth+1)
			g.write(",")
		}
		if multi {
			g.write("\n")
		}
		g.write("]")
	}
}
