package saml

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gravitational/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gatehouse/gatehouse/lib/auth/audit"
	"github.com/gatehouse/gatehouse/lib/canonical"
	"github.com/gatehouse/gatehouse/lib/safetext"
	"github.com/gatehouse/gatehouse/lib/services"
	"github.com/gatehouse/gatehouse/lib/services/generic"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// ConnectorTypeSAML is created_by.connector.type of SAML users.
const ConnectorTypeSAML = "saml"

// Audit event types of SAML logins.
const (
	// EventLogin is a SAML login, accepted or refused.
	EventLogin = "saml.login"
)

// Users is the part of the user service logins use.
type Users interface {
	GetUser(ctx context.Context, name string, withSecrets bool) (*typesv1.User, error)
	CreateUser(ctx context.Context, u *typesv1.User) (*typesv1.User, error)
	UpdateAndSwapUser(ctx context.Context, name string, modify func(*typesv1.User) error) (*typesv1.User, error)
}

// Roles reads roles.
type Roles interface {
	GetRole(ctx context.Context, name string) (*typesv1.Role, error)
}

// LockChecker refuses a subject under a lock in force with
// trace.AccessDenied carrying the lock's message (lockwatch.Watcher, or
// LocksFromBackend).
type LockChecker interface {
	CheckLockInForce(ctx context.Context, subject services.LockSubject) error
}

// Recorder records audit events.
type Recorder interface {
	Record(ctx context.Context, e audit.Event)
}

// LoginConfig configures Login.
type LoginConfig struct {
	Users    Users
	Roles    Roles
	Locks    LockChecker
	Recorder Recorder
}

// CheckAndSetDefaults validates the config.
func (c *LoginConfig) CheckAndSetDefaults() error {
	switch {
	case c.Users == nil:
		return trace.BadParameter("saml: missing Users")
	case c.Roles == nil:
		return trace.BadParameter("saml: missing Roles")
	case c.Locks == nil:
		return trace.BadParameter("saml: missing Locks")
	case c.Recorder == nil:
		return trace.BadParameter("saml: missing Recorder")
	}
	return nil
}

// LoginResult is an accepted login.
type LoginResult struct {
	// User is the user as stored after the login.
	User *typesv1.User
	// SessionTTL is how long the web session may last: the shortest
	// max_session_ttl of the user's roles (services.DefaultSessionTTL when
	// unset), at most services.MaxSessionTTL.
	SessionTTL time.Duration
	// Outcome says what happened to the user: OutcomeCreated,
	// OutcomeRefreshed or OutcomeSCIMRefreshed.
	Outcome string
}

// Login outcomes.
const (
	OutcomeCreated       = "created temporary user"
	OutcomeRefreshed     = "refreshed temporary user"
	OutcomeSCIMRefreshed = "refreshed SCIM-managed user"
)

// SessionTTL returns the session lifetime roles allow: the shortest
// max_session_ttl, services.DefaultSessionTTL for a role without one, and
// never over services.MaxSessionTTL.
func SessionTTL(roles []*typesv1.Role) time.Duration {
	ttl := services.MaxSessionTTL
	if len(roles) == 0 {
		return services.DefaultSessionTTL
	}
	for _, r := range roles {
		ttl = min(ttl, services.RoleMaxSessionTTL(r))
	}
	return ttl
}

// Username is the Gatehouse username of a SAML login: the canonical form of
// the NameID (see lib/canonical), so that "Alice@Example.com" and
// "alice@example.com" from the IdP are one account. The spelling the IdP
// sent is kept in created_by.connector.identity.
func Username(a *Assertion) string { return canonical.Username(a.NameID) }

// Decide applies a login to the user as stored (nil if there is none): it
// returns the user to write, whether it is new, and the outcome, or
// trace.AccessDenied explaining the refusal. It does not check locks.
//
//   - no user: a temporary SAML user expiring at now+ttl, created_by the
//     connector and NameID, with no origin label (so SCIM can adopt it);
//   - a temporary user of the same connector: roles, traits and expiry
//     refreshed;
//   - a SCIM-managed user (any origin label) whose created_by names this
//     connector: signed in as it is. SCIM is the one source of its roles
//     and traits (capped by the plugin's grantable roles), so the SAML
//     mapping neither rewrites them nor adds to them, not even for the
//     session (Login gives the session the stored roles), and a login is not
//     refused for want of a mapping while the account holds roles; it stays
//     long-lived (no expiry) and SCIM-managed. Through any other connector:
//     refused;
//   - a local user, or a user of another connector: refused.
func Decide(existing *typesv1.User, connector string, a *Assertion, roles []string, ttl time.Duration, now time.Time) (*typesv1.User, bool, string, error) {
	if existing != nil && services.SCIMOrigin(existing) != "" && isConnectorUser(existing, connector) {
		u := existing
		if len(u.GetSpec().GetRoles()) == 0 {
			return nil, false, "", trace.AccessDenied("user %q holds no role; its roles come from SCIM (plugin %q)", u.GetMetadata().GetName(), services.SCIMOrigin(u))
		}
		// Adopted by SCIM: long-lived, whatever it was before.
		u.Metadata.Expires = nil
		return u, false, OutcomeSCIMRefreshed, nil
	}
	if len(roles) == 0 {
		return nil, false, "", trace.AccessDenied("no Gatehouse role is mapped to your identity provider attributes (connector %q); ask an administrator to add an attributes_to_roles entry", connector)
	}
	traits := services.NewTraits(boundTraits(a.Traits))
	if existing == nil {
		return &typesv1.User{
			Kind:    services.KindUser,
			Version: services.V1,
			Metadata: &typesv1.Metadata{
				Name:    Username(a),
				Expires: timestamppb.New(now.Add(ttl)),
			},
			Spec: &typesv1.UserSpec{
				Roles:  roles,
				Traits: traits,
				CreatedBy: &typesv1.CreatedBy{
					Time:      timestamppb.New(now),
					Connector: &typesv1.ConnectorRef{Type: ConnectorTypeSAML, Id: connector, Identity: a.NameID},
				},
			},
		}, true, OutcomeCreated, nil
	}
	name := existing.GetMetadata().GetName()
	u := existing
	if u.Spec == nil {
		u.Spec = &typesv1.UserSpec{}
	}
	switch {
	case services.SCIMOrigin(u) != "" && !isConnectorUser(u, connector):
		// SCIM records the plugin's SAML connector in created_by. Any other
		// connector (another IdP that may let its users pick the NameID)
		// must not sign in as, and re-role, a SCIM-managed account.
		return nil, false, "", trace.AccessDenied("user %q is managed by %q and signs in through SAML connector %q, not %q", name, services.SCIMOrigin(u), u.GetSpec().GetCreatedBy().GetConnector().GetId(), connector)
	case isConnectorUser(u, connector):
		if u.GetSpec().GetLocalAuth() != nil {
			return nil, false, "", trace.AccessDenied("user %q has a local password and cannot log in through SAML", name)
		}
		u.Spec.Roles = roles
		u.Spec.Traits = traits
		u.Metadata.Expires = timestamppb.New(now.Add(ttl))
		u.Spec.CreatedBy.Connector.Identity = a.NameID
		return u, false, OutcomeRefreshed, nil
	case u.GetSpec().GetCreatedBy().GetConnector() != nil:
		cb := u.GetSpec().GetCreatedBy().GetConnector()
		return nil, false, "", trace.AccessDenied("user %q belongs to %s connector %q, not to SAML connector %q", name, cb.GetType(), cb.GetId(), connector)
	default:
		return nil, false, "", trace.AccessDenied("user %q is a local user and cannot log in through SAML connector %q", name, connector)
	}
}

func isConnectorUser(u *typesv1.User, connector string) bool {
	cb := u.GetSpec().GetCreatedBy().GetConnector()
	return cb.GetType() == ConnectorTypeSAML && cb.GetId() == connector
}

// Trait bounds, those of services.ValidateUser: extra attributes are
// dropped rather than failing the login.
const (
	maxTraits      = 64
	maxTraitValues = 256
	maxTraitBytes  = 1024
)

// boundTraits keeps the traits ValidateUser accepts, in a stable way (by
// name) when there are too many. A name or value with a control character
// or a bidirectional override (lib/safetext) is dropped too: traits become
// SSH logins and are shown by the UI and gatectl, and a real IdP never
// sends one.
func boundTraits(in map[string][]string) map[string][]string {
	names := make([]string, 0, len(in))
	for k := range in {
		if k != "" && len(k) <= maxTraitBytes && safetext.CheckName("", k) == nil {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	out := map[string][]string{}
	for _, k := range names {
		if len(out) == maxTraits {
			break
		}
		var vals []string
		for _, v := range in[k] {
			if v != "" && len(v) <= maxTraitBytes && len(vals) < maxTraitValues && !slices.Contains(vals, v) && safetext.CheckName("", v) == nil {
				vals = append(vals, v)
			}
		}
		if len(vals) > 0 {
			out[k] = vals
		}
	}
	return out
}

// Login turns a validated assertion into a user: see Decide for the rules.
// A user under a lock is refused with the lock's message. Every outcome is
// audited.
func Login(ctx context.Context, cfg LoginConfig, c *typesv1.SAMLConnector, a *Assertion, now time.Time) (res *LoginResult, err error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, trace.Wrap(err)
	}
	connector := c.GetMetadata().GetName()
	name := Username(a)
	defer func() {
		ev := audit.Event{
			Type:     EventLogin,
			User:     name,
			Resource: services.KindSAMLConnector + "/" + connector,
			Fields:   map[string]string{"connector": connector, "idp_initiated": fmt.Sprint(a.IdPInitiated)},
			Err:      err,
		}
		if name != a.NameID {
			ev.Fields["name_id"] = a.NameID
		}
		if res != nil {
			ev.Message = res.Outcome
			ev.Fields["roles"] = strings.Join(res.User.GetSpec().GetRoles(), ",")
			ev.Fields["session_ttl"] = res.SessionTTL.String()
		}
		cfg.Recorder.Record(ctx, ev)
	}()
	if err := generic.CheckName(services.KindUser, a.NameID); err != nil {
		return nil, trace.AccessDenied("the NameID %q cannot be a Gatehouse username: %v", a.NameID, err)
	}
	if err := generic.CheckName(services.KindUser, name); err != nil {
		return nil, trace.AccessDenied("the NameID %q cannot be a Gatehouse username: %v", a.NameID, err)
	}
	if services.IsReservedUsername(name) {
		return nil, trace.AccessDenied("the NameID %q names a Gatehouse built-in identity (names starting with %q are reserved); no SAML login can use it", a.NameID, services.ReservedUsernamePrefix)
	}
	roleNames := services.RolesFromAttributes(c, a.Attributes)
	var roles []*typesv1.Role
	var existingNames []string
	for _, n := range roleNames {
		r, err := cfg.Roles.GetRole(ctx, n)
		if trace.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, trace.Wrap(err)
		}
		roles = append(roles, r)
		existingNames = append(existingNames, n)
	}
	mappedMissing := len(roleNames) > 0 && len(roles) == 0
	// A user lock refuses before anything is read; role locks are checked
	// once the roles the session would carry are known.
	if err := cfg.Locks.CheckLockInForce(ctx, services.LockSubject{User: name}); err != nil {
		return nil, trace.Wrap(err)
	}
	for attempt := 0; attempt < 3; attempt++ {
		ttl := SessionTTL(roles)
		existing, err := cfg.Users.GetUser(ctx, name, false)
		scimManaged := err == nil && services.SCIMOrigin(existing) != "" && isConnectorUser(existing, connector)
		if mappedMissing && !scimManaged {
			return nil, trace.AccessDenied("the roles %v mapped to your attributes do not exist; ask an administrator", roleNames)
		}
		// The roles the session carries: the mapping's for a temporary
		// user, the stored ones for a SCIM-managed user (the mapping grants
		// it nothing, so a lock on a role it maps to but the account does
		// not hold does not refuse it, and the session lasts what the
		// stored roles allow).
		sessionRoles := existingNames
		if scimManaged {
			stored, err := storedRoles(ctx, cfg.Roles, existing.GetSpec().GetRoles())
			if err != nil {
				return nil, trace.Wrap(err)
			}
			ttl = SessionTTL(stored)
			sessionRoles = existing.GetSpec().GetRoles()
		}
		if err := cfg.Locks.CheckLockInForce(ctx, services.LockSubject{User: name, Roles: sessionRoles}); err != nil {
			return nil, trace.Wrap(err)
		}
		switch {
		case trace.IsNotFound(err):
			u, _, outcome, err := Decide(nil, connector, a, existingNames, ttl, now)
			if err != nil {
				return nil, trace.Wrap(err)
			}
			stored, err := cfg.Users.CreateUser(ctx, u)
			if trace.IsAlreadyExists(err) {
				continue // created meanwhile (SCIM, another login): decide again
			}
			if err != nil {
				return nil, trace.Wrap(err)
			}
			return &LoginResult{User: stored, SessionTTL: ttl, Outcome: outcome}, nil
		case err != nil:
			return nil, trace.Wrap(err)
		}
		// Refuse before writing, so a refused login changes nothing.
		decided, _, outcome, err := Decide(proto.CloneOf(existing), connector, a, existingNames, ttl, now)
		if err != nil {
			return nil, trace.Wrap(err)
		}
		if err := cfg.Locks.CheckLockInForce(ctx, services.LockSubject{User: name, Roles: existing.GetSpec().GetRoles()}); err != nil {
			return nil, trace.Wrap(err)
		}
		if scimManaged && proto.Equal(decided, existing) {
			// Nothing to write: the login leaves a SCIM-managed account
			// exactly as SCIM wrote it (same revision, so Okta's next
			// write meets no conflict).
			return &LoginResult{User: existing, SessionTTL: ttl, Outcome: outcome}, nil
		}
		stored, err := cfg.Users.UpdateAndSwapUser(ctx, name, func(cur *typesv1.User) error {
			_, _, o, err := Decide(cur, connector, a, existingNames, ttl, now)
			outcome = o
			return err
		})
		if trace.IsNotFound(err) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, trace.Wrap(err)
		}
		return &LoginResult{User: stored, SessionTTL: ttl, Outcome: outcome}, nil
	}
	return nil, trace.CompareFailed("user %q kept changing during the login; try again", name)
}

// storedRoles reads the roles named, skipping those that no longer exist.
func storedRoles(ctx context.Context, getter Roles, names []string) ([]*typesv1.Role, error) {
	var out []*typesv1.Role
	for _, n := range names {
		r, err := getter.GetRole(ctx, n)
		if trace.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, trace.Wrap(err)
		}
		out = append(out, r)
	}
	return out, nil
}

// LockGetter returns the locks in force (services.LockService).
type LockGetter interface {
	GetLocksInForce(ctx context.Context) ([]*typesv1.Lock, error)
}

// BackendLocks is a LockChecker that reads the locks in force from the
// backend on every check: for processes without a lock watcher.
type BackendLocks struct {
	// Locks reads the locks.
	Locks LockGetter
	// Now is the clock.
	Now func() time.Time
}

// CheckLockInForce implements LockChecker. A failed read refuses (fail
// closed).
func (b BackendLocks) CheckLockInForce(ctx context.Context, subject services.LockSubject) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	locks, err := b.Locks.GetLocksInForce(ctx)
	if err != nil {
		return trace.AccessDenied("cannot read the locks in force, refusing: %v", err)
	}
	if l := services.FindLock(locks, subject, b.Now()); l != nil {
		msg := l.GetSpec().GetMessage()
		if msg == "" {
			msg = "access is locked"
		}
		return trace.AccessDenied("user %q is locked: %s", subject.User, msg)
	}
	return nil
}
