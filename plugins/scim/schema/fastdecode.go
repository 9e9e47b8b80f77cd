package schema

import (
	"encoding/json"
	"unicode/utf8"
)

// decodeSimple decodes data, one JSON object, into what encoding/json's Decoder with UseNumber
// gives for it (Decode's value), for the JSON that SCIM clients send (Okta's POST and PUT
// bodies): strings without escapes, numbers, literals, objects and arrays nested at most
// simpleMaxDepth deep, whitespace between tokens. ok is false for anything else, valid or not
// (an escape, a control character or invalid UTF-8 in a string, a malformed number, deeper
// nesting, data after the object...): Decode then parses data with encoding/json, which decides
// the value or the error. So whatever this accepts is decoded exactly as before, and it never
// decides an error. Keys repeat as encoding/json lets them: the last value wins.
func decodeSimple(data []byte) (m map[string]any, ok bool) {
	d := simpleDecoder{data: data}
	d.skipSpace()
	if d.i >= len(d.data) || d.data[d.i] != '{' {
		return nil, false
	}
	v, ok := d.value(0)
	if !ok {
		return nil, false
	}
	d.skipSpace()
	if d.i != len(d.data) {
		return nil, false
	}
	return v.(map[string]any), true
}

// DecodeSimpleValue is decodeSimple for the value that starts at data[i] (after whitespace),
// inside a larger text that its caller reads: the value as encoding/json with UseNumber decodes
// it, and the index just past it. ok is false for anything decodeSimple would decline; the
// caller then hands the whole text to encoding/json. The PATCH body reader uses it for an
// operation's value.
func DecodeSimpleValue(data []byte, i int) (v any, end int, ok bool) {
	d := simpleDecoder{data: data, i: i}
	if v, ok = d.value(0); !ok {
		return nil, i, false
	}
	return v, d.i, true
}

// DecodeSimpleString is DecodeSimpleValue for a string, which must start at data[i] (its
// opening quote).
func DecodeSimpleString(data []byte, i int) (s string, end int, ok bool) {
	if i >= len(data) || data[i] != '"' {
		return "", i, false
	}
	d := simpleDecoder{data: data, i: i}
	if s, ok = d.str(); !ok {
		return "", i, false
	}
	return s, d.i, true
}

// simpleMaxDepth bounds the nesting decodeSimple takes (encoding/json's own limit is far higher;
// deeper text goes to it). SCIM resources nest three or four levels.
const simpleMaxDepth = 32

type simpleDecoder struct {
	data []byte
	i    int
}

func (d *simpleDecoder) skipSpace() {
	for d.i < len(d.data) {
		switch d.data[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// value decodes the value at d.i (after whitespace), depth being the nesting around it.
func (d *simpleDecoder) value(depth int) (any, bool) {
	d.skipSpace()
	if d.i >= len(d.data) {
		return nil, false
	}
	switch c := d.data[d.i]; {
	case c == '{':
		if depth >= simpleMaxDepth {
			return nil, false
		}
		return d.object(depth + 1)
	case c == '[':
		if depth >= simpleMaxDepth {
			return nil, false
		}
		return d.array(depth + 1)
	case c == '"':
		s, ok := d.str()
		return s, ok
	case c == 't':
		return true, d.literal("true")
	case c == 'f':
		return false, d.literal("false")
	case c == 'n':
		return nil, d.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return d.number()
	}
	return nil, false
}

func (d *simpleDecoder) object(depth int) (any, bool) {
	d.i++ // {
	m := map[string]any{}
	d.skipSpace()
	if d.i < len(d.data) && d.data[d.i] == '}' {
		d.i++
		return m, true
	}
	for {
		d.skipSpace()
		if d.i >= len(d.data) || d.data[d.i] != '"' {
			return nil, false
		}
		k, ok := d.str()
		if !ok {
			return nil, false
		}
		d.skipSpace()
		if d.i >= len(d.data) || d.data[d.i] != ':' {
			return nil, false
		}
		d.i++
		v, ok := d.value(depth)
		if !ok {
			return nil, false
		}
		m[k] = v
		d.skipSpace()
		if d.i >= len(d.data) {
			return nil, false
		}
		switch d.data[d.i] {
		case ',':
			d.i++
		case '}':
			d.i++
			return m, true
		default:
			return nil, false
		}
	}
}

func (d *simpleDecoder) array(depth int) (any, bool) {
	d.i++ // [
	a := make([]any, 0)
	d.skipSpace()
	if d.i < len(d.data) && d.data[d.i] == ']' {
		d.i++
		return a, true
	}
	for {
		v, ok := d.value(depth)
		if !ok {
			return nil, false
		}
		a = append(a, v)
		d.skipSpace()
		if d.i >= len(d.data) {
			return nil, false
		}
		switch d.data[d.i] {
		case ',':
			d.i++
		case ']':
			d.i++
			return a, true
		default:
			return nil, false
		}
	}
}

// str decodes the string at d.i (its opening quote): only one without escapes, control
// characters or invalid UTF-8, whose text is then its value.
func (d *simpleDecoder) str() (string, bool) {
	start := d.i + 1
	ascii := true
	for j := start; j < len(d.data); j++ {
		switch c := d.data[j]; {
		case c == '"':
			s := d.data[start:j]
			if !ascii && !utf8.Valid(s) {
				return "", false
			}
			d.i = j + 1
			return string(s), true
		case c == '\\' || c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return "", false
}

func (d *simpleDecoder) literal(lit string) bool {
	if len(d.data)-d.i < len(lit) || string(d.data[d.i:d.i+len(lit)]) != lit {
		return false
	}
	d.i += len(lit)
	return true
}

// number decodes the number at d.i as a json.Number of its text, if it follows JSON's grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (d *simpleDecoder) number() (any, bool) {
	start, j := d.i, d.i
	if d.data[j] == '-' {
		j++
	}
	switch {
	case j < len(d.data) && d.data[j] == '0':
		j++
	case j < len(d.data) && d.data[j] >= '1' && d.data[j] <= '9':
		j = d.digits(j)
	default:
		return nil, false
	}
	if j < len(d.data) && d.data[j] == '.' {
		k := d.digits(j + 1)
		if k == j+1 {
			return nil, false
		}
		j = k
	}
	if j < len(d.data) && (d.data[j] == 'e' || d.data[j] == 'E') {
		j++
		if j < len(d.data) && (d.data[j] == '+' || d.data[j] == '-') {
			j++
		}
		k := d.digits(j)
		if k == j {
			return nil, false
		}
		j = k
	}
	d.i = j
	return json.Number(d.data[start:j]), true
}

func (d *simpleDecoder) digits(j int) int {
	for j < len(d.data) && d.data[j] >= '0' && d.data[j] <= '9' {
		j++
	}
	return j
}
