package integration

import (
	"encoding/json"
	"net/http"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSCIMActiveOnlyPatchOnTheRealServer: a PATCH that only sets active (Okta's deactivation)
// has a fast path that sets it on the stored record without building the full representation,
// for records in the form the full path writes back; everything else takes the full path.
// Against the real binary, on SQLite, every way of saying "active" that a client following the
// RFC rather than Okta's habits may send deactivates and reactivates the account the same way
// (account deleted and locked, then back with the lock lifted), whichever path answers it, and
// keeps the record's other attributes exactly; what is not a boolean is refused with nothing
// changed; a stale If-Match changes nothing.
func TestSCIMActiveOnlyPatchOnTheRealServer(t *testing.T) {
	o := startOktaOnSQLite(t)
	gatectl, admin, c := o.gatectl, o.admin, o.scim
	const patchSchema = `"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"]`

	n := 0
	// create makes a user from Okta's shape plus extra members, and returns its id and name.
	create := func(extra map[string]any) (string, string) {
		t.Helper()
		n++
		name := "active" + strconv.Itoa(n) + "@example.com"
		body := oktaUser(name, "00uact"+strconv.Itoa(n))
		for k, v := range extra {
			body[k] = v
		}
		r := c.do(http.MethodPost, "/Users", body).expect(t, http.StatusCreated)
		return r.body["id"].(string), name
	}
	// requireState checks the record's active, the account and the plugin's lock together.
	requireState := func(id, name string, active bool, why string) map[string]any {
		t.Helper()
		r := c.do(http.MethodGet, "/Users/"+id, nil).expect(t, http.StatusOK)
		require.Equal(t, active, r.body["active"], why)
		require.Equal(t, active, gatectl("get", "user/"+name).code == 0, "%s: the account exists only while active", why)
		var locks []json.RawMessage
		out := admin("locks", "ls", "--user", name, "--format", "json").stdout
		require.NoError(t, json.Unmarshal([]byte(out), &locks), out)
		require.Equal(t, !active, len(locks) == 1, "%s: locked only while inactive: %s", why, out)
		return r.body
	}
	patch := func(id, ops string, headers ...string) scimResponse {
		t.Helper()
		return c.do(http.MethodPatch, "/Users/"+id, `{`+patchSchema+`,"Operations":`+ops+`}`, headers...)
	}
	withoutMeta := func(body map[string]any) map[string]any {
		out := map[string]any{}
		for k, v := range body {
			if k != "meta" && k != "active" {
				out[k] = v
			}
		}
		return out
	}

	deactivate := []string{
		`[{"op":"replace","value":{"active":false}}]`,      // Okta
		`[{"op":"replace","path":"active","value":false}]`, // with a path
		`[{"op":"Replace","path":"Active","value":false}]`, // names in another case
		`[{"op":"replace","path":"urn:ietf:params:scim:schemas:core:2.0:User:active","value":false}]`,
		`[{"op":"add","path":"active","value":false}]`,                                              // add on a single value replaces it
		`[{"op":"replace","value":{"Active":false}}]`,                                               // a member name in another case
		`[{"op":"replace","path":"active","value":true},{"op":"replace","value":{"active":false}}]`, // the last counts
		`[{"op":"replace","value":{"active":"False"}}]`,                                             // a boolean as a string (docs/scim.md, Dialects)
	}
	reactivate := `[{"op":"replace","path":"active","value":true}]`
	records := []struct {
		what  string
		extra map[string]any
	}{
		{"Okta's record", nil},
		{"two emails (the full path's)", map[string]any{"emails": []any{
			map[string]any{"value": "a@example.com", "type": "work", "primary": true},
			map[string]any{"value": "b@example.com", "type": "home"},
		}}},
		{"an extension this server does not know", map[string]any{
			"schemas": []any{"urn:ietf:params:scim:schemas:core:2.0:User", "urn:example:params:scim:schemas:extension:acme:2.0:User"},
			"urn:example:params:scim:schemas:extension:acme:2.0:User": map[string]any{"badge": "B-7", "floor": 3},
			"title": "Lead", "nickName": "Ace",
		}},
	}
	for _, rec := range records {
		for _, ops := range deactivate {
			id, name := create(rec.extra)
			before := withoutMeta(requireState(id, name, true, rec.what))
			r := patch(id, ops).expect(t, http.StatusOK)
			require.Equal(t, false, r.body["active"], "%s, %s: %s", rec.what, ops, r.raw)
			after := requireState(id, name, false, rec.what+", "+ops)
			require.Equal(t, before, withoutMeta(after), "%s, %s: nothing else changed", rec.what, ops)
			// Again: nothing to do, still deactivated and locked once.
			patch(id, ops).expect(t, http.StatusOK)
			requireState(id, name, false, rec.what+", twice")
			patch(id, reactivate).expect(t, http.StatusOK)
			require.Equal(t, before, withoutMeta(requireState(id, name, true, rec.what+", reactivated")), "%s, %s", rec.what, ops)
		}
	}

	t.Logf("deactivated and reactivated %d ways", len(records)*len(deactivate))
	// Not a boolean: refused, nothing changed (the fast path takes only booleans, and the full
	// path refuses these). A null, which unassigns in RFC 7644's terms, leaves active as it was.
	id, name := create(nil)
	for _, tc := range []struct {
		ops    string
		status int
	}{
		{`[{"op":"replace","path":"active","value":0}]`, http.StatusBadRequest},
		{`[{"op":"replace","path":"active","value":"no"}]`, http.StatusBadRequest},
		{`[{"op":"replace","path":"active","value":[false]}]`, http.StatusBadRequest},
		{`[{"op":"replace","path":"active","value":{"active":false}}]`, http.StatusBadRequest},
		{`[{"op":"replace","value":{"active":false,"userName":""}}]`, http.StatusBadRequest},
		{`[{"op":"replace","path":"active","value":null}]`, http.StatusOK},
		{`[{"op":"replace","value":{"active":null}}]`, http.StatusOK},
	} {
		r := patch(id, tc.ops)
		require.Equal(t, tc.status, r.status, "%s: %s", tc.ops, r.raw)
		requireState(id, name, true, tc.ops)
	}
	// A stale If-Match: 412, nothing changed.
	cur := c.do(http.MethodGet, "/Users/"+id, nil).expect(t, http.StatusOK)
	version := cur.body["meta"].(map[string]any)["version"].(string)
	patch(id, `[{"op":"replace","value":{"title":"moved on"}}]`).expect(t, http.StatusOK)
	r := patch(id, `[{"op":"replace","value":{"active":false}}]`, "If-Match", version)
	require.Equal(t, http.StatusPreconditionFailed, r.status, string(r.raw))
	requireState(id, name, true, "stale If-Match")
}
