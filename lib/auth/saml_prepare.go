package auth

import (
	"context"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/auth/saml"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// prepareSAMLConnector completes a SAML connector before it is stored:
// IdP metadata fetched from entity_descriptor_url, SP signing key pair
// generated if absent (see saml.PrepareConnector).
func (s *Server) prepareSAMLConnector(ctx context.Context, c *typesv1.SAMLConnector) error {
	return trace.Wrap(saml.PrepareConnector(ctx, c, saml.PrepareConfig{Clock: s.cfg.Clock}))
}
