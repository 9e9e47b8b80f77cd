package patch

import (
	"encoding/json"

	"github.com/gatehouse/gatehouse/plugins/scim/schema"
)

// Every deactivation is a PATCH, and decoding its small body with encoding/json (into the wire
// struct, then each value again with a Decoder) was a few percent of a deactivation's CPU. scan
// reads the plain PatchOp bodies clients send, into the same wire struct and values that the
// encoding/json path makes, and declines (ok false) anything else: keys other than the exact
// field names, a key given twice, null or non-string op and path, strings with escapes, control
// characters or invalid UTF-8, a value schema's request decoder declines (nested too deep, say),
// anything after the object.
// Whatever it declines, valid or not, goes to encoding/json as before, which then decides the
// value or the error. FuzzParse compares the two.

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

// str reads a string without escapes or control characters, valid UTF-8 (schema's decoder).
func (s *scanner) str() string {
	v, end, ok := schema.DecodeSimpleString(s.b, s.i)
	if !ok {
		s.bad = true
		return ""
	}
	s.i = end
	return v
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
				o.value = s.value()
			default:
				s.bad = true
			}
		})
		out = append(out, o)
	})
	return out
}

// value decodes any JSON value as encoding/json does into an any with UseNumber, with the
// request body decoder of package schema: what it declines, scan declines.
func (s *scanner) value() any {
	v, end, ok := schema.DecodeSimpleValue(s.b, s.i)
	if !ok {
		s.bad = true
		return nil
	}
	s.i = end
	return v
}
