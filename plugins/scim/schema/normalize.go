package schema

import (
	"encoding/json"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/plugins/scim/scimerr"
)

// Normalize rewrites r in place into its canonical form, which is what the store keeps and what
// filters and PATCH see:
//   - known attribute and sub-attribute names get their schema spelling, and known extension
//     objects their schema URN as key; a name given twice in different cases is invalidSyntax;
//   - unassigned values (null, [], {}) are dropped (RFC 7643 §2.5);
//   - a single value given for a multi-valued attribute is wrapped in an array;
//   - boolean attributes accept the strings "true"/"false" (some clients send them);
//   - values of known attributes are type-checked (invalidValue);
//   - schemas is recomputed: the core URN plus each extension object present.
//
// Unknown attributes are kept as they are. Required attributes are checked by Validate.
func (rt *ResourceType) Normalize(r Resource) error {
	out := make(map[string]any, len(r))
	for k, v := range r {
		if IsEmpty(v) || strings.EqualFold(k, "schemas") {
			continue
		}
		var (
			key string
			val any
			err error
		)
		switch ext := rt.Extension(k); {
		case ext != nil:
			m, ok := v.(map[string]any)
			if !ok {
				return scimerr.BadRequest(scimerr.InvalidValue, "%s must be an object", ext.ID)
			}
			key = ext.ID
			val, err = normalizeObject(ext.Attributes, m, ext.ID+":")
		default:
			a := rt.Attribute(k)
			if a == nil {
				key, val = k, v
				break
			}
			key = a.Name
			val, err = normalizeValue(a, v, a.Name)
		}
		if err != nil {
			return err
		}
		if IsEmpty(val) {
			continue
		}
		if _, dup := out[key]; dup {
			return scimerr.BadRequest(scimerr.InvalidSyntax, "attribute %q is given more than once", key)
		}
		out[key] = val
	}
	schemas := []any{rt.Schema.ID}
	for k, v := range out {
		if _, isObj := v.(map[string]any); isObj && strings.HasPrefix(strings.ToLower(k), "urn:") {
			schemas = append(schemas, k)
		}
	}
	// Map order is random; keep the output stable (core first, extensions sorted).
	sortStrings(schemas[1:])
	out["schemas"] = schemas
	clear(r)
	for k, v := range out {
		r[k] = v
	}
	return nil
}

// Validate checks that every required, client-writable attribute of r is present. Call it on a
// normalized resource before storing it.
func (rt *ResourceType) Validate(r Resource) error {
	check := func(attrs []*Attribute, c map[string]any, prefix string) error {
		for _, a := range attrs {
			if !a.Required || a.ReadOnly() {
				continue
			}
			v, ok := Lookup(c, a.Name)
			if !ok || IsEmpty(v) {
				return scimerr.BadRequest(scimerr.InvalidValue, "attribute %s%s is required", prefix, a.Name)
			}
		}
		return nil
	}
	if err := check(rt.Schema.Attributes, r, ""); err != nil {
		return err
	}
	for _, e := range rt.Extensions {
		c := r.Container(Ref{Ext: e.Schema.ID}, false)
		if c == nil {
			if e.Required {
				return scimerr.BadRequest(scimerr.InvalidValue, "extension %s is required", e.Schema.ID)
			}
			continue
		}
		if err := check(e.Schema.Attributes, c, e.Schema.ID+":"); err != nil {
			return err
		}
	}
	return nil
}

// StripReadOnly removes the attributes a client may not set (readOnly ones: id, meta, groups,
// schemas, manager.displayName...) from r, so that a PUT carrying what a GET returned (as Okta's
// does) is accepted and the server's own values are restored by the caller.
func (rt *ResourceType) StripReadOnly(r Resource) {
	strip := func(attrs []*Attribute, c map[string]any) {
		for _, a := range attrs {
			// Most attributes are writable through and through: nothing to strip, so no need
			// to look for them (a miss compares every key of c, ignoring case).
			if !a.ReadOnly() && !slices.ContainsFunc(a.SubAttributes, (*Attribute).ReadOnly) {
				continue
			}
			k, ok := Key(c, a.Name)
			if !ok {
				continue
			}
			if a.ReadOnly() {
				delete(c, k)
				continue
			}
			for _, s := range a.SubAttributes {
				if !s.ReadOnly() {
					continue
				}
				forEachObject(c[k], func(m map[string]any) { Delete(m, s.Name) })
			}
		}
	}
	strip(commonAttributes, r)
	strip(rt.Schema.Attributes, r)
	for _, e := range rt.Extensions {
		if c := r.Container(Ref{Ext: e.Schema.ID}, false); c != nil {
			strip(e.Schema.Attributes, c)
		}
	}
}

func forEachObject(v any, f func(map[string]any)) {
	switch t := v.(type) {
	case map[string]any:
		f(t)
	case []any:
		for _, e := range t {
			if m, ok := e.(map[string]any); ok {
				f(m)
			}
		}
	}
}

func normalizeObject(attrs []*Attribute, m map[string]any, path string) (map[string]any, error) {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if IsEmpty(v) {
			continue
		}
		key, val := k, v
		if a := findAttr(attrs, k); a != nil {
			key = a.Name
			var err error
			if val, err = normalizeValue(a, v, path+a.Name); err != nil {
				return nil, err
			}
			if IsEmpty(val) {
				continue
			}
		}
		if _, dup := out[key]; dup {
			return nil, scimerr.BadRequest(scimerr.InvalidSyntax, "attribute %q is given more than once", path+key)
		}
		out[key] = val
	}
	return out, nil
}

// NormalizeValue type-checks and canonicalizes v as a value of attribute a (the whole value: an
// array for a multi-valued attribute, a single value wrapped). PATCH uses it on operation values.
func NormalizeValue(a *Attribute, v any) (any, error) {
	return normalizeValue(a, v, a.Name)
}

// NormalizeSingle type-checks and canonicalizes v as one value of attribute a (one element of a
// multi-valued attribute).
func NormalizeSingle(a *Attribute, v any) (any, error) {
	return normalizeSingle(a, v, a.Name)
}

func normalizeValue(a *Attribute, v any, path string) (any, error) {
	if !a.MultiValued {
		return normalizeSingle(a, v, path)
	}
	list, ok := v.([]any)
	if !ok {
		list = []any{v}
	}
	out := make([]any, 0, len(list))
	for _, e := range list {
		if IsEmpty(e) {
			continue
		}
		n, err := normalizeSingle(a, e, path)
		if err != nil {
			return nil, err
		}
		if !IsEmpty(n) {
			out = append(out, n)
		}
	}
	if a.Type == Complex {
		return uniqueValues(a, out, path)
	}
	return out, nil
}

// uniqueValues applies RFC 7643 §2.4 to the values of a multi-valued complex attribute:
//   - the same value given twice (the same "type" and "value", each compared as its definition's
//     caseExact says; the whole element for attributes without "value", such as addresses) is
//     kept once, at its first position and with its first spelling, with the later copy's other
//     sub-attributes merged into it and "primary": true kept if either copy had it ("SHOULD
//     NOT return duplicates");
//   - "primary": true on more than one value is refused with invalidValue naming the attribute
//     ("MUST appear no more than once"): which one the client meant cannot be guessed, and
//     refusing keeps POST, PUT and PATCH values alike. A PATCH that makes one value primary
//     demotes the others (RFC 7644 §3.5.2); that is the patch package's job, before this check.
//
// A map keyed by the identity keeps it linear: a group's members list may hold thousands.
func uniqueValues(a *Attribute, list []any, path string) ([]any, error) {
	if len(list) < 2 {
		return list, nil
	}
	valueDef := a.SubAttribute("value")
	index := make(map[string]int, len(list))
	out := list[:0]
	for _, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			out = append(out, e)
			continue
		}
		k, ok := valueKey(valueDef, m)
		if !ok {
			out = append(out, e)
			continue
		}
		i, dup := index[k]
		if !dup {
			index[k] = len(out)
			out = append(out, e)
			continue
		}
		first := out[i].(map[string]any)
		for sk, sv := range m {
			if (sk == "primary" && first[sk] == true) || sk == "value" {
				continue
			}
			first[sk] = sv
		}
	}
	primaries := 0
	for _, e := range out {
		if m, ok := e.(map[string]any); ok && m["primary"] == true {
			primaries++
		}
	}
	if primaries > 1 {
		return nil, scimerr.BadRequest(scimerr.InvalidValue,
			"attribute %s has %d values with \"primary\": true; at most one value may be primary (RFC 7643 §2.4)", path, primaries)
	}
	return out, nil
}

// KeepFirstPrimary leaves "primary": true on the first value only of every multi-valued core
// attribute of r that has a primary sub-attribute. Normalize refuses two primaries; this repairs
// what was stored before it did, on the way out (responses, and the start of a PATCH), so that a
// client that echoes a GET in a PUT (Okta's wizard apps deactivate that way) or patches another
// attribute is never refused for what it did not send. r must be normalized (schema spelling of
// attribute names): it runs on every user a response shows, so it looks names up exactly.
func (rt *ResourceType) KeepFirstPrimary(r Resource) {
	rt.primaryOnce.Do(func() {
		for _, a := range rt.Schema.Attributes {
			if a.MultiValued && a.Type == Complex && a.SubAttribute("primary") != nil {
				rt.primaryAttrs = append(rt.primaryAttrs, a.Name)
			}
		}
	})
	for _, name := range rt.primaryAttrs {
		list, _ := r[name].([]any)
		if len(list) < 2 {
			continue
		}
		seen := false
		for _, e := range list {
			m, ok := e.(map[string]any)
			if !ok || m["primary"] != true {
				continue
			}
			if seen {
				delete(m, "primary")
			}
			seen = true
		}
	}
}

// valueKey is the identity of one normalized element of a multi-valued complex attribute for
// uniqueValues; ok is false for an element that has none (a "value"-less element of an attribute
// that has "value"), which is then never merged.
func valueKey(valueDef *Attribute, m map[string]any) (string, bool) {
	if valueDef == nil {
		b, err := json.Marshal(m) // map keys are sorted: a canonical form
		return "o" + string(b), err == nil
	}
	v, ok := m["value"]
	if !ok || v == nil {
		return "", false
	}
	typ, _ := m["type"].(string)
	s, isString := v.(string)
	switch {
	case !isString:
		b, err := json.Marshal(v)
		if err != nil {
			return "", false
		}
		s = "j" + string(b)
	case valueDef.CaseExact:
		s = "s" + s
	default:
		s = "s" + strings.ToLower(s)
	}
	return strings.ToLower(typ) + "\x00" + s, true
}

func normalizeSingle(a *Attribute, v any, path string) (any, error) {
	if v == nil {
		return nil, nil
	}
	bad := func() error {
		return scimerr.BadRequest(scimerr.InvalidValue, "attribute %s must be of type %s", path, a.Type)
	}
	switch a.Type {
	case Complex:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, bad()
		}
		return normalizeObject(a.SubAttributes, m, path+".")
	case Boolean:
		switch t := v.(type) {
		case bool:
			return t, nil
		case string:
			switch strings.ToLower(t) {
			case "true":
				return true, nil
			case "false":
				return false, nil
			}
		}
		return nil, bad()
	case String, Reference, Binary:
		if _, ok := v.(string); !ok {
			return nil, bad()
		}
		return v, nil
	case DateTime:
		s, ok := v.(string)
		if !ok {
			return nil, bad()
		}
		if _, ok := ParseDateTime(s); !ok {
			return nil, bad()
		}
		return s, nil
	case Integer:
		switch t := v.(type) {
		case json.Number:
			if _, err := t.Int64(); err == nil {
				return t, nil
			}
		case float64:
			if t == math.Trunc(t) && !math.IsInf(t, 0) {
				return t, nil
			}
		}
		return nil, bad()
	case Decimal:
		switch t := v.(type) {
		case json.Number:
			if _, err := t.Float64(); err == nil {
				return t, nil
			}
		case float64:
			return t, nil
		}
		return nil, bad()
	}
	return v, nil
}

// ParseDateTime parses an xsd:dateTime as SCIM uses it (RFC 3339, with or without fractional
// seconds).
func ParseDateTime(s string) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, false
	}
	return t, true
}

func sortStrings(s []any) {
	// Insertion sort: a handful of extension URNs at most.
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j].(string) < s[j-1].(string); j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}
