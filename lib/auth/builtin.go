package auth

import (
	"context"
	"strings"
	"time"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/auth/audit"
	"github.com/gatehouse/gatehouse/lib/auth/authz"
	"github.com/gatehouse/gatehouse/lib/services"
)

// generateBuiltinAdminIdentity issues credentials for the built-in operator
// identity services.BuiltinAdmin, which has no user record: a TLS client
// certificate from the user CA with common name services.BuiltinAdmin and
// the built-in roles (BuiltinAdminRoles) as organizations, valid for ttl
// (0 means the longest the built-in roles allow; a longer ttl is cut to it).
// It carries the identity's current incarnation (certext.IncarnationOID),
// so that gatehouse recover, which replaces the incarnation, voids it.
// The built-in roles allow no node login, so no SSH certificate is issued. A
// lock whose target is the user services.BuiltinAdmin refuses it; no other
// lock does (see authz.Authorizer).
func (s *Server) generateBuiltinAdminIdentity(ctx context.Context, ttl time.Duration) (_ *Identity, err error) {
	name := services.BuiltinAdmin
	roles := BuiltinAdminRoles()
	roleNames := make([]string, 0, len(roles))
	maxTTL := services.MaxSessionTTL
	for _, r := range roles {
		roleNames = append(roleNames, r.GetMetadata().GetName())
		maxTTL = min(maxTTL, services.RoleMaxSessionTTL(r))
	}
	if ttl == 0 || ttl > maxTTL {
		ttl = maxTTL
	}
	defer func() {
		ev := audit.Event{
			Type:     audit.EventCertIssue,
			User:     name,
			Resource: services.KindUser + "/" + name,
			Message:  "built-in operator identity",
			Fields:   map[string]string{"ttl": ttl.String(), "roles": strings.Join(roleNames, ",")},
			Err:      err,
		}
		s.recorder.Record(ctx, ev)
	}()
	now := s.cfg.Clock.Now()
	locks, err := s.services.Locks.GetLocksInForce(ctx)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if l := services.FindLock(locks, authz.BuiltinAdminLockSubject(), now); l != nil {
		return nil, trace.AccessDenied("%s is locked: %s (lock %q; with the server stopped, gatehouse recover lifts it)", name, l.GetSpec().GetMessage(), l.GetMetadata().GetName())
	}
	incarnation, err := s.services.BuiltinAdmin.GetBuiltinAdminIncarnation(ctx)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	id, _, err := s.issueTLSIdentity(name, roleNames, incarnation, now, ttl)
	return id, trace.Wrap(err)
}

// RotateBuiltinAdminIncarnation gives the built-in operator identity a new
// incarnation: every credential issued to it before, whoever holds a copy,
// is refused from the next call on (see authz.Authorizer), and the
// credentials issued afterwards carry the new one. actor names who asked, in
// the audit event.
func (s *Server) RotateBuiltinAdminIncarnation(ctx context.Context, actor string) error {
	_, err := s.services.BuiltinAdmin.RotateBuiltinAdminIncarnation(ctx)
	s.recorder.Record(ctx, audit.Event{
		Type:     audit.EventBuiltinAdminRotate,
		User:     actor,
		Resource: services.KindUser + "/" + services.BuiltinAdmin,
		Message:  "new incarnation of the built-in operator identity: every admin identity issued before is void",
		Err:      err,
	})
	return trace.Wrap(err)
}
