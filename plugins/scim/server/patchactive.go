package server

import (
	"slices"
	"strconv"
	"strings"

	"github.com/gatehouse/gatehouse/lib/scim/scimrecord"
	"github.com/gatehouse/gatehouse/plugins/scim/patch"
	"github.com/gatehouse/gatehouse/plugins/scim/protocol"
	"github.com/gatehouse/gatehouse/plugins/scim/schema"
)

// The fast path of a PATCH that only sets active: Okta's deactivation
// ({"op":"replace","value":{"active":false}}) and the same with "path":"active". The full path
// builds the user's representation (userResource), applies the operations to it, normalizes,
// validates and strips it, and reads the record's fields back from it (userFields, which encodes
// the attributes again): for a record that is already in the form that path writes, all of that
// gives back the record with active set. The fast path sets active on a copy of the record, and
// only when it can tell that the full path would give exactly that (userInNormalForm); anything
// else, in the operations or in the record, takes the full path. TestPatchActiveMatchesFullPath
// and FuzzPatchActive hold the two to the same record.

// activeOnly reports whether ops only replace active with a boolean, by path "active" or by a
// path-less value holding active alone, and the value the last of them sets.
func activeOnly(ops []patch.Operation) (active, ok bool) {
	if len(ops) == 0 {
		return false, false
	}
	for i := range ops {
		op := &ops[i]
		if op.Op != patch.OpReplace {
			return false, false
		}
		v := op.Value
		switch op.Path {
		case "active":
		case "":
			obj, isObj := op.Value.(map[string]any)
			if !isObj || len(obj) != 1 {
				return false, false
			}
			if v, isObj = obj["active"]; !isObj {
				return false, false
			}
		default:
			return false, false
		}
		b, isBool := v.(bool)
		if !isBool {
			return false, false
		}
		active = b
	}
	return active, true
}

// patchUserActive is the users' fast path: what sets active on a copy of cur, or false when
// cur is not in the form the full path writes back unchanged.
func patchUserActive(cur *scimrecord.UserRecord, active bool) (func(*scimrecord.UserRecord), bool) {
	if !userInNormalForm(cur) {
		return nil, false
	}
	return func(next *scimrecord.UserRecord) { next.Active = active }, true
}

// userInNormalForm reports whether the full path of an active-only PATCH would read rec's
// userName, externalId and attributes back unchanged (the attributes after the provisioner drops
// the members the record keeps in its own fields): a userName userFields accepts, and
// attributes that are canonical JSON (so encoding them again writes the same bytes) in which
// Normalize, KeepFirstPrimary, StripReadOnly and userFields change nothing. It declines whatever
// it cannot tell in one look: a member the response takes from the record, an extension, an
// empty value, a name not in its schema spelling, a read-only (sub-)attribute, a value
// Normalize would convert or refuse, a multi-valued complex attribute with more than one value
// (which uniqueValues might merge and KeepFirstPrimary might rewrite).
func userInNormalForm(rec *scimrecord.UserRecord) bool {
	if rec.UserName == "" || strings.TrimSpace(rec.UserName) != rec.UserName {
		return false
	}
	raw := string(rec.Attributes)
	if !protocol.IsCanonicalObject(raw) {
		return false
	}
	// The canonical text is read as it is, without decoding it: DecodeCanonicalObject gives
	// what each value's text says (a string, true or false, null, a json.Number, an array, an
	// object), which is what the checks below look at.
	rt := schema.UserResourceType
	members := protocol.NewMembers(raw)
	for k, v, ok := members.Next(); ok; k, v, ok = members.Next() {
		if isUserRecordKey(k) || emptyValue(v) {
			return false
		}
		if ext := rt.Extension(k); ext != nil {
			// Normalize keys it by its URN and normalizes its members as a complex value's;
			// Validate checks its required attributes (left to the full path, as is any
			// extension that has some).
			if ext.ID != k || slices.ContainsFunc(ext.Attributes, func(a *schema.Attribute) bool { return a.Required }) ||
				!normalObject(v, ext.Attribute) {
				return false
			}
			continue
		}
		a := rt.Attribute(k)
		if a == nil {
			continue // unknown (an unknown extension's URN too): kept as it is
		}
		if a.Name != k || a.ReadOnly() || !normalValue(a, v) {
			return false
		}
	}
	return true
}

// normalObject reports whether normalizeObject leaves the canonical object text v as it is
// (attribute looking its members' definitions up), and StripReadOnly would strip nothing from
// it.
func normalObject(v string, attribute func(name string) *schema.Attribute) bool {
	if v[0] != '{' || emptyValue(v) {
		return false
	}
	members := protocol.NewMembers(v)
	for k, sv, ok := members.Next(); ok; k, sv, ok = members.Next() {
		if emptyValue(sv) {
			return false
		}
		s := attribute(k)
		if s == nil {
			continue // unknown: kept as it is
		}
		if s.Name != k || s.ReadOnly() || !normalValue(s, sv) {
			return false
		}
	}
	return true
}

// emptyValue is schema.IsEmpty of what the canonical value text v decodes to.
func emptyValue(v string) bool { return v == "null" || v == "[]" || v == "{}" }

// normalValue reports whether normalizeValue(a, x) returns x itself, x being what the canonical
// value text v decodes to, with nothing dropped, renamed, converted, merged or refused, and
// StripReadOnly would strip nothing from it.
func normalValue(a *schema.Attribute, v string) bool {
	if !a.MultiValued {
		return normalSingle(a, v)
	}
	if v[0] != '[' || emptyValue(v) {
		return false
	}
	elems := protocol.NewElements(v)
	n := 0
	for e, ok := elems.Next(); ok; e, ok = elems.Next() {
		if n++; emptyValue(e) || !normalSingle(a, e) || (a.Type == schema.Complex && n > 1) {
			return false
		}
	}
	return true
}

// normalSingle is normalValue for one value of a.
func normalSingle(a *schema.Attribute, v string) bool {
	switch a.Type {
	case schema.Complex:
		return normalObject(v, a.SubAttribute)
	case schema.Boolean:
		return v == "true" || v == "false"
	case schema.String, schema.Reference, schema.Binary:
		return v[0] == '"'
	case schema.DateTime:
		// A string with escapes is left to the full path rather than unescaped here.
		if v[0] != '"' || strings.IndexByte(v, '\\') >= 0 {
			return false
		}
		_, ok := schema.ParseDateTime(v[1 : len(v)-1])
		return ok
	case schema.Integer:
		// json.Number's Int64 and Float64 are these parses of its text.
		_, err := strconv.ParseInt(v, 10, 64)
		return err == nil
	case schema.Decimal:
		if v[0] == '"' {
			return false
		}
		_, err := strconv.ParseFloat(v, 64)
		return err == nil
	}
	return false
}
