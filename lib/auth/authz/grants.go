package authz

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/services"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// AllKinds are every kind the auth API checks verbs on. Wildcards in a role
// are judged over them: a role grants exactly the (kind, verb) pairs of
// AllKinds x services.Verbs its rules allow, since no check asks about any
// other pair.
var AllKinds = append(slices.Clone(AdministrativeKinds), KindEvent, services.KindCertAuthority)

// Unrestricted reports whether the roles allow every verb on every kind,
// with no deny in the way (the preset editor, the operator). Such a caller
// may issue credentials for any user and write any role, so no ceiling on
// what it grants would hold anyway; every other caller grants only what it
// has (invariant 4, "grants have a ceiling").
func (c *Checker) Unrestricted() bool {
	for _, kind := range AllKinds {
		for _, verb := range services.Verbs {
			if !c.allows(kind, verb) {
				return false
			}
		}
	}
	return true
}

// Holds reports whether one of the checker's roles is named role.
func (c *Checker) Holds(role string) bool {
	return slices.ContainsFunc(c.roles, func(r *typesv1.Role) bool { return r.GetMetadata().GetName() == role })
}

// CheckGrant refuses (trace.AccessDenied) giving any of roles to an account,
// directly (the user API) or through an integration (a SAML connector's
// mapping, a plugin's default or grantable roles), when the caller does not
// hold the role itself, or when the role grants more than the caller has
// (its other roles deny part of it), and is not Unrestricted. what names the write in the
// error ("user \"bob\"").
func (c *Checker) CheckGrant(what string, roles []string) error {
	if len(roles) == 0 || c.Unrestricted() {
		return nil
	}
	var missing []string
	for _, r := range roles {
		if !c.Holds(r) && !slices.Contains(missing, r) {
			missing = append(missing, r)
		}
	}
	if len(missing) > 0 {
		return trace.AccessDenied("%s: you may give only roles you hold yourself (unless your roles allow every verb on every kind); you do not hold %s", what, strings.Join(missing, ", "))
	}
	// A role held alongside one that denies part of it grants its new
	// holder more than the caller has.
	for _, r := range c.roles {
		if slices.Contains(roles, r.GetMetadata().GetName()) {
			if why := c.beyond(r.GetMetadata().GetName(), r); why != "" {
				return trace.AccessDenied("%s: %s (your other roles deny it): you may give only roles that grant no more than you have", what, why)
			}
		}
	}
	return nil
}

// CheckRoleWrite refuses (trace.AccessDenied) a caller that is not
// Unrestricted writing a role that would give anyone more than the caller
// has: old is the role as stored (nil when created), updated what it
// becomes (nil when deleted). The caller must have every (kind, verb) and
// login that old and updated allow (a caller may not edit or delete a role
// stronger than itself), updated must not let sessions last longer than the
// caller's own may (unless it already did), and updated must deny
// everything old denied, since lifting a deny gives its holders what it
// took away.
func (c *Checker) CheckRoleWrite(old, updated *typesv1.Role) error {
	if c.Unrestricted() {
		return nil
	}
	name := updated.GetMetadata().GetName()
	if updated == nil {
		name = old.GetMetadata().GetName()
	}
	for _, r := range []*typesv1.Role{old, updated} {
		if r == nil {
			continue
		}
		if why := c.beyond(name, r); why != "" {
			return trace.AccessDenied("%s: you may write only roles that grant no more than you have", why)
		}
	}
	if updated != nil {
		ttl, limit := services.RoleMaxSessionTTL(updated), c.sessionLimit()
		if ttl > limit && (old == nil || ttl > services.RoleMaxSessionTTL(old)) {
			return trace.AccessDenied("role %q: max_session_ttl %s is longer than your own sessions may last (%s): you may write only roles that grant no more than you have", name, ttl, limit)
		}
	}
	if old == nil {
		return nil
	}
	// Denies are compared as they refuse (deniedBy: a deny of readnosecrets
	// refuses read too), not as allows would grant.
	for _, kind := range AllKinds {
		for _, verb := range services.Verbs {
			if rulesMatch(old.GetSpec().GetDeny().GetRules(), kind, verb, deniedBy) && !rulesMatch(updated.GetSpec().GetDeny().GetRules(), kind, verb, deniedBy) {
				return trace.AccessDenied("role %q denies %q on %q: only a caller whose roles allow every verb on every kind may lift that deny (by editing or deleting the role)", name, verb, kind)
			}
		}
	}
	for _, l := range old.GetSpec().GetDeny().GetLogins() {
		if !slices.Contains(updated.GetSpec().GetDeny().GetLogins(), l) {
			return trace.AccessDenied("role %q denies login %q: only a caller whose roles allow every verb on every kind may lift that deny (by editing or deleting the role)", name, l)
		}
	}
	return nil
}

// sessionLimit is how long the caller's own sessions may last: the shortest
// max_session_ttl of its roles, as certificates are issued.
func (c *Checker) sessionLimit() time.Duration {
	limit := services.MaxSessionTTL
	for _, r := range c.roles {
		limit = min(limit, services.RoleMaxSessionTTL(r))
	}
	return limit
}

// beyond says what role r, named name, allows that the checker's roles do
// not (a (kind, verb) or a login), or "" if nothing.
func (c *Checker) beyond(name string, r *typesv1.Role) string {
	one := NewChecker([]*typesv1.Role{r})
	for _, kind := range AllKinds {
		for _, verb := range services.Verbs {
			if one.allows(kind, verb) && !c.allows(kind, verb) {
				return fmt.Sprintf("role %q allows %q on %q, which your roles do not allow", name, verb, kind)
			}
		}
	}
	logins := c.logins()
	for _, l := range r.GetSpec().GetAllow().GetLogins() {
		if !slices.Contains(logins, l) {
			return fmt.Sprintf("role %q allows login %q, which your roles do not allow", name, l)
		}
	}
	return ""
}

// HasDenies reports whether r denies anything (a rule or a login): taking
// it away from an account lifts a restriction.
func HasDenies(r *typesv1.Role) bool {
	return len(r.GetSpec().GetDeny().GetRules()) > 0 || len(r.GetSpec().GetDeny().GetLogins()) > 0
}

// logins are the logins (as written, templates included) some role allows
// and none denies.
func (c *Checker) logins() []string {
	var out []string
	for _, r := range c.roles {
		for _, l := range r.GetSpec().GetAllow().GetLogins() {
			if !slices.Contains(out, l) {
				out = append(out, l)
			}
		}
	}
	// A deny of "*" refuses every login, as certificates are issued.
	return slices.DeleteFunc(out, func(l string) bool {
		return slices.ContainsFunc(c.roles, func(r *typesv1.Role) bool {
			return slices.Contains(r.GetSpec().GetDeny().GetLogins(), l) || slices.Contains(r.GetSpec().GetDeny().GetLogins(), "*")
		})
	})
}

// CheckManage refuses (trace.AccessDenied) a caller that is not
// Unrestricted changing, deleting or setting the password of user, when
// user holds a role the caller does not: whoever could do that to a
// stronger account could sign in as it, or take its access away. A nil user
// (one that does not exist) passes.
func (c *Checker) CheckManage(user *typesv1.User) error {
	if user == nil || c.Unrestricted() {
		return nil
	}
	for _, r := range user.GetSpec().GetRoles() {
		if !c.Holds(r) {
			return trace.AccessDenied("user %q holds role %q, which you do not hold: only a caller holding every role of an account (or whose roles allow every verb on every kind) may change it, delete it or set its password", user.GetMetadata().GetName(), r)
		}
	}
	return nil
}
