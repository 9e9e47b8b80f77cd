package integration

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSCIMStrangersOnTheRealServer speaks to the real binary, on SQLite, as three clients that
// are not Okta: a strict client written from RFC 7643/7644 alone, Microsoft Entra ID's
// provisioning service with its known habits, and a generic SCIM compliance suite. Each request
// is one those clients send; each answer is checked against the section of the RFC it quotes, or
// against the dialect rule of docs/scim.md, section by section on one server. What the Okta
// flows already hold (scim_test.go, scim_patchactive_test.go) is not repeated.
func TestSCIMStrangersOnTheRealServer(t *testing.T) {
	o := startOktaOnSQLite(t)
	c := o.scim
	patch := func(kind, id, ops string, headers ...string) scimResponse {
		t.Helper()
		return c.do(http.MethodPatch, "/"+kind+"/"+id, `{"schemas":["`+patchSchema+`"],"Operations":`+ops+`}`, headers...)
	}
	// scimErr checks a SCIM error body: status (a string) and scimType ("" for none).
	scimErr := func(r scimResponse, status int, scimType string) {
		t.Helper()
		r.expect(t, status)
		require.Equal(t, []any{"urn:ietf:params:scim:api:messages:2.0:Error"}, r.body["schemas"], "%s", r.raw)
		require.IsType(t, "", r.body["status"])
		if scimType == "" {
			require.NotContains(t, r.body, "scimType", "%s", r.raw)
		} else {
			require.Equal(t, scimType, r.body["scimType"], "%s", r.raw)
		}
	}
	list := func(query string) []map[string]any {
		t.Helper()
		r := c.do(http.MethodGet, "/Users?"+query, nil).expect(t, http.StatusOK)
		var out []map[string]any
		for _, res := range r.body["Resources"].([]any) {
			out = append(out, res.(map[string]any))
		}
		return out
	}
	names := func(rs []map[string]any) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r["userName"].(string))
		}
		return out
	}

	// A strict client's user, created from RFC 7643 §4.1 alone.
	ada := c.do(http.MethodPost, "/Users", map[string]any{
		"schemas":    []string{"urn:ietf:params:scim:schemas:core:2.0:User"},
		"userName":   "ada@example.com",
		"externalId": "Ext-Ada",
		"name":       map[string]any{"givenName": "Ada", "familyName": "Lovelace"},
		"emails":     []any{map[string]any{"value": "ada@example.com", "type": "work", "primary": true}},
		"addresses":  []any{map[string]any{"type": "work", "formatted": "1 Main St"}},
		"password":   "t1meMach1ne!",
	}).expect(t, http.StatusCreated)
	adaID := ada.body["id"].(string)
	bob := c.do(http.MethodPost, "/Users", map[string]any{
		"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"}, "userName": "bob@example.com", "title": "Engineer",
	}).expect(t, http.StatusCreated)
	bobID := bob.body["id"].(string)

	// Discovery.
	{
		// RFC 7644 §4: "If a "filter" is provided, the service provider SHOULD respond with HTTP
		// status code 403 (Forbidden) to ensure that clients cannot incorrectly assume that any
		// matching conditions specified in a filter are true." It was the whole list with 200.
		for _, path := range []string{"/ServiceProviderConfig", "/ResourceTypes", "/Schemas", "/ResourceTypes/User"} {
			scimErr(c.do(http.MethodGet, path+"?"+filterQuery(`id eq "User"`), nil), http.StatusForbidden, "")
			c.do(http.MethodGet, path, nil).expect(t, http.StatusOK)
		}
		// RFC 7644 §3.11: "A service provider that does NOT support this feature SHOULD respond
		// with HTTP status code 501 (Not Implemented)." It was 404, which a client reads as a
		// wrong base URL; the detail says why.
		for _, m := range []string{http.MethodGet, http.MethodPatch} {
			r := c.do(m, "/Me", nil)
			scimErr(r, http.StatusNotImplemented, "")
			require.Contains(t, r.body["detail"], "/Me is not supported")
		}
		// Unauthenticated, /Me is the same 401 as every path.
		anon := *c
		anon.token = ""
		scimErr(anon.do(http.MethodGet, "/Me", nil), http.StatusUnauthorized, "")

		// RFC 7643 §7: the schema says what the server does. password is returned never; a
		// group's displayName, which the server keeps unique (409 below), says uniqueness server.
		attrs := func(urn string) map[string]map[string]any {
			r := c.do(http.MethodGet, "/Schemas/"+urn, nil).expect(t, http.StatusOK)
			out := map[string]map[string]any{}
			for _, a := range r.body["attributes"].([]any) {
				out[a.(map[string]any)["name"].(string)] = a.(map[string]any)
			}
			return out
		}
		user := attrs("urn:ietf:params:scim:schemas:core:2.0:User")
		require.Equal(t, "never", user["password"]["returned"])
		require.Equal(t, "server", user["userName"]["uniqueness"])
		require.Equal(t, "server", attrs("urn:ietf:params:scim:schemas:core:2.0:Group")["displayName"]["uniqueness"])
		spc := c.do(http.MethodGet, "/ServiceProviderConfig", nil).expect(t, http.StatusOK)
		require.Equal(t, false, spc.body["bulk"].(map[string]any)["supported"])
		require.Equal(t, true, spc.body["etag"].(map[string]any)["supported"])
	}

	// The password is never returned.
	{
		// RFC 7643 §4.1.1 password: returned "never", even when asked for by name.
		for _, q := range []string{"", "?attributes=password", "?attributes=userName,password"} {
			r := c.do(http.MethodGet, "/Users/"+adaID+q, nil).expect(t, http.StatusOK)
			require.NotContains(t, r.body, "password", q)
			require.NotContains(t, string(r.raw), "t1meMach1ne!", q)
		}
		r := c.do(http.MethodPost, "/Users/.search", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],"attributes":["password"]}`).expect(t, http.StatusOK)
		require.NotContains(t, string(r.raw), "t1meMach1ne!")
	}

	// Location and versions.
	{
		// RFC 7644 §3.3: the Location header is the resource's URI, meta.location;
		// §3.14: the ETag header is meta.version.
		require.Equal(t, ada.header.Get("Location"), ada.body["meta"].(map[string]any)["location"])
		require.Equal(t, ada.header.Get("ETag"), ada.body["meta"].(map[string]any)["version"])
		get := c.do(http.MethodGet, "/Users/"+adaID, nil).expect(t, http.StatusOK)
		etag := get.header.Get("ETag")
		require.NotEmpty(t, etag)
		// §3.14: If-None-Match on a GET of an unchanged resource is 304; If-Match that does not
		// match on a write is 412, and nothing is written.
		require.Equal(t, http.StatusNotModified, c.do(http.MethodGet, "/Users/"+adaID, nil, "If-None-Match", etag).status)
		scimErr(patch("Users", adaID, `[{"op":"replace","path":"title","value":"x"}]`, "If-Match", `W/"1"`), http.StatusPreconditionFailed, "")
		require.Equal(t, etag, c.do(http.MethodGet, "/Users/"+adaID, nil).expect(t, http.StatusOK).header.Get("ETag"))
	}

	// Paging edges.
	{
		// RFC 7644 §3.4.2.4: "A value less than 1 SHALL be interpreted as 1" (startIndex), and
		// count "A negative value SHALL be interpreted as 0"; count 0 asks for the total only.
		for _, q := range []string{"startIndex=0&count=1", "startIndex=-4&count=1"} {
			r := c.do(http.MethodGet, "/Users?"+q, nil).expect(t, http.StatusOK)
			require.EqualValues(t, 1, r.body["startIndex"], q)
			require.Len(t, r.body["Resources"], 1, q)
			require.EqualValues(t, 2, r.body["totalResults"], q)
		}
		for _, q := range []string{"count=0", "count=-3"} {
			r := c.do(http.MethodGet, "/Users?"+q, nil).expect(t, http.StatusOK)
			require.EqualValues(t, 2, r.body["totalResults"], q)
			require.EqualValues(t, 0, r.body["itemsPerPage"], q)
			require.Equal(t, []any{}, r.body["Resources"], q)
		}
		// A startIndex past the end is an empty page, not an error.
		r := c.do(http.MethodGet, "/Users?startIndex=50", nil).expect(t, http.StatusOK)
		require.Equal(t, []any{}, r.body["Resources"])
		// Not an integer: 400 invalidValue (§3.12), never a silent default.
		scimErr(c.do(http.MethodGet, "/Users?count=ten", nil), http.StatusBadRequest, "invalidValue")
		scimErr(c.do(http.MethodGet, "/Users?startIndex=one", nil), http.StatusBadRequest, "invalidValue")
	}

	// Filters.
	{
		// RFC 7644 §3.4.2.2: every operator, grouping and not; attribute names are
		// case-insensitive (RFC 7643 §2.1); userName is caseExact false, externalId true.
		lastModified := ada.body["meta"].(map[string]any)["lastModified"].(string)
		for _, tc := range []struct {
			filter string
			want   []string
		}{
			{`title pr`, []string{"bob@example.com"}},
			{`not (title pr)`, []string{"ada@example.com"}},
			// eq null asks for an unassigned attribute and ne null, its complement, for an
			// assigned one (ne null matched every user).
			{`title eq null`, []string{"ada@example.com"}},
			{`title ne null`, []string{"bob@example.com"}},
			{`meta.lastModified ge "` + lastModified + `"`, []string{"ada@example.com", "bob@example.com"}},
			{`meta.lastModified gt "2999-01-01T00:00:00Z"`, nil},
			{`(userName sw "ADA" or userName sw "bob") and not (title eq "nobody")`, []string{"ada@example.com", "bob@example.com"}},
			{`USERNAME Eq "BOB@EXAMPLE.COM"`, []string{"bob@example.com"}},
			// userName compares in its canonical form (NFKC plus case folding, issue #10) in
			// every filter, as the index answering a lone equality does: a fullwidth "ＡＤＡ"
			// found Ada alone but not inside an or, and not() matched her.
			{`userName eq "ＡＤＡ@example.com"`, []string{"ada@example.com"}},
			{`userName eq "ＡＤＡ@example.com" or title eq "nobody"`, []string{"ada@example.com"}},
			{`not (userName eq "ＡＤＡ@example.com")`, []string{"bob@example.com"}},
			{`userName sw "ＡＤＡ"`, []string{"ada@example.com"}},
			{`externalId eq "Ext-Ada"`, []string{"ada@example.com"}},
			{`externalId eq "ext-ada"`, nil},
			{`emails[type eq "work" and value co "ada"]`, []string{"ada@example.com"}},
			{`urn:ietf:params:scim:schemas:core:2.0:User:name.givenName eq "ada"`, []string{"ada@example.com"}},
		} {
			require.Equal(t, tc.want, names(list("attributes=userName&"+filterQuery(tc.filter))), tc.filter)
		}
		// §3.4.2.2: a malformed filter, an unknown operator, a value of the wrong type is
		// 400 invalidFilter. A value path is not a filter attribute (its ABNF has no
		// "valuePath.subAttr" comparison).
		for _, f := range []string{`userName xx "a"`, `userName eq`, `meta.lastModified gt "yesterday"`,
			`active gt true`, `emails[type eq "work"].value co "ada"`, `(userName eq "a"`} {
			scimErr(c.do(http.MethodGet, "/Users?"+filterQuery(f), nil), http.StatusBadRequest, "invalidFilter")
		}
		// §3.4.3: POST .search answers as the GET query does.
		r := c.do(http.MethodPost, "/Users/.search", map[string]any{
			"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:SearchRequest"},
			"filter":  `title pr`, "attributes": []string{"USERNAME"}, "startIndex": 1, "count": 10,
		}).expect(t, http.StatusOK)
		require.EqualValues(t, 1, r.body["totalResults"])
		got := r.body["Resources"].([]any)[0].(map[string]any)
		require.Equal(t, "bob@example.com", got["userName"])
		require.NotContains(t, got, "title")
	}

	// attributes and excludedAttributes.
	{
		// RFC 7644 §3.9: names in any case, sub-attributes by path; returned "always"
		// attributes (id, schemas, meta) cannot be excluded.
		r := c.do(http.MethodGet, "/Users/"+adaID+"?attributes=USERNAME,Name.GivenName", nil).expect(t, http.StatusOK)
		require.Equal(t, "ada@example.com", r.body["userName"])
		require.Equal(t, map[string]any{"givenName": "Ada"}, r.body["name"])
		require.NotContains(t, r.body, "emails")
		r = c.do(http.MethodGet, "/Users/"+adaID+"?excludedAttributes=emails,id,meta,schemas", nil).expect(t, http.StatusOK)
		require.NotContains(t, r.body, "emails")
		for _, k := range []string{"id", "meta", "schemas", "userName"} {
			require.Contains(t, r.body, k)
		}
	}

	// Errors.
	{
		// RFC 7644 §3.12's status and scimType for each mistake a client makes.
		scimErr(c.do(http.MethodPost, "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"displayName":"x"}`), http.StatusBadRequest, "invalidValue")
		scimErr(c.do(http.MethodPost, "/Users", `{"schemas":`), http.StatusBadRequest, "invalidSyntax")
		scimErr(c.do(http.MethodPost, "/Users", map[string]any{"userName": "ADA@example.com"}), http.StatusConflict, "uniqueness")
		c.do(http.MethodPost, "/Groups", map[string]any{"displayName": "Dup"}).expect(t, http.StatusCreated)
		scimErr(c.do(http.MethodPost, "/Groups", map[string]any{"displayName": "dup"}), http.StatusConflict, "uniqueness")
		scimErr(patch("Users", adaID, `[{"op":"replace","path":"id","value":"x"}]`), http.StatusBadRequest, "mutability")
		scimErr(patch("Users", adaID, `[{"op":"replace","path":"emails[type eq","value":"x"}]`), http.StatusBadRequest, "invalidPath")
		scimErr(patch("Users", adaID, `[{"op":"replace","path":"emails[type eq \"home\"].value","value":"x"}]`), http.StatusBadRequest, "noTarget")
		scimErr(patch("Users", adaID, `[{"op":"remove"}]`), http.StatusBadRequest, "noTarget")
		scimErr(patch("Users", adaID, `[{"op":"move","path":"title"}]`), http.StatusBadRequest, "invalidSyntax")
		scimErr(c.do(http.MethodPatch, "/Users/"+adaID, `{"Operations":[{"op":"add","path":"title","value":"x"}]}`), http.StatusBadRequest, "invalidSyntax")
		scimErr(patch("Users", "00000000-0000-0000-0000-000000000000", `[{"op":"add","path":"title","value":"x"}]`), http.StatusNotFound, "")
		// §3.5.2: a path that names no attribute of the resource is invalidPath. "name.middle"
		// (for name.middleName) was stored as a new sub-attribute with 200, as if applied;
		// the same key in a path-less value was already refused.
		for _, p := range []string{`name.middle`, `emails[type eq \"work\"].shoe`} {
			scimErr(patch("Users", adaID, `[{"op":"add","path":"`+p+`","value":"x"}]`), http.StatusBadRequest, "invalidPath")
		}
		r := c.do(http.MethodGet, "/Users/"+adaID, nil).expect(t, http.StatusOK)
		require.Equal(t, map[string]any{"givenName": "Ada", "familyName": "Lovelace"}, r.body["name"])
	}

	// schemas in bodies.
	{
		// RFC 7643 §3 makes "schemas" REQUIRED. Deliberately lenient (docs/scim.md): a body
		// without it, or naming another resource's schema, is read as the endpoint's resource,
		// and the answer carries the right schemas only.
		for i, schemas := range []any{nil, []string{"urn:ietf:params:scim:schemas:core:2.0:Group"}} {
			body := map[string]any{"userName": "lax" + string(rune('a'+i)) + "@example.com"}
			if schemas != nil {
				body["schemas"] = schemas
			}
			r := c.do(http.MethodPost, "/Users", body).expect(t, http.StatusCreated)
			require.Equal(t, []any{"urn:ietf:params:scim:schemas:core:2.0:User"}, r.body["schemas"], "%s", r.raw)
			require.Equal(t, "User", r.body["meta"].(map[string]any)["resourceType"])
			c.do(http.MethodDelete, "/Users/"+r.body["id"].(string), nil).expect(t, http.StatusNoContent)
		}
	}

	// Microsoft Entra ID.
	{
		entra := *c
		entraDo := func(method, path string, body any) scimResponse {
			t.Helper()
			return entra.do(method, path, body, "User-Agent", "Azure Active Directory SCIM Client", "Content-Type", "application/scim+json")
		}
		entraPatch := func(kind, id, ops string) scimResponse {
			t.Helper()
			return entraDo(http.MethodPatch, "/"+strings.ToLower(kind)+"/"+id, `{"schemas":["`+patchSchema+`"],"Operations":`+ops+`}`)
		}
		// Lookup by externalId, then create, on the lower-case endpoint.
		r := entraDo(http.MethodGet, "/users?"+filterQuery(`externalId eq "e-grace"`), nil).expect(t, http.StatusOK)
		require.EqualValues(t, 0, r.body["totalResults"])
		grace := entraDo(http.MethodPost, "/users", map[string]any{
			"schemas":    []string{"urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"},
			"userName":   "grace@example.com",
			"externalId": "e-grace",
			"active":     "True",
			"emails":     []any{map[string]any{"value": "grace@example.com", "type": "work", "primary": true}},
			"addresses":  []any{map[string]any{"type": "work", "formatted": "1 Navy Way"}},
		}).expect(t, http.StatusCreated)
		graceID := grace.body["id"].(string)
		require.Equal(t, true, grace.body["active"])
		r = entraDo(http.MethodGet, "/users?"+filterQuery(`externalId eq "e-grace"`), nil).expect(t, http.StatusOK)
		require.EqualValues(t, 1, r.body["totalResults"])

		// Capitalised ops, filtered paths, the manager as {"value": id} and as a bare id (the
		// latter was 400 invalidValue), booleans as strings, path-less keys that are paths.
		mgr := `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager`
		r = entraPatch("Users", graceID, `[
			{"op":"Replace","path":"emails[type eq \"work\"].value","value":"grace.hopper@example.com"},
			{"op":"Replace","path":"addresses[type eq \"work\"].formatted","value":"2 Navy Way"},
			{"op":"Add","path":"`+mgr+`","value":{"value":"`+adaID+`"}},
			{"op":"Replace","value":{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department":"Navy","name.givenName":"Grace"}}
		]`).expect(t, http.StatusOK)
		require.Equal(t, "grace.hopper@example.com", r.body["emails"].([]any)[0].(map[string]any)["value"])
		require.Equal(t, "2 Navy Way", r.body["addresses"].([]any)[0].(map[string]any)["formatted"])
		ext := r.body["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"].(map[string]any)
		require.Equal(t, adaID, ext["manager"].(map[string]any)["value"])
		require.Equal(t, "Navy", ext["department"])
		require.Equal(t, "Grace", r.body["name"].(map[string]any)["givenName"])
		r = entraPatch("Users", graceID, `[{"op":"Replace","path":"`+mgr+`","value":"`+bobID+`"}]`).expect(t, http.StatusOK)
		ext = r.body["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"].(map[string]any)
		require.Equal(t, map[string]any{"value": bobID}, ext["manager"])
		r = entraPatch("Users", graceID, `[{"op":"Remove","path":"`+mgr+`"}]`).expect(t, http.StatusOK)
		require.NotContains(t, r.body["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"], "manager")

		// An empty PATCH (was 400 invalidSyntax) is answered with the resource and writes
		// nothing: the version stays.
		before := entraDo(http.MethodGet, "/users/"+graceID, nil).expect(t, http.StatusOK)
		r = entraPatch("Users", graceID, `[]`).expect(t, http.StatusOK)
		require.Equal(t, before.header.Get("ETag"), r.header.Get("ETag"))
		require.Equal(t, before.body["meta"], r.body["meta"])
		// Operations missing altogether is still malformed.
		scimErr(entraDo(http.MethodPatch, "/users/"+graceID, `{"schemas":["`+patchSchema+`"]}`), http.StatusBadRequest, "invalidSyntax")

		// Groups: members added as a list, removed by a filtered path.
		g := entraDo(http.MethodPost, "/groups", map[string]any{
			"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"}, "displayName": "Navy", "externalId": "e-navy",
		}).expect(t, http.StatusCreated)
		gID := g.body["id"].(string)
		r = entraPatch("Groups", gID, `[{"op":"Add","path":"members","value":[{"value":"`+graceID+`"},{"value":"`+bobID+`"}]}]`).expect(t, http.StatusOK)
		require.Len(t, r.body["members"], 2)
		r = entraPatch("Groups", gID, `[{"op":"Remove","path":"members[value eq \"`+bobID+`\"]"}]`).expect(t, http.StatusOK)
		require.Len(t, r.body["members"], 1)
		require.Equal(t, graceID, r.body["members"].([]any)[0].(map[string]any)["value"])
		r = entraDo(http.MethodGet, "/groups?"+filterQuery(`externalId eq "e-navy"`)+"&excludedAttributes=members", nil).expect(t, http.StatusOK)
		require.EqualValues(t, 1, r.body["totalResults"])

		// Soft delete: active "False" deactivates (account deleted and locked), and the record
		// still answers with active false; "True" brings the account back.
		entraPatch("Users", graceID, `[{"op":"Replace","path":"active","value":"False"}]`).expect(t, http.StatusOK)
		r = entraDo(http.MethodGet, "/users/"+graceID, nil).expect(t, http.StatusOK)
		require.Equal(t, false, r.body["active"])
		require.NotEqual(t, 0, o.gatectl("get", "user/grace@example.com").code, "deactivated: the account is gone")
		var locks []json.RawMessage
		out := o.admin("locks", "ls", "--user", "grace@example.com", "--format", "json").stdout
		require.NoError(t, json.Unmarshal([]byte(out), &locks), out)
		require.Len(t, locks, 1, out)
		entraPatch("Users", graceID, `[{"op":"Replace","path":"active","value":"True"}]`).expect(t, http.StatusOK)
		require.Equal(t, 0, o.gatectl("get", "user/grace@example.com").code, "reactivated: the account is back")

		// A dialect never widens reach: an Entra-shaped rename onto the operator's account is
		// refused like any other (docs/security.md), and the account is untouched.
		scimErr(entraPatch("Users", graceID, `[{"op":"Replace","path":"userName","value":"admin"}]`), http.StatusConflict, "uniqueness")
		r = entraDo(http.MethodGet, "/users/"+graceID, nil).expect(t, http.StatusOK)
		require.Equal(t, "grace@example.com", r.body["userName"])
	}

	// Nothing leaked the password.
	for _, r := range []scimResponse{ada, bob} {
		require.NotContains(t, string(r.raw), "t1meMach1ne!")
	}
}
