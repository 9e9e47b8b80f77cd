// Package authz decides whether the caller of an auth API may do what it
// asks. The caller's name comes from its verified client certificate (put in
// the context by the auth server's interceptor); its roles and its lock state
// are re-read from the backend on every call, so that a role change, a user
// deletion or a new lock takes effect on the next call, not when the
// certificate expires.
//
// Roles hold allow and deny rules over resource kinds and verbs. Deny wins.
// "*" matches every kind or every verb. The read verb implies readnosecrets
// (reading with secrets is a superset of reading without); symmetrically a
// deny of readnosecrets also denies read.
package authz

import (
	"context"
	"log/slog"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
	"google.golang.org/protobuf/proto"

	"github.com/gatehouse/gatehouse/lib/defaults"
	"github.com/gatehouse/gatehouse/lib/services"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// Resource kinds the auth API guards besides the stored ones (services.Kind*,
// with the verbs services.Verb* and services.Wildcard).
const (
	// KindEvent is the audit log, which the auditor role reads.
	KindEvent = "event"
	// KindCert is credentials issued for a user by someone else (SSH
	// certificates, identity files: verb create). Whoever may create them
	// can act as any user, so only administrators should hold it.
	KindCert = "cert"
)

// Identity is who the verified client certificate says the caller is.
type Identity struct {
	// Username is the certificate's common name.
	Username string
	// CertRoles are the roles written into the certificate when it was
	// issued. They are informational only: authorization uses the roles the
	// user holds now.
	CertRoles []string
	// Incarnation is the incarnation of the account the credential was
	// issued to. It must equal the user's current one: a credential of an
	// account that was deleted and created again, reactivated or renamed
	// onto is refused, whatever the name says. Empty (a credential issued
	// before incarnations existed) matches nothing.
	Incarnation string
}

type identityKey struct{}

// ContextWithIdentity returns ctx carrying id.
func ContextWithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// IdentityFromContext returns the caller's identity, if the interceptor set one.
func IdentityFromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok && id.Username != ""
}

// UserGetter reads a user; trace.NotFound if missing.
type UserGetter interface {
	GetUser(ctx context.Context, name string, withSecrets bool) (*typesv1.User, error)
}

// RoleGetter reads a role; trace.NotFound if missing.
type RoleGetter interface {
	GetRole(ctx context.Context, name string) (*typesv1.Role, error)
}

// LockGetter returns the locks in force.
type LockGetter interface {
	GetLocksInForce(ctx context.Context) ([]*typesv1.Lock, error)
}

// BuiltinAdminIncarnationGetter returns the current incarnation of the
// built-in operator identity; trace.NotFound if none is stored.
type BuiltinAdminIncarnationGetter interface {
	GetBuiltinAdminIncarnation(ctx context.Context) (string, error)
}

// Config configures an Authorizer.
type Config struct {
	Users UserGetter
	Roles RoleGetter
	Locks LockGetter
	// BuiltinAdmin holds the incarnation that credentials of the built-in
	// operator identity must carry (services.BuiltinAdminService). Required.
	BuiltinAdmin BuiltinAdminIncarnationGetter
	// BuiltinAdminRoles are the roles of the built-in operator identity
	// services.BuiltinAdmin, defined in code: never read from the backend,
	// so no stored role an editor (or an integration) can edit or delete
	// takes the operator's rights away. Required.
	BuiltinAdminRoles []*typesv1.Role
	Clock             clockwork.Clock
	Logger            *slog.Logger
}

// CheckAndSetDefaults validates the config.
func (c *Config) CheckAndSetDefaults() error {
	switch {
	case c.Users == nil:
		return trace.BadParameter("authz: missing Users")
	case c.Roles == nil:
		return trace.BadParameter("authz: missing Roles")
	case c.Locks == nil:
		return trace.BadParameter("authz: missing Locks")
	case c.BuiltinAdmin == nil:
		return trace.BadParameter("authz: missing BuiltinAdmin")
	case len(c.BuiltinAdminRoles) == 0:
		return trace.BadParameter("authz: missing BuiltinAdminRoles")
	}
	defaults.Clock(&c.Clock)
	defaults.Logger(&c.Logger, "authz")
	return nil
}

// Authorizer turns a request context into an authorization Context.
type Authorizer struct {
	cfg Config
}

// New returns an Authorizer.
func New(cfg Config) (*Authorizer, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, trace.Wrap(err)
	}
	return &Authorizer{cfg: cfg}, nil
}

// Context is an authorized caller.
type Context struct {
	// User is the caller's user resource as read for this call.
	User *typesv1.User
	// Roles are the roles the user holds now (missing roles are skipped).
	Roles []*typesv1.Role
	// Checker answers access questions for these roles.
	Checker *Checker
}

// Username is the caller's name.
func (c *Context) Username() string { return c.User.GetMetadata().GetName() }

// Authorize identifies the caller, refuses it if it has no identity, its
// user no longer exists, its credential was issued to another incarnation of
// the user, or a lock in force targets it, and returns its current roles.
// The built-in operator identity (services.BuiltinAdmin) has no user record:
// see authorizeBuiltinAdmin.
func (a *Authorizer) Authorize(ctx context.Context) (*Context, error) {
	id, ok := IdentityFromContext(ctx)
	if !ok {
		return nil, trace.AccessDenied("the caller has no verified identity")
	}
	if services.IsBuiltinAdmin(id.Username) {
		return a.authorizeBuiltinAdmin(ctx, id)
	}
	user, err := a.cfg.Users.GetUser(ctx, id.Username, false)
	if err != nil {
		if trace.IsNotFound(err) {
			return nil, trace.AccessDenied("user %q no longer exists", id.Username)
		}
		return nil, trace.Wrap(err)
	}
	if services.IsUserExpired(user, a.cfg.Clock.Now()) {
		return nil, trace.AccessDenied("user %q has expired", id.Username)
	}
	if err := CheckIncarnation(id, user); err != nil {
		return nil, trace.Wrap(err)
	}
	roles := make([]*typesv1.Role, 0, len(user.GetSpec().GetRoles()))
	for _, name := range user.GetSpec().GetRoles() {
		role, err := a.cfg.Roles.GetRole(ctx, name)
		if err != nil {
			if trace.IsNotFound(err) {
				// A deleted role grants nothing; its denies went with it.
				a.cfg.Logger.WarnContext(ctx, "User holds a role that does not exist", "user", id.Username, "role", name)
				continue
			}
			return nil, trace.Wrap(err)
		}
		roles = append(roles, role)
	}
	locks, err := a.cfg.Locks.GetLocksInForce(ctx)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	// Only user and role targets apply to API calls: a lock that also names
	// a login or a node is about SSH sessions with that login or on that
	// node, which an API call is not.
	subject := services.LockSubject{User: user.GetMetadata().GetName(), Roles: user.GetSpec().GetRoles()}
	if lock := services.FindLock(locks, subject, a.cfg.Clock.Now()); lock != nil {
		msg := lock.GetSpec().GetMessage()
		if msg == "" {
			msg = "access is locked"
		}
		return nil, trace.AccessDenied("user %q is locked: %s", id.Username, msg)
	}
	return &Context{User: user, Roles: roles, Checker: NewChecker(roles)}, nil
}

// authorizeBuiltinAdmin authorizes the built-in operator identity. Its
// certificate can only come from the user CA, and no user record can carry
// its name (services.CheckUsername reserves "@"), so no identity provider can
// create, rename onto or re-role it. It holds the built-in roles, not the
// stored ones, and only a lock whose target is exactly the user
// services.BuiltinAdmin affects it: a lock on a role, a login or the user
// "admin" does not, because an integration can write those. Its credential
// must carry the stored incarnation of the identity, which gatehouse recover
// replaces: a leaked admin.identity dies with the recovery, not when its
// certificate expires.
func (a *Authorizer) authorizeBuiltinAdmin(ctx context.Context, id Identity) (*Context, error) {
	if err := a.checkBuiltinAdminIncarnation(ctx, id); err != nil {
		return nil, trace.Wrap(err)
	}
	locks, err := a.cfg.Locks.GetLocksInForce(ctx)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if lock := services.FindLock(locks, BuiltinAdminLockSubject(), a.cfg.Clock.Now()); lock != nil {
		msg := lock.GetSpec().GetMessage()
		if msg == "" {
			msg = "access is locked"
		}
		return nil, trace.AccessDenied("%s is locked: %s (lock %q; with the server stopped, gatehouse recover lifts it)", services.BuiltinAdmin, msg, lock.GetMetadata().GetName())
	}
	roles := make([]*typesv1.Role, 0, len(a.cfg.BuiltinAdminRoles))
	names := make([]string, 0, len(a.cfg.BuiltinAdminRoles))
	for _, r := range a.cfg.BuiltinAdminRoles {
		roles = append(roles, proto.Clone(r).(*typesv1.Role))
		names = append(names, r.GetMetadata().GetName())
	}
	user := &typesv1.User{
		Kind:     services.KindUser,
		Version:  services.V1,
		Metadata: &typesv1.Metadata{Name: services.BuiltinAdmin, Description: "Gatehouse's built-in operator identity."},
		Spec:     &typesv1.UserSpec{Roles: names},
	}
	return &Context{User: user, Roles: roles, Checker: NewChecker(roles)}, nil
}

// checkBuiltinAdminIncarnation refuses a credential of the built-in operator
// identity that does not carry its current incarnation: one issued before a
// recovery, or before the identity had one (empty). With none stored (a
// backend no server of this version has started on) nothing is accepted.
func (a *Authorizer) checkBuiltinAdminIncarnation(ctx context.Context, id Identity) error {
	cur, err := a.cfg.BuiltinAdmin.GetBuiltinAdminIncarnation(ctx)
	if trace.IsNotFound(err) {
		return trace.AccessDenied("%s has no incarnation stored yet: start the server once, or run gatehouse recover, then use the new admin.identity", services.BuiltinAdmin)
	}
	if err != nil {
		return trace.Wrap(err)
	}
	switch {
	case id.Incarnation == "":
		return trace.AccessDenied("this admin identity was issued by an earlier version of Gatehouse and is no longer accepted; use the new admin.identity (the server rewrites it at startup)")
	case id.Incarnation != cur:
		return trace.AccessDenied("this admin identity was replaced by gatehouse recover; use the new admin.identity")
	}
	return nil
}

// BuiltinAdminLockSubject is the built-in operator identity as lock targets
// see it: the user services.BuiltinAdmin with no roles and no logins, so the
// only lock that matches it is one whose target is that user alone.
func BuiltinAdminLockSubject() services.LockSubject {
	return services.LockSubject{User: services.BuiltinAdmin}
}

// CheckIncarnation refuses (trace.AccessDenied) a credential that was not
// issued to the current incarnation of user: one from before the account
// was deleted and created again, reactivated or renamed onto, or from
// before incarnations existed (empty).
func CheckIncarnation(id Identity, user *typesv1.User) error {
	cur := user.GetSpec().GetIncarnation()
	if id.Incarnation == "" || cur == "" || id.Incarnation != cur {
		return trace.AccessDenied("credentials were issued to an earlier incarnation of user %q; sign in again", id.Username)
	}
	return nil
}
