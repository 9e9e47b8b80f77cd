package services

import (
	"context"
	"net/url"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/services/generic"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

const (
	maxEntityDescriptor = 512 << 10
	maxAttributeMaps    = 256
	maxPEM              = 64 << 10
)

// ValidateSAMLConnector checks a SAML connector and sets its defaults (kind
// "saml", version "v1", audience = acs): it needs entity_descriptor or
// entity_descriptor_url (an https URL), acs as an absolute http(s) URL, and
// attributes_to_roles entries with a name, a value and valid role names. A
// signing key pair, if given, needs its certificate.
func ValidateSAMLConnector(c *typesv1.SAMLConnector) error {
	if c == nil {
		return trace.BadParameter("missing SAML connector")
	}
	if err := checkHeader(KindSAMLConnector, &c.Kind, &c.Version, c.GetMetadata()); err != nil {
		return trace.Wrap(err)
	}
	name := c.GetMetadata().GetName()
	if c.Spec == nil {
		return trace.BadParameter("saml %q: missing spec", name)
	}
	sp := c.Spec
	switch {
	case sp.GetEntityDescriptor() == "" && sp.GetEntityDescriptorUrl() == "":
		return trace.BadParameter("saml %q: spec needs entity_descriptor or entity_descriptor_url", name)
	case len(sp.GetEntityDescriptor()) > maxEntityDescriptor:
		return trace.BadParameter("saml %q: entity_descriptor is over %d bytes", name, maxEntityDescriptor)
	}
	if u := sp.GetEntityDescriptorUrl(); u != "" {
		if err := checkURL(u, "https"); err != nil {
			return trace.BadParameter("saml %q: entity_descriptor_url: %v", name, err)
		}
	}
	if sp.GetAcs() == "" {
		return trace.BadParameter("saml %q: spec.acs is required", name)
	}
	if err := checkURL(sp.GetAcs(), "https", "http"); err != nil {
		return trace.BadParameter("saml %q: acs: %v", name, err)
	}
	if sp.GetAudience() == "" {
		sp.Audience = sp.GetAcs()
	}
	if len(sp.GetAudience()) > maxStringField {
		return trace.BadParameter("saml %q: audience is over %d bytes", name, maxStringField)
	}
	if len(sp.GetDisplay()) > maxStringField {
		return trace.BadParameter("saml %q: display is over %d bytes", name, maxStringField)
	}
	if len(sp.GetAttributesToRoles()) > maxAttributeMaps {
		return trace.BadParameter("saml %q: attributes_to_roles has over %d entries", name, maxAttributeMaps)
	}
	for i, m := range sp.GetAttributesToRoles() {
		switch {
		case m.GetName() == "":
			return trace.BadParameter("saml %q: attributes_to_roles entry %d needs a name", name, i+1)
		case m.GetValue() == "":
			return trace.BadParameter("saml %q: attributes_to_roles entry %d needs a value (\"*\" matches any)", name, i+1)
		case len(m.GetRoles()) == 0:
			return trace.BadParameter("saml %q: attributes_to_roles entry %d needs roles", name, i+1)
		case len(m.GetName()) > maxStringField || len(m.GetValue()) > maxStringField:
			return trace.BadParameter("saml %q: attributes_to_roles entry %d is over %d bytes", name, i+1, maxStringField)
		}
		if err := checkNames(KindSAMLConnector, name, "attributes_to_roles roles", KindRole, m.GetRoles()); err != nil {
			return trace.Wrap(err)
		}
	}
	if kp := sp.GetSigningKeyPair(); kp != nil {
		if kp.GetPrivateKey() != "" && kp.GetCert() == "" {
			return trace.BadParameter("saml %q: signing_key_pair has a private key without its cert", name)
		}
		if len(kp.GetPrivateKey()) > maxPEM || len(kp.GetCert()) > maxPEM {
			return trace.BadParameter("saml %q: signing_key_pair is over %d bytes", name, maxPEM)
		}
	}
	return nil
}

// checkURL requires an absolute URL with a host and one of schemes.
func checkURL(raw string, schemes ...string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return trace.BadParameter("%q is not a URL", raw)
	}
	if u.Host == "" {
		return trace.BadParameter("%q is not an absolute URL with a host", raw)
	}
	for _, s := range schemes {
		if u.Scheme == s {
			return nil
		}
	}
	return trace.BadParameter("%q must use scheme %v", raw, schemes)
}

// StripSAMLConnectorSecrets removes the signing private key in place.
func StripSAMLConnectorSecrets(c *typesv1.SAMLConnector) {
	if kp := c.GetSpec().GetSigningKeyPair(); kp != nil {
		kp.PrivateKey = ""
	}
}

var samlSecrets = secretsOf[*typesv1.SAMLConnector]{
	has: func(c *typesv1.SAMLConnector) bool { return c.GetSpec().GetSigningKeyPair().GetPrivateKey() != "" },
	copy: func(dst, src *typesv1.SAMLConnector) {
		if dst.Spec == nil || src.GetSpec().GetSigningKeyPair() == nil {
			return
		}
		// The stored pair whole: a private key must never be paired with a
		// certificate other than its own.
		dst.Spec.SigningKeyPair = src.GetSpec().GetSigningKeyPair()
	},
}

// MarshalSAMLConnector validates c (on a copy) and returns the backend item
// storing it at SAMLConnectorKey(name).
func MarshalSAMLConnector(c *typesv1.SAMLConnector) (backend.Item, error) {
	return marshalValidated(SAMLConnectorsPrefix, c, ValidateSAMLConnector)
}

// UnmarshalSAMLConnector decodes a stored connector, secrets included.
func UnmarshalSAMLConnector(item backend.Item) (*typesv1.SAMLConnector, error) {
	return unmarshalStored[*typesv1.SAMLConnector](item)
}

// SAMLConnectorService stores SAML connectors at saml/<name>.
type SAMLConnectorService struct {
	svc *generic.Service[*typesv1.SAMLConnector]
}

// NewSAMLConnectorService returns the SAML connector service.
func NewSAMLConnectorService(cfg Config) (*SAMLConnectorService, error) {
	svc, err := newGeneric(cfg, generic.Config[*typesv1.SAMLConnector]{
		Kind:         KindSAMLConnector,
		KeyPrefix:    SAMLConnectorsPrefix,
		Validate:     ValidateSAMLConnector,
		CacheDecoded: true,
	})
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &SAMLConnectorService{svc: svc}, nil
}

// GetSAMLConnector reads a connector; the signing private key only with
// withSecrets.
func (s *SAMLConnectorService) GetSAMLConnector(ctx context.Context, name string, withSecrets bool) (*typesv1.SAMLConnector, error) {
	c, err := s.svc.Get(ctx, name)
	return strippedResult(c, err, withSecrets, StripSAMLConnectorSecrets)
}

// ListSAMLConnectors returns a page of connectors in name order and the next
// page's token; private keys only with withSecrets.
func (s *SAMLConnectorService) ListSAMLConnectors(ctx context.Context, pageSize int, pageToken string, withSecrets bool) ([]*typesv1.SAMLConnector, string, error) {
	cs, next, err := s.svc.List(ctx, pageSize, pageToken)
	return strippedPage(cs, next, err, withSecrets, StripSAMLConnectorSecrets)
}

// CreateSAMLConnector writes a new connector; trace.AlreadyExists if the
// name is taken. It returns it without the private key.
func (s *SAMLConnectorService) CreateSAMLConnector(ctx context.Context, c *typesv1.SAMLConnector) (*typesv1.SAMLConnector, error) {
	out, err := s.svc.Create(ctx, c)
	return strippedResult(out, err, false, StripSAMLConnectorSecrets)
}

// UpdateSAMLConnector overwrites a connector still at c.metadata.revision
// (required). A connector given without a signing private key keeps the
// stored key pair.
func (s *SAMLConnectorService) UpdateSAMLConnector(ctx context.Context, c *typesv1.SAMLConnector) (*typesv1.SAMLConnector, error) {
	out, err := updateKeepingSecrets(ctx, s.svc, c, samlSecrets)
	return strippedResult(out, err, false, StripSAMLConnectorSecrets)
}

// UpsertSAMLConnector writes a connector whether or not it exists; like
// UpdateSAMLConnector it keeps the stored key pair when given no private key.
func (s *SAMLConnectorService) UpsertSAMLConnector(ctx context.Context, c *typesv1.SAMLConnector) (*typesv1.SAMLConnector, error) {
	out, err := upsertKeepingSecrets(ctx, s.svc, c, samlSecrets)
	return strippedResult(out, err, false, StripSAMLConnectorSecrets)
}

// DeleteSAMLConnector removes a connector; trace.NotFound if missing.
func (s *SAMLConnectorService) DeleteSAMLConnector(ctx context.Context, name string) error {
	return trace.Wrap(s.svc.Delete(ctx, name))
}
