// Package rolev1 serves gatehouse.role.v1.RoleService: it translates the
// generated messages to a lib/auth/crud Handler for kind "role", which
// authorizes, checks the verb, validates, calls the roles service, audits
// and wraps the error. What is particular to roles: a caller whose roles do
// not allow every verb on every kind writes only roles that grant no more
// than it has and lift no deny (authz.Checker.CheckRoleWrite).
package rolev1

import (
	"context"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/auth/audit"
	"github.com/gatehouse/gatehouse/lib/auth/authz"
	"github.com/gatehouse/gatehouse/lib/auth/crud"
	"github.com/gatehouse/gatehouse/lib/services"
	rolepb "github.com/gatehouse/gatehouse/proto/gatehouse/role/v1"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// Roles is the part of the roles service the handlers use.
type Roles interface {
	GetRole(ctx context.Context, name string) (*typesv1.Role, error)
	ListRoles(ctx context.Context, pageSize int, pageToken string) ([]*typesv1.Role, string, error)
	CreateRole(ctx context.Context, u *typesv1.Role) (*typesv1.Role, error)
	UpdateRole(ctx context.Context, u *typesv1.Role) (*typesv1.Role, error)
	UpsertRole(ctx context.Context, u *typesv1.Role) (*typesv1.Role, error)
	DeleteRole(ctx context.Context, name string) error
}

var _ Roles = (*services.RoleService)(nil)

// Config configures the service.
type Config struct {
	crud.Deps
	Roles Roles
}

// CheckAndSetDefaults validates the config.
func (c *Config) CheckAndSetDefaults() error {
	return trace.Wrap(crud.CheckConfig("rolev1", &c.Clock,
		crud.Need("Authorizer", c.Authorizer == nil),
		crud.Need("Recorder", c.Recorder == nil),
		crud.Need("Roles", c.Roles == nil),
	))
}

// Service implements rolepb.RoleServiceServer.
type Service struct {
	rolepb.UnsafeRoleServiceServer
	h *crud.Handler[*typesv1.Role]
}

var _ rolepb.RoleServiceServer = (*Service)(nil)

// New returns the service.
func New(cfg Config) (*Service, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, trace.Wrap(err)
	}
	h, err := crud.New(crud.Config[*typesv1.Role]{
		Kind: services.KindRole,
		Deps: cfg.Deps,
		Store: crud.Store[*typesv1.Role]{
			Get:    crud.NoSecrets(cfg.Roles.GetRole),
			List:   crud.NoSecretsList(cfg.Roles.ListRoles),
			Create: cfg.Roles.CreateRole,
			Update: cfg.Roles.UpdateRole,
			Upsert: cfg.Roles.UpsertRole,
			Delete: cfg.Roles.DeleteRole,
		},
		Events: crud.Events{Create: audit.EventRoleCreate, Update: audit.EventRoleUpdate, Delete: audit.EventRoleDelete},
		// A role writer could otherwise write itself (or a friend) a role
		// that allows everything, or lift a deny that holds it back.
		CheckWrite: func(ctx context.Context, actx *authz.Context, r *typesv1.Role) error {
			old, err := storedRole(ctx, cfg.Roles, r.GetMetadata().GetName())
			if err != nil {
				return trace.Wrap(err)
			}
			return trace.Wrap(actx.Checker.CheckRoleWrite(old, r))
		},
		CheckDelete: func(ctx context.Context, actx *authz.Context, name string) error {
			old, err := cfg.Roles.GetRole(ctx, name)
			if err != nil {
				return trace.Wrap(err)
			}
			return trace.Wrap(actx.Checker.CheckRoleWrite(old, nil))
		},
	})
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &Service{h: h}, nil
}

// storedRole returns the role stored under name, nil if there is none.
func storedRole(ctx context.Context, roles Roles, name string) (*typesv1.Role, error) {
	r, err := roles.GetRole(ctx, name)
	if trace.IsNotFound(err) {
		return nil, nil
	}
	return r, trace.Wrap(err)
}

// GetRole reads one role.
func (s *Service) GetRole(ctx context.Context, req *rolepb.GetRoleRequest) (*rolepb.GetRoleResponse, error) {
	r, err := s.h.Get(ctx, req.GetName(), false)
	return crud.Reply(&rolepb.GetRoleResponse{Role: r}, err)
}

// ListRoles pages through roles.
func (s *Service) ListRoles(ctx context.Context, req *rolepb.ListRolesRequest) (*rolepb.ListRolesResponse, error) {
	roles, next, err := s.h.List(ctx, req.GetPageSize(), req.GetPageToken())
	return crud.Reply(&rolepb.ListRolesResponse{Roles: roles, NextPageToken: next}, err)
}

// CreateRole creates a role.
func (s *Service) CreateRole(ctx context.Context, req *rolepb.CreateRoleRequest) (*rolepb.CreateRoleResponse, error) {
	r, err := s.h.Create(ctx, req.GetRole())
	return crud.Reply(&rolepb.CreateRoleResponse{Role: r}, err)
}

// UpdateRole replaces a role at the revision given.
func (s *Service) UpdateRole(ctx context.Context, req *rolepb.UpdateRoleRequest) (*rolepb.UpdateRoleResponse, error) {
	r, err := s.h.Update(ctx, req.GetRole())
	return crud.Reply(&rolepb.UpdateRoleResponse{Role: r}, err)
}

// UpsertRole creates or replaces a role.
func (s *Service) UpsertRole(ctx context.Context, req *rolepb.UpsertRoleRequest) (*rolepb.UpsertRoleResponse, error) {
	r, err := s.h.Upsert(ctx, req.GetRole())
	return crud.Reply(&rolepb.UpsertRoleResponse{Role: r}, err)
}

// DeleteRole deletes a role.
func (s *Service) DeleteRole(ctx context.Context, req *rolepb.DeleteRoleRequest) (*rolepb.DeleteRoleResponse, error) {
	return crud.Reply(&rolepb.DeleteRoleResponse{}, s.h.Delete(ctx, req.GetName()))
}
