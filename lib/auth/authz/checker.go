package authz

import (
	"slices"
	"strings"
	"time"

	"github.com/gravitational/trace"

	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// Checker answers "may these roles do verb on kind".
type Checker struct {
	roles []*typesv1.Role
}

// NewChecker returns a checker over roles.
func NewChecker(roles []*typesv1.Role) *Checker {
	return &Checker{roles: roles}
}

// RoleNames lists the checker's roles.
func (c *Checker) RoleNames() []string {
	names := make([]string, 0, len(c.roles))
	for _, r := range c.roles {
		names = append(names, r.GetMetadata().GetName())
	}
	return names
}

// CheckAccess returns nil if some role allows verb on kind and none denies
// it, and trace.AccessDenied otherwise.
func (c *Checker) CheckAccess(kind, verb string) error {
	for _, r := range c.roles {
		if rulesMatch(r.GetSpec().GetDeny().GetRules(), kind, verb, deniedBy) {
			return trace.AccessDenied("access denied: role %q denies %q on %q", r.GetMetadata().GetName(), verb, kind)
		}
	}
	for _, r := range c.roles {
		if rulesMatch(r.GetSpec().GetAllow().GetRules(), kind, verb, allowedBy) {
			return nil
		}
	}
	return trace.AccessDenied("access denied: no role of [%s] allows %q on %q", strings.Join(c.RoleNames(), ", "), verb, kind)
}

// allowedBy reports whether a rule verb grants verb: read grants
// readnosecrets too.
func allowedBy(ruleVerb, verb string) bool {
	return ruleVerb == Wildcard || ruleVerb == verb || (ruleVerb == VerbRead && verb == VerbReadNoSecrets)
}

// deniedBy reports whether a rule verb refuses verb: denying readnosecrets
// denies read too, since read returns everything readnosecrets does.
func deniedBy(ruleVerb, verb string) bool {
	return ruleVerb == Wildcard || ruleVerb == verb || (ruleVerb == VerbReadNoSecrets && verb == VerbRead)
}

func rulesMatch(rules []*typesv1.Rule, kind, verb string, verbMatch func(ruleVerb, verb string) bool) bool {
	for _, rule := range rules {
		if !slices.Contains(rule.GetResources(), Wildcard) && !slices.Contains(rule.GetResources(), kind) {
			continue
		}
		for _, v := range rule.GetVerbs() {
			if verbMatch(v, verb) {
				return true
			}
		}
	}
	return false
}

// LockInForce returns the first lock in force at now that applies to an API
// call by user, or nil. A lock applies when it names the user or one of the
// user's roles and every field it sets matches; locks that also name a login
// or a node apply only to SSH sessions with that login or on that node, never
// to API calls.
func LockInForce(locks []*typesv1.Lock, user *typesv1.User, now time.Time) *typesv1.Lock {
	for _, l := range locks {
		if exp := l.GetMetadata().GetExpires(); exp != nil && !now.Before(exp.AsTime()) {
			continue
		}
		t := l.GetSpec().GetTarget()
		if t.GetUser() == "" && t.GetRole() == "" {
			continue
		}
		if t.GetLogin() != "" || t.GetNode() != "" {
			continue
		}
		if t.GetUser() != "" && t.GetUser() != user.GetMetadata().GetName() {
			continue
		}
		if t.GetRole() != "" && !slices.Contains(user.GetSpec().GetRoles(), t.GetRole()) {
			continue
		}
		return l
	}
	return nil
}
