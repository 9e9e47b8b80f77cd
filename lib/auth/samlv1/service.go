// Package samlv1 serves gatehouse.saml.v1.SAMLConnectorService. Every RPC runs in the
// same order: authorize the caller, check the verb on kind "saml", validate
// the request, call the SAML connectors service, and return the error wrapped (the
// auth server's interceptor turns it into a gRPC status once).
package samlv1

import (
	"context"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"

	"github.com/gatehouse/gatehouse/lib/auth/audit"
	"github.com/gatehouse/gatehouse/lib/auth/authz"
	"github.com/gatehouse/gatehouse/lib/services"
	"github.com/gatehouse/gatehouse/lib/services/generic"
	samlpb "github.com/gatehouse/gatehouse/proto/gatehouse/saml/v1"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// Authorizer identifies and authorizes the caller.
type Authorizer interface {
	Authorize(ctx context.Context) (*authz.Context, error)
}

// Recorder records audit events.
type Recorder interface {
	Record(ctx context.Context, e audit.Event)
}

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
	Authorizer Authorizer
	Recorder   Recorder
	Connectors Connectors
	Clock      clockwork.Clock
	// Prepare, if set, completes a connector before create and upsert:
	// it fetches entity_descriptor_url and generates the SP signing key
	// pair when absent (lib/auth/saml.PrepareConnector).
	Prepare func(ctx context.Context, c *typesv1.SAMLConnector) error
}

// CheckAndSetDefaults validates the config.
func (c *Config) CheckAndSetDefaults() error {
	switch {
	case c.Authorizer == nil:
		return trace.BadParameter("samlv1: missing Authorizer")
	case c.Recorder == nil:
		return trace.BadParameter("samlv1: missing Recorder")
	case c.Connectors == nil:
		return trace.BadParameter("samlv1: missing Connectors")
	}
	if c.Clock == nil {
		c.Clock = clockwork.NewRealClock()
	}
	return nil
}

// Service implements samlpb.SAMLConnectorServiceServer.
type Service struct {
	samlpb.UnsafeSAMLConnectorServiceServer
	cfg Config
}

var _ samlpb.SAMLConnectorServiceServer = (*Service)(nil)

// New returns the service.
func New(cfg Config) (*Service, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, trace.Wrap(err)
	}
	return &Service{cfg: cfg}, nil
}

const kind = services.KindSAMLConnector

func (s *Service) authorize(ctx context.Context, verbs ...string) (*authz.Context, error) {
	actx, err := s.cfg.Authorizer.Authorize(ctx)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	for _, v := range verbs {
		if err := actx.Checker.CheckAccess(kind, v); err != nil {
			return nil, trace.Wrap(err)
		}
	}
	return actx, nil
}

func (s *Service) record(ctx context.Context, actx *authz.Context, typ, name string, err error) {
	s.cfg.Recorder.Record(ctx, audit.Event{Type: typ, User: actx.Username(), Resource: kind + "/" + name, Err: err})
}

// checkResource refuses a request without a SAML connector or a name.
func checkResource(u *typesv1.SAMLConnector) error {
	if u == nil {
		return trace.BadParameter("missing SAML connector")
	}
	return trace.Wrap(generic.CheckName(kind, u.GetMetadata().GetName()))
}

// GetSAMLConnector reads one SAML connector; secrets only with with_secrets and the read verb.
func (s *Service) GetSAMLConnector(ctx context.Context, req *samlpb.GetSAMLConnectorRequest) (*samlpb.GetSAMLConnectorResponse, error) {
	verb := authz.VerbReadNoSecrets
	if req.GetWithSecrets() {
		verb = authz.VerbRead
	}
	if _, err := s.authorize(ctx, verb); err != nil {
		return nil, trace.Wrap(err)
	}
	if err := generic.CheckName(kind, req.GetName()); err != nil {
		return nil, trace.Wrap(err)
	}
	u, err := s.cfg.Connectors.GetSAMLConnector(ctx, req.GetName(), req.GetWithSecrets())
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &samlpb.GetSAMLConnectorResponse{SamlConnector: u}, nil
}

// ListSAMLConnectors pages through SAML connectors, never with secrets.
func (s *Service) ListSAMLConnectors(ctx context.Context, req *samlpb.ListSAMLConnectorsRequest) (*samlpb.ListSAMLConnectorsResponse, error) {
	if _, err := s.authorize(ctx, authz.VerbList, authz.VerbReadNoSecrets); err != nil {
		return nil, trace.Wrap(err)
	}
	if req.GetPageSize() < 0 {
		return nil, trace.BadParameter("page_size must not be negative")
	}
	connectors, next, err := s.cfg.Connectors.ListSAMLConnectors(ctx, int(req.GetPageSize()), req.GetPageToken(), false)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &samlpb.ListSAMLConnectorsResponse{SamlConnectors: connectors, NextPageToken: next}, nil
}

// CreateSAMLConnector creates a SAML connector.
func (s *Service) CreateSAMLConnector(ctx context.Context, req *samlpb.CreateSAMLConnectorRequest) (*samlpb.CreateSAMLConnectorResponse, error) {
	actx, err := s.authorize(ctx, authz.VerbCreate)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if err := checkResource(req.GetSamlConnector()); err != nil {
		return nil, trace.Wrap(err)
	}
	if err := s.prepare(ctx, req.GetSamlConnector()); err != nil {
		s.record(ctx, actx, audit.EventSAMLConnectorCreate, req.GetSamlConnector().GetMetadata().GetName(), err)
		return nil, trace.Wrap(err)
	}
	u, err := s.cfg.Connectors.CreateSAMLConnector(ctx, req.GetSamlConnector())
	s.record(ctx, actx, audit.EventSAMLConnectorCreate, req.GetSamlConnector().GetMetadata().GetName(), err)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &samlpb.CreateSAMLConnectorResponse{SamlConnector: u}, nil
}

// UpdateSAMLConnector replaces a SAML connector at the revision given.
func (s *Service) UpdateSAMLConnector(ctx context.Context, req *samlpb.UpdateSAMLConnectorRequest) (*samlpb.UpdateSAMLConnectorResponse, error) {
	actx, err := s.authorize(ctx, authz.VerbUpdate)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if err := checkResource(req.GetSamlConnector()); err != nil {
		return nil, trace.Wrap(err)
	}
	if req.GetSamlConnector().GetMetadata().GetRevision() == "" {
		return nil, trace.BadParameter("SAML connector %q: metadata.revision is required to update; read the SAML connector first", req.GetSamlConnector().GetMetadata().GetName())
	}
	u, err := s.cfg.Connectors.UpdateSAMLConnector(ctx, req.GetSamlConnector())
	s.record(ctx, actx, audit.EventSAMLConnectorUpdate, req.GetSamlConnector().GetMetadata().GetName(), err)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &samlpb.UpdateSAMLConnectorResponse{SamlConnector: u}, nil
}

// UpsertSAMLConnector creates or replaces a SAML connector.
func (s *Service) UpsertSAMLConnector(ctx context.Context, req *samlpb.UpsertSAMLConnectorRequest) (*samlpb.UpsertSAMLConnectorResponse, error) {
	actx, err := s.authorize(ctx, authz.VerbCreate, authz.VerbUpdate)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if err := checkResource(req.GetSamlConnector()); err != nil {
		return nil, trace.Wrap(err)
	}
	if err := s.prepareUpsert(ctx, req.GetSamlConnector()); err != nil {
		s.record(ctx, actx, audit.EventSAMLConnectorUpdate, req.GetSamlConnector().GetMetadata().GetName(), err)
		return nil, trace.Wrap(err)
	}
	u, err := s.cfg.Connectors.UpsertSAMLConnector(ctx, req.GetSamlConnector())
	s.record(ctx, actx, audit.EventSAMLConnectorUpdate, req.GetSamlConnector().GetMetadata().GetName(), err)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &samlpb.UpsertSAMLConnectorResponse{SamlConnector: u}, nil
}

// DeleteSAMLConnector deletes a SAML connector.
func (s *Service) DeleteSAMLConnector(ctx context.Context, req *samlpb.DeleteSAMLConnectorRequest) (*samlpb.DeleteSAMLConnectorResponse, error) {
	actx, err := s.authorize(ctx, authz.VerbDelete)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if err := generic.CheckName(kind, req.GetName()); err != nil {
		return nil, trace.Wrap(err)
	}
	err = s.cfg.Connectors.DeleteSAMLConnector(ctx, req.GetName())
	s.record(ctx, actx, audit.EventSAMLConnectorDelete, req.GetName(), err)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &samlpb.DeleteSAMLConnectorResponse{}, nil
}

// prepare runs cfg.Prepare, if any, on a connector about to be created.
func (s *Service) prepare(ctx context.Context, c *typesv1.SAMLConnector) error {
	if s.cfg.Prepare == nil {
		return nil
	}
	return trace.Wrap(s.cfg.Prepare(ctx, c))
}

// prepareUpsert prepares a connector about to be upserted. When one is
// stored already and the request carries no key pair, the stored pair is
// kept (UpsertSAMLConnector keeps it), so no new one is generated: the
// IdP would otherwise have to be told about a new SP certificate.
func (s *Service) prepareUpsert(ctx context.Context, c *typesv1.SAMLConnector) error {
	if s.cfg.Prepare == nil {
		return nil
	}
	if c.GetSpec().GetSigningKeyPair().GetPrivateKey() == "" {
		if stored, err := s.cfg.Connectors.GetSAMLConnector(ctx, c.GetMetadata().GetName(), true); err == nil && stored.GetSpec().GetSigningKeyPair().GetPrivateKey() != "" && c.GetSpec() != nil {
			c.Spec.SigningKeyPair = stored.GetSpec().GetSigningKeyPair()
		}
	}
	return trace.Wrap(s.cfg.Prepare(ctx, c))
}
