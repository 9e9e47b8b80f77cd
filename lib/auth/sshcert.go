package auth

import (
	"context"
	"crypto/rand"
	"strings"
	"time"

	"github.com/gravitational/trace"
	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/lib/auth/audit"
	"github.com/gatehouse/gatehouse/lib/auth/authz"
	"github.com/gatehouse/gatehouse/lib/services"
)

// SSHCertBackdate is how far before issue an SSH certificate becomes valid,
// to absorb clock skew between the auth server and nodes.
const SSHCertBackdate = time.Minute

// SSHCertRequest asks for an SSH user certificate.
type SSHCertRequest struct {
	// Username is the user the certificate is for; its key ID.
	Username string
	// PublicKey is the key to certify.
	PublicKey ssh.PublicKey
	// TTL is the requested lifetime; 0 means the longest allowed. It is cut
	// to the shortest max_session_ttl of the user's roles, to NotAfter and
	// to the user's own expiry.
	TTL time.Duration
	// NotAfter, if set, is the latest the certificate may be valid until
	// (the end of the web session it is issued for).
	NotAfter time.Time
	// Reason goes into the audit event ("web session", "gatectl auth sign").
	Reason string
}

// SignSSHUserCert signs req.PublicKey into an OpenSSH user certificate from
// the user CA: principals are the logins the user's roles allow, the key ID
// is the username, the extensions carry the user's incarnation and roles
// (see sshUserExtensions), and validity starts SSHCertBackdate in the past. A
// missing, expired or locked user, or one without any login, gets none
// (a certificate without principals would be valid for every login). It
// returns the certificate in authorized_keys format.
func (s *Server) SignSSHUserCert(ctx context.Context, req SSHCertRequest) (_ []byte, err error) {
	defer func() {
		if err != nil {
			s.recorder.Record(ctx, audit.Event{
				Type: audit.EventCertIssue, User: req.Username, Resource: services.KindUser + "/" + req.Username,
				Message: "ssh certificate", Fields: map[string]string{"reason": req.Reason}, Err: err,
			})
		}
	}()
	if req.PublicKey == nil {
		return nil, trace.BadParameter("missing public key")
	}
	if _, isCert := req.PublicKey.(*ssh.Certificate); isCert {
		return nil, trace.BadParameter("the public key must be a plain key, not a certificate")
	}
	if req.TTL < 0 {
		return nil, trace.BadParameter("certificate TTL must not be negative")
	}
	if services.IsReservedUsername(req.Username) {
		return nil, trace.AccessDenied("%q is a built-in identity; it has no node logins", req.Username)
	}
	now := s.cfg.Clock.Now()
	user, err := s.userWithIncarnation(ctx, req.Username)
	if err != nil {
		if trace.IsNotFound(err) {
			return nil, trace.AccessDenied("user %q does not exist", req.Username)
		}
		return nil, trace.Wrap(err)
	}
	if services.IsUserExpired(user, now) {
		return nil, trace.AccessDenied("user %q has expired", req.Username)
	}
	roles, maxTTL, err := s.userRoles(ctx, user)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	ttl := req.TTL
	if ttl == 0 || ttl > maxTTL {
		ttl = maxTTL
	}
	notAfter := now.Add(ttl)
	if !req.NotAfter.IsZero() && req.NotAfter.Before(notAfter) {
		notAfter = req.NotAfter
	}
	if exp := user.GetMetadata().GetExpires(); exp != nil && exp.AsTime().Before(notAfter) {
		notAfter = exp.AsTime()
	}
	if !notAfter.After(now) {
		return nil, trace.AccessDenied("no time left to issue a certificate for user %q", req.Username)
	}
	logins := authz.LoginsFor(user, roles)
	if len(logins) == 0 {
		return nil, trace.AccessDenied("the roles of user %q allow no SSH logins", req.Username)
	}
	locks, err := s.services.Locks.GetLocksInForce(ctx)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	subject := services.LockSubject{User: req.Username, Roles: user.GetSpec().GetRoles(), Logins: logins}
	if l := services.FindLock(locks, subject, now); l != nil {
		msg := l.GetSpec().GetMessage()
		if msg == "" {
			msg = "access is locked"
		}
		return nil, trace.AccessDenied("user %q is locked: %s", req.Username, msg)
	}
	exts, err := sshUserExtensions(user)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	cert := &ssh.Certificate{
		Key:             req.PublicKey,
		CertType:        ssh.UserCert,
		KeyId:           req.Username,
		ValidPrincipals: logins,
		ValidAfter:      uint64(now.Add(-SSHCertBackdate).Unix()),
		ValidBefore:     uint64(notAfter.Unix()),
		Permissions:     ssh.Permissions{Extensions: exts},
	}
	if err := cert.SignCert(rand.Reader, s.userCA.sshSigner); err != nil {
		return nil, trace.Wrap(err)
	}
	s.recorder.Record(ctx, audit.Event{
		Type:     audit.EventCertIssue,
		User:     req.Username,
		Resource: services.KindUser + "/" + req.Username,
		Message:  "ssh certificate",
		Fields: map[string]string{
			"reason":       req.Reason,
			"principals":   strings.Join(logins, ","),
			"valid_before": notAfter.UTC().Format(time.RFC3339),
			"incarnation":  user.GetSpec().GetIncarnation(),
		},
	})
	return ssh.MarshalAuthorizedKey(cert), nil
}
