package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/plugins/scim/server"
)

// The protocol tests of Microsoft Entra ID's request shapes (formerly Azure AD), against the real
// handler and provisioner: what is accepted because its meaning is clear, and what stays refused.

const entraBase = server.MountPrefix + "okta"

// do sends one authenticated request with a SCIM body (none when body is "").
func (e *realEnv) do(method, path, body string) (int, map[string]any) {
	e.t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.RemoteAddr = "192.0.2.10:40000"
	r.Header.Set("Authorization", "Bearer "+e.token)
	r.Header.Set("User-Agent", "Azure Active Directory SCIM Client")
	if body != "" {
		r.Header.Set("Content-Type", "application/scim+json")
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	var m map[string]any
	if w.Body.Len() > 0 {
		require.NoError(e.t, json.Unmarshal(w.Body.Bytes(), &m), w.Body.String())
	}
	return w.Code, m
}

// mustDo is do that requires the status.
func (e *realEnv) mustDo(status int, method, path, body string) map[string]any {
	e.t.Helper()
	code, m := e.do(method, path, body)
	require.Equal(e.t, status, code, "%s %s: %v", method, path, m)
	return m
}

// refused requires a 400 SCIM error of scimType whose detail contains want.
func (e *realEnv) refused(scimType, want, method, path, body string) {
	e.t.Helper()
	m := e.mustDo(http.StatusBadRequest, method, path, body)
	require.Equal(e.t, scimType, m["scimType"], m)
	require.Contains(e.t, m["detail"], want)
}

func entraUser(name string) string {
	return `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"` + name + `","externalId":"` + name +
		`","name":{"givenName":"Ada","familyName":"Lovelace"},"active":"True"}`
}

func patchBody(ops string) string {
	return `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":` + ops + `}`
}

// TestEntraEndpointCase: /users, /groups and the discovery endpoints in lower case are the RFC
// endpoints; locations stay in the RFC spelling; a name that is not an endpoint is still 404.
func TestEntraEndpointCase(t *testing.T) {
	t.Parallel()
	e := newRealEnv(t, false)
	u := e.mustDo(http.StatusCreated, http.MethodPost, entraBase+"/users", entraUser("ada@example.com"))
	id := u["id"].(string)
	require.True(t, strings.HasSuffix(u["meta"].(map[string]any)["location"].(string), "/okta/Users/"+id))
	e.mustDo(http.StatusOK, http.MethodGet, entraBase+"/USERS/"+id, "")
	list := e.mustDo(http.StatusOK, http.MethodGet, entraBase+`/users?filter=userName+eq+"ada@example.com"`, "")
	require.EqualValues(t, 1, list["totalResults"])
	e.mustDo(http.StatusOK, http.MethodPatch, entraBase+"/users/"+id, patchBody(`[{"op":"Replace","path":"displayName","value":"Ada"}]`))
	g := e.mustDo(http.StatusCreated, http.MethodPost, entraBase+"/groups", `{"displayName":"Eng"}`)
	e.mustDo(http.StatusOK, http.MethodGet, entraBase+"/groups/"+g["id"].(string), "")
	for _, p := range []string{"/serviceproviderconfig", "/schemas", "/resourcetypes", "/resourcetypes/user"} {
		e.mustDo(http.StatusOK, http.MethodGet, entraBase+p, "")
	}
	e.mustDo(http.StatusNotFound, http.MethodGet, entraBase+"/userz", "")
}

// TestEntraBooleanStrings: "True"/"False" in any case are booleans for boolean attributes, in a
// create, a path-less PATCH and a PATCH with a path; "yes" is refused; a string attribute keeps
// the string "False".
func TestEntraBooleanStrings(t *testing.T) {
	t.Parallel()
	e := newRealEnv(t, false)
	u := e.mustDo(http.StatusCreated, http.MethodPost, entraBase+"/Users", entraUser("ada@example.com"))
	require.Equal(t, true, u["active"])
	path := entraBase + "/Users/" + u["id"].(string)

	u = e.mustDo(http.StatusOK, http.MethodPatch, path, patchBody(`[{"op":"Replace","value":{"active":"False"}}]`))
	require.Equal(t, false, u["active"])
	u = e.mustDo(http.StatusOK, http.MethodPatch, path, patchBody(`[{"op":"Replace","path":"active","value":"TRUE"}]`))
	require.Equal(t, true, u["active"])
	u = e.mustDo(http.StatusOK, http.MethodPatch, path, patchBody(`[{"op":"Replace","path":"emails","value":[{"value":"ada@example.com","primary":"true"}]}]`))
	require.Equal(t, true, u["emails"].([]any)[0].(map[string]any)["primary"])
	u = e.mustDo(http.StatusOK, http.MethodPatch, path, patchBody(`[{"op":"Replace","path":"displayName","value":"False"}]`))
	require.Equal(t, "False", u["displayName"], "only boolean attributes take string booleans")

	e.refused("invalidValue", "active must be of type boolean", http.MethodPatch, path, patchBody(`[{"op":"Replace","value":{"active":"yes"}}]`))
	e.refused("invalidValue", "active must be of type boolean", http.MethodPatch, path, patchBody(`[{"op":"Replace","path":"active","value":"0"}]`))
	e.refused("invalidValue", "active must be of type boolean", http.MethodPost, entraBase+"/Users",
		`{"userName":"bob@example.com","active":"y"}`)
	require.Equal(t, true, e.mustDo(http.StatusOK, http.MethodGet, path, "")["active"], "a refused PATCH changes nothing")
}

// TestEntraCapitalisedOps: "Add", "Replace" and "Remove" are the RFC's ops; an unknown op is
// refused.
func TestEntraCapitalisedOps(t *testing.T) {
	t.Parallel()
	e := newRealEnv(t, false)
	u := e.mustDo(http.StatusCreated, http.MethodPost, entraBase+"/Users", entraUser("ada@example.com"))
	path := entraBase + "/Users/" + u["id"].(string)
	u = e.mustDo(http.StatusOK, http.MethodPatch, path, patchBody(`[
		{"op":"Add","path":"title","value":"Countess"},
		{"op":"Replace","path":"name.givenName","value":"Augusta"},
		{"op":"Remove","path":"name.familyName"}]`))
	require.Equal(t, "Countess", u["title"])
	require.Equal(t, map[string]any{"givenName": "Augusta"}, u["name"])
	e.refused("invalidSyntax", "op must be add, remove or replace", http.MethodPatch, path, patchBody(`[{"op":"Delete","path":"title"}]`))
}

// TestEntraPathlessDottedKeys: a path-less value whose keys are attribute paths (dotted or
// URN-qualified) sets those attributes; a key naming no attribute, or naming one attribute twice,
// is refused.
func TestEntraPathlessDottedKeys(t *testing.T) {
	t.Parallel()
	e := newRealEnv(t, false)
	u := e.mustDo(http.StatusCreated, http.MethodPost, entraBase+"/Users", entraUser("ada@example.com"))
	path := entraBase + "/Users/" + u["id"].(string)
	const ent = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	u = e.mustDo(http.StatusOK, http.MethodPatch, path, patchBody(`[{"op":"Replace","value":{
		"active":false,
		"name.givenName":"Augusta",
		"urn:ietf:params:scim:schemas:core:2.0:User:name.familyName":"King",
		"`+ent+`:department":"Analytical Engines",
		"`+ent+`:manager.value":"babbage"}},
		{"op":"Add","value":{"emails[type eq \"work\"].value":"ada@example.com"}}]`))
	require.Equal(t, false, u["active"])
	require.Equal(t, map[string]any{"givenName": "Augusta", "familyName": "King"}, u["name"])
	require.Equal(t, map[string]any{"department": "Analytical Engines", "manager": map[string]any{"value": "babbage"}}, u[ent])
	require.Equal(t, []any{map[string]any{"type": "work", "value": "ada@example.com"}}, u["emails"])
	require.NotContains(t, u, "name.givenName", "a dotted key is a path, never an attribute of its own")

	for _, tc := range []struct{ value, scimType, detail string }{
		{`{"name.middle":"x"}`, "invalidPath", `"name.middle" names no sub-attribute of name`},
		{`{"nickname.first":"x"}`, "invalidPath", "has no sub-attributes"},
		{`{"shoeSize.left":"x"}`, "invalidPath", `"shoeSize.left" names no attribute`},
		{`{"` + ent + `:division.code":"x"}`, "invalidPath", "has no sub-attributes"},
		{`{"name.givenName":"x","name":{"givenName":"y"}}`, "invalidValue", "names attribute name twice"},
		{`{"name.givenName":"x","NAME.GIVENNAME":"y"}`, "invalidValue", "names attribute name twice"},
		{`{"displayName":"x","DisplayName":"y"}`, "invalidValue", "names attribute displayName twice"},
		{`{"` + ent + `:department":"x","` + ent + `":{"department":"y"}}`, "invalidValue", "names attribute department twice"},
	} {
		e.refused(tc.scimType, tc.detail, http.MethodPatch, path, patchBody(`[{"op":"Replace","value":`+tc.value+`}]`))
	}
	require.Equal(t, "Augusta", e.mustDo(http.StatusOK, http.MethodGet, path, "")["name"].(map[string]any)["givenName"])
}

// TestEntraMembersList: members added as a list of {"value": id} in one op, and removed the same
// way; a member that is not an object with a value is refused.
func TestEntraMembersList(t *testing.T) {
	t.Parallel()
	e := newRealEnv(t, false)
	var ids []string
	for _, n := range []string{"ada@example.com", "charles@example.com", "mary@example.com"} {
		ids = append(ids, e.mustDo(http.StatusCreated, http.MethodPost, entraBase+"/users", entraUser(n))["id"].(string))
	}
	g := e.mustDo(http.StatusCreated, http.MethodPost, entraBase+"/groups", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Engines","members":[]}`)
	path := entraBase + "/groups/" + g["id"].(string)
	members := func(m map[string]any) []string {
		var out []string
		list, _ := m["members"].([]any)
		for _, x := range list {
			out = append(out, x.(map[string]any)["value"].(string))
		}
		return out
	}
	g = e.mustDo(http.StatusOK, http.MethodPatch, path, patchBody(`[{"op":"Add","path":"members","value":[{"value":"`+ids[0]+`"},{"value":"`+ids[1]+`"},{"value":"`+ids[2]+`"}]}]`))
	require.ElementsMatch(t, ids, members(g))
	g = e.mustDo(http.StatusOK, http.MethodPatch, path, patchBody(`[{"op":"Remove","path":"members","value":[{"value":"`+ids[0]+`"},{"value":"`+ids[2]+`"}]}]`))
	require.Equal(t, []string{ids[1]}, members(g))
	g = e.mustDo(http.StatusOK, http.MethodPatch, path, patchBody(`[{"op":"Add","value":{"members":[{"value":"`+ids[2]+`"}]}}]`))
	require.ElementsMatch(t, []string{ids[1], ids[2]}, members(g))
	e.refused("invalidValue", "members must be of type complex", http.MethodPatch, path, patchBody(`[{"op":"Add","path":"members","value":["`+ids[0]+`"]}]`))
	e.refused("invalidValue", "every member needs a value", http.MethodPatch, path, patchBody(`[{"op":"Add","path":"members","value":[{"display":"ada"}]}]`))
}

// TestExternalIDNotUnique: RFC 7643 §3.1 does not make externalId unique, so a second user (or
// group) with the same externalId is created, and a filter on it returns every match (paged, in a
// stable order), still from the index. userName and displayName stay unique.
func TestExternalIDNotUnique(t *testing.T) {
	t.Parallel()
	e := newRealEnv(t, false)
	var ids []string
	for _, n := range []string{"ada@example.com", "charles@example.com"} {
		ids = append(ids, e.mustDo(http.StatusCreated, http.MethodPost, entraBase+"/Users", fmt.Sprintf(`{"userName":%q,"externalId":"shared-1"}`, n))["id"].(string))
	}
	e.mustDo(http.StatusConflict, http.MethodPost, entraBase+"/Users", `{"userName":"ADA@example.com","externalId":"other"}`)
	list := e.mustDo(http.StatusOK, http.MethodGet, entraBase+`/Users?filter=externalId+eq+"shared-1"`, "")
	require.EqualValues(t, 2, list["totalResults"])
	var got []string
	for _, r := range list["Resources"].([]any) {
		got = append(got, r.(map[string]any)["id"].(string))
	}
	require.ElementsMatch(t, ids, got)
	page2 := e.mustDo(http.StatusOK, http.MethodGet, entraBase+`/Users?filter=externalId+eq+"shared-1"&startIndex=2&count=1`, "")
	require.EqualValues(t, 2, page2["totalResults"])
	require.Len(t, page2["Resources"], 1)
	require.Equal(t, got[1], page2["Resources"].([]any)[0].(map[string]any)["id"], "pages follow one order")
	both := e.mustDo(http.StatusOK, http.MethodGet, entraBase+`/Users?filter=externalId+eq+"shared-1"+and+userName+eq+"charles@example.com"`, "")
	require.EqualValues(t, 1, both["totalResults"])
	none := e.mustDo(http.StatusOK, http.MethodGet, entraBase+`/Users?filter=externalId+eq+"SHARED-1"`, "")
	require.EqualValues(t, 0, none["totalResults"], "externalId is caseExact")

	for _, n := range []string{"Eng", "Ops"} {
		e.mustDo(http.StatusCreated, http.MethodPost, entraBase+"/Groups", fmt.Sprintf(`{"displayName":%q,"externalId":"g-shared"}`, n))
	}
	e.mustDo(http.StatusConflict, http.MethodPost, entraBase+"/Groups", `{"displayName":"ENG","externalId":"g-other"}`)
	groups := e.mustDo(http.StatusOK, http.MethodGet, entraBase+`/Groups?filter=externalId+eq+"g-shared"`, "")
	require.EqualValues(t, 2, groups["totalResults"])
}
