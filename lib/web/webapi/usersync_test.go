package webapi_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/auth"
	"github.com/gatehouse/gatehouse/lib/auth/credseal"
	"github.com/gatehouse/gatehouse/lib/backend/memory"
	"github.com/gatehouse/gatehouse/lib/okta/oktaapi/oktatest"
	"github.com/gatehouse/gatehouse/lib/services"
	"github.com/gatehouse/gatehouse/lib/web/webapi"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// newUserSyncEnv is newEnv with a credentials key on the auth server, so
// that user sync credentials can be stored.
func newUserSyncEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	bk, err := memory.New(ctx, memory.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { bk.Close() })
	key := make([]byte, 32)
	_, err = rand.Read(key)
	require.NoError(t, err)
	sealer, err := credseal.New(key)
	require.NoError(t, err)
	return newEnvWith(t, auth.Config{Backend: bk, PublicAddr: publicAddr, CredentialSealer: sealer}, "")
}

// TestUserSyncCard drives the User sync card's endpoints: configure (the
// switch from SCIM is explicit), store a credential that is never returned,
// test the connection, ask for a run, read the status; and a user without
// the plugin verbs is refused.
func TestUserSyncCard(t *testing.T) {
	t.Parallel()
	e := newUserSyncEnv(t)
	ctx := context.Background()
	_, err := e.auth.Services().SAMLConnectors.UpsertSAMLConnector(ctx, &typesv1.SAMLConnector{
		Metadata: &typesv1.Metadata{Name: "okta"},
		Spec:     &typesv1.SAMLConnectorSpec{EntityDescriptor: idpMetadata(t, "http://www.okta.com/exk1"), Acs: publicOrigin + "/v1/webapi/saml/acs/okta"},
	})
	require.NoError(t, err)
	_, err = e.auth.Services().Plugins.CreatePlugin(ctx, &typesv1.Plugin{
		Metadata: &typesv1.Metadata{Name: "okta"},
		Spec: &typesv1.PluginSpec{Settings: &typesv1.PluginSpec_Okta{Okta: &typesv1.OktaPluginSettings{
			SamlConnector: "okta", ScimEnabled: true,
		}}},
	})
	require.NoError(t, err)
	org := oktatest.New()
	t.Cleanup(org.Close)
	org.AddUser("a@example.com", true)

	e.role("plugin-admin", []string{services.KindPlugin, services.KindSAMLConnector}, []string{"*"})
	admin := e.user("alice", "plugin-admin")
	settings := webapi.UserSyncSettingsRequest{Enabled: true, OrgURL: org.URL(), AppID: org.AppID, CredentialKind: services.UserSyncCredentialAPIToken}

	status, body := e.do(&admin, csrfRight, http.MethodPut, "/v1/webapi/plugins/okta/usersync", settings)
	require.Equal(t, http.StatusBadRequest, status, body)
	require.Contains(t, body["error"], "switch_from_scim")

	status, body = e.do(&admin, csrfRight, http.MethodPut, "/v1/webapi/plugins/okta/usersync/credentials", webapi.UserSyncCredentialsRequest{APIToken: org.Token})
	require.Equal(t, http.StatusOK, status, body)
	require.Equal(t, services.UserSyncCredentialAPIToken, body["credential_kind"])

	settings.SwitchFromSCIM = true
	// Which org decides the plugin's accounts (a full pass deprovisions those missing there) is
	// for a caller whose roles allow everything: the plugin verbs alone get a readable 403.
	status, body = e.do(&admin, csrfRight, http.MethodPut, "/v1/webapi/plugins/okta/usersync", settings)
	require.Equal(t, http.StatusForbidden, status, body)
	require.Contains(t, body["error"], "user sync's org decides which of the plugin's accounts live")
	editor := e.user("erin", auth.PresetEditorRole)
	status, body = e.do(&editor, csrfRight, http.MethodPut, "/v1/webapi/plugins/okta/usersync", settings)
	require.Equal(t, http.StatusOK, status, body)
	require.Equal(t, true, body["settings"].(map[string]any)["enabled"])
	require.Equal(t, services.UserSyncCredentialAPIToken, body["credential_kind"])
	p, err := e.auth.Services().Plugins.GetPlugin(ctx, "okta")
	require.NoError(t, err)
	require.False(t, p.GetSpec().GetOkta().GetScimEnabled(), "the switch turned SCIM off")
	status, body = e.do(&admin, csrfRight, http.MethodGet, "/v1/webapi/plugins/okta", nil)
	require.Equal(t, http.StatusOK, status, body)
	require.Equal(t, "sso_usersync", body["state"], "the Okta tile's badge shows user sync")

	status, body = e.do(&admin, csrfRight, http.MethodPost, "/v1/webapi/plugins/okta/usersync/test", nil)
	require.Equal(t, http.StatusOK, status, body)
	require.Equal(t, true, body["ok"], body)

	status, body = e.do(&admin, csrfRight, http.MethodPost, "/v1/webapi/plugins/okta/usersync/sync", map[string]bool{"full": true})
	require.Equal(t, http.StatusOK, status, body)
	require.NotEmpty(t, body["trigger_id"])
	// A state-changing call without the CSRF token is refused.
	status, _ = e.do(&admin, csrfNone, http.MethodPost, "/v1/webapi/plugins/okta/usersync/sync", nil)
	require.Equal(t, http.StatusForbidden, status)

	status, body = e.do(&admin, csrfRight, http.MethodGet, "/v1/webapi/plugins/okta/usersync", nil)
	require.Equal(t, http.StatusOK, status, body)
	for _, v := range body {
		js, _ := jsonString(v)
		require.NotContains(t, js, org.Token)
	}

	// Without the plugin verbs: 403, as over gRPC.
	e.role("nobody", []string{services.KindUser}, []string{"list"})
	other := e.user("bob", "nobody")
	for _, ep := range []struct{ method, path string }{
		{http.MethodGet, "/v1/webapi/plugins/okta/usersync"},
		{http.MethodPost, "/v1/webapi/plugins/okta/usersync/test"},
		{http.MethodPost, "/v1/webapi/plugins/okta/usersync/sync"},
	} {
		status, body := e.do(&other, csrfRight, ep.method, ep.path, nil)
		require.Equal(t, http.StatusForbidden, status, "%s %s: %v", ep.method, ep.path, body)
	}
	status, _ = e.do(&other, csrfRight, http.MethodPut, "/v1/webapi/plugins/okta/usersync/credentials", webapi.UserSyncCredentialsRequest{APIToken: "x"})
	require.Equal(t, http.StatusForbidden, status)
}

func jsonString(v any) (string, error) {
	out, err := json.Marshal(v)
	return string(out), err
}
