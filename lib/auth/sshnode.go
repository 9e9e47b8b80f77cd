package auth

import (
	"context"
	"crypto/rand"
	"slices"
	"time"

	"github.com/gravitational/trace"
	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/lib/auth/authz"
	"github.com/gatehouse/gatehouse/lib/services"
)

// HostCASSHPublicKey returns the host CA's SSH public key in authorized_keys
// format: what clients put in known_hosts as @cert-authority.
func (s *Server) HostCASSHPublicKey() []byte {
	return ssh.MarshalAuthorizedKey(s.hostCA.sshSigner.PublicKey())
}

// SignSSHHostCert signs pub into an OpenSSH host certificate from the host
// CA for principals (host names and addresses), valid for ttl (backdated by
// SSHCertBackdate). It is for the process's own SSH node service.
func (s *Server) SignSSHHostCert(pub ssh.PublicKey, nodeName string, principals []string, ttl time.Duration) (*ssh.Certificate, error) {
	switch {
	case pub == nil:
		return nil, trace.BadParameter("missing host public key")
	case len(principals) == 0:
		return nil, trace.BadParameter("a host certificate needs principals")
	case ttl <= 0:
		return nil, trace.BadParameter("host certificate TTL must be positive")
	}
	now := s.cfg.Clock.Now()
	cert := &ssh.Certificate{
		Key:             pub,
		CertType:        ssh.HostCert,
		KeyId:           nodeName,
		ValidPrincipals: slices.Compact(slices.Sorted(slices.Values(principals))),
		ValidAfter:      uint64(now.Add(-SSHCertBackdate).Unix()),
		ValidBefore:     uint64(now.Add(ttl).Unix()),
	}
	if err := cert.SignCert(rand.Reader, s.hostCA.sshSigner); err != nil {
		return nil, trace.Wrap(err)
	}
	return cert, nil
}

// CheckSSHLogin decides whether username may log in to an SSH node as the
// OS login: the user must exist and not be expired, and its current roles
// must allow the login (with {{internal.logins}} expanded from its traits,
// exactly as for its certificates) and none deny it. It returns the user's
// roles, which become lock targets of the session. Locks are the node's
// business (its lock watcher), not checked here.
func (s *Server) CheckSSHLogin(ctx context.Context, username, login string) ([]string, error) {
	user, err := s.services.Users.GetUser(ctx, username, false)
	if err != nil {
		if trace.IsNotFound(err) {
			return nil, trace.AccessDenied("user %q does not exist", username)
		}
		return nil, trace.Wrap(err)
	}
	if services.IsUserExpired(user, s.cfg.Clock.Now()) {
		return nil, trace.AccessDenied("user %q has expired", username)
	}
	roles, _, err := s.userRoles(ctx, user)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	names := slices.Clone(user.GetSpec().GetRoles())
	if !slices.Contains(authz.LoginsFor(user, roles), login) {
		return names, trace.AccessDenied("user %q is not allowed to log in as %q", username, login)
	}
	return names, nil
}
