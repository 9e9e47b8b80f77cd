package patch

import (
	"encoding/json"
	"unicode/utf8"
)

// Every deactivation is a PATCH, and decoding its small body with encoding/json (into the wire
// struct, then each value again with a Decoder) was a few percent of a deactivation's CPU. scan
// reads the plain PatchOp bodies clients send, into the same wire struct and values that the
// encoding/json path makes, and declines (ok false) anything else: keys other than the exact
// field names, a key given twice, null or non-string op and path, strings with escapes, control
// characters or invalid UTF-8, nesting deeper than maxScanDepth, anything after the object.
// Whatever it declines, valid or not, goes to encoding/json as before, which then decides the
// value or the error. FuzzParse compares the two.

// maxScanDepth bounds the nesting scan decodes itself.
const maxScanDepth = 16

// scannedOp is a decoded operation: its value decoded by scan (hasValue: one was given), or
// still raw from encoding/json's path (decoded by check, in the order of its checks).
type scannedOp struct {
	op, path string
	hasPath  bool
	value    any
	hasValue bool
	raw      json.RawMessage
}

type scanner struct {
	b   []byte
	i   int
	bad bool
}

// scan decodes body if it is a plain PatchOp message.
func scan(body []byte) (schemas []string, ops []scannedOp, ok bool) {
	s := scanner{b: body}
	s.ws()
	var seenSchemas, seenOps bool
	s.object(func(key string) {
		switch {
		case key == "schemas" && !seenSchemas:
			seenSchemas = true
			schemas = s.stringArray()
		case key == "Operations" && !seenOps:
			seenOps = true
			ops = s.operations()
		default:
			s.bad = true
		}
	})
	s.ws()
	if s.bad || s.i != len(s.b) {
		return nil, nil, false
	}
	return schemas, ops, true
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek returns the next byte, 0 at the end.
func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *scanner) expect(c byte) {
	if s.peek() != c {
		s.bad = true
		return
	}
	s.i++
}

// object reads an object, calling member with the scanner at each member's value.
func (s *scanner) object(member func(key string)) {
	s.expect('{')
	s.ws()
	if s.peek() == '}' {
		s.i++
		return
	}
	for !s.bad {
		s.ws()
		key := s.str()
		s.ws()
		s.expect(':')
		s.ws()
		if s.bad {
			return
		}
		member(key)
		s.ws()
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return
		default:
			s.bad = true
		}
	}
}

// array reads an array, calling elem with the scanner at each element.
func (s *scanner) array(elem func()) {
	s.expect('[')
	s.ws()
	if s.peek() == ']' {
		s.i++
		return
	}
	for !s.bad {
		s.ws()
		elem()
		s.ws()
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			return
		default:
			s.bad = true
		}
	}
}

// str reads a string without escapes or control characters, valid UTF-8.
func (s *scanner) str() string {
	if s.peek() != '"' {
		s.bad = true
		return ""
	}
	start := s.i + 1
	for j := start; j < len(s.b); j++ {
		c := s.b[j]
		switch {
		case c == '"':
			s.i = j + 1
			v := s.b[start:j]
			if !utf8.Valid(v) {
				s.bad = true
			}
			return string(v)
		case c == '\\' || c < 0x20:
			s.bad = true
			return ""
		}
	}
	s.bad = true
	return ""
}

func (s *scanner) stringArray() []string {
	if s.peek() != '[' {
		s.bad = true
		return nil
	}
	out := []string{}
	s.array(func() { out = append(out, s.str()) })
	return out
}

func (s *scanner) operations() []scannedOp {
	if s.peek() != '[' {
		s.bad = true
		return nil
	}
	out := []scannedOp{}
	s.array(func() {
		if s.peek() != '{' {
			s.bad = true
			return
		}
		var o scannedOp
		var seenOp bool
		s.object(func(key string) {
			switch {
			case key == "op" && !seenOp:
				seenOp = true
				o.op = s.str()
			case key == "path" && !o.hasPath:
				o.hasPath = true
				o.path = s.str()
			case key == "value" && !o.hasValue:
				o.hasValue = true
				o.value = s.value(0)
			default:
				s.bad = true
			}
		})
		out = append(out, o)
	})
	return out
}

// value decodes any JSON value as encoding/json does into an any with UseNumber.
func (s *scanner) value(depth int) any {
	if depth > maxScanDepth {
		s.bad = true
		return nil
	}
	switch c := s.peek(); {
	case c == '{':
		m := map[string]any{}
		s.object(func(key string) { m[key] = s.value(depth + 1) })
		return m
	case c == '[':
		a := []any{}
		s.array(func() { a = append(a, s.value(depth+1)) })
		return a
	case c == '"':
		return s.str()
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	case c == 't':
		s.literal("true")
		return true
	case c == 'f':
		s.literal("false")
		return false
	case c == 'n':
		s.literal("null")
		return nil
	}
	s.bad = true
	return nil
}

func (s *scanner) literal(lit string) {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		s.bad = true
		return
	}
	s.i += len(lit)
}

// number reads a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() json.Number {
	start := s.i
	if s.peek() == '-' {
		s.i++
	}
	switch c := s.peek(); {
	case c == '0':
		s.i++
	case c >= '1' && c <= '9':
		s.digits()
	default:
		s.bad = true
		return ""
	}
	if s.peek() == '.' {
		s.i++
		if !s.digits() {
			s.bad = true
			return ""
		}
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.i++
		if c := s.peek(); c == '+' || c == '-' {
			s.i++
		}
		if !s.digits() {
			s.bad = true
			return ""
		}
	}
	return json.Number(s.b[start:s.i])
}

// digits reads one or more digits; false if there were none.
func (s *scanner) digits() bool {
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}
