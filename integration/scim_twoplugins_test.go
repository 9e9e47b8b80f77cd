package integration

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSCIMTwoPluginsStayApart: a company with two Okta apps (say its staff's and its
// contractors') installs two plugins, each with its own SCIM token and connector. Against the real
// binary, on SQLite, the holder of one plugin's token (the less trusted app's administrator, or
// whoever stole it) can do nothing to the other's: its token is refused on the other's URL, it
// cannot see, change, deactivate or delete the other's records by id or by filter, it cannot take
// over an account the other plugin provisioned by creating the same userName in any case or
// Unicode spelling, and it cannot lift the lock the other plugin's deactivation left.
func TestSCIMTwoPluginsStayApart(t *testing.T) {
	o := startOktaOnSQLite(t)
	srv, work, gatectl, admin, staffToken, staff := o.srv, o.work, o.gatectl, o.admin, o.token, o.scim
	admin("create", "-f", resourceFile(t, work, "contractors-saml", `kind: saml
version: v1
metadata:
  name: contractors
spec:
  display: Contractors
  acs: https://gatehouse.example.com/v1/webapi/saml/acs/contractors
  entity_descriptor: |
`+indent(idpMetadata(t), "    ")+"\n"))
	var install struct {
		Token string `json:"token"`
	}
	out := admin("plugins", "install", "okta", "--name", "contractors", "--saml-connector", "contractors", "--default-roles", "access", "--format", "json").stdout
	require.NoError(t, json.Unmarshal([]byte(out), &install), out)
	contractors := newSCIMClient(t, srv, "contractors", install.Token, 2)

	// Each token only on its own URL.
	require.Equal(t, http.StatusUnauthorized, newSCIMClient(t, srv, "okta", install.Token, 1).do(http.MethodGet, "/Users", nil).status)
	require.Equal(t, http.StatusUnauthorized, newSCIMClient(t, srv, "contractors", staffToken, 1).do(http.MethodGet, "/Users", nil).status)

	const jane = "jane@example.com"
	janeID := staff.do(http.MethodPost, "/Users", oktaUser(jane, "00ujane")).expect(t, http.StatusCreated).body["id"].(string)
	accountExists := func(name string) bool { return gatectl("get", "user/"+name).code == 0 }
	locksOn := func(name string) []map[string]any {
		t.Helper()
		var locks []map[string]any
		out := admin("locks", "ls", "--user", name, "--format", "json").stdout
		require.NoError(t, json.Unmarshal([]byte(out), &locks), out)
		return locks
	}
	require.True(t, accountExists(jane))

	// The contractors' token cannot reach jane's record, by id or by filter.
	for _, r := range []scimResponse{
		contractors.do(http.MethodGet, "/Users/"+janeID, nil),
		contractors.do(http.MethodPatch, "/Users/"+janeID, patchBody(map[string]any{"op": "replace", "value": map[string]any{"active": false}})),
		contractors.do(http.MethodPut, "/Users/"+janeID, oktaUser(jane, "00ujane")),
		contractors.do(http.MethodDelete, "/Users/"+janeID, nil),
	} {
		require.Equal(t, http.StatusNotFound, r.status, "%s", r.raw)
	}
	list := contractors.do(http.MethodGet, "/Users?filter="+url.QueryEscape(`userName eq "`+jane+`"`), nil).expect(t, http.StatusOK)
	require.EqualValues(t, 0, list.body["totalResults"], "%s", list.raw)
	list = contractors.do(http.MethodGet, "/Users", nil).expect(t, http.StatusOK)
	require.EqualValues(t, 0, list.body["totalResults"], "%s", list.raw)

	// Nor take over jane's account by creating her name, in any spelling that names the same
	// account.
	for _, name := range []string{jane, "JANE@example.com", "Jane@Example.COM", "ｊａｎｅ@example.com"} {
		r := contractors.do(http.MethodPost, "/Users", oktaUser(name, "00uevil"))
		require.Equal(t, http.StatusConflict, r.status, "%q: %s", name, r.raw)
	}
	require.True(t, accountExists(jane))
	require.Empty(t, locksOn(jane))

	// The staff app deactivates jane: account gone, locked. The contractors' token can neither
	// re-create the account nor lift the lock, with a create or a create-then-deactivate-then-
	// reactivate of its own.
	staff.do(http.MethodPatch, "/Users/"+janeID, patchBody(map[string]any{"op": "replace", "value": map[string]any{"active": false}})).expect(t, http.StatusOK)
	require.False(t, accountExists(jane))
	require.Len(t, locksOn(jane), 1)
	// The name is free again, so the contractors' app may provision its own jane: a new account
	// (a new incarnation, so no credential of the old one works), still held by the staff
	// plugin's lock on the name, which the contractors' own deactivation and reactivation do not
	// lift (each plugin lifts only its own lock).
	staffLock := locksOn(jane)[0]["name"]
	contractorsID := contractors.do(http.MethodPost, "/Users", oktaUser(jane, "00uevil")).expect(t, http.StatusCreated).body["id"].(string)
	owner := func() string {
		t.Helper()
		var u struct {
			Metadata struct {
				Labels map[string]string `json:"labels"`
			} `json:"metadata"`
		}
		out := admin("get", "user/"+jane, "--format", "json").stdout
		require.NoError(t, json.Unmarshal([]byte(out), &u), out)
		return u.Metadata.Labels["gatehouse.dev/plugin"]
	}
	require.Equal(t, "contractors", owner())
	for _, active := range []bool{false, true} {
		contractors.do(http.MethodPatch, "/Users/"+contractorsID, patchBody(map[string]any{"op": "replace", "value": map[string]any{"active": active}})).expect(t, http.StatusOK)
	}
	locks := locksOn(jane)
	require.Len(t, locks, 1, "%v", locks)
	require.Equal(t, staffLock, locks[0]["name"], "the staff plugin's lock stays")
	require.True(t, accountExists(jane))

	// And the staff app cannot take the name back from the contractors' account: its
	// reactivation is refused, with nothing changed.
	r := staff.do(http.MethodPatch, "/Users/"+janeID, patchBody(map[string]any{"op": "replace", "value": map[string]any{"active": true}}))
	require.Equal(t, http.StatusConflict, r.status, "%s", r.raw)
	require.Equal(t, "uniqueness", r.body["scimType"])
	require.Equal(t, "contractors", owner())
	require.Equal(t, staffLock, locksOn(jane)[0]["name"])
	r = staff.do(http.MethodGet, "/Users/"+janeID, nil).expect(t, http.StatusOK)
	require.Equal(t, false, r.body["active"], "the staff record stays deactivated")
}
