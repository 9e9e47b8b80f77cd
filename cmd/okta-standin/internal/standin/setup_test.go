package standin

import (
	"context"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/auth/authtest"
	"github.com/gatehouse/gatehouse/lib/auth/client"
	pluginv1 "github.com/gatehouse/gatehouse/proto/gatehouse/plugin/v1"
	rolev1 "github.com/gatehouse/gatehouse/proto/gatehouse/role/v1"
	samlv1 "github.com/gatehouse/gatehouse/proto/gatehouse/saml/v1"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// metadataAt is the metadata of a stand-in IdP served at base.
func metadataAt(t *testing.T, base string) string {
	t.Helper()
	key, cert, err := LoadOrCreateSigningKey(t.TempDir(), time.Now())
	require.NoError(t, err)
	idp, err := NewIdP(IdPConfig{BaseURL: base, Key: key, Certificate: cert, Directory: NewDirectory(nil, nil), RestartURL: "https://localhost:3080/web/login"})
	require.NoError(t, err)
	md, err := idp.MetadataXML()
	require.NoError(t, err)
	return md
}

func operator(t *testing.T) (*authtest.Server, *client.Client) {
	t.Helper()
	s := authtest.NewServer(t, authtest.Options{})
	s.CreateRole(t, "everything", []string{"*"}, []string{"*"})
	s.CreateUser(t, "operator", "everything")
	return s, s.Client(t, "operator")
}

var testGatehouse = Gatehouse{URL: "https://localhost:3080", DataDir: "unused"}

func TestSetupThroughTheAdminAPI(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, api := operator(t)
	md := metadataAt(t, "http://127.0.0.1:3090")

	token, err := Setup(ctx, api, testGatehouse, SetupConfig{IdPMetadata: md, Login: "ubuntu"})
	require.NoError(t, err)
	require.NotEmpty(t, token)

	role, err := api.Roles.GetRole(ctx, &rolev1.GetRoleRequest{Name: DemoRole})
	require.NoError(t, err)
	require.Equal(t, []string{"ubuntu"}, role.GetRole().GetSpec().GetAllow().GetLogins())
	require.Empty(t, role.GetRole().GetSpec().GetAllow().GetRules(), "the demo role grants nothing in the admin API")

	conn, err := api.SAML.GetSAMLConnector(ctx, &samlv1.GetSAMLConnectorRequest{Name: ConnectorName})
	require.NoError(t, err)
	spec := conn.GetSamlConnector().GetSpec()
	require.Equal(t, "https://localhost:3080/v1/webapi/saml/acs/okta", spec.GetAcs())
	require.Equal(t, "Okta", spec.GetDisplay())
	require.Contains(t, spec.GetEntityDescriptor(), `entityID="http://127.0.0.1:3090/metadata"`)
	require.Len(t, spec.GetAttributesToRoles(), 1)
	require.Equal(t, []string{AuditorRole}, spec.GetAttributesToRoles()[0].GetRoles())

	plugin, err := api.Plugins.GetPlugin(ctx, &pluginv1.GetPluginRequest{Name: PluginName})
	require.NoError(t, err)
	okta := plugin.GetPlugin().GetSpec().GetOkta()
	require.True(t, okta.GetScimEnabled())
	require.Equal(t, ConnectorName, okta.GetSamlConnector())
	require.Equal(t, []string{DemoRole}, okta.GetDefaultRoles())

	// Again on the same Gatehouse (make demo run twice): what an operator
	// changed in the plugin stays, the token is rotated.
	okta.LockTtl = "720h"
	_, err = api.Plugins.UpdatePlugin(ctx, &pluginv1.UpdatePluginRequest{Plugin: plugin.GetPlugin()})
	require.NoError(t, err)
	again, err := Setup(ctx, api, testGatehouse, SetupConfig{IdPMetadata: metadataAt(t, "http://127.0.0.1:3090"), Login: "ubuntu"})
	require.NoError(t, err)
	require.NotEqual(t, token, again)
	plugin, err = api.Plugins.GetPlugin(ctx, &pluginv1.GetPluginRequest{Name: PluginName})
	require.NoError(t, err)
	require.Equal(t, "720h", plugin.GetPlugin().GetSpec().GetOkta().GetLockTtl())
}

// The demo never takes over a connector that trusts a real IdP.
func TestSetupRefusesARealConnector(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, api := operator(t)
	realConn := &typesv1.SAMLConnector{
		Kind: "saml", Version: "v1",
		Metadata: &typesv1.Metadata{Name: ConnectorName},
		Spec: &typesv1.SAMLConnectorSpec{
			Acs:              "https://gatehouse.acme.com/v1/webapi/saml/acs/okta",
			EntityDescriptor: metadataAt(t, "https://acme.okta.com"),
		},
	}
	_, err := api.SAML.CreateSAMLConnector(ctx, &samlv1.CreateSAMLConnectorRequest{SamlConnector: realConn})
	require.NoError(t, err)

	_, err = Setup(ctx, api, testGatehouse, SetupConfig{IdPMetadata: metadataAt(t, "http://127.0.0.1:3090"), Login: "ubuntu"})
	require.True(t, trace.IsAlreadyExists(err), "%v", err)
	require.ErrorContains(t, err, "https://acme.okta.com/metadata")
	conn, err := api.SAML.GetSAMLConnector(ctx, &samlv1.GetSAMLConnectorRequest{Name: ConnectorName})
	require.NoError(t, err)
	require.Contains(t, conn.GetSamlConnector().GetSpec().GetEntityDescriptor(), "acme.okta.com", "left as it was")
	_, err = api.Roles.GetRole(ctx, &rolev1.GetRoleRequest{Name: DemoRole})
	require.True(t, trace.IsNotFound(err), "nothing written")
}
