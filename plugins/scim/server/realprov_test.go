package server_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/auth/pluginv1"
	"github.com/gatehouse/gatehouse/lib/auth/scimprov"
	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/services"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// The tests that run the handler over the real provisioner (rather than the fake) build it here.

// installPlugin writes the Okta plugin name (SCIM on when enabled, default role access) and a
// token credential for it, and returns the token. A legacy credential has no fingerprint, as
// credentials written before fingerprints existed.
func installPlugin(tb testing.TB, svc *services.Services, name string, enabled, legacy bool) string {
	tb.Helper()
	ctx := context.Background()
	_, err := svc.CreatePlugin(ctx, &typesv1.Plugin{
		Metadata: &typesv1.Metadata{Name: name},
		Spec: &typesv1.PluginSpec{
			Settings: &typesv1.PluginSpec_Okta{Okta: &typesv1.OktaPluginSettings{
				SamlConnector: "okta", ScimEnabled: enabled, DefaultRoles: []string{"access"},
			}},
			StaticCredentialsRef: &typesv1.PluginStaticCredentialsRef{Labels: pluginv1.CredentialsLabels(name)},
		},
	})
	require.NoError(tb, err)
	token, hash, err := pluginv1.NewToken()
	require.NoError(tb, err)
	spec := &typesv1.PluginStaticCredentialsSpec{ScimTokenHash: hash}
	if !legacy {
		spec.ScimTokenFingerprint = services.SCIMTokenFingerprint(token)
	}
	_, err = svc.UpsertPluginStaticCredentials(ctx, &typesv1.PluginStaticCredentials{
		Metadata: &typesv1.Metadata{Name: pluginv1.CredentialsName(name), Labels: pluginv1.CredentialsLabels(name)},
		Spec:     spec,
	})
	require.NoError(tb, err)
	return token
}

// newRealProvisioner is the real provisioner over bk and svc (its services), with the audit log
// on clock (nil: the real clock); it is closed when the test ends.
func newRealProvisioner(tb testing.TB, bk backend.Backend, svc *services.Services, clock clockwork.Clock) *scimprov.Provisioner {
	tb.Helper()
	al, err := services.NewAuditLog(services.AuditLogConfig{Backend: bk, Clock: clock})
	require.NoError(tb, err)
	prov, err := scimprov.New(scimprov.Config{
		Backend: bk, Plugins: svc.PluginService, Credentials: svc.PluginStaticCredentialsService,
		SAMLConnectors: svc.SAMLConnectorService, Roles: svc.RoleService, Audit: al,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(tb, err)
	tb.Cleanup(func() { prov.Close() })
	return prov
}
