// Package samlv1 serves gatehouse.saml.v1.SAMLConnectorService: it
// translates the generated messages to a lib/auth/crud Handler for kind
// "saml", which authorizes, checks the verb, validates, calls the SAML
// connectors service, audits and wraps the error. What is particular to
// connectors: secrets (the SP private key) with with_secrets, and Prepare on
// create and upsert.
package samlv1

import (
	"context"
	"fmt"
	"slices"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/auth/audit"
	"github.com/gatehouse/gatehouse/lib/auth/authz"
	"github.com/gatehouse/gatehouse/lib/auth/crud"
	"github.com/gatehouse/gatehouse/lib/services"
	samlpb "github.com/gatehouse/gatehouse/proto/gatehouse/saml/v1"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// Connectors is the part of the SAML connectors service the handlers use.
type Connectors interface {
	GetSAMLConnector(ctx context.Context, name string, withSecrets bool) (*typesv1.SAMLConnector, error)
	ListSAMLConnectors(ctx context.Context, pageSize int, pageToken string, withSecrets bool) ([]*typesv1.SAMLConnector, string, error)
	CreateSAMLConnector(ctx context.Context, u *typesv1.SAMLConnector) (*typesv1.SAMLConnector, error)
	UpdateSAMLConnector(ctx context.Context, u *typesv1.SAMLConnector) (*typesv1.SAMLConnector, error)
	UpsertSAMLConnector(ctx context.Context, u *typesv1.SAMLConnector) (*typesv1.SAMLConnector, error)
	DeleteSAMLConnector(ctx context.Context, name string) error
}

var _ Connectors = (*services.SAMLConnectorService)(nil)

// Config configures the service.
type Config struct {
	crud.Deps
	Connectors Connectors
	// Prepare, if set, completes a connector before create and upsert:
	// it fetches entity_descriptor_url and generates the SP signing key
	// pair when absent (lib/auth/saml.PrepareConnector).
	Prepare func(ctx context.Context, c *typesv1.SAMLConnector) error
}

// CheckAndSetDefaults validates the config.
func (c *Config) CheckAndSetDefaults() error {
	return trace.Wrap(crud.CheckConfig("samlv1", &c.Clock,
		crud.Need("Authorizer", c.Authorizer == nil),
		crud.Need("Recorder", c.Recorder == nil),
		crud.Need("Connectors", c.Connectors == nil),
	))
}

// Service implements samlpb.SAMLConnectorServiceServer.
type Service struct {
	samlpb.UnsafeSAMLConnectorServiceServer
	h *crud.Handler[*typesv1.SAMLConnector]
}

var _ samlpb.SAMLConnectorServiceServer = (*Service)(nil)

// New returns the service.
func New(cfg Config) (*Service, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, trace.Wrap(err)
	}
	hcfg := crud.Config[*typesv1.SAMLConnector]{
		Kind: services.KindSAMLConnector,
		Noun: "SAML connector",
		Deps: cfg.Deps,
		Store: crud.Store[*typesv1.SAMLConnector]{
			Get:    cfg.Connectors.GetSAMLConnector,
			List:   cfg.Connectors.ListSAMLConnectors,
			Create: cfg.Connectors.CreateSAMLConnector,
			Update: cfg.Connectors.UpdateSAMLConnector,
			Upsert: cfg.Connectors.UpsertSAMLConnector,
			Delete: cfg.Connectors.DeleteSAMLConnector,
		},
		Events: crud.Events{Create: audit.EventSAMLConnectorCreate, Update: audit.EventSAMLConnectorUpdate, Delete: audit.EventSAMLConnectorDelete},
		CheckWrite: func(ctx context.Context, actx *authz.Context, c *typesv1.SAMLConnector) error {
			return checkWrite(ctx, cfg.Connectors, actx, c)
		},
	}
	if cfg.Prepare != nil {
		hcfg.PrepareCreate = cfg.Prepare
		hcfg.PrepareUpsert = func(ctx context.Context, c *typesv1.SAMLConnector) error {
			return prepareUpsert(ctx, cfg.Connectors, cfg.Prepare, c)
		}
	}
	h, err := crud.New(hcfg)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &Service{h: h}, nil
}

// checkWrite keeps a SAML connector within its writer's own access
// (invariant 4): whoever controls the connector's identity provider signs in
// its users with the roles its attributes_to_roles map to, and signs in the
// SCIM users of the plugin whose connector it is. So a caller whose roles do
// not allow every verb on every kind may map groups only to roles it holds
// (a mapping the stored connector already has, same attribute, value and
// role, is not checked again, so that an unrelated edit still works), and
// may not point an existing connector at
// another identity provider (entity_descriptor, entity_descriptor_url),
// which would hand that provider the accounts the connector signs in.
func checkWrite(ctx context.Context, connectors Connectors, actx *authz.Context, c *typesv1.SAMLConnector) error {
	if actx.Checker.Unrestricted() {
		return nil
	}
	name := c.GetMetadata().GetName()
	cur, err := connectors.GetSAMLConnector(ctx, name, false)
	switch {
	case trace.IsNotFound(err):
		cur = nil
	case err != nil:
		return trace.Wrap(err)
	}
	// A grant is an (attribute, value, role) triple: moving a stored role to
	// another group (admins -> Everyone) grants it anew.
	type grant struct{ name, value, role string }
	var known []grant
	for _, m := range cur.GetSpec().GetAttributesToRoles() {
		for _, r := range m.GetRoles() {
			known = append(known, grant{m.GetName(), m.GetValue(), r})
		}
	}
	var added []string
	for _, m := range c.GetSpec().GetAttributesToRoles() {
		for _, r := range m.GetRoles() {
			if !slices.Contains(known, grant{m.GetName(), m.GetValue(), r}) {
				added = append(added, r)
			}
		}
	}
	if err := actx.Checker.CheckGrant(fmt.Sprintf("SAML connector %q attributes_to_roles", name), added); err != nil {
		return trace.Wrap(err)
	}
	if cur == nil {
		return nil
	}
	spec, old := c.GetSpec(), cur.GetSpec()
	if (spec.GetEntityDescriptorUrl() != "" && spec.GetEntityDescriptorUrl() != old.GetEntityDescriptorUrl()) ||
		(spec.GetEntityDescriptor() != "" && spec.GetEntityDescriptor() != old.GetEntityDescriptor()) {
		return trace.AccessDenied("SAML connector %q: changing its identity provider (entity_descriptor, entity_descriptor_url) hands that provider every account the connector signs in; only a caller whose roles allow every verb on every kind may do it", name)
	}
	return nil
}

// prepareUpsert prepares a connector about to be upserted. When one is
// stored already and the request carries no key pair, the stored pair is
// kept (UpsertSAMLConnector keeps it), so no new one is generated: the
// IdP would otherwise have to be told about a new SP certificate.
func prepareUpsert(ctx context.Context, connectors Connectors, prepare func(context.Context, *typesv1.SAMLConnector) error, c *typesv1.SAMLConnector) error {
	if c.GetSpec().GetSigningKeyPair().GetPrivateKey() == "" {
		if stored, err := connectors.GetSAMLConnector(ctx, c.GetMetadata().GetName(), true); err == nil && stored.GetSpec().GetSigningKeyPair().GetPrivateKey() != "" && c.GetSpec() != nil {
			c.Spec.SigningKeyPair = stored.GetSpec().GetSigningKeyPair()
		}
	}
	return trace.Wrap(prepare(ctx, c))
}

// GetSAMLConnector reads one SAML connector; secrets only with with_secrets and the read verb.
func (s *Service) GetSAMLConnector(ctx context.Context, req *samlpb.GetSAMLConnectorRequest) (*samlpb.GetSAMLConnectorResponse, error) {
	c, err := s.h.Get(ctx, req.GetName(), req.GetWithSecrets())
	return crud.Reply(&samlpb.GetSAMLConnectorResponse{SamlConnector: c}, err)
}

// ListSAMLConnectors pages through SAML connectors, never with secrets.
func (s *Service) ListSAMLConnectors(ctx context.Context, req *samlpb.ListSAMLConnectorsRequest) (*samlpb.ListSAMLConnectorsResponse, error) {
	connectors, next, err := s.h.List(ctx, req.GetPageSize(), req.GetPageToken())
	return crud.Reply(&samlpb.ListSAMLConnectorsResponse{SamlConnectors: connectors, NextPageToken: next}, err)
}

// CreateSAMLConnector prepares and creates a SAML connector.
func (s *Service) CreateSAMLConnector(ctx context.Context, req *samlpb.CreateSAMLConnectorRequest) (*samlpb.CreateSAMLConnectorResponse, error) {
	c, err := s.h.Create(ctx, req.GetSamlConnector())
	return crud.Reply(&samlpb.CreateSAMLConnectorResponse{SamlConnector: c}, err)
}

// UpdateSAMLConnector replaces a SAML connector at the revision given.
func (s *Service) UpdateSAMLConnector(ctx context.Context, req *samlpb.UpdateSAMLConnectorRequest) (*samlpb.UpdateSAMLConnectorResponse, error) {
	c, err := s.h.Update(ctx, req.GetSamlConnector())
	return crud.Reply(&samlpb.UpdateSAMLConnectorResponse{SamlConnector: c}, err)
}

// UpsertSAMLConnector prepares and creates or replaces a SAML connector.
func (s *Service) UpsertSAMLConnector(ctx context.Context, req *samlpb.UpsertSAMLConnectorRequest) (*samlpb.UpsertSAMLConnectorResponse, error) {
	c, err := s.h.Upsert(ctx, req.GetSamlConnector())
	return crud.Reply(&samlpb.UpsertSAMLConnectorResponse{SamlConnector: c}, err)
}

// DeleteSAMLConnector deletes a SAML connector.
func (s *Service) DeleteSAMLConnector(ctx context.Context, req *samlpb.DeleteSAMLConnectorRequest) (*samlpb.DeleteSAMLConnectorResponse, error) {
	return crud.Reply(&samlpb.DeleteSAMLConnectorResponse{}, s.h.Delete(ctx, req.GetName()))
}
