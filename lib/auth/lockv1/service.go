// Package lockv1 serves gatehouse.lock.v1.LockService. Every RPC runs in the
// same order: authorize the caller, check the verb on kind "lock", validate
// the request, call the locks service, and return the error wrapped (the
// auth server's interceptor turns it into a gRPC status once).
package lockv1

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
	lockpb "github.com/gatehouse/gatehouse/proto/gatehouse/lock/v1"
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

// Locks is the part of the locks service the handlers use.
type Locks interface {
	GetLock(ctx context.Context, name string) (*typesv1.Lock, error)
	ListLocks(ctx context.Context, pageSize int, pageToken string) ([]*typesv1.Lock, string, error)
	CreateLock(ctx context.Context, u *typesv1.Lock) (*typesv1.Lock, error)
	UpdateLock(ctx context.Context, u *typesv1.Lock) (*typesv1.Lock, error)
	UpsertLock(ctx context.Context, u *typesv1.Lock) (*typesv1.Lock, error)
	DeleteLock(ctx context.Context, name string) error
}

var _ Locks = (*services.LockService)(nil)

// Config configures the service.
type Config struct {
	Authorizer Authorizer
	Recorder   Recorder
	Locks      Locks
	Clock      clockwork.Clock
}

// CheckAndSetDefaults validates the config.
func (c *Config) CheckAndSetDefaults() error {
	switch {
	case c.Authorizer == nil:
		return trace.BadParameter("lockv1: missing Authorizer")
	case c.Recorder == nil:
		return trace.BadParameter("lockv1: missing Recorder")
	case c.Locks == nil:
		return trace.BadParameter("lockv1: missing Locks")
	}
	if c.Clock == nil {
		c.Clock = clockwork.NewRealClock()
	}
	return nil
}

// Service implements lockpb.LockServiceServer.
type Service struct {
	lockpb.UnsafeLockServiceServer
	cfg Config
}

var _ lockpb.LockServiceServer = (*Service)(nil)

// New returns the service.
func New(cfg Config) (*Service, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, trace.Wrap(err)
	}
	return &Service{cfg: cfg}, nil
}

const kind = services.KindLock

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

// checkResource refuses a request without a lock or a name.
func checkResource(u *typesv1.Lock) error {
	if u == nil {
		return trace.BadParameter("missing lock")
	}
	return trace.Wrap(generic.CheckName(kind, u.GetMetadata().GetName()))
}

// withDefaults fills spec.created_by with the caller and spec.created_at
// with now when the admin set none; whatever the admin set is kept as is.
func (s *Service) withDefaults(actx *authz.Context, l *typesv1.Lock) *typesv1.Lock {
	if l.GetSpec().GetCreatedBy() != "" && l.GetSpec().GetCreatedAt() != nil {
		return l
	}
	l = proto.Clone(l).(*typesv1.Lock)
	if l.Spec == nil {
		l.Spec = &typesv1.LockSpec{}
	}
	if l.Spec.CreatedBy == "" {
		l.Spec.CreatedBy = actx.Username()
	}
	if l.Spec.CreatedAt == nil {
		l.Spec.CreatedAt = timestamppb.New(s.cfg.Clock.Now())
	}
	return l
}

// GetLock reads one lock.
func (s *Service) GetLock(ctx context.Context, req *lockpb.GetLockRequest) (*lockpb.GetLockResponse, error) {
	if _, err := s.authorize(ctx, authz.VerbReadNoSecrets); err != nil {
		return nil, trace.Wrap(err)
	}
	if err := generic.CheckName(kind, req.GetName()); err != nil {
		return nil, trace.Wrap(err)
	}
	u, err := s.cfg.Locks.GetLock(ctx, req.GetName())
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &lockpb.GetLockResponse{Lock: u}, nil
}

// ListLocks pages through locks.
func (s *Service) ListLocks(ctx context.Context, req *lockpb.ListLocksRequest) (*lockpb.ListLocksResponse, error) {
	if _, err := s.authorize(ctx, authz.VerbList, authz.VerbReadNoSecrets); err != nil {
		return nil, trace.Wrap(err)
	}
	if req.GetPageSize() < 0 {
		return nil, trace.BadParameter("page_size must not be negative")
	}
	locks, next, err := s.cfg.Locks.ListLocks(ctx, int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &lockpb.ListLocksResponse{Locks: locks, NextPageToken: next}, nil
}

// CreateLock creates a lock.
func (s *Service) CreateLock(ctx context.Context, req *lockpb.CreateLockRequest) (*lockpb.CreateLockResponse, error) {
	actx, err := s.authorize(ctx, authz.VerbCreate)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if err := checkResource(req.GetLock()); err != nil {
		return nil, trace.Wrap(err)
	}
	u, err := s.cfg.Locks.CreateLock(ctx, s.withDefaults(actx, req.GetLock()))
	s.record(ctx, actx, audit.EventLockCreate, req.GetLock().GetMetadata().GetName(), err)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &lockpb.CreateLockResponse{Lock: u}, nil
}

// UpdateLock replaces a lock at the revision given.
func (s *Service) UpdateLock(ctx context.Context, req *lockpb.UpdateLockRequest) (*lockpb.UpdateLockResponse, error) {
	actx, err := s.authorize(ctx, authz.VerbUpdate)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if err := checkResource(req.GetLock()); err != nil {
		return nil, trace.Wrap(err)
	}
	if req.GetLock().GetMetadata().GetRevision() == "" {
		return nil, trace.BadParameter("lock %q: metadata.revision is required to update; read the lock first", req.GetLock().GetMetadata().GetName())
	}
	u, err := s.cfg.Locks.UpdateLock(ctx, req.GetLock())
	s.record(ctx, actx, audit.EventLockUpdate, req.GetLock().GetMetadata().GetName(), err)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &lockpb.UpdateLockResponse{Lock: u}, nil
}

// UpsertLock creates or replaces a lock.
func (s *Service) UpsertLock(ctx context.Context, req *lockpb.UpsertLockRequest) (*lockpb.UpsertLockResponse, error) {
	actx, err := s.authorize(ctx, authz.VerbCreate, authz.VerbUpdate)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if err := checkResource(req.GetLock()); err != nil {
		return nil, trace.Wrap(err)
	}
	u, err := s.cfg.Locks.UpsertLock(ctx, s.withDefaults(actx, req.GetLock()))
	s.record(ctx, actx, audit.EventLockUpdate, req.GetLock().GetMetadata().GetName(), err)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &lockpb.UpsertLockResponse{Lock: u}, nil
}

// DeleteLock deletes a lock.
func (s *Service) DeleteLock(ctx context.Context, req *lockpb.DeleteLockRequest) (*lockpb.DeleteLockResponse, error) {
	actx, err := s.authorize(ctx, authz.VerbDelete)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if err := generic.CheckName(kind, req.GetName()); err != nil {
		return nil, trace.Wrap(err)
	}
	err = s.cfg.Locks.DeleteLock(ctx, req.GetName())
	s.record(ctx, actx, audit.EventLockDelete, req.GetName(), err)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &lockpb.DeleteLockResponse{}, nil
}
