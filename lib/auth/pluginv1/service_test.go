package pluginv1_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"slices"
	"strings"
	"testing"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/gatehouse/gatehouse/lib/auth/authtest"
	"github.com/gatehouse/gatehouse/lib/auth/client"
	"github.com/gatehouse/gatehouse/lib/auth/pluginv1"
	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/services"
	pluginpb "github.com/gatehouse/gatehouse/proto/gatehouse/plugin/v1"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// connectorOf names the SAML connector of the test plugin name ("okta-app"
// for "okta"): each plugin needs a connector of its own.
func connectorOf(name string) string {
	if name == "" {
		name = "okta"
	}
	return name + "-app"
}

func plugin(name string) *typesv1.Plugin {
	return &typesv1.Plugin{
		Metadata: &typesv1.Metadata{Name: name},
		Spec: &typesv1.PluginSpec{Settings: &typesv1.PluginSpec_Okta{Okta: &typesv1.OktaPluginSettings{
			SamlConnector: connectorOf(name),
			ScimEnabled:   true,
		}}},
	}
}

// ensureConnector creates the SAML connector of the test plugin name (of
// "okta" when name is empty).
func ensureConnector(t *testing.T, s *authtest.Server, name string) {
	_, err := s.Auth.Services().SAMLConnectors.UpsertSAMLConnector(context.Background(), &typesv1.SAMLConnector{
		Metadata: &typesv1.Metadata{Name: connectorOf(name)},
		Spec: &typesv1.SAMLConnectorSpec{
			EntityDescriptorUrl: "https://idp.example.com/metadata",
			Acs:                 "https://gatehouse.example.com/v1/webapi/saml/acs/" + connectorOf(name),
		},
	})
	require.NoError(t, err)
}

func existing(t *testing.T, s *authtest.Server, name string) {
	ensureConnector(t, s, name)
	_, err := s.Auth.Services().Plugins.CreatePlugin(context.Background(), plugin(name))
	require.NoError(t, err)
}

type call = func(ctx context.Context, s *authtest.Server, c *client.Client, name string) error

func TestEveryRPC(t *testing.T) {
	t.Parallel()
	authtest.RunRPCCases(t, pluginpb.PluginService_ServiceDesc, services.KindPlugin, map[string]authtest.RPCCase{
		"CreatePlugin": {
			Verbs: []string{services.VerbCreate},
			Setup: ensureConnector,
			Call: call(func(ctx context.Context, s *authtest.Server, c *client.Client, name string) error {
				_, err := c.Plugins.CreatePlugin(ctx, &pluginpb.CreatePluginRequest{Plugin: plugin(name)})
				return err
			}),
		},
		"GetPlugin": {
			Verbs: []string{services.VerbReadNoSecrets},
			Setup: existing,
			Call: call(func(ctx context.Context, s *authtest.Server, c *client.Client, name string) error {
				_, err := c.Plugins.GetPlugin(ctx, &pluginpb.GetPluginRequest{Name: name})
				return err
			}),
		},
		"ListPlugins": {
			Verbs: []string{services.VerbList, services.VerbReadNoSecrets},
			Call: call(func(ctx context.Context, s *authtest.Server, c *client.Client, name string) error {
				_, err := c.Plugins.ListPlugins(ctx, &pluginpb.ListPluginsRequest{PageSize: 10})
				return err
			}),
		},
		"UpdatePlugin": {
			Verbs: []string{services.VerbUpdate},
			Setup: existing,
			Call: call(func(ctx context.Context, s *authtest.Server, c *client.Client, name string) error {
				cur, err := s.Auth.Services().Plugins.GetPlugin(ctx, name)
				if err != nil {
					return err
				}
				cur.GetSpec().GetOkta().ScimEnabled = false
				_, err = c.Plugins.UpdatePlugin(ctx, &pluginpb.UpdatePluginRequest{Plugin: cur})
				return err
			}),
		},
		"DeletePlugin": {
			Verbs: []string{services.VerbDelete},
			Setup: existing,
			Call: call(func(ctx context.Context, s *authtest.Server, c *client.Client, name string) error {
				_, err := c.Plugins.DeletePlugin(ctx, &pluginpb.DeletePluginRequest{Name: name})
				return err
			}),
		},
		"GenerateSCIMToken": {
			Verbs: []string{services.VerbUpdate},
			Setup: existing,
			Call: call(func(ctx context.Context, s *authtest.Server, c *client.Client, name string) error {
				_, err := c.Plugins.GenerateSCIMToken(ctx, &pluginpb.GenerateSCIMTokenRequest{Name: name})
				return err
			}),
		},
		"SetUserSyncCredentials": {
			Verbs: []string{services.VerbUpdate},
			Setup: existing,
			Call: call(func(ctx context.Context, s *authtest.Server, c *client.Client, name string) error {
				_, err := c.Plugins.SetUserSyncCredentials(ctx, &pluginpb.SetUserSyncCredentialsRequest{Name: name, ApiToken: "ssws-secret"})
				return err
			}),
		},
		"SyncUsers": {
			Verbs: []string{services.VerbUpdate},
			Setup: existingWithUserSync,
			Call: call(func(ctx context.Context, s *authtest.Server, c *client.Client, name string) error {
				_, err := c.Plugins.SyncUsers(ctx, &pluginpb.SyncUsersRequest{Name: name})
				return err
			}),
		},
		"GetUserSyncStatus": {
			Verbs: []string{services.VerbReadNoSecrets},
			Setup: existingWithUserSync,
			Call: call(func(ctx context.Context, s *authtest.Server, c *client.Client, name string) error {
				_, err := c.Plugins.GetUserSyncStatus(ctx, &pluginpb.GetUserSyncStatusRequest{Name: name})
				return err
			}),
		},
		"TestUserSyncConnection": {
			Verbs: []string{services.VerbUpdate},
			Setup: existingWithUserSync,
			Call: call(func(ctx context.Context, s *authtest.Server, c *client.Client, name string) error {
				_, err := c.Plugins.TestUserSyncConnection(ctx, &pluginpb.TestUserSyncConnectionRequest{Name: name})
				return err
			}),
		},
		"SetPluginStatus": {
			Verbs: []string{services.VerbUpdate},
			Setup: existing,
			Call: call(func(ctx context.Context, s *authtest.Server, c *client.Client, name string) error {
				_, err := c.Plugins.SetPluginStatus(ctx, &pluginpb.SetPluginStatusRequest{
					Name:   name,
					Status: &typesv1.PluginStatus{Code: typesv1.PluginStatusCode_PLUGIN_STATUS_CODE_RUNNING},
				})
				return err
			}),
		},
	})
}

// TestTokenRotation checks the token lifecycle: only a bcrypt hash is
// stored, linked to the plugin by label; rotating replaces the hash so the
// old token stops matching; the plaintext appears nowhere in the backend or
// the audit log; deleting the plugin deletes its credentials.
func TestTokenRotation(t *testing.T) {
	t.Parallel()
	s := authtest.NewServer(t, authtest.Options{PublicAddr: "gatehouse.example.com:3080"})
	ctx := context.Background()
	admin := s.UserWith(t, "admin", services.KindPlugin, "*")
	ensureConnector(t, s, "")

	_, err := admin.Plugins.CreatePlugin(ctx, &pluginpb.CreatePluginRequest{Plugin: plugin("okta")})
	require.NoError(t, err)

	gen := func() string {
		resp, err := admin.Plugins.GenerateSCIMToken(ctx, &pluginpb.GenerateSCIMTokenRequest{Name: "okta"})
		require.NoError(t, err)
		require.Equal(t, "https://gatehouse.example.com:3080/v1/webapi/scim/okta", resp.GetBaseUrl())
		raw, err := base64.RawURLEncoding.DecodeString(resp.GetToken())
		require.NoError(t, err)
		require.Len(t, raw, pluginv1.TokenBytes)
		return resp.GetToken()
	}
	hashes := func() [][]byte {
		p, err := s.Auth.Services().Plugins.GetPlugin(ctx, "okta")
		require.NoError(t, err)
		require.Equal(t, map[string]string{pluginv1.LabelPlugin: "okta"}, p.GetSpec().GetStaticCredentialsRef().GetLabels())
		creds, err := s.Auth.Services().PluginStaticCredentials.ListPluginStaticCredentialsByLabels(ctx, p.GetSpec().GetStaticCredentialsRef().GetLabels(), true)
		require.NoError(t, err)
		var out [][]byte
		for _, c := range creds {
			out = append(out, c.GetSpec().GetScimTokenHash())
		}
		return out
	}

	tok1 := gen()
	h := hashes()
	require.Len(t, h, 1)
	require.NoError(t, bcrypt.CompareHashAndPassword(h[0], []byte(tok1)))

	tok2 := gen()
	require.NotEqual(t, tok1, tok2)
	h = hashes()
	require.Len(t, h, 1, "rotation must replace the hash, not add one")
	require.NoError(t, bcrypt.CompareHashAndPassword(h[0], []byte(tok2)))
	require.ErrorIs(t, bcrypt.CompareHashAndPassword(h[0], []byte(tok1)), bcrypt.ErrMismatchedHashAndPassword)

	// GetPlugin: hashes only with secrets; never from List.
	got, err := admin.Plugins.GetPlugin(ctx, &pluginpb.GetPluginRequest{Name: "okta", WithSecrets: true})
	require.NoError(t, err)
	require.Len(t, got.GetStaticCredentials(), 1)
	require.Equal(t, h[0], got.GetStaticCredentials()[0].GetSpec().GetScimTokenHash())
	got, err = admin.Plugins.GetPlugin(ctx, &pluginpb.GetPluginRequest{Name: "okta"})
	require.NoError(t, err)
	require.Empty(t, got.GetStaticCredentials())

	// The plaintext tokens are nowhere in the backend.
	secrets := [][]byte{[]byte(tok1), []byte(tok2)}
	items, err := s.Backend.GetRange(ctx, backend.Key("\x00"), nil, backend.MaxRangeLimit)
	require.NoError(t, err)
	require.NotEmpty(t, items.Items)
	for _, it := range items.Items {
		for _, sec := range secrets {
			require.False(t, bytes.Contains(it.Value, sec), "token found in %s", it.Key)
			require.False(t, bytes.Contains(it.Key, sec), "token found in key %s", it.Key)
		}
	}
	// Neither tokens nor hashes are in any audit event.
	events, err := admin.Audit.SearchEvents(ctx, nil)
	require.True(t, trace.IsAccessDenied(err), "plugin admin must not read events: %v", err)
	_ = events
	all, err := s.Auth.Services().Events.Search(ctx, s.Clock.Now().AddDate(-1, 0, 0), s.Clock.Now().AddDate(1, 0, 0), nil, services.MaxSearchLimit)
	require.NoError(t, err)
	var types []string
	for _, e := range all {
		types = append(types, e.GetType())
		js, err := protojson.Marshal(e)
		require.NoError(t, err)
		for _, sec := range append(secrets, h[0], []byte(base64.StdEncoding.EncodeToString(h[0]))) {
			require.False(t, bytes.Contains(js, sec), "secret in audit event %s", js)
		}
	}
	require.Contains(t, types, "plugin.token.create")
	require.Contains(t, types, "plugin.token.rotate")

	// Deleting the plugin deletes its credentials.
	_, err = admin.Plugins.DeletePlugin(ctx, &pluginpb.DeletePluginRequest{Name: "okta"})
	require.NoError(t, err)
	creds, err := s.Auth.Services().PluginStaticCredentials.ListPluginStaticCredentialsByLabels(ctx, pluginv1.CredentialsLabels("okta"), false)
	require.NoError(t, err)
	require.Empty(t, creds)
	_, err = admin.Plugins.GenerateSCIMToken(ctx, &pluginpb.GenerateSCIMTokenRequest{Name: "okta"})
	require.True(t, trace.IsNotFound(err), "got %v", err)
}

func TestPluginValidation(t *testing.T) {
	t.Parallel()
	s := authtest.NewServer(t, authtest.Options{})
	ctx := context.Background()
	admin := s.UserWith(t, "admin", services.KindPlugin, "*")
	ensureConnector(t, s, "")

	p := plugin("okta")
	p.GetSpec().GetOkta().SamlConnector = "missing"
	_, err := admin.Plugins.CreatePlugin(ctx, &pluginpb.CreatePluginRequest{Plugin: p})
	require.True(t, trace.IsBadParameter(err), "got %v", err)
	require.Contains(t, err.Error(), `SAML connector "missing" does not exist`)

	p = plugin("okta")
	p.Spec.StaticCredentialsRef = &typesv1.PluginStaticCredentialsRef{Labels: map[string]string{"other": "creds"}}
	_, err = admin.Plugins.CreatePlugin(ctx, &pluginpb.CreatePluginRequest{Plugin: p})
	require.True(t, trace.IsBadParameter(err), "got %v", err)

	created, err := admin.Plugins.CreatePlugin(ctx, &pluginpb.CreatePluginRequest{Plugin: plugin("okta")})
	require.NoError(t, err)
	// A stale revision is refused.
	stale := created.GetPlugin()
	_, err = admin.Plugins.UpdatePlugin(ctx, &pluginpb.UpdatePluginRequest{Plugin: stale})
	require.NoError(t, err)
	_, err = admin.Plugins.UpdatePlugin(ctx, &pluginpb.UpdatePluginRequest{Plugin: stale})
	require.True(t, trace.IsCompareFailed(err), "got %v", err)
}

// TestDisableSCIMDeletesToken checks that an update turning SCIM off deletes
// the token hash in the same write, audited, so that turning SCIM on again
// does not revive the old token: a new one must be generated.
func TestDisableSCIMDeletesToken(t *testing.T) {
	t.Parallel()
	s := authtest.NewServer(t, authtest.Options{})
	ctx := context.Background()
	admin := s.UserWith(t, "admin", services.KindPlugin, "*")
	ensureConnector(t, s, "")
	_, err := admin.Plugins.CreatePlugin(ctx, &pluginpb.CreatePluginRequest{Plugin: plugin("okta")})
	require.NoError(t, err)
	creds := func() []*typesv1.PluginStaticCredentials {
		c, err := s.Auth.Services().PluginStaticCredentials.ListPluginStaticCredentialsByLabels(ctx, pluginv1.CredentialsLabels("okta"), true)
		require.NoError(t, err)
		return c
	}
	setSCIM := func(on bool) *typesv1.Plugin {
		t.Helper()
		got, err := admin.Plugins.GetPlugin(ctx, &pluginpb.GetPluginRequest{Name: "okta"})
		require.NoError(t, err)
		p := got.GetPlugin()
		p.GetSpec().GetOkta().ScimEnabled = on
		out, err := admin.Plugins.UpdatePlugin(ctx, &pluginpb.UpdatePluginRequest{Plugin: p})
		require.NoError(t, err)
		require.Equal(t, on, out.GetPlugin().GetSpec().GetOkta().GetScimEnabled())
		// The revision returned is the stored one: a further update at it
		// succeeds.
		stored, err := s.Auth.Services().Plugins.GetPlugin(ctx, "okta")
		require.NoError(t, err)
		require.Equal(t, stored.GetMetadata().GetRevision(), out.GetPlugin().GetMetadata().GetRevision())
		return out.GetPlugin()
	}

	tok, err := admin.Plugins.GenerateSCIMToken(ctx, &pluginpb.GenerateSCIMTokenRequest{Name: "okta"})
	require.NoError(t, err)
	require.Len(t, creds(), 1)

	// An update that leaves SCIM on keeps the token.
	setSCIM(true)
	require.Len(t, creds(), 1)

	// Turning SCIM off deletes it, and says so in the audit event.
	off := setSCIM(false)
	require.Empty(t, creds(), "disabling SCIM must delete the token hash")
	require.Equal(t, map[string]string{pluginv1.LabelPlugin: "okta"}, off.GetSpec().GetStaticCredentialsRef().GetLabels())
	evs, err := s.Auth.Services().Events.Search(ctx, s.Clock.Now().AddDate(-1, 0, 0), s.Clock.Now().AddDate(1, 0, 0), []string{"plugin.update"}, services.MaxSearchLimit)
	require.NoError(t, err)
	var deleted int
	for _, e := range evs {
		require.Equal(t, services.OutcomeSuccess, e.GetOutcome())
		require.NotContains(t, e.GetMessage(), tok.GetToken())
		if e.GetFields()["scim_token"] == "deleted" {
			deleted++
			require.Equal(t, "admin", e.GetUser())
			require.Equal(t, "plugin/okta", e.GetResource())
		}
	}
	require.Equal(t, 1, deleted, "exactly the disabling update is audited as deleting the token")

	// Turning it on again does not bring a token back.
	setSCIM(true)
	require.Empty(t, creds())

	// A token made while SCIM is off and then cancelled (an update that
	// keeps SCIM off: the UI's Cancel) is deleted, audited as such, and
	// turning SCIM on later does not bring it back.
	setSCIM(false)
	_, err = admin.Plugins.GenerateSCIMToken(ctx, &pluginpb.GenerateSCIMTokenRequest{Name: "okta"})
	require.NoError(t, err)
	require.Len(t, creds(), 1)
	setSCIM(false)
	require.Empty(t, creds(), "cancelling an enable must delete the token generated for it")
	evs, err = s.Auth.Services().Events.Search(ctx, s.Clock.Now().AddDate(-1, 0, 0), s.Clock.Now().AddDate(1, 0, 0), []string{"plugin.update"}, services.MaxSearchLimit)
	require.NoError(t, err)
	require.True(t, slices.ContainsFunc(evs, func(e *typesv1.AuditEvent) bool {
		return strings.Contains(e.GetMessage(), "generated to enable it was deleted") && e.GetFields()["scim_token"] == "deleted"
	}), "the cancelled token's deletion is audited")
	setSCIM(true)
	require.Empty(t, creds())

	// The UI's enable flow (token while off, then enable) keeps the token,
	// with its fingerprint.
	setSCIM(false)
	tok2, err := admin.Plugins.GenerateSCIMToken(ctx, &pluginpb.GenerateSCIMTokenRequest{Name: "okta"})
	require.NoError(t, err)
	setSCIM(true)
	c := creds()
	require.Len(t, c, 1)
	require.NoError(t, bcrypt.CompareHashAndPassword(c[0].GetSpec().GetScimTokenHash(), []byte(tok2.GetToken())))
	require.Equal(t, services.SCIMTokenFingerprint(tok2.GetToken()), c[0].GetSpec().GetScimTokenFingerprint())

	// A disabling update at a stale revision changes nothing.
	got, err := admin.Plugins.GetPlugin(ctx, &pluginpb.GetPluginRequest{Name: "okta"})
	require.NoError(t, err)
	stale := got.GetPlugin()
	setSCIM(true)
	stale.GetSpec().GetOkta().ScimEnabled = false
	_, err = admin.Plugins.UpdatePlugin(ctx, &pluginpb.UpdatePluginRequest{Plugin: stale})
	require.True(t, trace.IsCompareFailed(err), "got %v", err)
	require.Len(t, creds(), 1)
	cur, err := s.Auth.Services().Plugins.GetPlugin(ctx, "okta")
	require.NoError(t, err)
	require.True(t, cur.GetSpec().GetOkta().GetScimEnabled())
}

// TestPublicOrigin: URLs built from a public address leave out the default
// https port and keep any other.
func TestSCIMBaseURL(t *testing.T) {
	t.Parallel()
	require.Equal(t, "https://gatehouse.example.com/v1/webapi/scim/okta", pluginv1.SCIMBaseURL("gatehouse.example.com:443", "okta"))
	require.Equal(t, "https://gatehouse.example.com:3080/v1/webapi/scim/okta", pluginv1.SCIMBaseURL("gatehouse.example.com:3080", "okta"))
	require.Empty(t, pluginv1.SCIMBaseURL("", "okta"))
}

// TestPluginGrants: whoever may only update plugins cannot make SCIM grant a
// role they do not hold; lock_ttl must outlast every certificate.
func TestPluginGrants(t *testing.T) {
	t.Parallel()
	s := authtest.NewServer(t, authtest.Options{})
	ctx := context.Background()
	ensureConnector(t, s, "")
	s.CreateRole(t, "plugin-writer", []string{services.KindPlugin}, []string{"*"})
	s.CreateRole(t, "viewer", []string{"event"}, []string{services.VerbList})
	s.CreateUser(t, "pw", "plugin-writer", "viewer")
	pw := s.Client(t, "pw")
	s.CreateUser(t, "ed", "editor")
	ed := s.Client(t, "ed")
	// The right to create and update users no longer lets a caller give a
	// role it does not hold (the user API refuses that too), so it does not
	// let the plugin hand one out either.
	s.CreateRole(t, "user-writer", []string{services.KindUser}, []string{services.VerbCreate, services.VerbUpdate})
	s.CreateUser(t, "uw", "plugin-writer", "user-writer", "viewer")
	uw := s.Client(t, "uw")

	_, err := pw.Plugins.CreatePlugin(ctx, &pluginpb.CreatePluginRequest{Plugin: plugin("okta")})
	require.NoError(t, err)
	set := func(c *client.Client, modify func(*typesv1.OktaPluginSettings)) error {
		return updateOkta(t, s, c, modify)
	}
	for _, tc := range []struct {
		name   string
		modify func(*typesv1.OktaPluginSettings)
	}{
		{"default_roles editor", func(o *typesv1.OktaPluginSettings) { o.DefaultRoles = []string{"editor"} }},
		{"grantable_roles editor", func(o *typesv1.OktaPluginSettings) { o.GrantableRoles = []string{"viewer", "editor"} }},
		{"default_roles access", func(o *typesv1.OktaPluginSettings) { o.DefaultRoles = []string{"access"} }},
	} {
		for _, c := range []*client.Client{pw, uw} {
			err := set(c, tc.modify)
			require.True(t, trace.IsAccessDenied(err), "%s: %v", tc.name, err)
			require.Contains(t, err.Error(), "you may give only roles you hold yourself")
		}
	}
	// Roles the caller holds are fine; so is any role for an editor.
	require.NoError(t, set(pw, func(o *typesv1.OktaPluginSettings) { o.DefaultRoles = []string{"viewer"} }))
	require.NoError(t, set(ed, func(o *typesv1.OktaPluginSettings) {
		o.DefaultRoles, o.GrantableRoles = []string{"access"}, []string{"access", "viewer"}
	}))
	// An unchanged list does not stop an unrelated update.
	require.NoError(t, set(pw, func(o *typesv1.OktaPluginSettings) { o.ScimRateLimit = 100 }))
	// Emptying grantable_roles (the editor set it above) widens the ceiling to every role that
	// administers nothing: refused for pw, fine for an editor.
	require.NoError(t, set(ed, func(o *typesv1.OktaPluginSettings) { o.DefaultRoles = []string{"viewer"} }))
	err = set(pw, func(o *typesv1.OktaPluginSettings) { o.GrantableRoles = nil })
	require.True(t, trace.IsAccessDenied(err), "%v", err)
	require.Contains(t, err.Error(), "emptying grantable_roles lifts SCIM's ceiling")
	require.NoError(t, set(ed, func(o *typesv1.OktaPluginSettings) { o.GrantableRoles = nil }))

	// lock_ttl shorter than the longest session a role allows: while no
	// role sets max_session_ttl, the error names the default as the bound.
	err = set(ed, func(o *typesv1.OktaPluginSettings) { o.LockTtl = "1h" })
	require.True(t, trace.IsBadParameter(err), "%v", err)
	require.Contains(t, err.Error(), "shorter than the longest session a role allows (12h0m0s, the default for roles without max_session_ttl)")
	s.CreateRole(t, "long", []string{"event"}, []string{services.VerbList})
	_, err = s.Auth.Services().Roles.UpdateAndSwapRole(ctx, "long", func(r *typesv1.Role) error {
		r.Spec.Options = &typesv1.RoleOptions{MaxSessionTtl: "20h"}
		return nil
	})
	require.NoError(t, err)
	err = set(ed, func(o *typesv1.OktaPluginSettings) { o.LockTtl = "1s" })
	require.True(t, trace.IsBadParameter(err), "%v", err)
	require.Contains(t, err.Error(), "shorter than the longest session a role allows (20h0m0s, role long)")
	require.NoError(t, set(ed, func(o *typesv1.OktaPluginSettings) { o.LockTtl = "20h" }))
}

// TestPluginRolesMustExist: default_roles and grantable_roles may not newly list a role that
// does not exist (the grants reconcile would hand a role created later under that name to every
// SCIM user at once). A caller who may not list the role is told AccessDenied first; a role the
// stored plugin already lists and that was deleted since does not block an unrelated update.
func TestPluginRolesMustExist(t *testing.T) {
	t.Parallel()
	s := authtest.NewServer(t, authtest.Options{})
	ctx := context.Background()
	ensureConnector(t, s, "")
	s.CreateUser(t, "ed", "editor")
	ed := s.Client(t, "ed")
	s.CreateRole(t, "plugin-writer", []string{services.KindPlugin}, []string{"*"})
	s.CreateUser(t, "pw", "plugin-writer")
	pw := s.Client(t, "pw")

	p := plugin("okta")
	p.Spec.GetOkta().DefaultRoles = []string{"access", "acess"}
	_, err := ed.Plugins.CreatePlugin(ctx, &pluginpb.CreatePluginRequest{Plugin: p})
	require.True(t, trace.IsBadParameter(err), "%v", err)
	require.Contains(t, err.Error(), `role "acess" does not exist`)
	_, err = s.Auth.Services().Plugins.GetPlugin(ctx, "okta")
	require.True(t, trace.IsNotFound(err), "nothing written: %v", err)

	p.Spec.GetOkta().DefaultRoles = []string{"access"}
	_, err = ed.Plugins.CreatePlugin(ctx, &pluginpb.CreatePluginRequest{Plugin: p})
	require.NoError(t, err)
	set := func(c *client.Client, modify func(*typesv1.OktaPluginSettings)) error {
		return updateOkta(t, s, c, modify)
	}
	err = set(ed, func(o *typesv1.OktaPluginSettings) { o.GrantableRoles = []string{"access", "nosuch"} })
	require.True(t, trace.IsBadParameter(err), "%v", err)
	require.Contains(t, err.Error(), `role "nosuch" does not exist`)
	// Without the reach to list it, the caller learns only that.
	err = set(pw, func(o *typesv1.OktaPluginSettings) { o.DefaultRoles = []string{"nosuch"} })
	require.True(t, trace.IsAccessDenied(err), "%v", err)
	require.NotContains(t, err.Error(), "does not exist")

	// Listed, then deleted: an unrelated update still works and keeps it.
	s.CreateRole(t, "gone", []string{"event"}, []string{services.VerbList})
	require.NoError(t, set(ed, func(o *typesv1.OktaPluginSettings) { o.DefaultRoles = []string{"access", "gone"} }))
	require.NoError(t, s.Auth.Services().Roles.DeleteRole(ctx, "gone"))
	require.NoError(t, set(ed, func(o *typesv1.OktaPluginSettings) { o.ScimRateLimit = 50 }))
	cur, err := s.Auth.Services().Plugins.GetPlugin(ctx, "okta")
	require.NoError(t, err)
	require.Equal(t, []string{"access", "gone"}, cur.GetSpec().GetOkta().GetDefaultRoles())
}

// updateOkta reads plugin "okta" as stored, changes its settings with modify and writes it back
// as c.
func updateOkta(t *testing.T, s *authtest.Server, c *client.Client, modify func(*typesv1.OktaPluginSettings)) error {
	t.Helper()
	ctx := context.Background()
	cur, err := s.Auth.Services().Plugins.GetPlugin(ctx, "okta")
	require.NoError(t, err)
	modify(cur.GetSpec().GetOkta())
	_, err = c.Plugins.UpdatePlugin(ctx, &pluginpb.UpdatePluginRequest{Plugin: cur})
	return err
}

// TestConnectorSwitch: the plugin's SAML connector signs in its SCIM users, so a caller who may
// update plugins but whose roles do not allow everything cannot point it at another connector
// (one of its own, with an IdP it controls), nor clear it to set another later. An editor may.
func TestConnectorSwitch(t *testing.T) {
	t.Parallel()
	s := authtest.NewServer(t, authtest.Options{})
	ctx := context.Background()
	ensureConnector(t, s, "")
	_, err := s.Auth.Services().SAMLConnectors.UpsertSAMLConnector(ctx, &typesv1.SAMLConnector{
		Metadata: &typesv1.Metadata{Name: "evil"},
		Spec:     &typesv1.SAMLConnectorSpec{EntityDescriptorUrl: "https://attacker.example.com/metadata", Acs: "https://gatehouse.example.com/v1/webapi/saml/acs/evil"},
	})
	require.NoError(t, err)
	_, err = s.Auth.Services().Plugins.CreatePlugin(ctx, plugin("okta"))
	require.NoError(t, err)
	pw := s.UserWith(t, "pw", services.KindPlugin, "*")
	s.CreateUser(t, "ed", "editor")
	ed := s.Client(t, "ed")

	for _, conn := range []string{"evil", ""} {
		err := updateOkta(t, s, pw, func(o *typesv1.OktaPluginSettings) { o.SamlConnector = conn })
		require.True(t, trace.IsAccessDenied(err), "%q: %v", conn, err)
		require.Contains(t, err.Error(), `its SAML connector "okta-app" signs in its SCIM users`)
	}
	cur, err := s.Auth.Services().Plugins.GetPlugin(ctx, "okta")
	require.NoError(t, err)
	require.Equal(t, "okta-app", cur.GetSpec().GetOkta().GetSamlConnector(), "nothing written")
	require.NoError(t, updateOkta(t, s, pw, func(o *typesv1.OktaPluginSettings) { o.ScimRateLimit = 50 }), "an unrelated update")
	require.NoError(t, updateOkta(t, s, ed, func(o *typesv1.OktaPluginSettings) { o.SamlConnector = "evil" }))
}

// TestConnectorBelongsToOnePlugin: a second plugin cannot name the SAML connector of another,
// whose temporary users its SCIM would adopt and whose logins would sign in its SCIM users; not
// even an editor's. The plugin itself keeps its connector through updates.
func TestConnectorBelongsToOnePlugin(t *testing.T) {
	t.Parallel()
	s := authtest.NewServer(t, authtest.Options{})
	ctx := context.Background()
	existing(t, s, "okta")
	s.CreateUser(t, "ed", "editor")
	ed := s.Client(t, "ed")

	evil := plugin("evil")
	evil.GetSpec().GetOkta().SamlConnector = "okta-app"
	_, err := ed.Plugins.CreatePlugin(ctx, &pluginpb.CreatePluginRequest{Plugin: evil})
	require.True(t, trace.IsBadParameter(err), "%v", err)
	require.Contains(t, err.Error(), `SAML connector "okta-app" belongs to plugin "okta"`)
	_, err = s.Auth.Services().Plugins.GetPlugin(ctx, "evil")
	require.True(t, trace.IsNotFound(err), "nothing written: %v", err)
	require.NoError(t, updateOkta(t, s, ed, func(o *typesv1.OktaPluginSettings) { o.ScimRateLimit = 10 }))
}

// TestSCIMTokenNeedsTheGrants: whoever holds the SCIM token gives SCIM users (itself among them,
// if the plugin manages its account) the plugin's default roles and its connector's mapped roles
// within grantable_roles; a caller who may update plugins but does not hold those roles (and
// whose roles do not allow everything) gets no token, and the stored one stays. The refusal is
// audited.
func TestSCIMTokenNeedsTheGrants(t *testing.T) {
	t.Parallel()
	s := authtest.NewServer(t, authtest.Options{})
	ctx := context.Background()
	_, err := s.Auth.Services().SAMLConnectors.UpsertSAMLConnector(ctx, &typesv1.SAMLConnector{
		Metadata: &typesv1.Metadata{Name: connectorOf("okta")},
		Spec: &typesv1.SAMLConnectorSpec{
			EntityDescriptorUrl: "https://idp.example.com/metadata",
			Acs:                 "https://gatehouse.example.com/v1/webapi/saml/acs/" + connectorOf("okta"),
			AttributesToRoles:   []*typesv1.AttributeMapping{{Name: "groups", Value: "admins", Roles: []string{"auditor"}}},
		},
	})
	require.NoError(t, err)
	p := plugin("okta")
	p.GetSpec().GetOkta().DefaultRoles = []string{"access"}
	_, err = s.Auth.Services().Plugins.CreatePlugin(ctx, p)
	require.NoError(t, err)
	s.CreateUser(t, "ed", "editor")
	first, err := s.Client(t, "ed").Plugins.GenerateSCIMToken(ctx, &pluginpb.GenerateSCIMTokenRequest{Name: "okta"})
	require.NoError(t, err)
	s.CreateRole(t, "plugin-writer", []string{services.KindPlugin}, []string{"*"})
	s.CreateUser(t, "pw", "plugin-writer", "access")
	pw := s.Client(t, "pw")

	_, err = pw.Plugins.GenerateSCIMToken(ctx, &pluginpb.GenerateSCIMTokenRequest{Name: "okta"})
	require.True(t, trace.IsAccessDenied(err), "%v", err)
	require.Contains(t, err.Error(), "you do not hold auditor")
	authtest.RequireEvent(t, s, "plugin.token.create", "pw")
	creds, err := s.Auth.Services().PluginStaticCredentials.ListPluginStaticCredentialsByLabels(ctx, pluginv1.CredentialsLabels("okta"), true)
	require.NoError(t, err)
	require.Len(t, creds, 1)
	require.NoError(t, bcrypt.CompareHashAndPassword(creds[0].GetSpec().GetScimTokenHash(), []byte(first.GetToken())), "the stored token is untouched")

	// With grantable_roles [access], the mapping to auditor grants nothing: pw holds all SCIM can give.
	_, err = s.Auth.Services().Plugins.UpdateAndSwapPlugin(ctx, "okta", func(p *typesv1.Plugin) error {
		p.GetSpec().GetOkta().GrantableRoles = []string{"access"}
		return nil
	})
	require.NoError(t, err)
	_, err = pw.Plugins.GenerateSCIMToken(ctx, &pluginpb.GenerateSCIMTokenRequest{Name: "okta"})
	require.NoError(t, err)
}
