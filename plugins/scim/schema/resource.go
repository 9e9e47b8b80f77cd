package schema

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"

	"github.com/gatehouse/gatehouse/plugins/scim/scimerr"
)

// Resource is a SCIM resource as a JSON attribute map. Values are what encoding/json produces with
// UseNumber: string, bool, json.Number, nil, []any and map[string]any. json.Number keeps numbers
// exactly as the client wrote them, so a resource survives decode/encode unchanged (a float64
// would turn an employee number like 12345678901234567890 into 1.2345678901234567e19).
//
// Keys keep the client's spelling; lookups are case-insensitive (RFC 7643 §2.1). Normalize
// rewrites known attribute names to their canonical spelling.
type Resource map[string]any

// Decode parses a JSON object into a Resource. Anything but exactly one JSON object is an
// invalidSyntax error.
func Decode(data []byte) (Resource, error) {
	if m, ok := decodeSimple(data); ok {
		return Resource(m), nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, scimerr.BadRequest(scimerr.InvalidSyntax, "request body is not a JSON object")
	}
	if m == nil {
		return nil, scimerr.BadRequest(scimerr.InvalidSyntax, "request body is not a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, scimerr.BadRequest(scimerr.InvalidSyntax, "request body has data after the JSON object")
	}
	return Resource(m), nil
}

// DecodeValue parses any JSON value with UseNumber, for PATCH operation values.
func DecodeValue(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// Clone returns a deep copy of r.
func (r Resource) Clone() Resource {
	if r == nil {
		return nil
	}
	return Resource(CloneValue(map[string]any(r)).(map[string]any))
}

// CloneValue deep-copies a JSON value.
func CloneValue(v any) any {
	switch t := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[k] = CloneValue(e)
		}
		return m
	case Resource:
		return map[string]any(t.Clone())
	case []any:
		s := make([]any, len(t))
		for i, e := range t {
			s[i] = CloneValue(e)
		}
		return s
	default:
		return v
	}
}

// Key returns the key of m that names the attribute name, matched case-insensitively (an exact
// match wins).
func Key(m map[string]any, name string) (string, bool) {
	if m == nil {
		return "", false
	}
	if _, ok := m[name]; ok {
		return name, true
	}
	for k := range m {
		if strings.EqualFold(k, name) {
			return k, true
		}
	}
	return "", false
}

// Lookup returns the value of attribute name in m, case-insensitively.
func Lookup(m map[string]any, name string) (any, bool) {
	k, ok := Key(m, name)
	if !ok {
		return nil, false
	}
	return m[k], true
}

// Set stores v under name, replacing any differently-cased key for the same attribute.
func Set(m map[string]any, name string, v any) {
	for k := range m {
		if k != name && strings.EqualFold(k, name) {
			delete(m, k)
		}
	}
	m[name] = v
}

// Delete removes attribute name (every casing) from m.
func Delete(m map[string]any, name string) {
	for k := range m {
		if strings.EqualFold(k, name) {
			delete(m, k)
		}
	}
}

// String returns the string attribute name of r ("" when absent or not a string).
func (r Resource) String(name string) string {
	v, _ := Lookup(r, name)
	s, _ := v.(string)
	return s
}

// Bool returns the boolean attribute name of r and whether it is set to a boolean.
func (r Resource) Bool(name string) (value, ok bool) {
	v, _ := Lookup(r, name)
	b, ok := v.(bool)
	return b, ok
}

// IsEmpty reports whether v counts as unassigned: null, an empty array, or an empty object
// (RFC 7643 §2.5 treats null and [] as unassigned).
func IsEmpty(v any) bool {
	switch t := v.(type) {
	case nil:
		return true
	case []any:
		return len(t) == 0
	case map[string]any:
		return len(t) == 0
	case string, bool, json.Number, float64:
		return false
	default:
		return false
	}
}
