package integration

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gatehouse/gatehouse/lib/auth/client"
	"github.com/gatehouse/gatehouse/lib/auth/identityfile"
	auditpb "github.com/gatehouse/gatehouse/proto/gatehouse/audit/v1"
	credentialspb "github.com/gatehouse/gatehouse/proto/gatehouse/credentials/v1"
	lockpb "github.com/gatehouse/gatehouse/proto/gatehouse/lock/v1"
	pluginpb "github.com/gatehouse/gatehouse/proto/gatehouse/plugin/v1"
	rolepb "github.com/gatehouse/gatehouse/proto/gatehouse/role/v1"
	samlpb "github.com/gatehouse/gatehouse/proto/gatehouse/saml/v1"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
	userpb "github.com/gatehouse/gatehouse/proto/gatehouse/user/v1"
)

// TestRBACAttacks plays an insider against the real binary on SQLite: mallory may write users,
// roles, locks, plugins and SAML connectors, but does not hold editor. Through gatectl, the gRPC
// API with her own certificate, and the web API with her web session, she tries to give herself
// or a friend more access, to reach accounts and roles stronger than hers, to lock the operator
// out, to make an integration grant what she may not, and to read secrets. Every attempt must be
// refused for its reason (AccessDenied, 403 from the web API), write nothing, and be audited.
func TestRBACAttacks(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs binaries")
	}
	gatehouseBin, gatectlBin := buildBinaries(t)
	dataDir, work := t.TempDir(), t.TempDir()
	srv, logs := startGatehouseWithLogs(t, gatehouseBin, dataDir, "--storage", "sqlite", "--trusted-proxies", "127.0.0.1")
	ctx := context.Background()
	gatectl, admin := gatectlOn(t, gatectlBin, dataDir)
	apply := func(name, doc string) {
		t.Helper()
		admin("create", "--force", "-f", resourceFile(t, work, name, doc))
	}
	scimToken := installOkta(t, admin, work)
	apply("role-insider", `kind: role
version: v1
metadata:
  name: insider
spec:
  allow:
    rules:
      - resources: [user]
        verbs: [list, readnosecrets, create, update, delete]
      - resources: [role, lock, plugin, saml]
        verbs: ["*"]
      - resources: [event]
        verbs: [list, read]
`)
	const malloryPassword = "mallory's long password"
	addLocalUser(t, gatectlBin, dataDir, "mallory", malloryPassword, "insider,access")
	addLocalUser(t, gatectlBin, dataDir, "boss", "the boss's long password", "editor")
	addLocalUser(t, gatectlBin, dataDir, "friend", "a friend's long password", "access")
	started := time.Now().Add(-time.Minute)

	dial := func(ident string) *client.Client {
		t.Helper()
		id, err := identityfile.Read(ident)
		require.NoError(t, err)
		addr, err := os.ReadFile(filepath.Join(dataDir, "auth_addr"))
		require.NoError(t, err)
		c, err := client.New(ctx, client.Config{Addr: strings.TrimSpace(string(addr)), Identity: id})
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	op := dial(filepath.Join(dataDir, "admin.identity"))
	ident := filepath.Join(work, "mallory.identity")
	admin("auth", "sign", "--user", "mallory", "--format", "identity", "--out", ident)
	mc := dial(ident)
	asMallory := func(args ...string) result { return gatectl(append([]string{"--identity", ident}, args...)...) }

	// snapshot is everything an attack could change, as the operator reads it.
	snapshot := func(t *testing.T) string {
		t.Helper()
		var b strings.Builder
		for _, kind := range []string{"users", "roles", "locks", "saml"} {
			r := gatectl("get", kind, "--format", "json")
			require.Equal(t, 0, r.code, r.String())
			b.WriteString(r.stdout)
		}
		p, err := op.Plugins.GetPlugin(ctx, &pluginpb.GetPluginRequest{Name: "okta"})
		require.NoError(t, err)
		spec, err := json.Marshal(p.GetPlugin().GetSpec().GetOkta())
		require.NoError(t, err)
		b.Write(spec)
		return b.String()
	}
	// deniedAudited requires that the audit log holds a refused event of type typ by mallory
	// whose message says why.
	deniedAudited := func(t *testing.T, typ, why string) {
		t.Helper()
		resp, err := op.Audit.SearchEvents(ctx, &auditpb.SearchEventsRequest{From: timestamppb.New(started), To: timestamppb.New(time.Now().Add(time.Minute)), Types: []string{typ}, Limit: 1000})
		require.NoError(t, err)
		for _, e := range resp.GetEvents() {
			if e.GetUser() == "mallory" && e.GetOutcome() != "success" && strings.Contains(e.GetMessage(), why) {
				return
			}
		}
		require.Failf(t, "refusal not audited", "no %s event by mallory saying %q in %v", typ, why, resp.GetEvents())
	}
	requireDenied := func(t *testing.T, err error, why string) {
		t.Helper()
		require.True(t, trace.IsAccessDenied(err), "want access denied, got %v", err)
		require.Contains(t, err.Error(), why)
	}
	requireGatectlDenied := func(t *testing.T, r result, why string) {
		t.Helper()
		require.Equal(t, 1, r.code, r.String())
		require.Contains(t, r.stderr, why, r.String())
	}
	user := func(t *testing.T, name string) *typesv1.User {
		t.Helper()
		resp, err := op.Users.GetUser(ctx, &userpb.GetUserRequest{Name: name})
		require.NoError(t, err)
		return resp.GetUser()
	}

	t.Run("a user writer gives only roles it holds and touches no stronger account", func(t *testing.T) {
		before := snapshot(t)
		friendEditor := resourceFile(t, work, "friend-editor", "kind: user\nversion: v1\nmetadata:\n  name: friend\nspec:\n  roles: [access, editor]\n")
		requireGatectlDenied(t, asMallory("create", "--force", "-f", friendEditor), "you do not hold editor")
		newEditor := resourceFile(t, work, "sock", "kind: user\nversion: v1\nmetadata:\n  name: sock\nspec:\n  roles: [editor]\n")
		requireGatectlDenied(t, asMallory("create", "-f", newEditor), "you do not hold editor")
		requireGatectlDenied(t, asMallory("users", "add", "sock2", "--roles", "auditor"), "you do not hold auditor")

		logins, err := structpb.NewList([]any{"root"})
		require.NoError(t, err)
		for _, tc := range []struct {
			name, user, why string
			modify          func(u *typesv1.User)
		}{
			{"herself editor", "mallory", "you do not hold editor", func(u *typesv1.User) { u.Spec.Roles = append(u.Spec.Roles, "editor") }},
			{"her own logins", "mallory", "traits of your own account", func(u *typesv1.User) {
				u.Spec.Traits = map[string]*structpb.ListValue{"logins": logins}
			}},
			{"a friend's logins", "friend", `login "root": you may give only logins you have yourself`, func(u *typesv1.User) {
				u.Spec.Traits = map[string]*structpb.ListValue{"logins": logins}
			}},
			{"a friend auditor", "friend", "you do not hold auditor", func(u *typesv1.User) { u.Spec.Roles = append(u.Spec.Roles, "auditor") }},
			{"the editor's roles", "boss", `user "boss" holds role "editor"`, func(u *typesv1.User) { u.Spec.Roles = []string{"access"} }},
			{"a local account to SCIM", "friend", `label "gatehouse.dev/origin"`, func(u *typesv1.User) {
				u.Metadata.Labels = map[string]string{"gatehouse.dev/origin": "okta", "gatehouse.dev/plugin": "okta"}
			}},
			{"a friend to the SAML connector", "friend", "created_by.connector", func(u *typesv1.User) {
				u.Spec.CreatedBy = &typesv1.CreatedBy{Connector: &typesv1.ConnectorRef{Type: "saml", Id: "okta", Identity: "friend@example.com"}}
			}},
			{"a password hash", "friend", "SetPassword", func(u *typesv1.User) {
				u.Spec.LocalAuth = &typesv1.LocalAuthSecrets{PasswordHash: []byte("$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy")}
			}},
			{"her own incarnation", "mallory", "", func(u *typesv1.User) { u.Spec.Incarnation = "00000000000000000000000000000000" }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				u := user(t, tc.user)
				tc.modify(u)
				_, err := mc.Users.UpdateUser(ctx, &userpb.UpdateUserRequest{User: u})
				if tc.why == "" {
					// The incarnation is the server's: the update succeeds and the incarnation
					// stays, so her certificate still works (and no other would).
					require.NoError(t, err)
					require.NotEqual(t, u.GetSpec().GetIncarnation(), user(t, tc.user).GetSpec().GetIncarnation())
					_, err = mc.Roles.ListRoles(ctx, &rolepb.ListRolesRequest{})
					require.NoError(t, err)
					return
				}
				requireDenied(t, err, tc.why)
				require.Equal(t, u.GetMetadata().GetRevision(), user(t, tc.user).GetMetadata().GetRevision(), "nothing written")
			})
		}
		_, err = mc.Users.DeleteUser(ctx, &userpb.DeleteUserRequest{Name: "boss"})
		requireDenied(t, err, `user "boss" holds role "editor"`)
		_, err = mc.Credentials.SetPassword(ctx, &credentialspb.SetPasswordRequest{User: "boss", Password: "mallory knows this one"})
		requireDenied(t, err, `user "boss" holds role "editor"`)
		_, err = mc.Credentials.CreatePasswordToken(ctx, &credentialspb.CreatePasswordTokenRequest{User: "boss"})
		requireDenied(t, err, `user "boss" holds role "editor"`)
		// (The incarnation-only update above rewrote mallory's record with the same content, so
		// the snapshot is compared for what matters.)
		after := snapshot(t)
		require.Equal(t, strings.Count(before, `"editor"`), strings.Count(after, `"editor"`), "no account gained or lost editor")
		require.NotContains(t, after, "sock")
		require.NotContains(t, after, "root")
		deniedAudited(t, "user.update", "you do not hold editor")
		deniedAudited(t, "user.create", "you do not hold editor")
		deniedAudited(t, "user.delete", `holds role "editor"`)
		deniedAudited(t, "user.password.set", `holds role "editor"`)

		// A sock puppet she could sign in as (through a password link she may make) gets only
		// logins she has herself: none.
		sock := resourceFile(t, work, "sock-root", "kind: user\nversion: v1\nmetadata:\n  name: sock\nspec:\n  roles: [access]\n  traits:\n    logins: [root]\n")
		requireGatectlDenied(t, asMallory("create", "-f", sock), `login "root": you may give only logins you have yourself`)
		_, err = op.Users.GetUser(ctx, &userpb.GetUserRequest{Name: "sock"})
		require.True(t, trace.IsNotFound(err), "nothing written: %v", err)
		deniedAudited(t, "user.create", `login "root"`)
	})

	t.Run("a role writer writes no role stronger than itself", func(t *testing.T) {
		before := snapshot(t)
		all := resourceFile(t, work, "role-all", "kind: role\nversion: v1\nmetadata:\n  name: all\nspec:\n  allow:\n    rules:\n      - resources: [\"*\"]\n        verbs: [\"*\"]\n")
		requireGatectlDenied(t, asMallory("create", "-f", all), `role "all" allows`)
		certs := resourceFile(t, work, "role-insider-certs", `kind: role
version: v1
metadata:
  name: insider
spec:
  allow:
    rules:
      - resources: [user]
        verbs: [list, readnosecrets, create, update, delete]
      - resources: [role, lock, plugin, saml, cert]
        verbs: ["*"]
      - resources: [event]
        verbs: [list, read]
`)
		requireGatectlDenied(t, asMallory("create", "--force", "-f", certs), `on "cert", which your roles do not allow`)
		root := resourceFile(t, work, "role-root", "kind: role\nversion: v1\nmetadata:\n  name: rootly\nspec:\n  allow:\n    logins: [root]\n")
		requireGatectlDenied(t, asMallory("create", "-f", root), `allows login "root"`)
		long := resourceFile(t, work, "role-long", "kind: role\nversion: v1\nmetadata:\n  name: long\nspec:\n  options:\n    max_session_ttl: 30h\n")
		requireGatectlDenied(t, asMallory("create", "-f", long), "longer than your own sessions may last")
		emptyEditor := resourceFile(t, work, "role-editor", "kind: role\nversion: v1\nmetadata:\n  name: editor\nspec: {}\n")
		requireGatectlDenied(t, asMallory("create", "--force", "-f", emptyEditor), `role "editor" allows`)
		// Deleting the editor role would take it from every editor; the presets within her own
		// access (auditor, access) she may delete, as any role writer may: by design.
		requireGatectlDenied(t, asMallory("rm", "role/editor"), `role "editor" allows`)
		require.Equal(t, before, snapshot(t), "nothing written")
		deniedAudited(t, "role.create", `role "all" allows`)
		deniedAudited(t, "role.delete", `role "editor" allows`)
		// The operator's rights never came from the stored editor role anyway.
		require.Equal(t, 0, gatectl("get", "roles").code)
	})

	t.Run("a lock writer cannot lock the operator out", func(t *testing.T) {
		before := snapshot(t)
		for _, target := range []string{"@admin", "＠ADMIN"} {
			_, err := mc.Locks.CreateLock(ctx, &lockpb.CreateLockRequest{Lock: &typesv1.Lock{
				Kind: "lock", Version: "v1", Metadata: &typesv1.Metadata{Name: "coup"},
				Spec: &typesv1.LockSpec{Target: &typesv1.LockTarget{User: target}, Message: "mine now"},
			}})
			requireDenied(t, err, "may lock @admin")
		}
		require.Equal(t, before, snapshot(t), "nothing written")
		deniedAudited(t, "lock.create", "may lock @admin")
		r := gatectl("get", "roles")
		require.Equal(t, 0, r.code, "the operator still works: %s", r)
	})

	t.Run("a lock writer cannot unlock herself, and lifting a deprovisioning lock revives nothing", func(t *testing.T) {
		// Locked, her certificate reaches nothing, the lock API included.
		_, err := op.Locks.CreateLock(ctx, &lockpb.CreateLockRequest{Lock: &typesv1.Lock{
			Kind: "lock", Version: "v1", Metadata: &typesv1.Metadata{Name: "mallory-hold"},
			Spec: &typesv1.LockSpec{Target: &typesv1.LockTarget{User: "mallory"}, Message: "under review"},
		}})
		require.NoError(t, err)
		_, err = mc.Locks.DeleteLock(ctx, &lockpb.DeleteLockRequest{Name: "mallory-hold"})
		requireDenied(t, err, `user "mallory" is locked: under review`)
		_, err = op.Locks.GetLock(ctx, &lockpb.GetLockRequest{Name: "mallory-hold"})
		require.NoError(t, err, "the lock is still there")
		_, err = op.Locks.DeleteLock(ctx, &lockpb.DeleteLockRequest{Name: "mallory-hold"})
		require.NoError(t, err)

		// A deactivation deletes the account and locks its name. Lifting that lock (by design,
		// what delete on lock allows) brings back neither the account nor its credentials.
		scim := newSCIMClient(t, srv, "okta", scimToken, 1)
		r := scim.do(http.MethodPost, "/Users", oktaUser("leaver@example.com", "00uleaver")).expect(t, http.StatusCreated)
		id, _ := r.body["id"].(string)
		require.NotEmpty(t, id)
		leaverIdent := filepath.Join(work, "leaver.identity")
		admin("auth", "sign", "--user", "leaver@example.com", "--format", "identity", "--out", leaverIdent)
		leaver := dial(leaverIdent)
		_, err = leaver.Roles.ListRoles(ctx, &rolepb.ListRolesRequest{})
		requireDenied(t, err, "no role of [access] allows")
		scim.do(http.MethodPatch, "/Users/"+id, patchBody(map[string]any{"op": "replace", "value": map[string]any{"active": false}})).expect(t, http.StatusOK)
		locks, err := mc.Locks.ListLocks(ctx, &lockpb.ListLocksRequest{})
		require.NoError(t, err)
		var lifted int
		for _, l := range locks.GetLocks() {
			if l.GetSpec().GetTarget().GetUser() == "leaver@example.com" {
				_, err := mc.Locks.DeleteLock(ctx, &lockpb.DeleteLockRequest{Name: l.GetMetadata().GetName()})
				require.NoError(t, err)
				lifted++
			}
		}
		require.Equal(t, 1, lifted, "the deactivation wrote one lock: %v", locks.GetLocks())
		_, err = leaver.Roles.ListRoles(ctx, &rolepb.ListRolesRequest{})
		requireDenied(t, err, `user "leaver@example.com" no longer exists`)
		_, err = op.Users.GetUser(ctx, &userpb.GetUserRequest{Name: "leaver@example.com"})
		require.True(t, trace.IsNotFound(err), "%v", err)
	})

	t.Run("a plugin or SAML writer makes no integration grant what it may not", func(t *testing.T) {
		before := snapshot(t)
		requireGatectlDenied(t, asMallory("plugins", "update", "okta", "--default-roles", "access,editor"), "you do not hold editor")
		requireGatectlDenied(t, asMallory("plugins", "update", "okta", "--grantable-roles", "auditor"), "you do not hold auditor")
		evil := resourceFile(t, work, "saml-evil", `kind: saml
version: v1
metadata:
  name: evil
spec:
  display: Evil
  acs: https://gatehouse.example.com/v1/webapi/saml/acs/evil
  attributes_to_roles:
    - name: groups
      value: Everyone
      roles: [editor]
  entity_descriptor: |
`+indent(idpMetadata(t), "    ")+"\n")
		requireGatectlDenied(t, asMallory("create", "-f", evil), "you do not hold editor")
		// Taking the SCIM token would let her push SCIM users (herself, were she one) into the
		// connector's "admins" group, mapped to auditor, which she does not hold.
		requireGatectlDenied(t, asMallory("plugins", "rotate-token", "okta"), "you do not hold auditor")
		deniedAudited(t, "plugin.token.create", "you do not hold auditor")

		// Her own connector, mapping only to roles she holds, is fine; making it the plugin's
		// (whose connector signs in every SCIM user) is not, and neither is pointing the
		// plugin's connector at another IdP.
		fine := strings.Replace(strings.Replace(string(mustRead(t, evil)), "roles: [editor]", "roles: [access]", 1), "name: evil", "name: mine", 1)
		require.Equal(t, 0, asMallory("create", "-f", resourceFile(t, work, "saml-mine", fine)).code)
		p, err := mc.Plugins.GetPlugin(ctx, &pluginpb.GetPluginRequest{Name: "okta"})
		require.NoError(t, err)
		p.GetPlugin().GetSpec().GetOkta().SamlConnector = "mine"
		_, err = mc.Plugins.UpdatePlugin(ctx, &pluginpb.UpdatePluginRequest{Plugin: p.GetPlugin()})
		requireDenied(t, err, `its SAML connector "okta" signs in its SCIM users`)
		c, err := mc.SAML.GetSAMLConnector(ctx, &samlpb.GetSAMLConnectorRequest{Name: "okta"})
		require.NoError(t, err)
		c.GetSamlConnector().Spec.EntityDescriptor = strings.Replace(c.GetSamlConnector().GetSpec().GetEntityDescriptor(), "entityID=\"", "entityID=\"https://attacker.example.com/", 1)
		_, err = mc.SAML.UpdateSAMLConnector(ctx, &samlpb.UpdateSAMLConnectorRequest{SamlConnector: c.GetSamlConnector()})
		requireDenied(t, err, "changing its identity provider")
		// Nor may a plugin of her own share the connector: its SCIM (whose token she would
		// take) would adopt the connector's users.
		_, err = mc.Plugins.CreatePlugin(ctx, &pluginpb.CreatePluginRequest{Plugin: &typesv1.Plugin{
			Kind: "plugin", Version: "v1", Metadata: &typesv1.Metadata{Name: "evil"},
			Spec: &typesv1.PluginSpec{Settings: &typesv1.PluginSpec_Okta{Okta: &typesv1.OktaPluginSettings{SamlConnector: "okta"}}},
		}})
		require.True(t, trace.IsBadParameter(err), "%v", err)
		require.Contains(t, err.Error(), `SAML connector "okta" belongs to plugin "okta"`)
		_, err = op.SAML.DeleteSAMLConnector(ctx, &samlpb.DeleteSAMLConnectorRequest{Name: "mine"})
		require.NoError(t, err)
		require.Equal(t, before, snapshot(t), "nothing written")
		deniedAudited(t, "access.denied", "you do not hold editor")
		deniedAudited(t, "saml.create", "you do not hold editor")

		// Once the operator has set user sync's org, she cannot point it at hers: a full pass
		// there would deprovision the plugin's accounts, and a stored credential would go there.
		p, err = op.Plugins.GetPlugin(ctx, &pluginpb.GetPluginRequest{Name: "okta"})
		require.NoError(t, err)
		p.GetPlugin().GetSpec().GetOkta().UserSync = &typesv1.OktaUserSyncSettings{OrgUrl: "https://example.okta.com", AppId: "0oa1", CredentialKind: "api_token"}
		_, err = op.Plugins.UpdatePlugin(ctx, &pluginpb.UpdatePluginRequest{Plugin: p.GetPlugin()})
		require.NoError(t, err)
		before = snapshot(t)
		p, err = mc.Plugins.GetPlugin(ctx, &pluginpb.GetPluginRequest{Name: "okta"})
		require.NoError(t, err)
		p.GetPlugin().GetSpec().GetOkta().UserSync.OrgUrl = "https://mallory.okta.com"
		_, err = mc.Plugins.UpdatePlugin(ctx, &pluginpb.UpdatePluginRequest{Plugin: p.GetPlugin()})
		requireDenied(t, err, "user sync's org decides which of the plugin's accounts live")
		require.Equal(t, before, snapshot(t), "nothing written")
	})

	t.Run("no secret is read without the read verb", func(t *testing.T) {
		_, err := mc.Users.GetUser(ctx, &userpb.GetUserRequest{Name: "boss", WithSecrets: true})
		requireDenied(t, err, `allows "read" on "user"`)
		r := asMallory("get", "users", "--format", "json")
		require.Equal(t, 0, r.code, r.String())
		require.NotContains(t, r.stdout, "password_hash")
		require.NotContains(t, r.stdout, "$2a$")
		// The audit log she may read names refusals, not secrets.
		resp, err := mc.Audit.SearchEvents(ctx, &auditpb.SearchEventsRequest{From: timestamppb.New(started), To: timestamppb.New(time.Now().Add(time.Minute)), Limit: 1000})
		require.NoError(t, err)
		events, err := json.Marshal(resp.GetEvents())
		require.NoError(t, err)
		for _, secret := range []string{malloryPassword, "mallory knows this one", "$2a$", scimToken} {
			require.NotContains(t, string(events), secret)
		}
		// Nor does the plugin or the connector as she may read them without the read verb's
		// secrets: no token hash, no SP signing key.
		r = asMallory("get", "plugins", "--format", "json")
		require.Equal(t, 0, r.code, r.String())
		require.NotContains(t, r.stdout, "$2a$")
		r = asMallory("get", "saml", "--format", "json")
		require.Equal(t, 0, r.code, r.String())
		require.NotContains(t, r.stdout, "PRIVATE KEY")
	})

	t.Run("the same through the web API with her web session", func(t *testing.T) {
		web := newAtkWeb(t, srv)
		s := web.mustLogin("mallory", malloryPassword)
		hdr := map[string]string{"Cookie": s.cookie(), atkCSRFHeader: s.csrf, "Content-Type": "application/json"}
		before := snapshot(t)
		r := web.do(http.MethodPut, "/v1/webapi/plugins/okta/settings", hdr, `{"default_roles":["access","editor"],"grantable_roles":[],"lock_ttl":""}`)
		require.Equal(t, http.StatusForbidden, r.status, r.body)
		require.Contains(t, r.body, "you do not hold editor")
		r = web.do(http.MethodPost, "/v1/webapi/plugins/okta/saml", hdr, mustJSON(t, map[string]any{
			"name": "webevil", "entity_descriptor": idpMetadata(t),
			"attributes_to_roles": []map[string]any{{"name": "groups", "value": "Everyone", "roles": []string{"editor"}}},
		}))
		require.Equal(t, http.StatusForbidden, r.status, r.body)
		require.Contains(t, r.body, "you do not hold editor")
		r = web.do(http.MethodPost, "/v1/webapi/plugins/okta/scim/token", hdr, "{}")
		require.Equal(t, http.StatusForbidden, r.status, r.body)
		require.Contains(t, r.body, "you do not hold auditor")
		require.Equal(t, before, snapshot(t), "nothing written")
		deniedAudited(t, "access.denied", "you do not hold editor")

		// What her session may read carries no secret.
		for _, path := range []string{"/v1/webapi/admin/users", "/v1/webapi/admin/locks", "/v1/webapi/plugins/okta", "/v1/webapi/plugins/okta/events", "/v1/webapi/plugins/okta/usersync"} {
			r := web.do(http.MethodGet, path, map[string]string{"Cookie": s.cookie()}, "")
			require.Equal(t, http.StatusOK, r.status, "%s: %s", path, r.body)
			for _, secret := range []string{scimToken, "$2a$", "password_hash", "private_key", "PRIVATE KEY"} {
				require.NotContains(t, r.body, secret, path)
			}
		}
	})

	require.NotContains(t, logs.String(), "panic")
	require.NotContains(t, logs.String(), malloryPassword)
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}
