package server

import (
	"strings"

	"github.com/gatehouse/gatehouse/lib/safetext"
	"github.com/gatehouse/gatehouse/plugins/scim/schema"
	"github.com/gatehouse/gatehouse/plugins/scim/scimerr"
)

// Text from a SCIM client reaches people: the web UI, gatectl in an operator's terminal, the
// server and audit logs, lock messages. A real Okta never sends a control character or a
// bidirectional override, so a body that holds one is refused (400
// invalidValue) rather than stored and escaped everywhere it may be shown (lib/safetext).
// Identifiers (userName, externalId, a group's displayName, a member's value and display) are one
// line; other string values (a postal address) may also hold tabs and line feeds. Attribute names
// are identifiers too.
//
// Text the stored record already holds is not refused again: a record written before this check
// must still be deactivated by a PUT or PATCH that repeats it (deprovisioning never fails on
// what the record already says).

// checkText refuses the unsafe text of res, the cleaned resource a POST, PUT or PATCH would store;
// cur is the stored record (nil for a POST), whose own text is tolerated. Clean text costs no
// allocation but the walk's path (a write is on the hot path, docs/benchmarks.md).
func (h *resourceHandler[R]) checkText(base string, cur *R, res schema.Resource) error {
	var held map[string]bool
	var refused error
	path := make([]string, 0, 4)
	walkText(res, &path, func(path []string, s string, name bool) bool {
		check := safetext.CheckText
		if name || (strings.ContainsAny(s, "\t\n") && h.identifiers[strings.ToLower(strings.Join(path, "."))]) {
			check = safetext.CheckName
		}
		if check("", s) == nil {
			return true
		}
		if cur != nil {
			if held == nil {
				held = map[string]bool{}
				var p []string
				walkText(h.toRes(base, cur), &p, func(_ []string, s string, _ bool) bool {
					held[s] = true
					return true
				})
			}
			if held[s] {
				return true
			}
		}
		// The field is named only now: clean text builds no path string.
		field := strings.Join(path, ".")
		if name {
			// Never the name itself: the error does not echo what it refuses.
			field = strings.TrimSuffix("an attribute name in "+field, " in ")
		}
		refused = check(field, s)
		return false
	})
	if refused == nil {
		return nil
	}
	return scimerr.BadRequest(scimerr.InvalidValue, "%v", refused)
}

// walkText calls f with every attribute name (name true; path is then its parent's) and string
// value of v, path being the attribute path ("name", "givenName"); it stops when f returns false.
// path is reused: f must not keep it.
func walkText(v any, path *[]string, f func(path []string, s string, name bool) bool) bool {
	switch t := v.(type) {
	case string:
		return f(*path, t, false)
	case []any:
		for _, e := range t {
			if !walkText(e, path, f) {
				return false
			}
		}
	case map[string]any:
		// Map order: with several unsafe values, which one the error names may vary.
		for k, e := range t {
			if !f(*path, k, true) {
				return false
			}
			*path = append(*path, k)
			ok := walkText(e, path, f)
			*path = (*path)[:len(*path)-1]
			if !ok {
				return false
			}
		}
	case schema.Resource:
		return walkText(map[string]any(t), path, f)
	}
	return true
}
