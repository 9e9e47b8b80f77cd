package server

import (
	"net/http"
	"strings"
	"time"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/scim/scimrecord"
	"github.com/gatehouse/gatehouse/plugins/scim/protocol"
	"github.com/gatehouse/gatehouse/plugins/scim/schema"
)

// The fast path of a User response: Okta's lookup (`userName eq`), GET /Users/{id} and the
// answers to writes, all with the default projection, encoded straight from the record: the
// stored attributes' JSON is copied member by member into the response, merged in key order
// with what the record holds (id, userName, externalId, active, groups, meta, schemas), instead
// of decoding it into a map, building the representation (userResource), projecting it
// (Projection.Apply) and encoding it again. That was most of the CPU a lookup spends in this
// package.
//
// The response must be the slow path's byte for byte, so renderUser declines (and the caller
// takes the slow path) whenever it cannot be sure:
//   - the stored attributes are not canonical JSON (protocol.IsCanonicalObject): a record
//     written by other code, or anything the encoder would write differently;
//   - Projection.KeepsRaw says the default projection would drop or filter a member
//     (returned:never or returned:request attributes, empty values, returned:never
//     sub-attributes);
//   - a multi-valued attribute has more than one primary value (KeepFirstPrimary would
//     rewrite it).
//
// Stored members that userResource deletes (userRecordKeys, any case: id, meta, groups, active,
// password, schemas, userName, externalId) are skipped, exactly as deleteKeys removes them, so
// the record's own values are the only ones shown. TestRenderUserMatchesSlowPath and
// FuzzLookupRender hold the two paths to the same bytes.

// userRecordFields are the members a User response takes from the record, in the encoder's
// (sorted) order.
var userRecordFields = [...]string{"active", "externalId", "groups", "id", "meta", "schemas", "userName"}

// rawMember is one stored member to copy.
type rawMember struct{ key, value string }

// renderUser appends the default-projection representation of rec (base being the plugin's SCIM
// URL) to buf, as userResource + Projection.Apply + the encoder would write it; ok is false, with
// buf unchanged, when it cannot tell that it would.
func renderUser(buf []byte, base string, rec *scimrecord.UserRecord) ([]byte, bool) {
	var (
		memberSpace [24]rawMember
		extSpace    [4]string
		members     = memberSpace[:0]
		exts        = extSpace[:0]
	)
	if len(rec.Attributes) > 0 {
		attrs := string(rec.Attributes)
		if !protocol.IsCanonicalObject(attrs) {
			return buf, false
		}
		it := protocol.NewMembers(attrs)
		for k, v, ok := it.Next(); ok; k, v, ok = it.Next() {
			if isUserRecordKey(k) {
				continue
			}
			if !(protocol.Projection{}).KeepsRaw(userRT, k, v) || manyPrimaries(v) {
				return buf, false
			}
			// schemasOf: every extension object present.
			if v[0] == '{' && hasURNPrefix(k) {
				exts = append(exts, k)
			}
			members = append(members, rawMember{k, v})
		}
	}
	buf = append(buf, '{')
	next := 0
	for _, m := range members {
		for ; next < len(userRecordFields) && userRecordFields[next] < m.key; next++ {
			buf = appendUserField(buf, next, base, rec, exts)
		}
		buf = appendComma(buf)
		buf = append(buf, '"')
		buf = append(buf, m.key...)
		buf = append(buf, `":`...)
		buf = append(buf, m.value...)
	}
	for ; next < len(userRecordFields); next++ {
		buf = appendUserField(buf, next, base, rec, exts)
	}
	return append(buf, '}'), true
}

// appendUserField writes userRecordFields[i] of rec, if rec has it.
func appendUserField(buf []byte, i int, base string, rec *scimrecord.UserRecord, exts []string) []byte {
	name := userRecordFields[i]
	switch {
	case name == "externalId" && rec.ExternalID == "",
		name == "groups" && len(rec.Groups) == 0:
		return buf
	}
	buf = appendComma(buf)
	buf = append(buf, '"')
	buf = append(buf, name...)
	buf = append(buf, `":`...)
	switch name {
	case "active":
		if rec.Active {
			return append(buf, "true"...)
		}
		return append(buf, "false"...)
	case "externalId":
		return protocol.AppendString(buf, rec.ExternalID)
	case "groups":
		buf = append(buf, '[')
		for j, g := range rec.Groups {
			if j > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, `{"$ref":`...)
			buf = protocol.AppendString(buf, base, "/Groups/", g.ID)
			buf = append(buf, `,"display":`...)
			buf = protocol.AppendString(buf, g.DisplayName)
			buf = append(buf, `,"type":"direct","value":`...)
			buf = protocol.AppendString(buf, g.ID)
			buf = append(buf, '}')
		}
		return append(buf, ']')
	case "id":
		return protocol.AppendString(buf, rec.ID)
	case "meta":
		return appendMeta(buf, "User", base, "/Users/", rec.ID, rec.Created, rec.LastModified, rec.Revision)
	case "schemas":
		buf = append(buf, '[')
		buf = protocol.AppendString(buf, schema.UserSchema)
		for _, e := range exts {
			buf = append(buf, ',')
			buf = protocol.AppendString(buf, e)
		}
		return append(buf, ']')
	default: // userName
		return protocol.AppendString(buf, rec.UserName)
	}
}

// appendMeta writes what meta(resourceType, base+endpoint+id, ...) encodes to.
func appendMeta(buf []byte, resourceType, base, endpoint, id string, created, modified time.Time, rev string) []byte {
	buf = append(buf, '{')
	if !created.IsZero() {
		buf = append(buf, `"created":`...)
		buf = appendTime(buf, created)
		buf = append(buf, ',')
	}
	if !modified.IsZero() {
		buf = append(buf, `"lastModified":`...)
		buf = appendTime(buf, modified)
		buf = append(buf, ',')
	}
	buf = append(buf, `"location":`...)
	buf = protocol.AppendString(buf, base, endpoint, id)
	buf = append(buf, `,"resourceType":`...)
	buf = protocol.AppendString(buf, resourceType)
	if rev != "" {
		buf = append(buf, `,"version":`...)
		buf = protocol.AppendString(buf, `W/"`, rev, `"`)
	}
	return append(buf, '}')
}

// appendTime writes t as meta formats it, as a JSON string: timeFormat writes only digits and
// "-:.TZ+", which the encoder copies as they are.
func appendTime(buf []byte, t time.Time) []byte {
	buf = append(buf, '"')
	buf = appendUTCMillis(buf, t)
	return append(buf, '"')
}

// appendUTCMillis is t.UTC().AppendFormat(buf, timeFormat) written digit by digit, for the
// years 0 to 9999 that timeFormat writes in four digits (AppendFormat itself for the others):
// the layout interpreter was a tenth of a lookup's encoding. TestAppendUTCMillis and
// FuzzAppendUTCMillis hold the two to the same bytes.
func appendUTCMillis(buf []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(buf, timeFormat)
	}
	hour, minute, sec := t.Clock()
	buf = appendDigits(buf, year, 4)
	buf = append(buf, '-')
	buf = appendDigits(buf, int(month), 2)
	buf = append(buf, '-')
	buf = appendDigits(buf, day, 2)
	buf = append(buf, 'T')
	buf = appendDigits(buf, hour, 2)
	buf = append(buf, ':')
	buf = appendDigits(buf, minute, 2)
	buf = append(buf, ':')
	buf = appendDigits(buf, sec, 2)
	buf = append(buf, '.')
	// Truncated, as AppendFormat's ".000" does.
	buf = appendDigits(buf, t.Nanosecond()/int(time.Millisecond), 3)
	return append(buf, 'Z')
}

// appendDigits writes 0 <= n < 10^width in exactly width digits.
func appendDigits(buf []byte, n, width int) []byte {
	var d [4]byte
	for i := width - 1; i >= 0; i-- {
		d[i] = byte('0' + n%10)
		n /= 10
	}
	return append(buf, d[:width]...)
}

// appendComma separates a member from the one before it (none after the opening brace).
func appendComma(buf []byte) []byte {
	if buf[len(buf)-1] != '{' {
		buf = append(buf, ',')
	}
	return buf
}

// isUserRecordKey reports whether deleteKeys(res, userRecordKeys) removes k.
func isUserRecordKey(k string) bool {
	for _, name := range userRecordKeys {
		if strings.EqualFold(k, name) {
			return true
		}
	}
	return false
}

// manyPrimaries reports whether value is an array with more than one object holding
// "primary": true, which KeepFirstPrimary would rewrite. It looks at every array, not only the
// attributes KeepFirstPrimary repairs: declining more often is safe.
func manyPrimaries(value string) bool {
	if value[0] != '[' {
		return false
	}
	primaries := 0
	elems := protocol.NewElements(value)
	for e, ok := elems.Next(); ok; e, ok = elems.Next() {
		if e[0] != '{' {
			continue
		}
		members := protocol.NewMembers(e)
		for k, v, ok := members.Next(); ok; k, v, ok = members.Next() {
			if k == "primary" && v == "true" {
				primaries++
				break
			}
		}
	}
	return primaries > 1
}

// hasURNPrefix is strings.HasPrefix(strings.ToLower(k), "urn:") without the copy.
func hasURNPrefix(k string) bool { return len(k) >= 4 && strings.EqualFold(k[:4], "urn:") }

// renderFunc encodes one record of a kind as its default-projection representation, or
// declines (see renderUser).
type renderFunc[T any] func(buf []byte, base string, item T) ([]byte, bool)

// writeRenderedList answers a lookup with the page recs of its total matches, each encoded by
// render, or reports false, having written nothing, when render declines one of them.
func writeRenderedList[T any](w http.ResponseWriter, render renderFunc[T], base string, total int, page protocol.Page, recs []T) (bool, error) {
	written, err := protocol.WriteEncoded(w, http.StatusOK, func(buf []byte) ([]byte, bool) {
		buf = protocol.AppendListStart(buf, total, page, len(recs))
		for i, rec := range recs {
			if i > 0 {
				buf = append(buf, ',')
			}
			var ok bool
			if buf, ok = render(buf, base, rec); !ok {
				return buf, false
			}
		}
		protocol.SetNoStore(w.Header())
		return protocol.AppendListEnd(buf), true
	})
	return written, trace.Wrap(err)
}

// writeRendered answers with one record encoded by render, with the headers writeProjected
// sets, or reports false, having written nothing, when render declines it.
func writeRendered[T any](w http.ResponseWriter, render renderFunc[T], base string, rec T, rev, location string, status int) (bool, error) {
	written, err := protocol.WriteEncoded(w, status, func(buf []byte) ([]byte, bool) {
		buf, ok := render(buf, base, rec)
		if ok {
			setResourceHeaders(w, rev, location, status)
			protocol.SetNoStore(w.Header())
		}
		return buf, ok
	})
	return written, trace.Wrap(err)
}
