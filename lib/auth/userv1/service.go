// Package userv1 serves gatehouse.user.v1.UserService: it translates the
// generated messages to a lib/auth/crud Handler for kind "user", which
// authorizes, checks the verb, validates, calls the users service, audits
// and wraps the error. What is particular to users: secrets with
// with_secrets, created_by defaulting to the caller, and no role given
// that does not exist.
package userv1

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/gravitational/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gatehouse/gatehouse/lib/auth/audit"
	"github.com/gatehouse/gatehouse/lib/auth/authz"
	"github.com/gatehouse/gatehouse/lib/auth/crud"
	"github.com/gatehouse/gatehouse/lib/canonical"
	"github.com/gatehouse/gatehouse/lib/services"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
	userpb "github.com/gatehouse/gatehouse/proto/gatehouse/user/v1"
)

// Users is the part of the users service the handlers use.
type Users interface {
	GetUser(ctx context.Context, name string, withSecrets bool) (*typesv1.User, error)
	ListUsers(ctx context.Context, pageSize int, pageToken string, withSecrets bool) ([]*typesv1.User, string, error)
	CreateUser(ctx context.Context, u *typesv1.User) (*typesv1.User, error)
	UpdateUser(ctx context.Context, u *typesv1.User) (*typesv1.User, error)
	UpsertUser(ctx context.Context, u *typesv1.User) (*typesv1.User, error)
	DeleteUser(ctx context.Context, name string) error
}

var _ Users = (*services.UserService)(nil)

// Roles is the part of the roles service the handlers use.
type Roles interface {
	GetRole(ctx context.Context, name string) (*typesv1.Role, error)
}

var _ Roles = (*services.RoleService)(nil)

// Config configures the service.
type Config struct {
	crud.Deps
	Users Users
	// Roles is where a role given to a user must exist.
	Roles Roles
}

// CheckAndSetDefaults validates the config.
func (c *Config) CheckAndSetDefaults() error {
	return trace.Wrap(crud.CheckConfig("userv1", &c.Clock,
		crud.Need("Authorizer", c.Authorizer == nil),
		crud.Need("Recorder", c.Recorder == nil),
		crud.Need("Users", c.Users == nil),
		crud.Need("Roles", c.Roles == nil),
	))
}

// Service implements userpb.UserServiceServer.
type Service struct {
	userpb.UnsafeUserServiceServer
	h *crud.Handler[*typesv1.User]
}

var _ userpb.UserServiceServer = (*Service)(nil)

// New returns the service.
func New(cfg Config) (*Service, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, trace.Wrap(err)
	}
	h, err := crud.New(crud.Config[*typesv1.User]{
		Kind: services.KindUser,
		Deps: cfg.Deps,
		Store: crud.Store[*typesv1.User]{
			Get:    cfg.Users.GetUser,
			List:   cfg.Users.ListUsers,
			Create: cfg.Users.CreateUser,
			Update: cfg.Users.UpdateUser,
			Upsert: cfg.Users.UpsertUser,
			Delete: cfg.Users.DeleteUser,
		},
		// The checks run after the handler has authorized the caller:
		// whether a role or an account exists is not told to one who may
		// not write users.
		CheckWrite: func(ctx context.Context, actx *authz.Context, u *typesv1.User) error {
			return checkWrite(ctx, cfg, actx, u)
		},
		CheckDelete: func(ctx context.Context, actx *authz.Context, name string) error {
			old, err := cfg.Users.GetUser(ctx, name, false)
			if err != nil {
				return trace.Wrap(err)
			}
			return trace.Wrap(actx.Checker.CheckManage(old))
		},
		Events:       crud.Events{Create: audit.EventUserCreate, Update: audit.EventUserUpdate, Delete: audit.EventUserDelete},
		WithDefaults: withDefaults,
	})
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &Service{h: h}, nil
}

// checkWrite refuses a user write that would give someone more than the
// caller has (checkReach), then one that gives a role that does not exist.
// A role name that does not exist grants nothing today, but the account
// would hold it: whoever later creates a role of that name (a typo's
// correction, or another administrator's new role) would grant it to the
// account without anyone deciding so. Only the roles the write adds are
// checked, so that an account still holding a role deleted since can be
// updated, and keeps it (it grants nothing while it does not exist).
func checkWrite(ctx context.Context, cfg Config, actx *authz.Context, u *typesv1.User) error {
	old, err := cfg.Users.GetUser(ctx, u.GetMetadata().GetName(), false)
	switch {
	case trace.IsNotFound(err):
		old = nil
	case err != nil:
		return trace.Wrap(err)
	}
	added := slices.DeleteFunc(slices.Clone(u.GetSpec().GetRoles()), func(r string) bool {
		return slices.Contains(old.GetSpec().GetRoles(), r)
	})
	if err := checkReach(ctx, cfg, actx, old, u, added); err != nil {
		return trace.Wrap(err)
	}
	missing, err := services.FirstMissingRole(ctx, cfg.Roles.GetRole, added)
	if err != nil {
		return trace.Wrap(err)
	}
	if missing != "" {
		return trace.BadParameter("user %q: role %q does not exist; create the role first (gatectl create -f role.yaml), so that a role created later under that name is not granted to the user unnoticed", u.GetMetadata().GetName(), missing)
	}
	return nil
}

// checkReach is invariant 4 ("no one grants a role they do not hold") for
// the user API. A caller whose roles allow every verb on every kind may
// write any account. Any other caller may add only roles it holds, may not
// touch an account holding a role it does not hold (authz.CheckManage), may
// not take away a role that denies something (that lifts the deny), and may
// not write what other code trusts about an account: the gatehouse.dev/
// labels (origin, plugin, SCIM record), which give an integration reach over
// it or take that reach away (and with it deprovisioning), the connector
// that created it (a SAML connector signs in its own users), its password
// hash (SetPassword sets passwords, and ends the account's web sessions),
// and, on its own account, its traits (the logins trait is what the access
// role logs in as). On other accounts it may add only logins it has.
func checkReach(ctx context.Context, cfg Config, actx *authz.Context, old, u *typesv1.User, added []string) error {
	c := actx.Checker
	if c.Unrestricted() {
		return nil
	}
	name := u.GetMetadata().GetName()
	if err := c.CheckGrant(fmt.Sprintf("user %q", name), added); err != nil {
		return trace.Wrap(err)
	}
	if err := c.CheckManage(old); err != nil {
		return trace.Wrap(err)
	}
	for _, r := range old.GetSpec().GetRoles() {
		if slices.Contains(u.GetSpec().GetRoles(), r) {
			continue
		}
		role, err := cfg.Roles.GetRole(ctx, r)
		switch {
		case trace.IsNotFound(err):
			continue
		case err != nil:
			return trace.Wrap(err)
		case authz.HasDenies(role):
			return trace.AccessDenied("user %q: taking role %q away lifts what it denies; only a caller whose roles allow every verb on every kind may do that", name, r)
		}
	}
	if k := changedTrustedLabel(old.GetMetadata().GetLabels(), u.GetMetadata().GetLabels()); k != "" {
		return trace.AccessDenied("user %q: label %q is set by Gatehouse and its integrations, which trust it; only a caller whose roles allow every verb on every kind may change it", name, k)
	}
	if conn := u.GetSpec().GetCreatedBy().GetConnector(); conn != nil && !proto.Equal(conn, old.GetSpec().GetCreatedBy().GetConnector()) {
		return trace.AccessDenied("user %q: created_by.connector says which SAML connector signs the account in; only a caller whose roles allow every verb on every kind may set it", name)
	}
	if old != nil && u.GetSpec().GetLocalAuth() != nil {
		return trace.AccessDenied("user %q: set a password with the credentials API (SetPassword, or a one-time link from CreatePasswordToken), which also ends the account's web sessions, not by writing local_auth", name)
	}
	if canonical.Username(name) == canonical.Username(actx.Username()) && !traitsEqual(old.GetSpec().GetTraits(), u.GetSpec().GetTraits()) {
		return trace.AccessDenied("user %q: you may not change the traits of your own account (they say which logins your roles give you)", name)
	}
	if l := firstLoginNotHad(actx, old, u); l != "" {
		return trace.AccessDenied("user %q: login %q: you may give only logins you have yourself (through your roles and your own logins trait)", name, l)
	}
	return nil
}

// firstLoginNotHad returns a value the write adds to the account's logins
// trait that the caller cannot log in as itself, or "". Giving an account
// (a sock puppet's, say) a login is giving that login to whoever signs in as
// it, so the ceiling on roles holds for logins too.
func firstLoginNotHad(actx *authz.Context, old, u *typesv1.User) string {
	added := slices.DeleteFunc(services.TraitValues(u, authz.LoginsTrait), func(l string) bool {
		return slices.Contains(services.TraitValues(old, authz.LoginsTrait), l)
	})
	if len(added) == 0 {
		return ""
	}
	have := authz.LoginsFor(actx.User, actx.Roles)
	for _, l := range added {
		if !slices.Contains(have, l) {
			return l
		}
	}
	return ""
}

// trustedLabelPrefix starts the labels Gatehouse and its integrations set
// and trust (services.LabelOrigin, services.LabelPlugin, the SCIM record's).
const trustedLabelPrefix = "gatehouse.dev/"

// changedTrustedLabel returns a label under trustedLabelPrefix that
// a write adds, removes or changes, or "" if none.
func changedTrustedLabel(old, updated map[string]string) string {
	// Sorted, so that the error names the same label every time.
	for _, k := range slices.Sorted(maps.Keys(old)) {
		if strings.HasPrefix(k, trustedLabelPrefix) && old[k] != updated[k] {
			return k
		}
	}
	for _, k := range slices.Sorted(maps.Keys(updated)) {
		if strings.HasPrefix(k, trustedLabelPrefix) && old[k] != updated[k] {
			return k
		}
	}
	return ""
}

func traitsEqual(a, b map[string]*structpb.ListValue) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || !proto.Equal(v, w) {
			return false
		}
	}
	return true
}

// withDefaults fills created_by with the caller and now when the admin set
// none; whatever the admin set (created_by, metadata.expires) is kept as is.
func withDefaults(actx *authz.Context, now time.Time, u *typesv1.User) *typesv1.User {
	if u.GetSpec().GetCreatedBy() != nil {
		return u
	}
	u = proto.Clone(u).(*typesv1.User)
	if u.Spec == nil {
		u.Spec = &typesv1.UserSpec{}
	}
	u.Spec.CreatedBy = &typesv1.CreatedBy{
		User: &typesv1.UserRef{Name: actx.Username()},
		Time: timestamppb.New(now),
	}
	return u
}

// GetUser reads one user; secrets only with with_secrets and the read verb.
func (s *Service) GetUser(ctx context.Context, req *userpb.GetUserRequest) (*userpb.GetUserResponse, error) {
	u, err := s.h.Get(ctx, req.GetName(), req.GetWithSecrets())
	return crud.Reply(&userpb.GetUserResponse{User: u}, err)
}

// ListUsers pages through users, never with secrets.
func (s *Service) ListUsers(ctx context.Context, req *userpb.ListUsersRequest) (*userpb.ListUsersResponse, error) {
	users, next, err := s.h.List(ctx, req.GetPageSize(), req.GetPageToken())
	return crud.Reply(&userpb.ListUsersResponse{Users: users, NextPageToken: next}, err)
}

// CreateUser creates a user under the canonical form of the name asked for
// (the response carries the name stored): "Bob" creates "bob". If that name
// is taken, the error names both spellings. Update and upsert do not rename:
// a name that is not canonical is refused there (services.CheckUsername).
func (s *Service) CreateUser(ctx context.Context, req *userpb.CreateUserRequest) (*userpb.CreateUserResponse, error) {
	in := req.GetUser()
	asked := in.GetMetadata().GetName()
	name := canonical.Username(asked)
	if name != asked && !services.IsReservedUsername(asked) {
		in = proto.Clone(in).(*typesv1.User)
		in.Metadata.Name = name
	}
	u, err := s.h.Create(ctx, in)
	if trace.IsAlreadyExists(err) && name != asked {
		err = trace.AlreadyExists("user %q already exists: %q is the same account, since Gatehouse compares usernames in canonical form", name, asked)
	}
	return crud.Reply(&userpb.CreateUserResponse{User: u}, err)
}

// UpdateUser replaces a user at the revision given.
func (s *Service) UpdateUser(ctx context.Context, req *userpb.UpdateUserRequest) (*userpb.UpdateUserResponse, error) {
	u, err := s.h.Update(ctx, req.GetUser())
	return crud.Reply(&userpb.UpdateUserResponse{User: u}, err)
}

// UpsertUser creates or replaces a user.
func (s *Service) UpsertUser(ctx context.Context, req *userpb.UpsertUserRequest) (*userpb.UpsertUserResponse, error) {
	u, err := s.h.Upsert(ctx, req.GetUser())
	return crud.Reply(&userpb.UpsertUserResponse{User: u}, err)
}

// DeleteUser deletes a user.
func (s *Service) DeleteUser(ctx context.Context, req *userpb.DeleteUserRequest) (*userpb.DeleteUserResponse, error) {
	return crud.Reply(&userpb.DeleteUserResponse{}, s.h.Delete(ctx, req.GetName()))
}
