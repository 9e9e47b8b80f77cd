package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestGroupOktaShapes(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	var users []string
	for i := range 3 {
		w := h.req(http.MethodPost, base+"/Users", fmt.Sprintf(`{"userName":"m%d@example.com"}`, i))
		require.Equal(t, http.StatusCreated, w.Code)
		users = append(users, decode(t, w)["id"].(string))
	}
	members := func(id string) []string {
		var out []string
		for _, m := range h.fake.groups[id].Members {
			out = append(out, m.Value)
		}
		return out
	}

	// Settings saved: list groups; lookup by displayName finds nothing.
	require.Equal(t, 0.0, decode(t, h.req(http.MethodGet, base+"/Groups?startIndex=1&count=100", ""))["totalResults"])
	require.Equal(t, 0.0, decode(t, h.req(http.MethodGet, base+"/Groups?filter="+url.QueryEscape(`displayName eq "Eng"`), ""))["totalResults"])

	// Create with members [] and with members filled.
	w := h.req(http.MethodPost, base+"/Groups", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Eng","members":[]}`)
	require.Equal(t, http.StatusCreated, w.Code, w.Body.String())
	eng := decode(t, w)
	gid := eng["id"].(string)
	require.Equal(t, "https://gatehouse.example.com/v1/webapi/scim/okta/Groups/"+gid, w.Header().Get("Location"))
	require.NotContains(t, eng, "members")
	w = h.req(http.MethodPost, base+"/Groups", `{"displayName":"Ops","members":[{"value":"`+users[0]+`","display":"m0@example.com"}]}`)
	require.Equal(t, http.StatusCreated, w.Code, w.Body.String())
	ops := decode(t, w)
	require.Equal(t, users[0], ops["members"].([]any)[0].(map[string]any)["value"])
	requireSCIMError(t, h.req(http.MethodPost, base+"/Groups", `{"displayName":"eng"}`), http.StatusConflict, "uniqueness")

	// Lookup by displayName, case-insensitive.
	require.Equal(t, 1.0, decode(t, h.req(http.MethodGet, base+"/Groups?filter="+url.QueryEscape(`displayName eq "ENG"`), ""))["totalResults"])

	// Push: add to the empty group (no type on members), with the path-less rename Okta sends too.
	w = h.req(http.MethodPatch, base+"/Groups/"+gid, fmt.Sprintf(patchOp, `[
		{"op":"replace","value":{"id":"`+gid+`","displayName":"Eng"}},
		{"op":"add","path":"members","value":[{"value":"`+users[0]+`","display":"m0@example.com"},{"value":"`+users[1]+`","display":"m1@example.com"}]}]`))
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.Equal(t, []string{users[0], users[1]}, members(gid))

	// Remove by value filter and add another.
	w = h.req(http.MethodPatch, base+"/Groups/"+gid, fmt.Sprintf(patchOp, `[
		{"op":"remove","path":"members[value eq \"`+users[0]+`\"]"},
		{"op":"add","path":"members","value":[{"value":"`+users[2]+`","display":"m2@example.com"}]}]`))
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.Equal(t, []string{users[1], users[2]}, members(gid))

	// Rename (path-less, carrying id).
	w = h.req(http.MethodPatch, base+"/Groups/"+gid, fmt.Sprintf(patchOp, `[{"op":"replace","value":{"id":"`+gid+`","displayName":"Engineering"}}]`))
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.Equal(t, "Engineering", h.fake.groups[gid].DisplayName)
	require.Equal(t, []string{users[1], users[2]}, members(gid), "a rename keeps members")

	// "Push now" on an empty group: replace members [].
	w = h.req(http.MethodPatch, base+"/Groups/"+gid, fmt.Sprintf(patchOp, `[{"op":"replace","path":"members","value":[]}]`))
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.Empty(t, members(gid))

	// Wizard apps: PUT the whole group with the full list (echoing what GET returned).
	got := decode(t, h.req(http.MethodGet, base+"/Groups/"+gid, ""))
	got["members"] = []any{
		map[string]any{"value": users[0], "display": "m0@example.com", "type": "User"},
		map[string]any{"value": users[2]},
		map[string]any{"value": users[0]},
	}
	body, _ := json.Marshal(got)
	w = h.req(http.MethodPut, base+"/Groups/"+gid, string(body))
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.Equal(t, []string{users[0], users[2]}, members(gid), "duplicates collapse")
	tag := w.Header().Get("ETag")
	require.Equal(t, http.StatusNotModified, h.req(http.MethodGet, base+"/Groups/"+gid, "", "If-None-Match", tag).Code)
	requireSCIMError(t, h.req(http.MethodPut, base+"/Groups/"+gid, string(body), "If-Match", `W/"stale"`), http.StatusPreconditionFailed, "")

	// Unlink: DELETE → 204, then 404.
	require.Equal(t, http.StatusNoContent, h.req(http.MethodDelete, base+"/Groups/"+gid, "").Code)
	requireSCIMError(t, h.req(http.MethodGet, base+"/Groups/"+gid, ""), http.StatusNotFound, "")
	require.Equal(t, 1.0, decode(t, h.req(http.MethodGet, base+"/Groups", ""))["totalResults"])
}
