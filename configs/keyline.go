package configs

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// keyLine returns the line (counted from 1) of src on which the key at
// path is written, or 0 when it cannot tell. path is the key as the
// decoded data holds it: the entries of an array of tables ([[x]]) or of
// an array are numbered from 0 (x.1.name). BurntSushi/toml keeps the
// positions of keys to itself, so keyLine reads the file as a TOML reader
// does, line by line: table headers, dotted keys, and the inline tables
// and arrays of a value, also over several lines. Where it cannot find
// the key itself it returns the line of the closest enclosing table or
// key that it found (the section header at least), so an operator is
// always sent near the key.
func keyLine(src []byte, path []string) int {
	n, _ := findKey(src, path)
	return n
}

// findKey is keyLine, and reports whether the line is the key's own
// (not that of a table or key enclosing it).
func findKey(src []byte, path []string) (line int, exact bool) {
	if len(path) == 0 {
		return 0, false
	}
	last := path[len(path)-1]
	var table []string
	arrays := map[string]int{} // an array of tables' path → its entries so far
	best, bestLen := 0, 0
	var openKey []string // the key whose value is still open over lines
	open := 0
	for i, raw := range strings.Split(string(src), "\n") {
		n := i + 1
		code, _ := splitComment([]byte(raw))
		line := strings.TrimSpace(string(code))
		if open > 0 {
			if isPrefix(openKey, path) && assigns(line, last) {
				return n, true
			}
			open += depth(line)
			continue
		}
		var at []string
		switch {
		case line == "":
			continue
		case strings.HasPrefix(line, "[["):
			parts := splitKey(strings.TrimSuffix(strings.TrimPrefix(line, "[["), "]]"))
			if len(parts) == 0 {
				continue
			}
			p := append(withIndexes(parts[:len(parts)-1], arrays), parts[len(parts)-1])
			k := strings.Join(p, "\x00")
			table = append(p, strconv.Itoa(arrays[k]))
			arrays[k]++
			at = table
		case strings.HasPrefix(line, "["):
			parts := splitKey(strings.TrimSuffix(strings.TrimPrefix(line, "["), "]"))
			if len(parts) == 0 {
				continue
			}
			table = append(withIndexes(parts[:len(parts)-1], arrays), parts[len(parts)-1])
			at = table
		default:
			k, v, ok := cutAssign(line)
			if !ok {
				continue
			}
			at = append(slices.Clone(table), splitKey(k)...)
			if len(at) < len(path) && isPrefix(at, path) && assigns(v, last) {
				return n, true // inside the inline value on this line
			}
			if d := depth(v); d > 0 {
				open, openKey = d, at
			}
		}
		if slices.Equal(at, path) {
			return n, true
		}
		if len(at) > bestLen && isPrefix(at, path) {
			best, bestLen = n, len(at)
		}
	}
	return best, false
}

// withIndexes inserts, after each part that names an array of tables,
// the number of its current (last) entry.
func withIndexes(parts []string, arrays map[string]int) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p)
		if c, ok := arrays[strings.Join(out, "\x00")]; ok {
			out = append(out, strconv.Itoa(c-1))
		}
	}
	return out
}

func isPrefix(prefix, path []string) bool {
	return len(prefix) <= len(path) && slices.Equal(prefix, path[:len(prefix)])
}

// splitKey splits a dotted TOML key into its parts, unquoted.
func splitKey(k string) []string {
	var parts []string
	var cur strings.Builder
	var quote byte
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			cur.WriteByte(c)
		case c == '"' || c == '\'':
			quote = c
		case c == '.':
			parts = append(parts, strings.TrimSpace(cur.String()))
			cur.Reset()
		case c == ' ' || c == '\t':
		default:
			cur.WriteByte(c)
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" || len(parts) > 0 {
		parts = append(parts, s)
	}
	return parts
}

// cutAssign splits "key = value" at the first = outside quotes.
func cutAssign(line string) (key, value string, ok bool) {
	at := -1
	outsideStrings(line, func(i int) bool {
		if line[i] == '=' {
			at = i
		}
		return at < 0
	})
	if at < 0 {
		return "", "", false
	}
	return line[:at], line[at+1:], true
}

// depth is how many brackets and braces v opens and leaves open.
func depth(v string) int {
	d := 0
	outsideStrings(v, func(i int) bool {
		switch v[i] {
		case '[', '{':
			d++
		case ']', '}':
			d--
		}
		return true
	})
	return d
}

// assigns reports whether text assigns key (key = …, perhaps quoted,
// perhaps after { or ,).
func assigns(text, key string) bool {
	re, err := regexp.Compile(`(^|[{,\s])["']?` + regexp.QuoteMeta(key) + `["']?\s*=`)
	return err == nil && re.MatchString(text)
}
