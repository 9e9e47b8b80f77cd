// Package rolev1 serves gatehouse.role.v1.RoleService. Every RPC runs in the
// same order: authorize the caller, check the verb on kind "role", validate
// the request, call the roles service, and return the error wrapped (the
// auth server's interceptor turns it into a gRPC status once).
package rolev1

import (
	"context"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"

	"github.com/gatehouse/gatehouse/lib/auth/audit"
	"github.com/gatehouse/gatehouse/lib/auth/authz"
	"github.com/gatehouse/gatehouse/lib/services"
	"github.com/gatehouse/gatehouse/lib/services/generic"
	rolepb "github.com/gatehouse/gatehouse/proto/gatehouse/role/v1"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// Authorizer identifies and authorizes the caller.
type Authorizer interface {
	Authorize(ctx context.Context) (*authz.Context, error)
}

// Recorder records audit events.
type Recorder interface {
	Record(ctx context.Context, e audit.Event)
}

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
	Authorizer Authorizer
	Recorder   Recorder
	Roles      Roles
	Clock      clockwork.Clock
}

// CheckAndSetDefaults validates the config.
func (c *Config) CheckAndSetDefaults() error {
	switch {
	case c.Authorizer == nil:
		return trace.BadParameter("rolev1: missing Authorizer")
	case c.Recorder == nil:
		return trace.BadParameter("rolev1: missing Recorder")
	case c.Roles == nil:
		return trace.BadParameter("rolev1: missing Roles")
	}
	if c.Clock == nil {
		c.Clock = clockwork.NewRealClock()
	}
	return nil
}

// Service implements rolepb.RoleServiceServer.
type Service struct {
	rolepb.UnsafeRoleServiceServer
	cfg Config
}

var _ rolepb.RoleServiceServer = (*Service)(nil)

// New returns the service.
func New(cfg Config) (*Service, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, trace.Wrap(err)
	}
	return &Service{cfg: cfg}, nil
}

const kind = services.KindRole

func (s *Service) authorize(ctx context.Context, verbs ...string) (*authz.Context, error) {
	actx, err := s.cfg.Authorizer.Authorize(ctx)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	for _, v := range verbs {
		if err := actx.Checker.CheckAccess(kind, v); err != nil {
			return nil, trace.Wrap(err)
		}
	}
	return actx, nil
}

func (s *Service) record(ctx context.Context, actx *authz.Context, typ, name string, err error) {
	s.cfg.Recorder.Record(ctx, audit.Event{Type: typ, User: actx.Username(), Resource: kind + "/" + name, Err: err})
}

// checkResource refuses a request without a role or a name.
func checkResource(u *typesv1.Role) error {
	if u == nil {
		return trace.BadParameter("missing role")
	}
	return trace.Wrap(generic.CheckName(kind, u.GetMetadata().GetName()))
}

// GetRole reads one role.
func (s *Service) GetRole(ctx context.Context, req *rolepb.GetRoleRequest) (*rolepb.GetRoleResponse, error) {
	if _, err := s.authorize(ctx, authz.VerbReadNoSecrets); err != nil {
		return nil, trace.Wrap(err)
	}
	if err := generic.CheckName(kind, req.GetName()); err != nil {
		return nil, trace.Wrap(err)
	}
	u, err := s.cfg.Roles.GetRole(ctx, req.GetName())
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &rolepb.GetRoleResponse{Role: u}, nil
}

// ListRoles pages through roles.
func (s *Service) ListRoles(ctx context.Context, req *rolepb.ListRolesRequest) (*rolepb.ListRolesResponse, error) {
	if _, err := s.authorize(ctx, authz.VerbList, authz.VerbReadNoSecrets); err != nil {
		return nil, trace.Wrap(err)
	}
	if req.GetPageSize() < 0 {
		return nil, trace.BadParameter("page_size must not be negative")
	}
	roles, next, err := s.cfg.Roles.ListRoles(ctx, int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &rolepb.ListRolesResponse{Roles: roles, NextPageToken: next}, nil
}

// CreateRole creates a role.
func (s *Service) CreateRole(ctx context.Context, req *rolepb.CreateRoleRequest) (*rolepb.CreateRoleResponse, error) {
	actx, err := s.authorize(ctx, authz.VerbCreate)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if err := checkResource(req.GetRole()); err != nil {
		return nil, trace.Wrap(err)
	}
	u, err := s.cfg.Roles.CreateRole(ctx, req.GetRole())
	s.record(ctx, actx, audit.EventRoleCreate, req.GetRole().GetMetadata().GetName(), err)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &rolepb.CreateRoleResponse{Role: u}, nil
}

// UpdateRole replaces a role at the revision given.
func (s *Service) UpdateRole(ctx context.Context, req *rolepb.UpdateRoleRequest) (*rolepb.UpdateRoleResponse, error) {
	actx, err := s.authorize(ctx, authz.VerbUpdate)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if err := checkResource(req.GetRole()); err != nil {
		return nil, trace.Wrap(err)
	}
	if req.GetRole().GetMetadata().GetRevision() == "" {
		return nil, trace.BadParameter("role %q: metadata.revision is required to update; read the role first", req.GetRole().GetMetadata().GetName())
	}
	u, err := s.cfg.Roles.UpdateRole(ctx, req.GetRole())
	s.record(ctx, actx, audit.EventRoleUpdate, req.GetRole().GetMetadata().GetName(), err)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &rolepb.UpdateRoleResponse{Role: u}, nil
}

// UpsertRole creates or replaces a role.
func (s *Service) UpsertRole(ctx context.Context, req *rolepb.UpsertRoleRequest) (*rolepb.UpsertRoleResponse, error) {
	actx, err := s.authorize(ctx, authz.VerbCreate, authz.VerbUpdate)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if err := checkResource(req.GetRole()); err != nil {
		return nil, trace.Wrap(err)
	}
	u, err := s.cfg.Roles.UpsertRole(ctx, req.GetRole())
	s.record(ctx, actx, audit.EventRoleUpdate, req.GetRole().GetMetadata().GetName(), err)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &rolepb.UpsertRoleResponse{Role: u}, nil
}

// DeleteRole deletes a role.
func (s *Service) DeleteRole(ctx context.Context, req *rolepb.DeleteRoleRequest) (*rolepb.DeleteRoleResponse, error) {
	actx, err := s.authorize(ctx, authz.VerbDelete)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if err := generic.CheckName(kind, req.GetName()); err != nil {
		return nil, trace.Wrap(err)
	}
	err = s.cfg.Roles.DeleteRole(ctx, req.GetName())
	s.record(ctx, actx, audit.EventRoleDelete, req.GetName(), err)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &rolepb.DeleteRoleResponse{}, nil
}
