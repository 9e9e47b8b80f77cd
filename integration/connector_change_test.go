package integration

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/auth/saml/samltest"
)

// TestSCIMConnectorChangeCountsFromTheNextWrite: the roles a SCIM write
// gives come from the SAML connector as it is when the write runs. The
// provisioner keeps the decoded connector between writes (decoding it on
// every write cost CPU), so against the real binary, on SQLite: an
// operator who narrows the connector's group mapping with `gatectl create
// --force`, or replaces it, sees the very next SCIM write use the new
// mapping, for an existing account and for a new one; a write is never
// served from the mapping it replaced.
func TestSCIMConnectorChangeCountsFromTheNextWrite(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs binaries")
	}
	gatehouseBin, gatectlBin := buildBinaries(t)
	dataDir, work := t.TempDir(), t.TempDir()
	srv := startGatehouseLogged(t, gatehouseBin, dataDir)
	gatectl, admin := gatectlOn(t, gatectlBin, dataDir)
	base := "https://" + srv.webAddr
	write := func(name, doc string) string { return resourceFile(t, work, name, doc) }
	for _, r := range []string{"dev", "eng", "ops"} {
		admin("create", "-f", write(r, "kind: role\nversion: v1\nmetadata:\n  name: "+r+"\nspec:\n  allow:\n    logins: ["+r+"]\n"))
	}
	idp := samltest.NewIdP(t, samltest.Options{})
	connector := func(group, role string) string {
		return `kind: saml
version: v1
metadata:
  name: okta
spec:
  display: Okta
  acs: ` + base + `/v1/webapi/saml/acs/okta
  attributes_to_roles:
    - name: groups
      value: ` + group + `
      roles: [` + role + `]
  entity_descriptor: |
` + indent(idp.MetadataXML(t), "    ") + "\n"
	}
	admin("create", "-f", write("okta-eng", connector("Engineering", "eng")))
	scim := newSCIMClient(t, srv, "okta", registerAndInstallOkta(t, srv, admin, idp), 2)

	roles := func(name string) []string {
		t.Helper()
		var u struct {
			Spec struct {
				Roles []string `json:"roles"`
			} `json:"spec"`
		}
		r := admin("get", "user/"+name, "--format", "json")
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &u), r.stdout)
		return u.Spec.Roles
	}
	const jane, joe = "jane@example.com", "joe@example.com"
	janeID := scim.do(http.MethodPost, "/Users", oktaUser(jane, "00ujane")).expect(t, http.StatusCreated).body["id"].(string)
	gid := scim.do(http.MethodPost, "/Groups", map[string]any{
		"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"}, "displayName": "Engineering",
		"members": []any{map[string]any{"value": janeID}},
	}).expect(t, http.StatusCreated).body["id"].(string)
	require.Equal(t, []string{"dev", "eng"}, roles(jane), "default role plus the group's mapping")
	// Two writes with the same connector: the second is served from the
	// decoded one the first left behind.
	profile := func(id, display string) {
		t.Helper()
		scim.do(http.MethodPatch, "/Users/"+id, patchBody(
			map[string]any{"op": "replace", "value": map[string]any{"displayName": display}},
		)).expect(t, http.StatusOK)
	}
	profile(janeID, "Jane A")
	require.Equal(t, []string{"dev", "eng"}, roles(jane))

	// The operator maps Engineering to ops instead. The very next write,
	// a profile change that says nothing of roles, gives the new mapping;
	// so does a create that joins the group.
	admin("create", "--force", "-f", write("okta-ops", connector("Engineering", "ops")))
	profile(janeID, "Jane B")
	require.Equal(t, []string{"dev", "ops"}, roles(jane), "the write after the change uses the new mapping")
	joeID := scim.do(http.MethodPost, "/Users", oktaUser(joe, "00ujoe")).expect(t, http.StatusCreated).body["id"].(string)
	scim.do(http.MethodPatch, "/Groups/"+gid, patchBody(
		map[string]any{"op": "add", "path": "members", "value": []any{map[string]any{"value": joeID}}},
	)).expect(t, http.StatusOK)
	require.Equal(t, []string{"dev", "ops"}, roles(joe))

	// Narrowed to a group nobody is in: the next write takes ops away.
	admin("create", "--force", "-f", write("okta-none", connector("Sales", "ops")))
	profile(janeID, "Jane C")
	require.Equal(t, []string{"dev"}, roles(jane), "a mapping the connector no longer has grants nothing")

	// Deleted: the next write grants no group's role (there is no mapping
	// left), and the account keeps its default role. Re-created: writes
	// follow it again.
	admin("create", "--force", "-f", write("okta-eng1", connector("Engineering", "eng")))
	profile(janeID, "Jane D")
	require.Equal(t, []string{"dev", "eng"}, roles(jane))
	r := gatectl("rm", "saml/okta")
	require.Equal(t, 0, r.code, r.String())
	profile(janeID, "Jane E")
	require.Equal(t, []string{"dev"}, roles(jane), "no connector, no group role")
	admin("create", "-f", write("okta-eng2", connector("Engineering", "eng")))
	profile(janeID, "Jane F")
	require.Equal(t, []string{"dev", "eng"}, roles(jane))
	profile(joeID, "Joe F")
	require.Equal(t, []string{"dev", "eng"}, roles(joe))
}
