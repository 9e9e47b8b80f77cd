package protocol

import (
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gatehouse/gatehouse/lib/jsonscan"
)

// Canonical JSON is text that this package's encoder writes back byte for byte from the value
// encoding/json decodes it to with UseNumber: no whitespace, object keys sorted and unique, every
// string escaped exactly as appendString escapes it, numbers as written (a json.Number keeps its
// literal). Stored SCIM attributes are written by json.Marshal of a map, which is canonical, so
// a response can copy them instead of decoding them into maps and encoding those again, which
// was most of the CPU of a lookup. Whether text is canonical is decided by IsCanonicalObject,
// never assumed: anything else (a record written by other code, an escape the encoder would not
// write, invalid UTF-8) must go through the decoder.

// maxRawDepth bounds the nesting IsCanonicalObject follows; deeper text is simply not taken
// as canonical (the decoder path handles it).
const maxRawDepth = 32

// IsCanonicalObject reports whether s is exactly one JSON object, with nothing before or after
// it, in canonical form (see above). Object keys must also be free of escapes, so that a key's
// text is its value: Members can then return keys without unescaping them.
func IsCanonicalObject(s string) bool {
	if len(s) == 0 || s[0] != '{' {
		return false
	}
	end, ok := canonicalValue(s, 0, 0)
	return ok && end == len(s)
}

// canonicalValue checks the canonical value starting at s[i] and returns where it ends.
func canonicalValue(s string, i, depth int) (int, bool) {
	if i >= len(s) {
		return i, false
	}
	switch c := s[i]; {
	case c == '{':
		if depth >= maxRawDepth {
			return i, false
		}
		i++
		if i < len(s) && s[i] == '}' {
			return i + 1, true
		}
		prev := ""
		for first := true; ; first = false {
			end, ok := canonicalString(s, i)
			if !ok {
				return i, false
			}
			key := s[i+1 : end-1]
			// Keys in the order appendObject sorts them, each once (a repeated key would
			// decode to its last value only).
			if strings.IndexByte(key, '\\') >= 0 || (!first && key <= prev) {
				return i, false
			}
			prev = key
			if end >= len(s) || s[end] != ':' {
				return end, false
			}
			if i, ok = canonicalValue(s, end+1, depth+1); !ok || i >= len(s) {
				return i, false
			}
			switch s[i] {
			case '}':
				return i + 1, true
			case ',':
				i++
			default:
				return i, false
			}
		}
	case c == '[':
		if depth >= maxRawDepth {
			return i, false
		}
		i++
		if i < len(s) && s[i] == ']' {
			return i + 1, true
		}
		for {
			var ok bool
			if i, ok = canonicalValue(s, i, depth+1); !ok || i >= len(s) {
				return i, false
			}
			switch s[i] {
			case ']':
				return i + 1, true
			case ',':
				i++
			default:
				return i, false
			}
		}
	case c == '"':
		return canonicalString(s, i)
	case c == 't':
		return literal(s, i, "true")
	case c == 'f':
		return literal(s, i, "false")
	case c == 'n':
		return literal(s, i, "null")
	case c == '-' || (c >= '0' && c <= '9'):
		return number(s, i)
	}
	return i, false
}

func literal(s string, i int, lit string) (int, bool) {
	if strings.HasPrefix(s[i:], lit) {
		return i + len(lit), true
	}
	return i, false
}

// number checks a JSON number (RFC 8259 §6). Any valid literal is canonical: the decoder keeps
// it as a json.Number and the encoder writes that literal unchanged.
func number(s string, i int) (int, bool) {
	if s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		i = digits(s, i)
	default:
		return i, false
	}
	if i < len(s) && s[i] == '.' {
		j := digits(s, i+1)
		if j == i+1 {
			return j, false
		}
		i = j
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		j := digits(s, i)
		if j == i {
			return j, false
		}
		i = j
	}
	return i, true
}

func digits(s string, i int) int {
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}

// canonicalString checks that the JSON string starting at s[i] is written as appendString writes
// what it decodes to, and returns where it ends.
func canonicalString(s string, i int) (int, bool) {
	if i >= len(s) || s[i] != '"' {
		return i, false
	}
	for i++; i < len(s); {
		c := s[i]
		switch {
		case c == '"':
			return i + 1, true
		case c == '\\':
			n, ok := canonicalEscape(s, i)
			if !ok {
				return i, false
			}
			i += n
		case c < 0x20 || c == '<' || c == '>' || c == '&':
			// appendString escapes these.
			return i, false
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			// Invalid UTF-8 decodes to U+FFFD, written back as itself, not as these bytes;
			// U+2028 and U+2029 are written escaped.
			if (r == utf8.RuneError && size == 1) || r == '\u2028' || r == '\u2029' {
				return i, false
			}
			i += size
		}
	}
	return i, false
}

// canonicalEscape checks the escape at s[i] (a backslash) and returns its length: only the
// escapes appendString writes, for the characters it escapes, in its spelling (lower-case hex).
func canonicalEscape(s string, i int) (int, bool) {
	if i+1 >= len(s) {
		return 0, false
	}
	switch s[i+1] {
	case '"', '\\', 'b', 'f', 'n', 'r', 't':
		return 2, true
	case 'u':
		if i+6 > len(s) {
			return 0, false
		}
		var r rune
		for _, h := range []byte(s[i+2 : i+6]) {
			switch {
			case h >= '0' && h <= '9':
				r = r<<4 | rune(h-'0')
			case h >= 'a' && h <= 'f':
				r = r<<4 | rune(h-'a'+10)
			default:
				return 0, false
			}
		}
		switch {
		case r == '\b', r == '\f', r == '\n', r == '\r', r == '\t':
			// Written as \b, \f, \n, \r, \t.
			return 0, false
		case r < 0x20, r == '<', r == '>', r == '&', r == '\u2028', r == '\u2029':
			return 6, true
		}
	}
	return 0, false
}

// Members iterates over the members of an object that IsCanonicalObject accepted.
type Members struct {
	s string
	i int
}

// NewMembers returns an iterator over the members of obj, which must be canonical (see
// IsCanonicalObject): the iterator does not check the text again.
func NewMembers(obj string) Members { return Members{s: obj, i: 1} }

// Next returns the next member's key and the text of its value; ok is false after the last.
func (m *Members) Next() (key, value string, ok bool) {
	if m.i >= len(m.s) || m.s[m.i] == '}' {
		return "", "", false
	}
	// A canonical key has no escapes: its text ends at the next quote.
	end := m.i + 1 + strings.IndexByte(m.s[m.i+1:], '"')
	key = m.s[m.i+1 : end]
	start := end + 2
	// Canonical text is compact: the compactness report has nothing to add.
	stop, _ := jsonscan.SkipValue(m.s, start)
	m.i = stop
	if m.i < len(m.s) && m.s[m.i] == ',' {
		m.i++
	}
	return key, m.s[start:stop], true
}

// Elements iterates over the elements of a canonical array.
type Elements struct {
	s string
	i int
}

// NewElements returns an iterator over the elements of arr, a canonical array.
func NewElements(arr string) Elements { return Elements{s: arr, i: 1} }

// Next returns the text of the next element; ok is false after the last.
func (e *Elements) Next() (value string, ok bool) {
	if e.i >= len(e.s) || e.s[e.i] == ']' {
		return "", false
	}
	start := e.i
	e.i, _ = jsonscan.SkipValue(e.s, start)
	value = e.s[start:e.i]
	if e.i < len(e.s) && e.s[e.i] == ',' {
		e.i++
	}
	return value, true
}

// DecodeCanonicalObject decodes obj, an object IsCanonicalObject accepted, into what
// encoding/json decodes it to with UseNumber (strings, bool, nil, json.Number, []any,
// map[string]any), with every map and slice made at its final size: a stored record's
// attributes are read on every slow-path response, and filters that scan read every record's.
// Strings without escapes share obj's memory.
func DecodeCanonicalObject(obj string) map[string]any {
	return decodeCanonical(obj).(map[string]any)
}

func decodeCanonical(s string) any {
	switch s[0] {
	case '{':
		n := 0
		for it := NewMembers(s); ; n++ {
			if _, _, ok := it.Next(); !ok {
				break
			}
		}
		m := make(map[string]any, n)
		it := NewMembers(s)
		for k, v, ok := it.Next(); ok; k, v, ok = it.Next() {
			m[k] = decodeCanonical(v)
		}
		return m
	case '[':
		n := 0
		for it := NewElements(s); ; n++ {
			if _, ok := it.Next(); !ok {
				break
			}
		}
		list := make([]any, 0, n)
		it := NewElements(s)
		for e, ok := it.Next(); ok; e, ok = it.Next() {
			list = append(list, decodeCanonical(e))
		}
		return list
	case '"':
		return unquoteCanonical(s)
	case 't':
		return true
	case 'f':
		return false
	case 'n':
		return nil
	default:
		return json.Number(s)
	}
}

// unquoteCanonical returns the value of a canonical JSON string (only the escapes
// canonicalEscape accepts).
func unquoteCanonical(s string) string {
	s = s[1 : len(s)-1]
	i := strings.IndexByte(s, '\\')
	if i < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	for i >= 0 {
		b = append(b, s[:i]...)
		switch c := s[i+1]; c {
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, _ := strconv.ParseUint(s[i+2:i+6], 16, 32)
			b = utf8.AppendRune(b, rune(r))
			s = s[i+6:]
			i = strings.IndexByte(s, '\\')
			continue
		default: // '"', '\\'
			b = append(b, c)
		}
		s = s[i+2:]
		i = strings.IndexByte(s, '\\')
	}
	return string(append(b, s...))
}
