package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gravitational/trace"
	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/lib/auth/audit"
	"github.com/gatehouse/gatehouse/lib/auth/authz"
	"github.com/gatehouse/gatehouse/lib/auth/certext"
	"github.com/gatehouse/gatehouse/lib/auth/identityfile"
	"github.com/gatehouse/gatehouse/lib/services"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// Identity is a user's credentials: what an identity file holds.
type Identity = identityfile.Identity

// serverCertValidity is the lifetime of the auth listener's certificate; it
// is renewed in memory when two thirds of it have passed.
const serverCertValidity = 30 * 24 * time.Hour

// GenerateUserIdentity issues credentials for username, valid for ttl (0
// means the shortest max_session_ttl of the user's roles; a longer ttl is
// cut to it): a TLS client certificate from the user CA with the username as
// common name, the roles as organizations and the user's incarnation in the
// certext.IncarnationOID extension, and, when the user's roles allow node
// logins, an SSH user certificate for the same key with those logins as
// principals and the incarnation and roles as extensions. It refuses a
// missing, expired or locked user. The built-in operator identity
// services.BuiltinAdmin, which has no user record, gets the built-in roles
// (see generateBuiltinAdminIdentity).
func (s *Server) GenerateUserIdentity(ctx context.Context, username string, ttl time.Duration) (*Identity, error) {
	if ttl < 0 {
		return nil, trace.BadParameter("certificate TTL must not be negative")
	}
	if services.IsBuiltinAdmin(username) {
		return s.generateBuiltinAdminIdentity(ctx, ttl)
	}
	now := s.cfg.Clock.Now()
	user, err := s.userWithIncarnation(ctx, username)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if services.IsUserExpired(user, now) {
		return nil, trace.AccessDenied("user %q has expired", username)
	}
	roles, maxTTL, err := s.userRoles(ctx, user)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if ttl == 0 || ttl > maxTTL {
		ttl = maxTTL
	}
	if exp := user.GetMetadata().GetExpires(); exp != nil && now.Add(ttl).After(exp.AsTime()) {
		// A temporary user's certificates end with the user.
		ttl = exp.AsTime().Sub(now)
	}
	logins := authz.LoginsFor(user, roles)
	locks, err := s.services.Locks.GetLocksInForce(ctx)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	subject := services.LockSubject{User: username, Roles: user.GetSpec().GetRoles(), Logins: logins}
	if l := services.FindLock(locks, subject, now); l != nil {
		return nil, trace.AccessDenied("user %q is locked: %s", username, l.GetSpec().GetMessage())
	}

	id, key, err := s.issueTLSIdentity(username, user.GetSpec().GetRoles(), user.GetSpec().GetIncarnation(), now, ttl)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	// An SSH certificate without principals would be valid for every login,
	// so none is issued to a user without logins.
	if len(logins) > 0 {
		sshPub, err := ssh.NewPublicKey(&key.PublicKey)
		if err != nil {
			return nil, trace.Wrap(err)
		}
		exts, err := sshUserExtensions(user)
		if err != nil {
			return nil, trace.Wrap(err)
		}
		cert := &ssh.Certificate{
			Key:             sshPub,
			CertType:        ssh.UserCert,
			KeyId:           username,
			ValidPrincipals: logins,
			ValidAfter:      uint64(now.Add(-time.Minute).Unix()),
			ValidBefore:     uint64(now.Add(ttl).Unix()),
			Permissions:     ssh.Permissions{Extensions: exts},
		}
		if err := cert.SignCert(rand.Reader, s.userCA.sshSigner); err != nil {
			return nil, trace.Wrap(err)
		}
		id.SSHCert = ssh.MarshalAuthorizedKey(cert)
	}
	s.recorder.Record(ctx, audit.Event{
		Type:     audit.EventCertIssue,
		User:     username,
		Resource: services.KindUser + "/" + username,
		Fields:   map[string]string{"ttl": ttl.String(), "roles": strings.Join(user.GetSpec().GetRoles(), ","), "incarnation": user.GetSpec().GetIncarnation()},
	})
	return id, nil
}

// userWithIncarnation reads a user to issue credentials for. A user stored
// without an incarnation (written before incarnations existed, and missed by
// the startup pass) gets one now: credentials without one would be refused
// everywhere.
func (s *Server) userWithIncarnation(ctx context.Context, username string) (*typesv1.User, error) {
	user, err := s.services.Users.GetUser(ctx, username, false)
	if err != nil || user.GetSpec().GetIncarnation() != "" {
		return user, trace.Wrap(err)
	}
	// UpdateAndSwapUser assigns a fresh incarnation to a user without one.
	user, err = s.services.Users.UpdateAndSwapUser(ctx, username, func(*typesv1.User) error { return nil })
	return user, trace.Wrap(err)
}

// sshUserExtensions are the extensions of a user's SSH certificates: the
// OpenSSH permissions, and the incarnation and roles the certificate is
// issued to, which the node checks at login and for the life of the
// session.
func sshUserExtensions(user *typesv1.User) (map[string]string, error) {
	roles, err := certext.EncodeRoles(user.GetSpec().GetRoles())
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return map[string]string{
		"permit-pty":              "",
		"permit-port-forwarding":  "",
		certext.SSHExtIncarnation: user.GetSpec().GetIncarnation(),
		certext.SSHExtRoles:       roles,
	}, nil
}

// userRoles reads user's roles, skipping the ones that no longer exist (a
// deleted role grants nothing), and the longest session they allow:
// services.MaxSessionTTL capped by each role's max_session_ttl.
func (s *Server) userRoles(ctx context.Context, user *typesv1.User) ([]*typesv1.Role, time.Duration, error) {
	maxTTL := services.MaxSessionTTL
	var roles []*typesv1.Role
	for _, name := range user.GetSpec().GetRoles() {
		r, err := s.services.Roles.GetRole(ctx, name)
		if trace.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, 0, trace.Wrap(err)
		}
		roles = append(roles, r)
		maxTTL = min(maxTTL, services.RoleMaxSessionTTL(r))
	}
	return roles, maxTTL, nil
}

// UserCACertPEM returns the user CA's TLS certificate: what servers trust
// for client certificates.
func (s *Server) UserCACertPEM() []byte { return slices.Clone(s.userCA.tlsCertPE) }

// HostCACertPEM returns the host CA's TLS certificate: what clients trust
// for the auth server.
func (s *Server) HostCACertPEM() []byte { return slices.Clone(s.hostCA.tlsCertPE) }

// UserCASSHPublicKey returns the user CA's SSH public key in authorized_keys
// format, which SSH nodes trust for user certificates.
func (s *Server) UserCASSHPublicKey() []byte {
	return ssh.MarshalAuthorizedKey(s.userCA.sshSigner.PublicKey())
}

// ServerTLSConfig returns the auth listener's TLS config: a server
// certificate from the host CA for hosts (DNS names or IPs, ports ignored;
// "localhost" and 127.0.0.1 are always included), renewed in memory before it
// expires, and a requirement for client certificates from the user CA.
func (s *Server) ServerTLSConfig(ctx context.Context, hosts []string) (*tls.Config, error) {
	pool := x509.NewCertPool()
	pool.AddCert(s.userCA.tlsCert)
	iss := &serverCertIssuer{s: s, hosts: hosts}
	if _, err := iss.get(); err != nil {
		return nil, trace.Wrap(err)
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return iss.get()
		},
		ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs:  pool,
		// Client certificates are issued on the server's clock, so they are
		// checked on it too.
		Time:       s.cfg.Clock.Now,
		NextProtos: []string{"h2"},
	}, nil
}

type serverCertIssuer struct {
	s     *Server
	hosts []string
	mu    sync.Mutex
	cert  *tls.Certificate
	renew time.Time
}

func (i *serverCertIssuer) get() (*tls.Certificate, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	now := i.s.cfg.Clock.Now()
	if i.cert != nil && now.Before(i.renew) {
		return i.cert, nil
	}
	cert, err := i.s.issueServerCert(i.hosts, now)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	i.cert = cert
	i.renew = now.Add(serverCertValidity * 2 / 3)
	return cert, nil
}

func (s *Server) issueServerCert(hosts []string, now time.Time) (*tls.Certificate, error) {
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: s.cfg.ClusterName, Organization: []string{"Gatehouse auth server"}},
		NotBefore:   now.Add(-time.Minute),
		NotAfter:    now.Add(serverCertValidity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	for _, h := range append(hosts, s.cfg.ClusterName) {
		if host, _, err := net.SplitHostPort(h); err == nil {
			h = host
		}
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			if !ip.IsUnspecified() {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			}
			continue
		}
		if !slices.Contains(tmpl.DNSNames, h) {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	certPEM, err := s.hostCA.signTLS(tmpl, &key.PublicKey)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	cert, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	return &cert, trace.Wrap(err)
}

// issueTLSIdentity makes a key and a TLS client certificate from the user CA
// for name: the roles as organizations, the incarnation in the
// certext.IncarnationOID extension, valid from a minute before now for ttl.
// It returns the identity (without an SSH certificate) and the key, for the
// caller to certify for SSH too.
func (s *Server) issueTLSIdentity(name string, roles []string, incarnation string, now time.Time, ttl time.Duration) (*Identity, *ecdsa.PrivateKey, error) {
	incExt, err := certext.IncarnationExtension(incarnation)
	if err != nil {
		return nil, nil, trace.Wrap(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, trace.Wrap(err)
	}
	certPEM, err := s.userCA.signTLS(&x509.Certificate{
		Subject:         pkix.Name{CommonName: name, Organization: slices.Clone(roles)},
		NotBefore:       now.Add(-time.Minute),
		NotAfter:        now.Add(ttl),
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtKeyUsage:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		ExtraExtensions: []pkix.Extension{incExt},
	}, &key.PublicKey)
	if err != nil {
		return nil, nil, trace.Wrap(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, trace.Wrap(err)
	}
	return &Identity{
		Username:   name,
		KeyPEM:     pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		CertPEM:    certPEM,
		CACertsPEM: [][]byte{s.hostCA.tlsCertPE},
	}, key, nil
}
