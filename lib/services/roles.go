package services

import (
	"context"
	"slices"
	"time"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/services/generic"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// Verbs a role rule may grant or deny.
const (
	VerbList          = "list"
	VerbRead          = "read"
	VerbReadNoSecrets = "readnosecrets"
	VerbCreate        = "create"
	VerbUpdate        = "update"
	VerbDelete        = "delete"
	// Wildcard matches every verb, or every resource kind.
	Wildcard = "*"
)

// Verbs lists every known verb, wildcard excluded.
var Verbs = []string{VerbList, VerbRead, VerbReadNoSecrets, VerbCreate, VerbUpdate, VerbDelete}

// Bounds of a role's max_session_ttl.
const (
	MinSessionTTL = time.Minute
	MaxSessionTTL = 30 * time.Hour
	// DefaultSessionTTL is used when a role sets no max_session_ttl.
	DefaultSessionTTL = 12 * time.Hour
)

const maxRules = 64

// ValidateRole checks a role and sets its defaults (kind "role", version
// "v1"): rules name resources and only known verbs, logins are sane, and
// options.max_session_ttl, if set, is a Go duration between MinSessionTTL
// and MaxSessionTTL.
func ValidateRole(r *typesv1.Role) error {
	if r == nil {
		return trace.BadParameter("missing role")
	}
	if err := checkHeader(KindRole, &r.Kind, &r.Version, r.GetMetadata()); err != nil {
		return trace.Wrap(err)
	}
	name := r.GetMetadata().GetName()
	if r.Spec == nil {
		r.Spec = &typesv1.RoleSpec{}
	}
	for side, cond := range map[string]*typesv1.RoleConditions{"allow": r.Spec.GetAllow(), "deny": r.Spec.GetDeny()} {
		if err := checkRoleConditions(name, side, cond); err != nil {
			return trace.Wrap(err)
		}
	}
	if ttl := r.Spec.GetOptions().GetMaxSessionTtl(); ttl != "" {
		if _, err := parseSessionTTL(ttl); err != nil {
			return trace.BadParameter("role %q: options.max_session_ttl: %v", name, err)
		}
	}
	return nil
}

func parseSessionTTL(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, trace.BadParameter("%q is not a duration such as \"12h\"", s)
	}
	if d < MinSessionTTL || d > MaxSessionTTL {
		return 0, trace.BadParameter("%s is outside %s to %s", d, MinSessionTTL, MaxSessionTTL)
	}
	return d, nil
}

// RoleMaxSessionTTL returns the role's max_session_ttl, DefaultSessionTTL if
// unset. The role must have passed ValidateRole.
func RoleMaxSessionTTL(r *typesv1.Role) time.Duration {
	d, err := parseSessionTTL(r.GetSpec().GetOptions().GetMaxSessionTtl())
	if err != nil {
		return DefaultSessionTTL
	}
	return d
}

func checkRoleConditions(name, side string, cond *typesv1.RoleConditions) error {
	if cond == nil {
		return nil
	}
	if len(cond.GetRules()) > maxRules {
		return trace.BadParameter("role %q: %s has %d rules, over the limit of %d", name, side, len(cond.GetRules()), maxRules)
	}
	for i, rule := range cond.GetRules() {
		if len(rule.GetResources()) == 0 {
			return trace.BadParameter("role %q: %s rule %d names no resources", name, side, i+1)
		}
		if err := checkStrings(KindRole, name, side+" rule resources", rule.GetResources()); err != nil {
			return trace.Wrap(err)
		}
		if len(rule.GetVerbs()) == 0 {
			return trace.BadParameter("role %q: %s rule %d names no verbs", name, side, i+1)
		}
		for _, v := range rule.GetVerbs() {
			if v != Wildcard && !slices.Contains(Verbs, v) {
				return trace.BadParameter("role %q: %s rule %d: unknown verb %q (known: %v and %q)", name, side, i+1, v, Verbs, Wildcard)
			}
		}
	}
	return trace.Wrap(checkStrings(KindRole, name, side+" logins", cond.GetLogins()))
}

// MarshalRole validates r (on a copy) and returns the backend item storing
// it at RoleKey(name).
func MarshalRole(r *typesv1.Role) (backend.Item, error) {
	return marshalValidated(RolesPrefix, r, ValidateRole)
}

// UnmarshalRole decodes a stored role.
func UnmarshalRole(item backend.Item) (*typesv1.Role, error) {
	return unmarshalStored[*typesv1.Role](item)
}

// RoleService stores roles at roles/<name>.
type RoleService struct {
	svc *generic.Service[*typesv1.Role]
}

// NewRoleService returns the role service.
func NewRoleService(cfg Config) (*RoleService, error) {
	svc, err := newGeneric(cfg, generic.Config[*typesv1.Role]{
		Kind:         KindRole,
		KeyPrefix:    RolesPrefix,
		Validate:     ValidateRole,
		CacheDecoded: true,
	})
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &RoleService{svc: svc}, nil
}

// GetRole reads a role.
func (s *RoleService) GetRole(ctx context.Context, name string) (*typesv1.Role, error) {
	r, err := s.svc.Get(ctx, name)
	return r, trace.Wrap(err)
}

// FirstMissingRole returns the first of names that is not a stored role, read with get, or ""
// when every one exists. The APIs that give roles (to a user, as a plugin's defaults) refuse a
// name that does not exist: it grants nothing today, but a role created later under that name
// would be granted without anyone deciding so.
func FirstMissingRole(ctx context.Context, get func(context.Context, string) (*typesv1.Role, error), names []string) (string, error) {
	for _, name := range names {
		if _, err := get(ctx, name); trace.IsNotFound(err) {
			return name, nil
		} else if err != nil {
			return "", trace.Wrap(err)
		}
	}
	return "", nil
}

// ListRoles returns a page of roles in name order and the next page's token.
func (s *RoleService) ListRoles(ctx context.Context, pageSize int, pageToken string) ([]*typesv1.Role, string, error) {
	roles, next, err := s.svc.List(ctx, pageSize, pageToken)
	return roles, next, trace.Wrap(err)
}

// ListAllRoles reads every role, page by page.
func (s *RoleService) ListAllRoles(ctx context.Context) ([]*typesv1.Role, error) {
	roles, err := s.svc.ListAll(ctx, nil)
	return roles, trace.Wrap(err)
}

// CreateRole writes a new role; trace.AlreadyExists if the name is taken.
func (s *RoleService) CreateRole(ctx context.Context, r *typesv1.Role) (*typesv1.Role, error) {
	out, err := s.svc.Create(ctx, r)
	return out, trace.Wrap(err)
}

// UpdateRole overwrites a role still at r.metadata.revision (required).
func (s *RoleService) UpdateRole(ctx context.Context, r *typesv1.Role) (*typesv1.Role, error) {
	out, err := s.svc.Update(ctx, r)
	return out, trace.Wrap(err)
}

// UpsertRole writes a role whether or not it exists.
func (s *RoleService) UpsertRole(ctx context.Context, r *typesv1.Role) (*typesv1.Role, error) {
	out, err := s.svc.Upsert(ctx, r)
	return out, trace.Wrap(err)
}

// UpdateAndSwapRole reads a role, applies modify and writes it back if
// nobody changed it meanwhile, retrying a bounded number of times.
func (s *RoleService) UpdateAndSwapRole(ctx context.Context, name string, modify func(*typesv1.Role) error) (*typesv1.Role, error) {
	out, err := s.svc.UpdateAndSwap(ctx, name, modify)
	return out, trace.Wrap(err)
}

// DeleteRole removes a role; trace.NotFound if missing.
func (s *RoleService) DeleteRole(ctx context.Context, name string) error {
	return trace.Wrap(s.svc.Delete(ctx, name))
}
