// Package credentialsv1 serves gatehouse.credentials.v1.CredentialsService:
// SSH certificates and identity files issued by an administrator for a user
// (verb create on kind "cert"), and one-time password links and local
// passwords (verb update on kind "user"). Every RPC runs in the same order
// as the other auth APIs: authorize the caller, check the verb, validate the
// request, act, record an audit event naming the caller and the target
// user, and return the error wrapped (the auth server's interceptor turns
// it into a gRPC status once).
//
// Issuing credentials for another user is impersonation, so kind "cert" is
// meant for administrators only (the editor preset has it through "*").
// What is issued is still bounded by the target user: its roles decide the
// logins and the longest lifetime, and an expired or locked user gets
// nothing.
package credentialsv1

import (
	"context"
	"net/url"
	"strconv"
	"time"

	"github.com/gravitational/trace"
	"golang.org/x/crypto/ssh"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gatehouse/gatehouse/lib/auth/audit"
	"github.com/gatehouse/gatehouse/lib/auth/authz"
	"github.com/gatehouse/gatehouse/lib/auth/crud"
	"github.com/gatehouse/gatehouse/lib/auth/identityfile"
	"github.com/gatehouse/gatehouse/lib/canonical"
	"github.com/gatehouse/gatehouse/lib/services"
	"github.com/gatehouse/gatehouse/lib/services/generic"
	credentialspb "github.com/gatehouse/gatehouse/proto/gatehouse/credentials/v1"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// Audit event types of this service. The certificates themselves are also
// recorded by the issuer (cert.issue, on behalf of the target user); these
// name the administrator who asked.
const (
	// EventCertRequest is an administrator asking for a user's SSH
	// certificate or identity.
	EventCertRequest = "cert.request"
	// EventPasswordToken is a one-time password link created.
	EventPasswordToken = "user.password.token"
	// EventPasswordSet is a local password set (the web page's event type
	// too).
	EventPasswordSet = "user.password.set"
)

// PasswordPath is the web UI page a password link opens.
const PasswordPath = "/web/password"

// Issuer issues certificates from the cluster's user CA (lib/auth's
// Server, through a small adapter, since this package sits below it).
type Issuer interface {
	// SignSSHUserCert returns an OpenSSH user certificate for pub in
	// authorized_keys format.
	SignSSHUserCert(ctx context.Context, user string, pub ssh.PublicKey, ttl time.Duration, reason string) ([]byte, error)
	// GenerateUserIdentity returns an identity for user.
	GenerateUserIdentity(ctx context.Context, user string, ttl time.Duration) (*identityfile.Identity, error)
}

// Users reads and changes users.
type Users interface {
	GetUser(ctx context.Context, name string, withSecrets bool) (*typesv1.User, error)
	SetLocalPassword(ctx context.Context, name, pw string) error
}

var _ Users = (*services.UserService)(nil)

// PasswordTokens creates one-time password tokens (websession.Manager),
// bound to the user's stored name and incarnation.
type PasswordTokens interface {
	CreatePasswordToken(ctx context.Context, user *typesv1.User, ttl time.Duration) (string, time.Time, error)
}

// SessionEnder ends a user's web sessions (websession.Manager).
type SessionEnder interface {
	EndUserSessions(ctx context.Context, user string) (int, error)
}

// Config configures the service.
type Config struct {
	crud.Deps
	Issuer Issuer
	Users  Users
	Tokens PasswordTokens
	// Sessions ends the web sessions of a user whose password is set.
	Sessions SessionEnder
	// PublicAddr is the web listener's public host:port, for password
	// links; without it the response carries the token and a relative URL.
	PublicAddr string
}

// CheckAndSetDefaults validates the config.
func (c *Config) CheckAndSetDefaults() error {
	return trace.Wrap(crud.CheckConfig("credentialsv1", &c.Clock,
		crud.Need("Authorizer", c.Authorizer == nil),
		crud.Need("Recorder", c.Recorder == nil),
		crud.Need("Issuer", c.Issuer == nil),
		crud.Need("Users", c.Users == nil),
		crud.Need("Tokens", c.Tokens == nil),
		crud.Need("Sessions", c.Sessions == nil),
	))
}

// Service implements credentialspb.CredentialsServiceServer.
type Service struct {
	credentialspb.UnsafeCredentialsServiceServer
	cfg Config
}

var _ credentialspb.CredentialsServiceServer = (*Service)(nil)

// New returns the service.
func New(cfg Config) (*Service, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, trace.Wrap(err)
	}
	return &Service{cfg: cfg}, nil
}

// authorize authorizes the caller for verb on kind, then checks the name of
// the user the call is about.
func (s *Service) authorize(ctx context.Context, kind, verb, user string) (*authz.Context, error) {
	actx, err := crud.Authorize(ctx, s.cfg.Authorizer, kind, verb)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if err := generic.CheckName(services.KindUser, user); err != nil {
		return nil, trace.Wrap(err)
	}
	return actx, nil
}

func (s *Service) record(ctx context.Context, actx *authz.Context, typ, user string, fields map[string]string, err error) {
	s.cfg.Recorder.Record(ctx, audit.Event{
		Type:     typ,
		User:     actx.Username(),
		Resource: services.KindUser + "/" + user,
		Fields:   fields,
		Err:      err,
	})
}

// ttlOf reads an optional, non-negative duration.
func ttlOf(d *durationpb.Duration) (time.Duration, error) {
	if d == nil {
		return 0, nil
	}
	if err := d.CheckValid(); err != nil {
		return 0, trace.BadParameter("ttl: %v", err)
	}
	ttl := d.AsDuration()
	if ttl < 0 {
		return 0, trace.BadParameter("ttl must not be negative")
	}
	return ttl, nil
}

// SignSSHCert signs the request's public key for the user.
func (s *Service) SignSSHCert(ctx context.Context, req *credentialspb.SignSSHCertRequest) (*credentialspb.SignSSHCertResponse, error) {
	actx, err := s.authorize(ctx, authz.KindCert, services.VerbCreate, req.GetUser())
	if err != nil {
		return nil, trace.Wrap(err)
	}
	ttl, err := ttlOf(req.GetTtl())
	if err != nil {
		return nil, trace.Wrap(err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(req.GetPublicKey()))
	if err != nil {
		return nil, trace.BadParameter("public_key is not an SSH public key in authorized_keys format")
	}
	certText, err := s.cfg.Issuer.SignSSHUserCert(ctx, req.GetUser(), pub, ttl, "issued by "+actx.Username())
	s.record(ctx, actx, EventCertRequest, req.GetUser(), map[string]string{"kind": "ssh"}, err)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	resp := &credentialspb.SignSSHCertResponse{Certificate: string(certText)}
	if parsed, _, _, _, err := ssh.ParseAuthorizedKey(certText); err == nil {
		if cert, ok := parsed.(*ssh.Certificate); ok {
			resp.Principals = cert.ValidPrincipals
			resp.ValidBefore = timestamppb.New(time.Unix(int64(cert.ValidBefore), 0))
		}
	}
	return resp, nil
}

// CreateUserIdentity issues an identity file for the user.
func (s *Service) CreateUserIdentity(ctx context.Context, req *credentialspb.CreateUserIdentityRequest) (*credentialspb.CreateUserIdentityResponse, error) {
	actx, err := s.authorize(ctx, authz.KindCert, services.VerbCreate, req.GetUser())
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if err := checkNotBuiltin(req.GetUser()); err != nil {
		return nil, trace.Wrap(err)
	}
	ttl, err := ttlOf(req.GetTtl())
	if err != nil {
		return nil, trace.Wrap(err)
	}
	id, err := s.cfg.Issuer.GenerateUserIdentity(ctx, req.GetUser(), ttl)
	var data []byte
	if err == nil {
		data, err = identityfile.Encode(id)
	}
	s.record(ctx, actx, EventCertRequest, req.GetUser(), map[string]string{"kind": "identity"}, err)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	resp := &credentialspb.CreateUserIdentityResponse{Identity: data}
	if c, err := id.TLSCertificate(); err == nil && c.Leaf != nil {
		resp.ValidBefore = timestamppb.New(c.Leaf.NotAfter)
	}
	return resp, nil
}

// checkNotBuiltin refuses to issue, through the API, credentials for a
// built-in identity: whoever may create certificates could otherwise mint
// the operator's identity, which outlives their own account and answers to
// no lock but its own. Its credentials come only from the server
// (<data-dir>/admin.identity) and from gatehouse recover on the server host.
func checkNotBuiltin(user string) error {
	if services.IsReservedUsername(user) {
		return trace.AccessDenied("%q is a built-in identity; its credentials are issued only by the server into its data directory (admin.identity), or by gatehouse recover", user)
	}
	return nil
}

// CreatePasswordToken returns a one-time password link for a local user.
func (s *Service) CreatePasswordToken(ctx context.Context, req *credentialspb.CreatePasswordTokenRequest) (*credentialspb.CreatePasswordTokenResponse, error) {
	actx, err := s.authorize(ctx, services.KindUser, services.VerbUpdate, req.GetUser())
	if err != nil {
		return nil, trace.Wrap(err)
	}
	ttl, err := ttlOf(req.GetTtl())
	if err != nil {
		return nil, trace.Wrap(err)
	}
	u, err := s.localUser(ctx, req.GetUser())
	if err == nil {
		err = actx.Checker.CheckManage(u)
	}
	var token string
	var expires time.Time
	if err == nil {
		// The link is bound to this account (its stored name and its
		// incarnation): if the account is deleted and the name created
		// again, the link is void.
		token, expires, err = s.cfg.Tokens.CreatePasswordToken(ctx, u, ttl)
	}
	s.record(ctx, actx, EventPasswordToken, req.GetUser(), nil, err)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	link := PasswordPath + "?" + url.Values{"token": {token}}.Encode()
	if s.cfg.PublicAddr != "" {
		link = services.PublicOrigin(s.cfg.PublicAddr) + link
	}
	return &credentialspb.CreatePasswordTokenResponse{Url: link, Token: token, Expires: timestamppb.New(expires)}, nil
}

// SetPassword sets a local user's password.
func (s *Service) SetPassword(ctx context.Context, req *credentialspb.SetPasswordRequest) (*credentialspb.SetPasswordResponse, error) {
	actx, err := s.authorize(ctx, services.KindUser, services.VerbUpdate, req.GetUser())
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if err := services.CheckPassword(req.GetPassword()); err != nil {
		return nil, trace.Wrap(err)
	}
	err = s.checkManage(ctx, actx, req.GetUser())
	if err == nil {
		err = s.cfg.Users.SetLocalPassword(ctx, req.GetUser(), req.GetPassword())
	}
	var fields map[string]string
	if err == nil {
		// Whoever signed in with the old password (an administrator resets
		// one that leaked) must sign in again. On failure the call can be
		// made again.
		var n int
		n, err = s.cfg.Sessions.EndUserSessions(ctx, req.GetUser())
		fields = map[string]string{"sessions_ended": strconv.Itoa(n)}
		if err != nil {
			err = trace.Wrap(err, "the password of %q is set, but its web sessions could not all be ended; set it again", req.GetUser())
		}
	}
	s.record(ctx, actx, EventPasswordSet, req.GetUser(), fields, err)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &credentialspb.SetPasswordResponse{}, nil
}

// checkManage refuses a caller whose roles do not allow every verb on every
// kind the password of an account holding a role the caller does not hold
// (authz.Checker.CheckManage): setting another's password is signing in as
// them, so user update alone must not reach an account stronger than the
// caller. (Issuing certificates, verb create on kind cert, is acting as any
// user by design: only administrators should hold it.) A name that is not a
// user is left to the call, which refuses it.
func (s *Service) checkManage(ctx context.Context, actx *authz.Context, name string) error {
	if actx.Checker.Unrestricted() {
		return nil
	}
	u, err := s.cfg.Users.GetUser(ctx, name, false)
	if c := canonical.Username(name); trace.IsNotFound(err) && c != name {
		u, err = s.cfg.Users.GetUser(ctx, c, false)
	}
	switch {
	case trace.IsNotFound(err):
		return nil
	case err != nil:
		return trace.Wrap(err)
	}
	return trace.Wrap(actx.Checker.CheckManage(u))
}

// localUser reads the user a password link is for, under the name asked or,
// if there is none, its canonical form (the form users are stored in, so
// "Carol" finds "carol"). It refuses a built-in identity, a missing user and
// one an identity provider manages (a password link for those could never
// be used).
func (s *Service) localUser(ctx context.Context, name string) (*typesv1.User, error) {
	if err := checkNotBuiltin(name); err != nil {
		return nil, trace.Wrap(err)
	}
	u, err := s.cfg.Users.GetUser(ctx, name, false)
	if c := canonical.Username(name); trace.IsNotFound(err) && c != name {
		u, err = s.cfg.Users.GetUser(ctx, c, false)
	}
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if err := services.CheckLocalUser(u); err != nil {
		return nil, trace.Wrap(err)
	}
	return u, nil
}
