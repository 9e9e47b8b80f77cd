package server

import (
	"encoding/json"
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
	rt := schema.UserResourceType
	for k, v := range protocol.DecodeCanonicalObject(raw) {
		if isUserRecordKey(k) || hasURNPrefix(k) || rt.Extension(k) != nil || schema.IsEmpty(v) {
			return false
		}
		a := rt.Attribute(k)
		if a == nil {
			continue // unknown: kept as it is
		}
		if a.Name != k || a.ReadOnly() || !normalValue(a, v) {
			return false
		}
	}
	return true
}

// normalValue reports whether normalizeValue(a, v) returns v itself, with nothing dropped,
// renamed, converted, merged or refused, and StripReadOnly would strip nothing from it.
func normalValue(a *schema.Attribute, v any) bool {
	if !a.MultiValued {
		return normalSingle(a, v)
	}
	list, ok := v.([]any)
	if !ok || len(list) == 0 || (a.Type == schema.Complex && len(list) > 1) {
		return false
	}
	for _, e := range list {
		if schema.IsEmpty(e) || !normalSingle(a, e) {
			return false
		}
	}
	return true
}

// normalSingle is normalValue for one value of a.
func normalSingle(a *schema.Attribute, v any) bool {
	switch a.Type {
	case schema.Complex:
		m, ok := v.(map[string]any)
		if !ok || len(m) == 0 {
			return false
		}
		for k, sv := range m {
			if schema.IsEmpty(sv) {
				return false
			}
			s := a.SubAttribute(k)
			if s == nil {
				continue // unknown: kept as it is
			}
			if s.Name != k || s.ReadOnly() || !normalValue(s, sv) {
				return false
			}
		}
		return true
	case schema.Boolean:
		_, ok := v.(bool)
		return ok
	case schema.String, schema.Reference, schema.Binary:
		_, ok := v.(string)
		return ok
	case schema.DateTime:
		s, ok := v.(string)
		if !ok {
			return false
		}
		_, ok = schema.ParseDateTime(s)
		return ok
	case schema.Integer:
		n, ok := v.(json.Number)
		if !ok {
			return false
		}
		_, err := n.Int64()
		return err == nil
	case schema.Decimal:
		n, ok := v.(json.Number)
		if !ok {
			return false
		}
		_, err := n.Float64()
		return err == nil
	}
	return false
}
