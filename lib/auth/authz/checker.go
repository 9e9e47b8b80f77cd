package authz

import (
	"slices"
	"strings"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/services"
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
	allowed, denier := c.decide(kind, verb)
	switch {
	case allowed:
		return nil
	case denier != nil:
		return trace.AccessDenied("access denied: role %q denies %q on %q", denier.GetMetadata().GetName(), verb, kind)
	}
	return trace.AccessDenied("access denied: no role of [%s] allows %q on %q", strings.Join(c.RoleNames(), ", "), verb, kind)
}

// allows is CheckAccess without the error: for callers that ask many
// questions and need no explanation (building a trace error records a
// stack, which costs far more than the answer).
func (c *Checker) allows(kind, verb string) bool {
	allowed, _ := c.decide(kind, verb)
	return allowed
}

// decide says whether verb on kind is allowed, and if a role denies it,
// which one. Deny wins.
func (c *Checker) decide(kind, verb string) (allowed bool, denier *typesv1.Role) {
	for _, r := range c.roles {
		if rulesMatch(r.GetSpec().GetDeny().GetRules(), kind, verb, deniedBy) {
			return false, r
		}
	}
	for _, r := range c.roles {
		if rulesMatch(r.GetSpec().GetAllow().GetRules(), kind, verb, allowedBy) {
			return true, nil
		}
	}
	return false, nil
}

// allowedBy reports whether a rule verb grants verb: read grants
// readnosecrets too.
func allowedBy(ruleVerb, verb string) bool {
	return ruleVerb == services.Wildcard || ruleVerb == verb || (ruleVerb == services.VerbRead && verb == services.VerbReadNoSecrets)
}

// deniedBy reports whether a rule verb refuses verb: denying readnosecrets
// denies read too, since read returns everything readnosecrets does.
func deniedBy(ruleVerb, verb string) bool {
	return ruleVerb == services.Wildcard || ruleVerb == verb || (ruleVerb == services.VerbReadNoSecrets && verb == services.VerbRead)
}

func rulesMatch(rules []*typesv1.Rule, kind, verb string, verbMatch func(ruleVerb, verb string) bool) bool {
	for _, rule := range rules {
		if !slices.Contains(rule.GetResources(), services.Wildcard) && !slices.Contains(rule.GetResources(), kind) {
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

// AdministrativeKinds are the kinds whose writes amount to administering the
// cluster: whoever may create, update or delete one of them can grant
// themselves (or anyone) more access, or take it away from others.
var AdministrativeKinds = []string{
	services.KindPlugin, services.KindPluginStaticCredentials, services.KindSAMLConnector, services.KindRole, services.KindUser, services.KindLock, KindCert,
}

// writeVerbs are the verbs that change resources.
var writeVerbs = []string{services.VerbCreate, services.VerbUpdate, services.VerbDelete}

// IsAdministrative reports whether role r, on its own, allows a write verb on
// an administrative kind (AdministrativeKinds). Such roles are never granted
// by an identity provider unless its owner says so explicitly.
func IsAdministrative(r *typesv1.Role) bool {
	c := NewChecker([]*typesv1.Role{r})
	for _, kind := range AdministrativeKinds {
		for _, verb := range writeVerbs {
			if c.allows(kind, verb) {
				return true
			}
		}
	}
	return false
}
