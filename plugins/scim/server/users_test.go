package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"
)

const patchOp = `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":%s}`

func TestUserLifecycle(t *testing.T) {
	t.Parallel()
	h := newHarness(t)

	// Okta's lookup before create: no match is 200 with an empty list.
	w := h.req(http.MethodGet, base+"/Users?filter="+url.QueryEscape(`userName eq "jane@example.com"`)+"&startIndex=1&count=100", "")
	require.Equal(t, http.StatusOK, w.Code)
	require.JSONEq(t, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"totalResults":0,"startIndex":1,"itemsPerPage":0,"Resources":[]}`, w.Body.String())

	// Create: 201, Location, full user, no password anywhere.
	w = h.req(http.MethodPost, base+"/Users", janeJSON)
	require.Equal(t, http.StatusCreated, w.Code, w.Body.String())
	jane := decode(t, w)
	id := jane["id"].(string)
	loc := "https://gatehouse.example.com/v1/webapi/scim/okta/Users/" + id
	require.Equal(t, loc, w.Header().Get("Location"))
	require.NotContains(t, w.Body.String(), "password")
	require.NotContains(t, w.Body.String(), "Pl@ceholder")
	require.NotContains(t, string(h.fake.users[id].Attributes), "Pl@ceholder", "the password is never handed to the store")
	require.NotContains(t, string(h.fake.users[id].Attributes), `"id"`)
	require.True(t, h.fake.users[id].Active)
	require.Equal(t, "00u1abcd", h.fake.users[id].ExternalID)
	meta := jane["meta"].(map[string]any)
	require.Equal(t, "User", meta["resourceType"])
	require.Equal(t, loc, meta["location"])
	require.Equal(t, "2025-01-02T03:04:05.000Z", meta["created"])
	require.Equal(t, w.Header().Get("ETag"), meta["version"])
	require.Equal(t, true, jane["active"])
	require.Equal(t, []any{"urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"}, jane["schemas"])
	ext := jane["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"].(map[string]any)
	require.Equal(t, "12345678901234567890", ext["employeeNumber"], "numbers-as-strings survive")
	require.NotContains(t, jane, "groups", "no memberships yet")

	// GET: ETag, If-None-Match → 304.
	w = h.req(http.MethodGet, base+"/Users/"+id, "")
	require.Equal(t, http.StatusOK, w.Code)
	tag := w.Header().Get("ETag")
	require.Regexp(t, `^W/".+"$`, tag)
	w = h.req(http.MethodGet, base+"/Users/"+id, "", "If-None-Match", tag)
	require.Equal(t, http.StatusNotModified, w.Code)
	require.Empty(t, w.Body.String())
	require.Equal(t, http.StatusOK, h.req(http.MethodGet, base+"/Users/"+id, "", "If-None-Match", `W/"other"`).Code)

	// PUT what GET returned, with a profile change (Okta never sends If-Match; read-only id,
	// meta, groups are ignored).
	got := decode(t, h.req(http.MethodGet, base+"/Users/"+id, ""))
	got["displayName"] = "Jane Q. Doe"
	got["id"] = "forged"
	got["meta"] = map[string]any{"version": `W/"1"`}
	got["groups"] = []any{map[string]any{"value": "g-1"}}
	got["password"] = "another-placeholder"
	body, _ := json.Marshal(got)
	w = h.req(http.MethodPut, base+"/Users/"+id, string(body))
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	put := decode(t, w)
	require.Equal(t, id, put["id"])
	require.Equal(t, "Jane Q. Doe", put["displayName"])
	require.NotContains(t, put, "groups")
	require.NotContains(t, w.Body.String(), "placeholder")
	require.NotEqual(t, tag, w.Header().Get("ETag"))

	// PUT with a stale If-Match: 412; with the current one: 200.
	w = h.req(http.MethodPut, base+"/Users/"+id, string(body), "If-Match", tag)
	requireSCIMError(t, w, http.StatusPreconditionFailed, "")
	w = h.req(http.MethodPut, base+"/Users/"+id, string(body), "If-Match", put["meta"].(map[string]any)["version"].(string))
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())

	// PATCH deactivate (Okta's path-less shape, op capitalized), then reactivate.
	w = h.req(http.MethodPatch, base+"/Users/"+id, fmt.Sprintf(patchOp, `[{"op":"Replace","value":{"active":false}}]`))
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.Equal(t, false, decode(t, w)["active"])
	require.False(t, h.fake.users[id].Active)
	require.Equal(t, "Jane Q. Doe", decode(t, h.req(http.MethodGet, base+"/Users/"+id, ""))["displayName"], "other attributes are kept")
	// The deactivated user is still found by the userName filter, in any case.
	w = h.req(http.MethodGet, base+"/Users?filter="+url.QueryEscape(`userName eq "JANE@EXAMPLE.COM"`), "")
	list := decode(t, w)
	require.Equal(t, 1.0, list["totalResults"])
	require.Equal(t, false, list["Resources"].([]any)[0].(map[string]any)["active"])
	w = h.req(http.MethodPatch, base+"/Users/"+id, fmt.Sprintf(patchOp, `[{"op":"replace","value":{"id":"`+id+`","active":true}}]`))
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.True(t, h.fake.users[id].Active)

	// Wizard-style PUT with active false.
	got = decode(t, h.req(http.MethodGet, base+"/Users/"+id, ""))
	got["active"] = false
	body, _ = json.Marshal(got)
	require.Equal(t, http.StatusOK, h.req(http.MethodPut, base+"/Users/"+id, string(body)).Code)
	require.False(t, h.fake.users[id].Active)
	// A PUT without active keeps the state.
	delete(got, "active")
	body, _ = json.Marshal(got)
	require.Equal(t, http.StatusOK, h.req(http.MethodPut, base+"/Users/"+id, string(body)).Code)
	require.False(t, h.fake.users[id].Active)

	// PATCH with a value filter and a URN path.
	w = h.req(http.MethodPatch, base+"/Users/"+id, fmt.Sprintf(patchOp, `[
		{"op":"replace","path":"emails[type eq \"work\"].value","value":"jane.doe@example.com"},
		{"op":"replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department","value":"Sec"}]`))
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	p := decode(t, w)
	require.Equal(t, "jane.doe@example.com", p["emails"].([]any)[0].(map[string]any)["value"])
	require.Equal(t, "Sec", p["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"].(map[string]any)["department"])

	// DELETE: 204, then 404.
	require.Equal(t, http.StatusNoContent, h.req(http.MethodDelete, base+"/Users/"+id, "").Code)
	requireSCIMError(t, h.req(http.MethodGet, base+"/Users/"+id, ""), http.StatusNotFound, "")
}

func TestUpdateRetriesWithoutIfMatch(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id := h.createJane()["id"].(string)
	deactivate := fmt.Sprintf(patchOp, `[{"op":"replace","value":{"active":false}}]`)

	// Two lost races, then success: no If-Match, so the server re-reads and re-applies.
	h.fake.failUpdates = 2
	w := h.req(http.MethodPatch, base+"/Users/"+id, deactivate)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.False(t, h.fake.users[id].Active)
	require.Equal(t, 3, h.fake.calls["UpdateUser"])

	// With If-Match, a lost race is 412 at once.
	tag := decode(t, h.req(http.MethodGet, base+"/Users/"+id, ""))["meta"].(map[string]any)["version"].(string)
	h.fake.failUpdates = 1
	w = h.req(http.MethodPatch, base+"/Users/"+id, deactivate, "If-Match", tag)
	requireSCIMError(t, w, http.StatusPreconditionFailed, "")

	// Losing every time: a retryable 503, never a silent overwrite.
	h.fake.failUpdates = 100
	w = h.req(http.MethodPatch, base+"/Users/"+id, deactivate)
	requireSCIMError(t, w, http.StatusServiceUnavailable, "")
	require.NotEmpty(t, w.Header().Get("Retry-After"))
}

func TestListUsers(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for i := range 7 {
		w := h.req(http.MethodPost, base+"/Users", fmt.Sprintf(`{"userName":"u%d@example.com","externalId":"00u%d","displayName":"User %d","title":"%s","password":"x"}`,
			i, i, i, map[bool]string{true: "eng", false: "ops"}[i%2 == 0]))
		require.Equal(t, http.StatusCreated, w.Code, w.Body.String())
	}
	list := func(query string) map[string]any {
		t.Helper()
		w := h.req(http.MethodGet, base+"/Users?"+query, "")
		require.Equal(t, http.StatusOK, w.Code, w.Body.String())
		return decode(t, w)
	}
	ids := func(m map[string]any) []string {
		var out []string
		for _, r := range m["Resources"].([]any) {
			out = append(out, r.(map[string]any)["id"].(string))
		}
		return out
	}

	// Okta's Test API Credentials.
	m := list("startIndex=1&count=2")
	require.Equal(t, 7.0, m["totalResults"])
	require.Equal(t, 1.0, m["startIndex"])
	require.Equal(t, 2.0, m["itemsPerPage"])
	// Stable order across pages; pages do not overlap and cover everything.
	var all []string
	for start := 1; start <= 7; start += 3 {
		all = append(all, ids(list(fmt.Sprintf("startIndex=%d&count=3", start)))...)
	}
	require.Len(t, all, 7)
	require.IsIncreasing(t, all)
	require.Equal(t, all, ids(list("")))
	require.Empty(t, ids(list("startIndex=100")))
	require.Equal(t, 7.0, list("count=0")["totalResults"])

	// A total that lags behind (another server's creates, not yet in a
	// cached count) does not cut the listing short: paging to the end
	// still returns every user.
	h.fake.mu.Lock()
	h.fake.countLag = 3
	h.fake.mu.Unlock()
	var lagged []string
	for start := 1; ; start += 3 {
		page := ids(list(fmt.Sprintf("startIndex=%d&count=3", start)))
		if len(page) == 0 {
			break
		}
		lagged = append(lagged, page...)
	}
	require.Equal(t, all, lagged)
	require.Equal(t, 7.0, list("startIndex=4&count=100")["totalResults"], "the total is corrected by what the scan saw")
	h.fake.mu.Lock()
	h.fake.countLag = 0
	h.fake.mu.Unlock()

	// Indexed lookups do not scan.
	scans := h.fake.calls["ListUsers"]
	require.Equal(t, 1.0, list("filter=" + url.QueryEscape(`externalId eq "00u3"`))["totalResults"])
	require.Equal(t, 0.0, list("filter=" + url.QueryEscape(`externalId eq "00U3"`))["totalResults"], "externalId is caseExact")
	require.Equal(t, 1.0, list("filter=" + url.QueryEscape(`id eq "`+all[4]+`"`))["totalResults"])
	require.Equal(t, 1.0, list("filter=" + url.QueryEscape(`urn:ietf:params:scim:schemas:core:2.0:User:userName eq "U5@EXAMPLE.COM"`))["totalResults"])
	require.Equal(t, scans, h.fake.calls["ListUsers"])

	// Other filters scan and evaluate.
	m = list("filter=" + url.QueryEscape(`title eq "eng" and active eq true`) + "&count=2")
	require.Equal(t, 4.0, m["totalResults"])
	require.Len(t, m["Resources"], 2)
	m = list("filter=" + url.QueryEscape(`userName sw "U1" or displayName co "6"`))
	require.Equal(t, 2.0, m["totalResults"])

	// Projection: attributes keeps what was asked plus id/schemas/meta; excludedAttributes drops.
	m = list("filter=" + url.QueryEscape(`userName eq "u1@example.com"`) + "&attributes=userName")
	r := m["Resources"].([]any)[0].(map[string]any)
	require.ElementsMatch(t, []string{"id", "userName", "schemas", "meta"}, keys(r))
	m = list("filter=" + url.QueryEscape(`userName eq "u1@example.com"`) + "&excludedAttributes=displayName,title")
	r = m["Resources"].([]any)[0].(map[string]any)
	require.NotContains(t, r, "displayName")
	require.Contains(t, r, "userName")
	w := h.req(http.MethodGet, base+"/Users/"+all[0]+"?attributes=displayName", "")
	require.ElementsMatch(t, []string{"id", "displayName", "schemas", "meta"}, keys(decode(t, w)))
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
