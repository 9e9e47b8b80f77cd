// Package lockv1 serves gatehouse.lock.v1.LockService: it translates the
// generated messages to a lib/auth/crud Handler for kind "lock", which
// authorizes, checks the verb, validates, calls the locks service, audits
// and wraps the error. What is particular to locks: created_by and
// created_at default to the caller and now.
package lockv1

import (
	"context"
	"time"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gatehouse/gatehouse/lib/auth/audit"
	"github.com/gatehouse/gatehouse/lib/auth/authz"
	"github.com/gatehouse/gatehouse/lib/auth/crud"
	"github.com/gatehouse/gatehouse/lib/services"
	lockpb "github.com/gatehouse/gatehouse/proto/gatehouse/lock/v1"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// Authorizer identifies and authorizes the caller.
type Authorizer = crud.Authorizer

// Recorder records audit events.
type Recorder = crud.Recorder

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
	h *crud.Handler[*typesv1.Lock]
}

var _ lockpb.LockServiceServer = (*Service)(nil)

// New returns the service.
func New(cfg Config) (*Service, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, trace.Wrap(err)
	}
	h, err := crud.New(crud.Config[*typesv1.Lock]{
		Kind:       services.KindLock,
		Authorizer: cfg.Authorizer,
		Recorder:   cfg.Recorder,
		Store: crud.Store[*typesv1.Lock]{
			Get:    crud.NoSecrets(cfg.Locks.GetLock),
			List:   crud.NoSecretsList(cfg.Locks.ListLocks),
			Create: cfg.Locks.CreateLock,
			Update: cfg.Locks.UpdateLock,
			Upsert: cfg.Locks.UpsertLock,
			Delete: cfg.Locks.DeleteLock,
		},
		Events:       crud.Events{Create: audit.EventLockCreate, Update: audit.EventLockUpdate, Delete: audit.EventLockDelete},
		Clock:        cfg.Clock,
		WithDefaults: withDefaults,
	})
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &Service{h: h}, nil
}

// withDefaults fills spec.created_by with the caller and spec.created_at
// with now when the admin set none; whatever the admin set is kept as is.
func withDefaults(actx *authz.Context, now time.Time, l *typesv1.Lock) *typesv1.Lock {
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
		l.Spec.CreatedAt = timestamppb.New(now)
	}
	return l
}

// GetLock reads one lock.
func (s *Service) GetLock(ctx context.Context, req *lockpb.GetLockRequest) (*lockpb.GetLockResponse, error) {
	l, err := s.h.Get(ctx, req.GetName(), false)
	return crud.Reply(&lockpb.GetLockResponse{Lock: l}, err)
}

// ListLocks pages through locks.
func (s *Service) ListLocks(ctx context.Context, req *lockpb.ListLocksRequest) (*lockpb.ListLocksResponse, error) {
	locks, next, err := s.h.List(ctx, req.GetPageSize(), req.GetPageToken())
	return crud.Reply(&lockpb.ListLocksResponse{Locks: locks, NextPageToken: next}, err)
}

// CreateLock creates a lock.
func (s *Service) CreateLock(ctx context.Context, req *lockpb.CreateLockRequest) (*lockpb.CreateLockResponse, error) {
	l, err := s.h.Create(ctx, req.GetLock())
	return crud.Reply(&lockpb.CreateLockResponse{Lock: l}, err)
}

// UpdateLock replaces a lock at the revision given.
func (s *Service) UpdateLock(ctx context.Context, req *lockpb.UpdateLockRequest) (*lockpb.UpdateLockResponse, error) {
	l, err := s.h.Update(ctx, req.GetLock())
	return crud.Reply(&lockpb.UpdateLockResponse{Lock: l}, err)
}

// UpsertLock creates or replaces a lock.
func (s *Service) UpsertLock(ctx context.Context, req *lockpb.UpsertLockRequest) (*lockpb.UpsertLockResponse, error) {
	l, err := s.h.Upsert(ctx, req.GetLock())
	return crud.Reply(&lockpb.UpsertLockResponse{Lock: l}, err)
}

// DeleteLock deletes a lock.
func (s *Service) DeleteLock(ctx context.Context, req *lockpb.DeleteLockRequest) (*lockpb.DeleteLockResponse, error) {
	return crud.Reply(&lockpb.DeleteLockResponse{}, s.h.Delete(ctx, req.GetName()))
}
