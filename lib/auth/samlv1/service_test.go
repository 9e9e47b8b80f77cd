package samlv1_test

import (
	"context"
	"testing"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/gatehouse/gatehouse/lib/auth/authtest"
	"github.com/gatehouse/gatehouse/lib/auth/client"
	"github.com/gatehouse/gatehouse/lib/services"
	samlpb "github.com/gatehouse/gatehouse/proto/gatehouse/saml/v1"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

func newRes(name string) *typesv1.SAMLConnector {
	return &typesv1.SAMLConnector{Metadata: &typesv1.Metadata{Name: name}, Spec: &typesv1.SAMLConnectorSpec{EntityDescriptor: testIDPMetadata, EntityDescriptorUrl: "https://idp.example.com/metadata", Acs: "https://gatehouse.example.com/v1/webapi/saml/acs/" + name, SigningKeyPair: &typesv1.AsymmetricKeyPair{PrivateKey: "SECRET-KEY", Cert: "CERT"}}}
}

func existing(t *testing.T, s *authtest.Server, name string) {
	_, err := s.Auth.Services().SAMLConnectors.CreateSAMLConnector(context.Background(), newRes(name))
	if err != nil {
		t.Fatal(err)
	}
}

type call = func(ctx context.Context, s *authtest.Server, c *client.Client, name string) error

func TestEveryRPC(t *testing.T) {
	t.Parallel()
	authtest.RunRPCCases(t, samlpb.SAMLConnectorService_ServiceDesc, services.KindSAMLConnector, map[string]authtest.RPCCase{
		"GetSAMLConnector": {
			Verbs: []string{services.VerbReadNoSecrets},
			Setup: existing,
			Call: call(func(ctx context.Context, s *authtest.Server, c *client.Client, name string) error {
				_, err := c.SAML.GetSAMLConnector(ctx, &samlpb.GetSAMLConnectorRequest{Name: name})
				return err
			}),
		},
		"ListSAMLConnectors": {
			Verbs: []string{services.VerbList, services.VerbReadNoSecrets},
			Call: call(func(ctx context.Context, s *authtest.Server, c *client.Client, name string) error {
				_, err := c.SAML.ListSAMLConnectors(ctx, &samlpb.ListSAMLConnectorsRequest{})
				return err
			}),
		},
		"CreateSAMLConnector": {
			Verbs: []string{services.VerbCreate},
			Call: call(func(ctx context.Context, s *authtest.Server, c *client.Client, name string) error {
				_, err := c.SAML.CreateSAMLConnector(ctx, &samlpb.CreateSAMLConnectorRequest{SamlConnector: newRes(name)})
				return err
			}),
		},
		"UpdateSAMLConnector": {
			Verbs: []string{services.VerbUpdate},
			Setup: existing,
			Call: call(func(ctx context.Context, s *authtest.Server, c *client.Client, name string) error {
				cur, err := s.Auth.Services().SAMLConnectors.GetSAMLConnector(ctx, name, false)
				if err != nil {
					return err
				}
				cur.Metadata.Description = "updated"
				_, err = c.SAML.UpdateSAMLConnector(ctx, &samlpb.UpdateSAMLConnectorRequest{SamlConnector: cur})
				return err
			}),
		},
		"UpsertSAMLConnector": {
			Verbs: []string{services.VerbCreate, services.VerbUpdate},
			Call: call(func(ctx context.Context, s *authtest.Server, c *client.Client, name string) error {
				_, err := c.SAML.UpsertSAMLConnector(ctx, &samlpb.UpsertSAMLConnectorRequest{SamlConnector: newRes(name)})
				return err
			}),
		},
		"DeleteSAMLConnector": {
			Verbs: []string{services.VerbDelete},
			Setup: existing,
			Call: call(func(ctx context.Context, s *authtest.Server, c *client.Client, name string) error {
				_, err := c.SAML.DeleteSAMLConnector(ctx, &samlpb.DeleteSAMLConnectorRequest{Name: name})
				return err
			}),
		},
	})
}

// TestGetWithSecrets checks that the private key needs the read verb and
// is never returned without with_secrets or by List.
func TestGetWithSecrets(t *testing.T) {
	t.Parallel()
	s := authtest.NewServer(t, authtest.Options{})
	ctx := context.Background()
	existing(t, s, "okta")
	reader := s.UserWith(t, "reader", services.KindSAMLConnector, services.VerbRead, services.VerbList)
	noSecrets := s.UserWith(t, "nosecrets", services.KindSAMLConnector, services.VerbReadNoSecrets, services.VerbList)

	got, err := reader.SAML.GetSAMLConnector(ctx, &samlpb.GetSAMLConnectorRequest{Name: "okta", WithSecrets: true})
	require.NoError(t, err)
	require.Equal(t, "SECRET-KEY", got.GetSamlConnector().GetSpec().GetSigningKeyPair().GetPrivateKey())

	for _, c := range []*client.Client{reader, noSecrets} {
		got, err = c.SAML.GetSAMLConnector(ctx, &samlpb.GetSAMLConnectorRequest{Name: "okta"})
		require.NoError(t, err)
		require.Empty(t, got.GetSamlConnector().GetSpec().GetSigningKeyPair().GetPrivateKey())
		require.Equal(t, "CERT", got.GetSamlConnector().GetSpec().GetSigningKeyPair().GetCert())
		list, err := c.SAML.ListSAMLConnectors(ctx, &samlpb.ListSAMLConnectorsRequest{})
		require.NoError(t, err)
		require.Len(t, list.GetSamlConnectors(), 1)
		require.Empty(t, list.GetSamlConnectors()[0].GetSpec().GetSigningKeyPair().GetPrivateKey())
	}
	_, err = noSecrets.SAML.GetSAMLConnector(ctx, &samlpb.GetSAMLConnectorRequest{Name: "okta", WithSecrets: true})
	require.True(t, trace.IsAccessDenied(err), "got %v", err)
}

// TestConnectorGrantCeiling: a caller who may write SAML connectors but whose roles do not allow
// everything maps groups only to roles it holds (a connector mapping a group to editor makes
// every user its IdP signs in an editor), and cannot point an existing connector at another
// identity provider (which would sign in that connector's users). Refusals are AccessDenied,
// write nothing and are audited; an editor may do both.
func TestConnectorGrantCeiling(t *testing.T) {
	t.Parallel()
	s := authtest.NewServer(t, authtest.Options{})
	ctx := context.Background()
	s.CreateRole(t, "saml-writer", []string{services.KindSAMLConnector}, []string{"*"})
	s.CreateUser(t, "sw", "saml-writer", "access")
	sw := s.Client(t, "sw")
	s.CreateUser(t, "ed", "editor")
	ed := s.Client(t, "ed")
	mapped := func(name string, roles ...string) *typesv1.SAMLConnector {
		c := newRes(name)
		c.Spec.AttributesToRoles = []*typesv1.AttributeMapping{{Name: "groups", Value: "Everyone", Roles: roles}}
		return c
	}

	_, err := sw.SAML.CreateSAMLConnector(ctx, &samlpb.CreateSAMLConnectorRequest{SamlConnector: mapped("mine", "access", "editor")})
	require.True(t, trace.IsAccessDenied(err), "%v", err)
	require.Contains(t, err.Error(), "you do not hold editor")
	_, err = s.Auth.Services().SAMLConnectors.GetSAMLConnector(ctx, "mine", false)
	require.True(t, trace.IsNotFound(err), "nothing written: %v", err)
	authtest.RequireEvent(t, s, "saml.create", "sw")
	_, err = sw.SAML.CreateSAMLConnector(ctx, &samlpb.CreateSAMLConnectorRequest{SamlConnector: mapped("mine", "access")})
	require.NoError(t, err)

	// The stored connector maps to editor (an editor wrote it): an unrelated edit still works,
	// a new mapping to editor does not, and neither does another IdP.
	_, err = ed.SAML.UpsertSAMLConnector(ctx, &samlpb.UpsertSAMLConnectorRequest{SamlConnector: mapped("okta", "editor")})
	require.NoError(t, err)
	cur, err := s.Auth.Services().SAMLConnectors.GetSAMLConnector(ctx, "okta", false)
	require.NoError(t, err)
	cur.Spec.Display = "Okta"
	resp, err := sw.SAML.UpdateSAMLConnector(ctx, &samlpb.UpdateSAMLConnectorRequest{SamlConnector: cur})
	require.NoError(t, err)
	_, err = sw.SAML.UpsertSAMLConnector(ctx, &samlpb.UpsertSAMLConnectorRequest{SamlConnector: mapped("mine", "access", "editor")})
	require.True(t, trace.IsAccessDenied(err), "%v", err)
	// Moving the stored mapping to editor to another group grants editor anew.
	moved := proto.Clone(resp.GetSamlConnector()).(*typesv1.SAMLConnector)
	moved.Spec.AttributesToRoles[0].Value = "Contractors"
	_, err = sw.SAML.UpdateSAMLConnector(ctx, &samlpb.UpdateSAMLConnectorRequest{SamlConnector: moved})
	require.True(t, trace.IsAccessDenied(err), "%v", err)
	require.Contains(t, err.Error(), "you do not hold editor")
	cur = resp.GetSamlConnector()
	cur.Spec.EntityDescriptorUrl = "https://attacker.example.com/metadata"
	_, err = sw.SAML.UpdateSAMLConnector(ctx, &samlpb.UpdateSAMLConnectorRequest{SamlConnector: cur})
	require.True(t, trace.IsAccessDenied(err), "%v", err)
	require.Contains(t, err.Error(), "changing its identity provider")
	got, err := s.Auth.Services().SAMLConnectors.GetSAMLConnector(ctx, "okta", false)
	require.NoError(t, err)
	require.Equal(t, "https://idp.example.com/metadata", got.GetSpec().GetEntityDescriptorUrl())
}
