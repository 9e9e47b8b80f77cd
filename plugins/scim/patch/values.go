package patch

import (
	"reflect"
	"strings"

	"github.com/gatehouse/gatehouse/plugins/scim/schema"
)

func isList(vals ...any) bool {
	for _, v := range vals {
		if _, ok := v.([]any); ok {
			return true
		}
	}
	return false
}

func isComplex(a *schema.Attribute, v any) bool {
	if a != nil {
		return a.Type == schema.Complex
	}
	_, ok := v.(map[string]any)
	return ok
}

func asList(v any) []any {
	switch t := v.(type) {
	case nil:
		return nil
	case []any:
		return t
	default:
		return []any{v}
	}
}

// setOrDelete stores v, or removes the attribute when v is unassigned (RFC 7643 §2.5: null, []
// and an empty object all mean "no value").
func setOrDelete(c map[string]any, name string, v any) {
	if schema.IsEmpty(v) {
		schema.Delete(c, name)
		return
	}
	schema.Set(c, name, v)
}

// mergeObject copies the sub-attributes of add over those of cur (both objects).
func mergeObject(cur, add any) any {
	out := map[string]any{}
	if m, ok := cur.(map[string]any); ok {
		for k, v := range m {
			out[k] = v
		}
	}
	am, ok := add.(map[string]any)
	if !ok {
		return add
	}
	for k, v := range am {
		if v == nil {
			schema.Delete(out, k)
			continue
		}
		schema.Set(out, k, schema.CloneValue(v))
	}
	return out
}

// elemValue returns the "value" sub-attribute of a complex element, the identity of the element
// for add and remove-by-value.
func elemValue(e any) (any, bool) {
	m, ok := e.(map[string]any)
	if !ok {
		return nil, false
	}
	v, ok := schema.Lookup(m, "value")
	return v, ok && v != nil
}

// sameElem reports whether x and y denote the same element of attribute a: the same "value" for
// complex elements (compared per the value sub-attribute's caseExact), deep equality otherwise.
func sameElem(a *schema.Attribute, x, y any) bool {
	xv, xok := elemValue(x)
	yv, yok := elemValue(y)
	if xok && yok {
		xs, xsOK := xv.(string)
		ys, ysOK := yv.(string)
		if xsOK && ysOK {
			exact := false
			if a != nil {
				if vd := a.SubAttribute("value"); vd != nil {
					exact = vd.CaseExact
				}
			}
			if exact {
				return xs == ys
			}
			return strings.EqualFold(xs, ys)
		}
		return reflect.DeepEqual(xv, yv)
	}
	if a != nil && a.Type != schema.Complex {
		xs, xsOK := x.(string)
		ys, ysOK := y.(string)
		if xsOK && ysOK && !a.CaseExact {
			return strings.EqualFold(xs, ys)
		}
	}
	return reflect.DeepEqual(x, y)
}

func containsElem(a *schema.Attribute, list []any, e any) bool {
	for _, x := range list {
		if sameElem(a, x, e) {
			return true
		}
	}
	return false
}

// mergeList adds elements to a multi-valued attribute. An element already present (same "value")
// is merged rather than duplicated, its value kept as stored: RFC 7644 §3.5.2.1 says adding a
// value that exists changes nothing, and Okta re-adds members it already pushed.
func mergeList(a *schema.Attribute, list, add []any) []any {
	out := make([]any, len(list), len(list)+len(add))
	copy(out, list)
	for _, e := range add {
		idx := -1
		for i, x := range out {
			if sameElem(a, x, e) {
				idx = i
				break
			}
		}
		if idx >= 0 {
			// The value stays as stored: the same value in another case (where the value is
			// not caseExact) is not a change.
			v, hasV := elemValue(out[idx])
			out[idx] = mergeObject(out[idx], e)
			if m, ok := out[idx].(map[string]any); ok && hasV {
				schema.Set(m, "value", v)
			}
		} else {
			out = append(out, e)
			idx = len(out) - 1
		}
		if m, ok := e.(map[string]any); ok {
			if p, _ := schema.Lookup(m, "primary"); p == true {
				fixPrimary(out, idx)
			}
		}
	}
	return out
}

// fixPrimary keeps at most one element with primary true (RFC 7643 §2.4): keep is the index that
// just became primary; -1 keeps the first primary found.
func fixPrimary(list []any, keep int) {
	if keep < 0 {
		for i, e := range list {
			if m, ok := e.(map[string]any); ok {
				if p, _ := schema.Lookup(m, "primary"); p == true {
					keep = i
					break
				}
			}
		}
	}
	for i, e := range list {
		if i == keep {
			continue
		}
		if m, ok := e.(map[string]any); ok {
			if p, _ := schema.Lookup(m, "primary"); p == true {
				schema.Delete(m, "primary")
			}
		}
	}
}

// cleanList drops elements left empty by sub-attribute removals.
func cleanList(list []any) []any {
	out := list[:0:0]
	for _, e := range list {
		if !schema.IsEmpty(e) {
			out = append(out, e)
		}
	}
	return out
}
