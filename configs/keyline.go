package configs

import (
	"slices"
	"strconv"
	"strings"
)

// keyLine returns the line (counted from 1) of src on which the key at
// path is written, or 0 when it cannot tell. path is the key as the
// decoded data holds it: the entries of an array of tables ([[x]]) or of
// an array are numbered from 0 (x.1.name). BurntSushi/toml keeps the
// positions of keys to itself (and does not number the entries of
// arrays), so keyLine reads the file's structure itself: table headers,
// dotted and quoted keys, and values with the inline tables and arrays
// in them, also over several lines, skipping strings (one-line and
// multi-line, basic and literal) and comments, so that text inside a
// value is never taken for a key. Where it cannot find the key itself it
// returns the line of the closest enclosing table or key that it found
// (the section header at least), so an operator is always sent near the
// key.
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
	s := &keyScan{src: string(src), arrays: map[string]int{}}
	s.document()
	lineAt := func(off int) int { return strings.Count(s.src[:off], "\n") + 1 }
	for _, k := range s.found {
		if k.exact && slices.Equal(k.path, path) {
			return lineAt(k.off), true
		}
	}
	best, bestLen := 0, 0
	for _, k := range s.found {
		if len(k.path) > bestLen && isPrefix(k.path, path) {
			best, bestLen = lineAt(k.off), len(k.path)
		}
	}
	return best, false
}

// keyScan reads the structure of a TOML text, leniently: what it cannot
// read it skips to the end of the line, and it never fails.
type keyScan struct {
	src    string
	pos    int
	table  []string       // the path of the current table, with indexes
	arrays map[string]int // an array of tables' path → its entries so far
	found  []foundKey     // every key and table, in the order written
}

// foundKey is a key or table the scan found at byte offset off. exact is
// false for the tables a dotted key or header implies (a and a.b of
// a.b.c = 1), which are not written there by name alone.
type foundKey struct {
	path  []string
	off   int
	exact bool
}

func (s *keyScan) eof() bool { return s.pos >= len(s.src) }

func (s *keyScan) peek() byte {
	if s.eof() {
		return 0
	}
	return s.src[s.pos]
}

func (s *keyScan) at(prefix string) bool { return strings.HasPrefix(s.src[s.pos:], prefix) }

// add records path at off, and the tables it implies from its part
// number from on (the parts before from are the enclosing table's).
func (s *keyScan) add(path []string, from, off int) {
	path = slices.Clip(slices.Clone(path)) // the records below share it
	for j := max(from, 1); j < len(path); j++ {
		s.found = append(s.found, foundKey{path[:j:j], off, false})
	}
	s.found = append(s.found, foundKey{path, off, true})
}

// skipSpace skips blanks, and with lines also newlines and comments.
func (s *keyScan) skipSpace(lines bool) {
	for !s.eof() {
		switch c := s.peek(); {
		case c == ' ' || c == '\t' || c == '\r':
			s.pos++
		case lines && c == '\n':
			s.pos++
		case lines && c == '#':
			s.skipComment()
		default:
			return
		}
	}
}

func (s *keyScan) skipComment() {
	for !s.eof() && s.peek() != '\n' {
		s.pos++
	}
}

// skipLine skips the rest of the line and its newline.
func (s *keyScan) skipLine() {
	s.skipComment()
	if !s.eof() {
		s.pos++
	}
}

func (s *keyScan) document() {
	for {
		s.skipSpace(true)
		if s.eof() {
			return
		}
		start := s.pos
		switch {
		case s.at("[["):
			s.pos += 2
			parts := s.key()
			s.skipSpace(false)
			if len(parts) > 0 && s.at("]]") {
				p := append(withIndexes(parts[:len(parts)-1], s.arrays), parts[len(parts)-1])
				k := strings.Join(p, "\x00")
				s.add(p, 0, start)
				s.table = append(p, strconv.Itoa(s.arrays[k]))
				s.arrays[k]++
				s.add(s.table, len(s.table)-1, start)
			}
		case s.at("["):
			s.pos++
			parts := s.key()
			s.skipSpace(false)
			if len(parts) > 0 && s.at("]") {
				s.table = append(withIndexes(parts[:len(parts)-1], s.arrays), parts[len(parts)-1])
				s.add(s.table, 0, start)
			}
		default:
			parts := s.key()
			s.skipSpace(false)
			if len(parts) > 0 && s.peek() == '=' {
				s.pos++
				at := append(slices.Clone(s.table), parts...)
				s.add(at, len(s.table), start)
				s.value(at)
			}
		}
		s.skipLine() // a comment, or what could not be read
	}
}

// key reads a dotted key, its parts unquoted; nil if there is none.
func (s *keyScan) key() []string {
	var parts []string
	for {
		s.skipSpace(false)
		part, ok := s.keyPart()
		if !ok {
			return nil
		}
		parts = append(parts, part)
		s.skipSpace(false)
		if s.peek() != '.' {
			return parts
		}
		s.pos++
	}
}

func (s *keyScan) keyPart() (string, bool) {
	start := s.pos
	switch s.peek() {
	case '"':
		s.basic()
		raw := s.src[start:s.pos]
		if u, err := strconv.Unquote(raw); err == nil {
			return u, true
		}
		return strings.Trim(raw, `"`), true
	case '\'':
		s.literal()
		return strings.Trim(s.src[start:s.pos], "'"), true
	}
	for !s.eof() && !strings.ContainsRune(" \t\r\n.=[]{},#\"'", rune(s.peek())) {
		s.pos++
	}
	return s.src[start:s.pos], s.pos > start
}

// value reads the value of the key at path, recording the keys of its
// inline tables and the entries of its arrays.
func (s *keyScan) value(path []string) {
	s.skipSpace(false)
	switch {
	case s.at(`"""`):
		s.pos += 3
		s.multiline('"')
	case s.at("'''"):
		s.pos += 3
		s.multiline('\'')
	case s.at(`"`):
		s.basic()
	case s.at("'"):
		s.literal()
	case (s.at("{") || s.at("[")) && len(path) > maxKeyDepth:
		s.skipNested()
	case s.at("{"):
		s.pos++
		s.inline(path)
	case s.at("["):
		s.pos++
		s.array(path)
	default: // a number, boolean or date
		for !s.eof() && !strings.ContainsRune(",]}#\n", rune(s.peek())) {
			s.pos++
		}
	}
}

// maxKeyDepth bounds the depth of the keys the scan records: a value
// nested deeper is skipped whole, so that a deep nesting costs time in
// proportion to its length.
const maxKeyDepth = 64

// skipNested skips an inline table or array with everything nested in
// it, counting its brackets, its strings and comments skipped.
func (s *keyScan) skipNested() {
	depth := 0
	for !s.eof() {
		switch c := s.peek(); {
		case s.at(`"""`):
			s.pos += 3
			s.multiline('"')
		case s.at("'''"):
			s.pos += 3
			s.multiline('\'')
		case c == '"':
			s.basic()
		case c == '\'':
			s.literal()
		case c == '#':
			s.skipComment()
		case c == '[' || c == '{':
			depth++
			s.pos++
		case c == ']' || c == '}':
			depth--
			s.pos++
			if depth <= 0 {
				return
			}
		default:
			s.pos++
		}
	}
}

// basic reads a one-line "string" up to its closing quote or the end of
// the line.
func (s *keyScan) basic() {
	s.pos++
	for !s.eof() {
		switch s.peek() {
		case '\\':
			s.pos++
			if s.peek() != '\n' {
				s.pos = min(s.pos+1, len(s.src))
			}
		case '"':
			s.pos++
			return
		case '\n':
			return
		default:
			s.pos++
		}
	}
}

// literal reads a one-line 'string'.
func (s *keyScan) literal() {
	s.pos++
	for !s.eof() {
		switch s.peek() {
		case '\'':
			s.pos++
			return
		case '\n':
			return
		default:
			s.pos++
		}
	}
}

// multiline reads a multi-line string after its opening """ or ”',
// through its closing one (which may follow up to two quotes of the
// string's own).
func (s *keyScan) multiline(quote byte) {
	end := strings.Repeat(string(quote), 3)
	for !s.eof() {
		switch {
		case quote == '"' && s.peek() == '\\':
			s.pos = min(s.pos+2, len(s.src))
		case s.at(end):
			s.pos += 3
			for i := 0; i < 2 && s.peek() == quote; i++ {
				s.pos++
			}
			return
		default:
			s.pos++
		}
	}
}

// inline reads an inline table after its {. Newlines are allowed in it,
// as TOML 1.1 does.
func (s *keyScan) inline(path []string) {
	for {
		s.skipSpace(true)
		switch s.peek() {
		case 0:
			return
		case '}':
			s.pos++
			return
		case ',':
			s.pos++
			continue
		}
		start := s.pos
		parts := s.key()
		s.skipSpace(false)
		if len(parts) == 0 || s.peek() != '=' {
			return
		}
		s.pos++
		at := append(slices.Clone(path), parts...)
		s.add(at, len(path), start)
		s.value(at)
	}
}

// array reads an array after its [, numbering its entries from 0.
func (s *keyScan) array(path []string) {
	for i := 0; ; i++ {
		s.skipSpace(true)
		switch s.peek() {
		case 0:
			return
		case ']':
			s.pos++
			return
		case ',':
			s.pos++
			i--
			continue
		}
		start := s.pos
		at := append(slices.Clone(path), strconv.Itoa(i))
		s.add(at, len(path), start)
		s.value(at)
		if s.pos == start {
			return // not a value: leave it to the line's end
		}
	}
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
