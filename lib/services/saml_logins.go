package services

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/backend"
)

// Key prefixes of the SAML service provider's short-lived state.
const (
	// SAMLRequestsPrefix holds outstanding SP-initiated requests by relay
	// state.
	SAMLRequestsPrefix = "saml_requests"
	// SAMLAssertionsPrefix holds the SHA-256 of every accepted assertion ID
	// until the assertion expires: the replay cache.
	SAMLAssertionsPrefix = "saml_assertions"
)

// SAMLLogins stores the state of SAML logins in progress: outstanding
// SP-initiated requests (lib/auth/saml owns their value) and the replay
// cache of accepted assertions. Both expire with their backend items, and
// every server sharing the backend sees them.
type SAMLLogins struct {
	b backend.Backend
}

// NewSAMLLogins returns the SAML login state over b.
func NewSAMLLogins(b backend.Backend) (*SAMLLogins, error) {
	if b == nil {
		return nil, trace.BadParameter("saml logins: missing Backend")
	}
	return &SAMLLogins{b: b}, nil
}

func samlRequestKey(relayState string) backend.Key {
	return backend.NewKey(SAMLRequestsPrefix, relayState)
}

// CreateRequest stores the request started with relayState until expires;
// trace.AlreadyExists if the relay state is taken.
func (s *SAMLLogins) CreateRequest(ctx context.Context, relayState string, value []byte, expires time.Time) error {
	_, err := s.b.Create(ctx, backend.Item{Key: samlRequestKey(relayState), Value: value, Expires: expires})
	return trace.Wrap(err)
}

// GetRequest reads the request started with relayState; trace.NotFound if
// there is none (answered, expired or never made).
func (s *SAMLLogins) GetRequest(ctx context.Context, relayState string) ([]byte, error) {
	item, err := s.b.Get(ctx, samlRequestKey(relayState))
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return item.Value, nil
}

// DeleteRequest removes the request started with relayState.
func (s *SAMLLogins) DeleteRequest(ctx context.Context, relayState string) error {
	return trace.Wrap(s.b.Delete(ctx, samlRequestKey(relayState)))
}

// ConsumeAssertion records the use of assertion id until expiresAt;
// trace.AlreadyExists if it was used before, on this server or another.
// Only a hash of the id is stored.
func (s *SAMLLogins) ConsumeAssertion(ctx context.Context, id string, expiresAt time.Time) error {
	sum := sha256.Sum256([]byte(id))
	_, err := s.b.Create(ctx, backend.Item{
		Key:     backend.NewKey(SAMLAssertionsPrefix, hex.EncodeToString(sum[:])),
		Value:   []byte(`{}`),
		Expires: expiresAt,
	})
	return trace.Wrap(err)
}
