package configs

import (
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"
)

// decodeErr matches BurntSushi/toml's type errors.
var decodeErr = regexp.MustCompile(`^toml: line (\d+) \(last key "([^"]+)"\): (.*)$`)

// tomlTerms says a decoding error in TOML's words: which key, on which
// line, holds what, and what mgw wants there ([x] is one table, [[x]] an
// array of tables, "80" a string where 80 was wanted).
func tomlTerms(err error) error {
	m := decodeErr.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	line, key, msg := m[1], m[2], m[3]
	last := key[strings.LastIndexByte(key, '.')+1:]
	if got, want, ok := strings.Cut(strings.TrimPrefix(msg, "incompatible types: TOML value has type "), "; destination has type "); ok {
		return fmt.Errorf("line %s: %s is %s, but mgw wants %s", line, key, tomlKind(got, last), wantKind(want, key))
	}
	if strings.Contains(msg, "expected table but found []map") {
		return fmt.Errorf("line %s: %s is an array of tables ([[%s]]), but mgw wants one table: write [%s]", line, key, key, key)
	}
	return fmt.Errorf("line %s: %s: %s", line, key, msg)
}

func tomlKind(goType, key string) string {
	switch {
	case strings.HasPrefix(goType, "map["):
		return "a table ([" + key + "])"
	case strings.HasPrefix(goType, "[]map["):
		return "an array of tables ([[" + key + "]])"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case goType == "string":
		return "a string"
	case goType == "int64":
		return "an integer"
	case goType == "float64":
		return "a float"
	case goType == "bool":
		return "a boolean"
	}
	return "a " + goType
}

func wantKind(goKind, key string) string {
	switch goKind {
	case "slice":
		if t := typeAt(strings.Split(key, ".")); t != nil && t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct {
			return "an array of tables: write [[" + key + "]] for each entry"
		}
		return "an array"
	case "integer":
		return "an integer (write 80, not \"80\")"
	case "bool":
		return "a boolean (true or false, unquoted)"
	case "string":
		return "a string (in quotes)"
	case "struct", "map":
		return "a table: write [" + key + "]"
	}
	return goKind
}

// typeAt is the Go type of the Config field at a dotted TOML key, or nil.
func typeAt(path []string) reflect.Type {
	t := reflect.TypeOf(Config{})
	for i, p := range path {
		for t.Kind() == reflect.Pointer || (t.Kind() == reflect.Slice && i > 0) {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return nil
		}
		var next reflect.Type
		for f := range t.Fields() {
			if strings.Split(f.Tag.Get("toml"), ",")[0] == p {
				next = f.Type
				break
			}
		}
		if next == nil {
			return nil
		}
		t = next
	}
	return t
}

// keysAt lists the TOML keys a table of Config at path may hold.
func keysAt(path []string) []string {
	var t reflect.Type
	if len(path) == 0 {
		t = reflect.TypeOf(Config{})
	} else {
		t = typeAt(path)
	}
	for t != nil && (t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice) {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	var keys []string
	for f := range t.Fields() {
		if k := strings.Split(f.Tag.Get("toml"), ",")[0]; k != "" && k != "-" {
			keys = append(keys, k)
		}
	}
	if len(path) == 0 {
		sectionsMu.RLock()
		for s := range sections {
			keys = append(keys, s)
		}
		sectionsMu.RUnlock()
	}
	sort.Strings(keys)
	return keys
}

// didYouMean suggests the known key closest to the unknown one, when one
// is close enough to be a typo: ` (did you mean "port"?)`, or "".
func didYouMean(key []string) string {
	if len(key) == 0 {
		return ""
	}
	return suggestion(closest(key[len(key)-1], keysAt(key[:len(key)-1])))
}

// closest is the one of known closest to key, when it is close enough to
// be a typo of it (case aside), or "".
func closest(key string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := distance(strings.ToLower(key), strings.ToLower(k)); d < bestD && d <= len(k)/3+1 {
			best, bestD = k, d
		}
	}
	return best
}

// suggestion is ` (did you mean "port"?)` for "port", "" for "".
func suggestion(key string) string {
	if key == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", key)
}

// distance is the Levenshtein distance of a and b, with a swap of two
// neighbours counted as one edit.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range rb {
		d[0][j+1] = j + 1
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
