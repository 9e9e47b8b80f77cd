package auth

import (
	"context"
	"time"

	"github.com/gravitational/trace"
	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/lib/auth/credentialsv1"
	"github.com/gatehouse/gatehouse/lib/auth/identityfile"
	"github.com/gatehouse/gatehouse/lib/services/websession"
)

// credentialsIssuer adapts the server to credentialsv1.Issuer, which cannot
// name this package's types (it sits below it).
type credentialsIssuer struct{ s *Server }

var _ credentialsv1.Issuer = credentialsIssuer{}

func (c credentialsIssuer) SignSSHUserCert(ctx context.Context, user string, pub ssh.PublicKey, ttl time.Duration, reason string) ([]byte, error) {
	cert, err := c.s.SignSSHUserCert(ctx, SSHCertRequest{Username: user, PublicKey: pub, TTL: ttl, Reason: reason})
	return cert, trace.Wrap(err)
}

func (c credentialsIssuer) GenerateUserIdentity(ctx context.Context, user string, ttl time.Duration) (*identityfile.Identity, error) {
	id, err := c.s.GenerateUserIdentity(ctx, user, ttl)
	return id, trace.Wrap(err)
}

// newCredentialsService builds the credentials API handlers.
func (s *Server) newCredentialsService() (*credentialsv1.Service, error) {
	tokens, err := websession.New(websession.Config{Backend: s.cfg.Backend, Clock: s.cfg.Clock})
	if err != nil {
		return nil, trace.Wrap(err)
	}
	svc, err := credentialsv1.New(credentialsv1.Config{
		Deps:       s.serviceDeps(),
		Issuer:     credentialsIssuer{s: s},
		Users:      s.services.Users,
		Tokens:     tokens,
		Sessions:   tokens,
		PublicAddr: s.URLAddr(),
	})
	return svc, trace.Wrap(err)
}
