package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/lib/scim/scimrecord"
	"github.com/gatehouse/gatehouse/plugins/scim/protocol"
	"github.com/gatehouse/gatehouse/plugins/scim/schema"
	"github.com/gatehouse/gatehouse/plugins/scim/scimerr"
)

// The SCIM representation ↔ record mapping.
//
// A UserRecord keeps userName, externalId and active in its own fields (they are indexed or drive
// deactivation) and everything else the client wrote, normalized, in Attributes: never id, meta,
// groups, schemas, active or password. userName and externalId are also left in Attributes; the
// record fields win on output. The wire representation is rebuilt from the record on every
// response: id, userName, externalId, active, groups (from the record's group memberships),
// meta{resourceType, created, lastModified, location, version} and schemas.
//
// A GroupRecord keeps displayName, externalId and members in fields, other attributes in
// Attributes.

// timeFormat is how meta timestamps are written (RFC 3339, millisecond precision, UTC).
const timeFormat = "2006-01-02T15:04:05.000Z07:00"

// etag returns the weak entity tag of a revision, "" when there is none.
func etag(rev string) string {
	if rev == "" {
		return ""
	}
	return `W/"` + rev + `"`
}

// etagMatches reports whether an If-Match / If-None-Match header value matches the revision, with
// the weak comparison (SCIM ETags are weak): "*" matches any existing resource.
func etagMatches(header, rev string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" {
			return true
		}
		t = strings.TrimPrefix(t, "W/")
		t = strings.TrimPrefix(strings.TrimSuffix(t, `"`), `"`)
		if t != "" && t == rev {
			return true
		}
	}
	return false
}

// decodeRequest parses a User or Group body into a normalized resource the client may write:
// password dropped (never stored, never policy-checked), read-only attributes (id, meta, groups,
// schemas...) removed, names canonicalized and required attributes checked.
func decodeRequest(rt *schema.ResourceType, body []byte) (schema.Resource, error) {
	res, err := schema.Decode(body)
	if err != nil {
		return nil, err
	}
	if rt == schema.UserResourceType {
		schema.Delete(res, "password")
	}
	return cleanResource(rt, res)
}

// cleanResource normalizes res in place, strips what a client may not write, and validates.
func cleanResource(rt *schema.ResourceType, res schema.Resource) (schema.Resource, error) {
	if err := rt.Normalize(res); err != nil {
		return nil, err
	}
	rt.StripReadOnly(res)
	if rt == schema.UserResourceType {
		schema.Delete(res, "password")
	}
	if err := rt.Validate(res); err != nil {
		return nil, err
	}
	return res, nil
}

// userFields turns a cleaned User resource into the record fields it sets. hasActive is false when
// the resource does not carry active.
func userFields(res schema.Resource) (rec scimrecord.UserRecord, hasActive bool, err error) {
	rec.UserName = strings.TrimSpace(res.String("userName"))
	if rec.UserName == "" {
		return rec, false, scimerr.BadRequest(scimerr.InvalidValue, "userName is required")
	}
	if rec.UserName != res.String("userName") {
		return rec, false, scimerr.BadRequest(scimerr.InvalidValue, "userName must not start or end with spaces")
	}
	rec.ExternalID = res.String("externalId")
	rec.Active, hasActive = res.Bool("active")
	attrs := make(map[string]any, len(res))
	for k, v := range res {
		switch strings.ToLower(k) {
		case "active", "password", "id", "meta", "groups", "schemas":
			continue
		}
		attrs[k] = v
	}
	rec.Attributes, err = protocol.Marshal(attrs)
	if err != nil {
		return rec, false, scimerr.BadRequest(scimerr.InvalidValue, "attributes cannot be encoded")
	}
	return rec, hasActive, nil
}

// decodeAttributes parses stored attributes (UseNumber, as requests are parsed): canonical ones,
// as the store keeps what userFields and groupFields write, by the direct decoder; anything
// else by encoding/json.
func decodeAttributes(raw json.RawMessage) schema.Resource {
	if len(bytes.TrimSpace(raw)) == 0 {
		return schema.Resource{}
	}
	if s := string(raw); protocol.IsCanonicalObject(s) {
		return protocol.DecodeCanonicalObject(s)
	}
	res, err := schema.Decode(raw)
	if err != nil {
		// Stored by us, so this does not happen; an unreadable blob must not hide the user.
		return schema.Resource{}
	}
	return res
}

// userRecordKeys and groupRecordKeys are the attributes a response takes from the record (or
// never returns), whatever the stored attributes say.
var (
	userRecordKeys  = []string{"id", "meta", "groups", "active", "password", "schemas", "userName", "externalId"}
	groupRecordKeys = []string{"id", "meta", "schemas", "displayName", "externalId", "members"}
)

// deleteKeys removes from m every key equal to one of names, ignoring case, in one pass over m.
func deleteKeys(m map[string]any, names []string) {
	for k := range m {
		for _, name := range names {
			if strings.EqualFold(k, name) {
				delete(m, k)
				break
			}
		}
	}
}

// userResource builds the full SCIM representation of rec.
func userResource(base string, rec *scimrecord.UserRecord) schema.Resource {
	res := decodeAttributes(rec.Attributes)
	deleteKeys(res, userRecordKeys)
	schema.UserResourceType.KeepFirstPrimary(res)
	res["id"] = rec.ID
	res["userName"] = rec.UserName
	if rec.ExternalID != "" {
		res["externalId"] = rec.ExternalID
	}
	res["active"] = rec.Active
	if len(rec.Groups) > 0 {
		groups := make([]any, 0, len(rec.Groups))
		for _, g := range rec.Groups {
			groups = append(groups, map[string]any{
				"value":   g.ID,
				"display": g.DisplayName,
				"$ref":    base + "/Groups/" + g.ID,
				"type":    "direct",
			})
		}
		res["groups"] = groups
	}
	res["meta"] = meta("User", base+"/Users/"+rec.ID, rec.Created, rec.LastModified, rec.Revision)
	res["schemas"] = schemasOf(schema.UserSchema, res)
	return res
}

// groupFields turns a cleaned Group resource into the record fields it sets.
func groupFields(res schema.Resource) (scimrecord.GroupRecord, error) {
	var rec scimrecord.GroupRecord
	rec.DisplayName = strings.TrimSpace(res.String("displayName"))
	if rec.DisplayName == "" {
		return rec, scimerr.BadRequest(scimerr.InvalidValue, "displayName is required")
	}
	rec.ExternalID = res.String("externalId")
	members, _ := res["members"].([]any)
	seen := make(map[string]int, len(members))
	for _, m := range members {
		obj, _ := m.(map[string]any)
		value, _ := obj["value"].(string)
		if value == "" {
			return rec, scimerr.BadRequest(scimerr.InvalidValue, "every member needs a value (the member's id)")
		}
		if t, _ := obj["type"].(string); t != "" && !strings.EqualFold(t, "User") {
			return rec, scimerr.BadRequest(scimerr.InvalidValue, "only User members are supported")
		}
		display, _ := obj["display"].(string)
		if i, dup := seen[value]; dup {
			if display != "" {
				rec.Members[i].Display = display
			}
			continue
		}
		seen[value] = len(rec.Members)
		rec.Members = append(rec.Members, scimrecord.MemberRef{Value: value, Display: display})
	}
	attrs := map[string]any{}
	for k, v := range res {
		switch strings.ToLower(k) {
		case "displayname", "externalid", "members", "id", "meta", "schemas":
			continue
		}
		attrs[k] = v
	}
	if len(attrs) > 0 {
		raw, err := protocol.Marshal(attrs)
		if err != nil {
			return rec, scimerr.BadRequest(scimerr.InvalidValue, "attributes cannot be encoded")
		}
		rec.Attributes = raw
	}
	return rec, nil
}

// groupResource builds the full SCIM representation of rec.
func groupResource(base string, rec *scimrecord.GroupRecord) schema.Resource {
	res := decodeAttributes(rec.Attributes)
	deleteKeys(res, groupRecordKeys)
	res["id"] = rec.ID
	res["displayName"] = rec.DisplayName
	if rec.ExternalID != "" {
		res["externalId"] = rec.ExternalID
	}
	if len(rec.Members) > 0 {
		members := make([]any, 0, len(rec.Members))
		for _, m := range rec.Members {
			e := map[string]any{"value": m.Value, "$ref": base + "/Users/" + m.Value, "type": "User"}
			if m.Display != "" {
				e["display"] = m.Display
			}
			members = append(members, e)
		}
		res["members"] = members
	}
	res["meta"] = meta("Group", base+"/Groups/"+rec.ID, rec.Created, rec.LastModified, rec.Revision)
	res["schemas"] = schemasOf(schema.GroupSchema, res)
	return res
}

func meta(resourceType, location string, created, modified time.Time, rev string) map[string]any {
	m := map[string]any{"resourceType": resourceType, "location": location}
	if !created.IsZero() {
		m["created"] = created.UTC().Format(timeFormat)
	}
	if !modified.IsZero() {
		m["lastModified"] = modified.UTC().Format(timeFormat)
	}
	if rev != "" {
		m["version"] = etag(rev)
	}
	return m
}

// schemasOf lists the core schema and every extension object present, extensions sorted.
func schemasOf(core string, res schema.Resource) []any {
	var ext []string
	for k, v := range res {
		if _, isObj := v.(map[string]any); isObj && hasURNPrefix(k) {
			ext = append(ext, k)
		}
	}
	sort.Strings(ext)
	out := make([]any, 0, 1+len(ext))
	out = append(out, core)
	for _, e := range ext {
		out = append(out, e)
	}
	return out
}

// writeProjected answers with one resource: its ETag header, Location when
// created, and the projection the query asked for (parsed by the caller).
func writeProjected(w http.ResponseWriter, rt *schema.ResourceType, res schema.Resource, proj protocol.Projection, rev string, status int) error {
	m, _ := res["meta"].(map[string]any)
	loc, _ := m["location"].(string)
	setResourceHeaders(w, rev, loc, status)
	return writeJSON(w, status, proj.Apply(rt, res))
}

// setResourceHeaders sets the headers of an answer with one resource: its ETag, and its
// location when it was created.
func setResourceHeaders(w http.ResponseWriter, rev, location string, status int) {
	if t := etag(rev); t != "" {
		w.Header().Set("ETag", t)
	}
	if status == http.StatusCreated && location != "" {
		w.Header().Set("Location", location)
	}
}
