// Package userv1 serves gatehouse.user.v1.UserService. Every RPC runs in the
// same order: authorize the caller, check the verb on kind "user", validate
// the request, call the users service, and return the error wrapped (the
// auth server's interceptor turns it into a gRPC status once).
package userv1

import (
	"context"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gatehouse/gatehouse/lib/auth/audit"
	"github.com/gatehouse/gatehouse/lib/auth/authz"
	"github.com/gatehouse/gatehouse/lib/services"
	"github.com/gatehouse/gatehouse/lib/services/generic"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
	userpb "github.com/gatehouse/gatehouse/proto/gatehouse/user/v1"
)

// Authorizer identifies and authorizes the caller.
type Authorizer interface {
	Authorize(ctx context.Context) (*authz.Context, error)
}

// Recorder records audit events.
type Recorder interface {
	Record(ctx context.Context, e audit.Event)
}

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

// Config configures the service.
type Config struct {
	Authorizer Authorizer
	Recorder   Recorder
	Users      Users
	Clock      clockwork.Clock
}

// CheckAndSetDefaults validates the config.
func (c *Config) CheckAndSetDefaults() error {
	switch {
	case c.Authorizer == nil:
		return trace.BadParameter("userv1: missing Authorizer")
	case c.Recorder == nil:
		return trace.BadParameter("userv1: missing Recorder")
	case c.Users == nil:
		return trace.BadParameter("userv1: missing Users")
	}
	if c.Clock == nil {
		c.Clock = clockwork.NewRealClock()
	}
	return nil
}

// Service implements userpb.UserServiceServer.
type Service struct {
	userpb.UnsafeUserServiceServer
	cfg Config
}

var _ userpb.UserServiceServer = (*Service)(nil)

// New returns the service.
func New(cfg Config) (*Service, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, trace.Wrap(err)
	}
	return &Service{cfg: cfg}, nil
}

const kind = services.KindUser

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

// checkResource refuses a request without a user or a name.
func checkResource(u *typesv1.User) error {
	if u == nil {
		return trace.BadParameter("missing user")
	}
	return trace.Wrap(generic.CheckName(kind, u.GetMetadata().GetName()))
}

// withDefaults fills created_by with the caller and now when the admin set
// none; whatever the admin set is kept as is.
func (s *Service) withDefaults(actx *authz.Context, u *typesv1.User) *typesv1.User {
	if u.GetSpec().GetCreatedBy() != nil {
		return u
	}
	u = proto.Clone(u).(*typesv1.User)
	if u.Spec == nil {
		u.Spec = &typesv1.UserSpec{}
	}
	u.Spec.CreatedBy = &typesv1.CreatedBy{
		User: &typesv1.UserRef{Name: actx.Username()},
		Time: timestamppb.New(s.cfg.Clock.Now()),
	}
	return u
}

// GetUser reads one user; secrets only with with_secrets and the read verb.
func (s *Service) GetUser(ctx context.Context, req *userpb.GetUserRequest) (*userpb.GetUserResponse, error) {
	verb := authz.VerbReadNoSecrets
	if req.GetWithSecrets() {
		verb = authz.VerbRead
	}
	if _, err := s.authorize(ctx, verb); err != nil {
		return nil, trace.Wrap(err)
	}
	if err := generic.CheckName(kind, req.GetName()); err != nil {
		return nil, trace.Wrap(err)
	}
	u, err := s.cfg.Users.GetUser(ctx, req.GetName(), req.GetWithSecrets())
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &userpb.GetUserResponse{User: u}, nil
}

// ListUsers pages through users, never with secrets.
func (s *Service) ListUsers(ctx context.Context, req *userpb.ListUsersRequest) (*userpb.ListUsersResponse, error) {
	if _, err := s.authorize(ctx, authz.VerbList, authz.VerbReadNoSecrets); err != nil {
		return nil, trace.Wrap(err)
	}
	if req.GetPageSize() < 0 {
		return nil, trace.BadParameter("page_size must not be negative")
	}
	users, next, err := s.cfg.Users.ListUsers(ctx, int(req.GetPageSize()), req.GetPageToken(), false)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &userpb.ListUsersResponse{Users: users, NextPageToken: next}, nil
}

// CreateUser creates a user.
func (s *Service) CreateUser(ctx context.Context, req *userpb.CreateUserRequest) (*userpb.CreateUserResponse, error) {
	actx, err := s.authorize(ctx, authz.VerbCreate)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if err := checkResource(req.GetUser()); err != nil {
		return nil, trace.Wrap(err)
	}
	u, err := s.cfg.Users.CreateUser(ctx, s.withDefaults(actx, req.GetUser()))
	s.record(ctx, actx, audit.EventUserCreate, req.GetUser().GetMetadata().GetName(), err)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &userpb.CreateUserResponse{User: u}, nil
}

// UpdateUser replaces a user at the revision given.
func (s *Service) UpdateUser(ctx context.Context, req *userpb.UpdateUserRequest) (*userpb.UpdateUserResponse, error) {
	actx, err := s.authorize(ctx, authz.VerbUpdate)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if err := checkResource(req.GetUser()); err != nil {
		return nil, trace.Wrap(err)
	}
	if req.GetUser().GetMetadata().GetRevision() == "" {
		return nil, trace.BadParameter("user %q: metadata.revision is required to update; read the user first", req.GetUser().GetMetadata().GetName())
	}
	u, err := s.cfg.Users.UpdateUser(ctx, req.GetUser())
	s.record(ctx, actx, audit.EventUserUpdate, req.GetUser().GetMetadata().GetName(), err)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &userpb.UpdateUserResponse{User: u}, nil
}

// UpsertUser creates or replaces a user.
func (s *Service) UpsertUser(ctx context.Context, req *userpb.UpsertUserRequest) (*userpb.UpsertUserResponse, error) {
	actx, err := s.authorize(ctx, authz.VerbCreate, authz.VerbUpdate)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if err := checkResource(req.GetUser()); err != nil {
		return nil, trace.Wrap(err)
	}
	u, err := s.cfg.Users.UpsertUser(ctx, s.withDefaults(actx, req.GetUser()))
	s.record(ctx, actx, audit.EventUserUpdate, req.GetUser().GetMetadata().GetName(), err)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &userpb.UpsertUserResponse{User: u}, nil
}

// DeleteUser deletes a user.
func (s *Service) DeleteUser(ctx context.Context, req *userpb.DeleteUserRequest) (*userpb.DeleteUserResponse, error) {
	actx, err := s.authorize(ctx, authz.VerbDelete)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if err := generic.CheckName(kind, req.GetName()); err != nil {
		return nil, trace.Wrap(err)
	}
	err = s.cfg.Users.DeleteUser(ctx, req.GetName())
	s.record(ctx, actx, audit.EventUserDelete, req.GetName(), err)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &userpb.DeleteUserResponse{}, nil
}
