package authz

import (
	"slices"
	"strings"

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
