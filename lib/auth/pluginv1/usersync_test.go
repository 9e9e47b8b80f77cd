package pluginv1_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"testing"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/gatehouse/gatehouse/lib/auth/authtest"
	"github.com/gatehouse/gatehouse/lib/auth/pluginv1"
	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/okta/oktaapi/oktatest"
	"github.com/gatehouse/gatehouse/lib/services"
	pluginpb "github.com/gatehouse/gatehouse/proto/gatehouse/plugin/v1"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

func userSyncSettings() *typesv1.OktaUserSyncSettings {
	return &typesv1.OktaUserSyncSettings{
		Enabled: true, OrgUrl: "https://example.okta.com", AppId: "0oa1", CredentialKind: services.UserSyncCredentialAPIToken,
	}
}

func existingWithUserSync(t *testing.T, s *authtest.Server, name string) {
	ensureConnector(t, s, name)
	p := plugin(name)
	p.GetSpec().GetOkta().ScimEnabled = false
	p.GetSpec().GetOkta().UserSync = userSyncSettings()
	_, err := s.Auth.Services().Plugins.CreatePlugin(context.Background(), p)
	require.NoError(t, err)
}

// TestUserSyncCredentials checks that a user sync credential is stored
// only sealed, is returned by no call and appears in no audit event, that
// the SCIM token's lifecycle leaves it alone, and that it dies with the
// plugin.
func TestUserSyncCredentials(t *testing.T) {
	t.Parallel()
	s := authtest.NewServer(t, authtest.Options{})
	ctx := context.Background()
	admin := s.UserWith(t, "admin", services.KindPlugin, "*")
	ensureConnector(t, s, "")
	_, err := admin.Plugins.CreatePlugin(ctx, &pluginpb.CreatePluginRequest{Plugin: plugin("okta")})
	require.NoError(t, err)

	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(ecKey)
	require.NoError(t, err)
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))

	for name, tc := range map[string]struct {
		req     *pluginpb.SetUserSyncCredentialsRequest
		wantErr string
	}{
		"both":      {req: &pluginpb.SetUserSyncCredentialsRequest{ApiToken: "t", ClientId: "c", PrivateKeyPem: keyPEM}, wantErr: "not both"},
		"no key":    {req: &pluginpb.SetUserSyncCredentialsRequest{ClientId: "c"}, wantErr: "needs both"},
		"bad key":   {req: &pluginpb.SetUserSyncCredentialsRequest{ClientId: "c", PrivateKeyPem: "garbage"}, wantErr: "not PEM"},
		"nothing":   {req: &pluginpb.SetUserSyncCredentialsRequest{}, wantErr: "needs both"},
		"no plugin": {req: &pluginpb.SetUserSyncCredentialsRequest{Name: "nope", ApiToken: "t"}, wantErr: "not found"},
	} {
		t.Run(name, func(t *testing.T) {
			if tc.req.Name == "" {
				tc.req.Name = "okta"
			}
			_, err := admin.Plugins.SetUserSyncCredentials(ctx, tc.req)
			require.ErrorContains(t, err, tc.wantErr)
		})
	}

	const token = "00SSWS-super-secret-token"
	resp, err := admin.Plugins.SetUserSyncCredentials(ctx, &pluginpb.SetUserSyncCredentialsRequest{Name: "okta", ApiToken: token})
	require.NoError(t, err)
	require.Equal(t, services.UserSyncCredentialAPIToken, resp.GetKind())
	_, err = admin.Plugins.SetUserSyncCredentials(ctx, &pluginpb.SetUserSyncCredentialsRequest{Name: "okta", ClientId: "0oaclient", PrivateKeyPem: keyPEM})
	require.NoError(t, err)
	_, err = admin.Plugins.SetUserSyncCredentials(ctx, &pluginpb.SetUserSyncCredentialsRequest{Name: "okta", ApiToken: token})
	require.NoError(t, err)

	// The SCIM token's rotation and an update leaving SCIM off keep it.
	_, err = admin.Plugins.GenerateSCIMToken(ctx, &pluginpb.GenerateSCIMTokenRequest{Name: "okta"})
	require.NoError(t, err)
	cur, err := admin.Plugins.GetPlugin(ctx, &pluginpb.GetPluginRequest{Name: "okta"})
	require.NoError(t, err)
	cur.GetPlugin().GetSpec().GetOkta().ScimEnabled = false
	_, err = admin.Plugins.UpdatePlugin(ctx, &pluginpb.UpdatePluginRequest{Plugin: cur.GetPlugin()})
	require.NoError(t, err)

	creds, err := s.Auth.Services().PluginStaticCredentials.ListPluginStaticCredentialsByLabels(ctx, services.UserSyncCredentialsLabels("okta"), true)
	require.NoError(t, err)
	require.Len(t, creds, 1)
	api := creds[0].GetSpec().GetOktaApi()
	require.Equal(t, s.Sealer.KeyID(), api.GetSealingKeyId())
	plain, err := s.Sealer.Open(api.GetSealedSecret(), pluginv1.SealContext("okta"), api.GetSealingKeyId())
	require.NoError(t, err)
	require.Equal(t, token, string(plain))
	_, err = s.Sealer.Open(api.GetSealedSecret(), pluginv1.SealContext("other"), api.GetSealingKeyId())
	require.Error(t, err, "a sealed secret is bound to its plugin")

	// No call returns it.
	got, err := admin.Plugins.GetPlugin(ctx, &pluginpb.GetPluginRequest{Name: "okta", WithSecrets: true})
	require.NoError(t, err)
	js, err := protojson.Marshal(got)
	require.NoError(t, err)
	require.NotContains(t, string(js), "sealed")
	st, err := admin.Plugins.GetUserSyncStatus(ctx, &pluginpb.GetUserSyncStatusRequest{Name: "okta"})
	require.NoError(t, err)
	require.Equal(t, services.UserSyncCredentialAPIToken, st.GetCredentialKind())

	// Neither the token nor the key is anywhere in the backend in clear,
	// audit events included.
	items, err := s.Backend.GetRange(ctx, backend.Key("\x00"), nil, backend.MaxRangeLimit)
	require.NoError(t, err)
	for _, it := range items.Items {
		require.False(t, bytes.Contains(it.Value, []byte(token)), "token found in %s", it.Key)
		require.False(t, bytes.Contains(it.Value, []byte("PRIVATE KEY")), "key found in %s", it.Key)
	}
	events, err := s.Auth.Services().Events.Search(ctx, s.Clock.Now().AddDate(-1, 0, 0), s.Clock.Now().AddDate(1, 0, 0), nil, services.MaxSearchLimit)
	require.NoError(t, err)
	var set int
	for _, e := range events {
		if e.GetType() == pluginv1.EventUserSyncCredentials && e.GetOutcome() == services.OutcomeSuccess {
			set++
		}
	}
	require.Equal(t, 3, set)

	// Deleting the plugin deletes the credential.
	_, err = admin.Plugins.DeletePlugin(ctx, &pluginpb.DeletePluginRequest{Name: "okta"})
	require.NoError(t, err)
	creds, err = s.Auth.Services().PluginStaticCredentials.ListPluginStaticCredentialsByLabels(ctx, services.UserSyncCredentialsLabels("okta"), false)
	require.NoError(t, err)
	require.Empty(t, creds)
}

// TestSCIMOrUserSync checks that a plugin never runs both, and that a sync
// request needs user sync on.
func TestSCIMOrUserSync(t *testing.T) {
	t.Parallel()
	s := authtest.NewServer(t, authtest.Options{})
	ctx := context.Background()
	admin := s.UserWith(t, "admin", services.KindPlugin, "*")
	ensureConnector(t, s, "")
	p := plugin("okta") // SCIM on
	p.GetSpec().GetOkta().UserSync = userSyncSettings()
	_, err := admin.Plugins.CreatePlugin(ctx, &pluginpb.CreatePluginRequest{Plugin: p})
	require.True(t, trace.IsBadParameter(err), "%v", err)
	require.ErrorContains(t, err, "SCIM or user sync")

	p.GetSpec().GetOkta().UserSync.Enabled = false
	created, err := admin.Plugins.CreatePlugin(ctx, &pluginpb.CreatePluginRequest{Plugin: p})
	require.NoError(t, err)
	_, err = admin.Plugins.SyncUsers(ctx, &pluginpb.SyncUsersRequest{Name: "okta"})
	require.ErrorContains(t, err, "does not have user sync enabled")

	// Switching is explicit: SCIM off and user sync on in one update.
	next := created.GetPlugin()
	next.GetSpec().GetOkta().UserSync.Enabled = true
	_, err = admin.Plugins.UpdatePlugin(ctx, &pluginpb.UpdatePluginRequest{Plugin: next})
	require.ErrorContains(t, err, "SCIM or user sync")
	next.GetSpec().GetOkta().ScimEnabled = false
	_, err = admin.Plugins.UpdatePlugin(ctx, &pluginpb.UpdatePluginRequest{Plugin: next})
	require.NoError(t, err)

	resp, err := admin.Plugins.SyncUsers(ctx, &pluginpb.SyncUsersRequest{Name: "okta", Full: true})
	require.NoError(t, err)
	tr, err := services.TakeUserSyncTrigger(ctx, s.Backend, "okta")
	require.NoError(t, err)
	require.Equal(t, resp.GetTriggerId(), tr.ID)
	require.True(t, tr.Full)
}

func TestUserSyncConnection(t *testing.T) {
	t.Parallel()
	s := authtest.NewServer(t, authtest.Options{})
	ctx := context.Background()
	admin := s.UserWith(t, "admin", services.KindPlugin, "*")
	ensureConnector(t, s, "")
	org := oktatest.New()
	t.Cleanup(org.Close)
	org.AddUser("a@example.com", true)
	p := plugin("okta")
	p.GetSpec().GetOkta().ScimEnabled = false
	p.GetSpec().GetOkta().UserSync = &typesv1.OktaUserSyncSettings{OrgUrl: org.URL(), AppId: org.AppID}
	created, err := admin.Plugins.CreatePlugin(ctx, &pluginpb.CreatePluginRequest{Plugin: p})
	require.NoError(t, err)
	test := func() *pluginpb.TestUserSyncConnectionResponse {
		t.Helper()
		resp, err := admin.Plugins.TestUserSyncConnection(ctx, &pluginpb.TestUserSyncConnectionRequest{Name: "okta"})
		require.NoError(t, err)
		return resp
	}
	require.Contains(t, test().GetMessage(), "no credential is stored")

	_, err = admin.Plugins.SetUserSyncCredentials(ctx, &pluginpb.SetUserSyncCredentialsRequest{Name: "okta", ApiToken: "wrong"})
	require.NoError(t, err)
	resp := test()
	require.False(t, resp.GetOk())
	require.Contains(t, resp.GetMessage(), "401")

	_, err = admin.Plugins.SetUserSyncCredentials(ctx, &pluginpb.SetUserSyncCredentialsRequest{Name: "okta", ApiToken: org.Token})
	require.NoError(t, err)
	resp = test()
	require.True(t, resp.GetOk(), resp.GetMessage())
	require.NotContains(t, resp.GetMessage(), org.Token)

	next := created.GetPlugin()
	next.GetSpec().GetOkta().UserSync.AppId = "0oanotthere"
	_, err = admin.Plugins.UpdatePlugin(ctx, &pluginpb.UpdatePluginRequest{Plugin: next})
	require.NoError(t, err)
	resp = test()
	require.False(t, resp.GetOk())
	require.Contains(t, resp.GetMessage(), "no app")
}

// TestUserSyncOrgSwitch: a caller who may update plugins but whose roles do not allow everything
// cannot point user sync at another org (its own server), which would receive the stored
// credential on the next test or sync, or, with a credential of the caller's own, decide which
// accounts a full pass deprovisions. An editor may.
func TestUserSyncOrgSwitch(t *testing.T) {
	t.Parallel()
	s := authtest.NewServer(t, authtest.Options{})
	ctx := context.Background()
	pw := s.UserWith(t, "pw", services.KindPlugin, "*")
	ensureConnector(t, s, "")
	p := plugin("okta")
	p.GetSpec().GetOkta().ScimEnabled = false
	p.GetSpec().GetOkta().UserSync = &typesv1.OktaUserSyncSettings{OrgUrl: "https://example.okta.com", AppId: "0oa1"}
	_, err := s.Auth.Services().Plugins.CreatePlugin(ctx, p)
	require.NoError(t, err)
	s.CreateUser(t, "ed", "editor")
	ed := s.Client(t, "ed")
	toAttacker := func(o *typesv1.OktaPluginSettings) { o.UserSync.OrgUrl = "https://attacker.example.com" }
	// Without a credential stored too: the caller would set one of its own for its org.
	err = updateOkta(t, s, pw, toAttacker)
	require.True(t, trace.IsAccessDenied(err), "%v", err)
	_, err = ed.Plugins.SetUserSyncCredentials(ctx, &pluginpb.SetUserSyncCredentialsRequest{Name: "okta", ApiToken: "the-real-okta-token"})
	require.NoError(t, err)

	err = updateOkta(t, s, pw, toAttacker)
	require.True(t, trace.IsAccessDenied(err), "%v", err)
	require.Contains(t, err.Error(), `user sync's org decides which of the plugin's accounts live`)
	cur, err := s.Auth.Services().Plugins.GetPlugin(ctx, "okta")
	require.NoError(t, err)
	require.Equal(t, "https://example.okta.com", cur.GetSpec().GetOkta().GetUserSync().GetOrgUrl(), "nothing written")
	require.NoError(t, updateOkta(t, s, pw, func(o *typesv1.OktaPluginSettings) { o.UserSync.AppId = "0oa2" }), "an unrelated update")
	require.NoError(t, updateOkta(t, s, ed, toAttacker))

	// Setting it the first time on an existing plugin (whose SCIM users a full pass would
	// deprovision once user sync takes over) is refused too.
	ensureConnector(t, s, "second")
	second := plugin("second")
	second.GetSpec().GetOkta().ScimEnabled = false
	_, err = s.Auth.Services().Plugins.CreatePlugin(ctx, second)
	require.NoError(t, err)
	cur, err = s.Auth.Services().Plugins.GetPlugin(ctx, "second")
	require.NoError(t, err)
	cur.GetSpec().GetOkta().UserSync = &typesv1.OktaUserSyncSettings{OrgUrl: "https://attacker.example.com", AppId: "0oa1"}
	_, err = pw.Plugins.UpdatePlugin(ctx, &pluginpb.UpdatePluginRequest{Plugin: cur})
	require.True(t, trace.IsAccessDenied(err), "%v", err)
}
