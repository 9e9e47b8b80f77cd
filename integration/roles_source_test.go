package integration

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/auth/saml/samltest"
)

// TestSCIMUserRolesHaveOneSource is issue #11's end-to-end test of where a
// SCIM user's roles come from: default_roles plus the roles its pushed
// groups map to through the connector, and nothing else. Against the real
// binary, the roles (and traits) SCIM wrote stay the same across SAML
// logins whose assertion maps to another role or to none, and change only
// with SCIM writes (create, group push, PATCH). A login writes nothing to
// a SCIM-managed account. Then gatectl lists and lifts the account's
// deactivation lock, and the lift is audited under who lifted it.
func TestSCIMUserRolesHaveOneSource(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs binaries")
	}
	gatehouseBin, gatectlBin := buildBinaries(t)
	dataDir, work := t.TempDir(), t.TempDir()
	srv := startGatehouseLogged(t, gatehouseBin, dataDir)
	gatectl, admin := gatectlOn(t, gatectlBin, dataDir)
	base := "https://" + srv.webAddr
	apply := func(name, doc string) {
		t.Helper()
		admin("create", "-f", resourceFile(t, work, name, doc))
	}
	for _, r := range []string{"dev", "eng", "samlonly"} {
		apply(r, "kind: role\nversion: v1\nmetadata:\n  name: "+r+"\nspec:\n  allow:\n    logins: ["+r+"]\n  options:\n    max_session_ttl: 8h\n")
	}
	// The SAML attribute maps admins → samlonly; the SCIM group
	// Engineering maps to eng (the connector's "groups" entries).
	idp := samltest.NewIdP(t, samltest.Options{})
	apply("okta", `kind: saml
version: v1
metadata:
  name: okta
spec:
  display: Okta
  acs: `+base+`/v1/webapi/saml/acs/okta
  attributes_to_roles:
    - name: `+samltest.GroupsAttribute+`
      value: admins
      roles: [samlonly]
    - name: groups
      value: Engineering
      roles: [eng]
  entity_descriptor: |
`+indent(idp.MetadataXML(t), "    ")+"\n")
	scim := newSCIMClient(t, srv, "okta", registerAndInstallOkta(t, srv, admin, idp), 2)

	type userJSON struct {
		Metadata struct {
			Revision string `json:"revision"`
			Expires  string `json:"expires"`
		} `json:"metadata"`
		Spec struct {
			Roles  []string            `json:"roles"`
			Traits map[string][]string `json:"traits"`
		} `json:"spec"`
	}
	const jane = "jane@example.com"
	getJane := func() userJSON {
		t.Helper()
		var u userJSON
		r := admin("get", "user/"+jane, "--format", "json")
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &u), r.stdout)
		return u
	}
	// login signs jane in through SAML with the IdP's groups and checks
	// that the account is as SCIM left it (same revision: the login wrote
	// nothing) and that the session carries the stored roles.
	login := func(wantRoles []string, idpGroups ...string) {
		t.Helper()
		before := getJane()
		idp.AddUser(t, "jane", jane, "jane-password", idpGroups...)
		p := newPerson(t, srv)
		p.samlLogin(idp, "jane", "jane-password")
		after := getJane()
		require.Equal(t, wantRoles, after.Spec.Roles, "SAML login with IdP groups %v", idpGroups)
		require.Equal(t, before.Spec.Traits, after.Spec.Traits, "the login rewrote no trait")
		require.Equal(t, before.Metadata.Revision, after.Metadata.Revision, "the login wrote nothing")
		require.Empty(t, after.Metadata.Expires, "a SCIM user stays long-lived")
		status, body := p.get("/v1/webapi/sessions/current")
		require.Equal(t, http.StatusOK, status, body)
		var sess struct {
			Roles []string `json:"roles"`
		}
		require.NoError(t, json.Unmarshal([]byte(body), &sess))
		require.Equal(t, wantRoles, sess.Roles, "the session has the stored roles, not the mapping's")
	}

	// Create: default_roles.
	janeID := scim.do(http.MethodPost, "/Users", oktaUser(jane, "00ujane")).expect(t, http.StatusCreated).body["id"].(string)
	require.Equal(t, []string{"dev"}, getJane().Spec.Roles)
	login([]string{"dev"}, "admins") // maps to samlonly: not added
	login([]string{"dev"})           // maps to nothing: still signed in

	// Group push: default_roles ∪ the group's mapping.
	gid := scim.do(http.MethodPost, "/Groups", map[string]any{
		"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"}, "displayName": "Engineering", "members": []any{},
	}).expect(t, http.StatusCreated).body["id"].(string)
	scim.do(http.MethodPatch, "/Groups/"+gid, patchBody(
		map[string]any{"op": "replace", "value": map[string]any{"id": gid, "displayName": "Engineering"}},
		map[string]any{"op": "add", "path": "members", "value": []any{map[string]any{"value": janeID, "display": jane}}},
	)).expect(t, http.StatusOK)
	require.Equal(t, []string{"dev", "eng"}, getJane().Spec.Roles)
	require.Equal(t, []string{"Engineering"}, getJane().Spec.Traits["groups"])
	login([]string{"dev", "eng"}, "admins")
	login([]string{"dev", "eng"}, "sales")

	// A profile PATCH keeps SCIM's roles; the logins in between changed
	// nothing for it to put back.
	scim.do(http.MethodPatch, "/Users/"+janeID, patchBody(
		map[string]any{"op": "replace", "value": map[string]any{"displayName": "Jane Q. Doe"}},
	)).expect(t, http.StatusOK)
	require.Equal(t, []string{"dev", "eng"}, getJane().Spec.Roles)
	login([]string{"dev", "eng"}, "admins")

	// Leaving the group takes its role away; a login does not bring it
	// back.
	scim.do(http.MethodPatch, "/Groups/"+gid, patchBody(
		map[string]any{"op": "remove", "path": `members[value eq "` + janeID + `"]`},
	)).expect(t, http.StatusOK)
	require.Equal(t, []string{"dev"}, getJane().Spec.Roles)
	login([]string{"dev"}, "admins")

	// Deactivation locks jane; gatectl lists the lock by user and lifts it
	// (confirmed with --yes); the account stays deleted, and the lift is
	// audited under the operator.
	scim.do(http.MethodPatch, "/Users/"+janeID, patchBody(
		map[string]any{"op": "replace", "value": map[string]any{"active": false}},
	)).expect(t, http.StatusOK)
	r := admin("locks", "ls", "--user", "Jane@Example.com", "--format", "json")
	var locks []struct {
		Name   string `json:"name"`
		Target string `json:"target"`
		Plugin string `json:"plugin"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &locks), r.stdout)
	require.Len(t, locks, 1)
	require.Equal(t, "user="+jane, locks[0].Target)
	require.Equal(t, "okta", locks[0].Plugin)
	r = gatectl("locks", "rm", "--user", jane)
	require.Equal(t, 1, r.code, "not confirmed without --yes or a typed yes: %s", r.String())
	require.Contains(t, r.stderr, "it stays deleted")
	r = admin("locks", "rm", "--user", jane, "--yes")
	require.Contains(t, r.stdout, `Lock "`+locks[0].Name+`" on user=`+jane+` lifted.`)
	r = admin("locks", "ls", "--user", jane)
	require.Contains(t, r.stdout, "No lock targets user")
	require.Equal(t, 1, gatectl("get", "user/"+jane).code, "lifting the lock does not bring the account back")
	r = admin("events", "ls", "--type", "lock.delete", "--format", "json")
	var events []struct {
		User     string `json:"user"`
		Resource string `json:"resource"`
		Message  string `json:"message"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &events), r.stdout)
	require.Len(t, events, 1)
	require.Equal(t, "@admin", events[0].User)
	require.Equal(t, "lock/"+locks[0].Name, events[0].Resource)
	require.Equal(t, "lock lifted on user="+jane, events[0].Message, "the event says whose lock it was")

	// Okta assigns jane again: SCIM re-creates the account with SCIM's
	// roles.
	scim.do(http.MethodPatch, "/Users/"+janeID, patchBody(
		map[string]any{"op": "replace", "value": map[string]any{"active": true}},
	)).expect(t, http.StatusOK)
	require.Equal(t, []string{"dev"}, getJane().Spec.Roles)
	login([]string{"dev"}, "admins")
}
