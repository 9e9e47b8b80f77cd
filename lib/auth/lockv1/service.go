// Package lockv1 serves gatehouse.lock.v1.LockService: it translates the
// generated messages to a lib/auth/crud Handler for kind "lock", which
// authorizes, checks the verb, validates, calls the locks service, audits
// and wraps the error. What is particular to locks: created_by and
// created_at default to the caller and now.
package lockv1

import (
	"context"
	"strings"
	"time"

	"github.com/gravitational/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gatehouse/gatehouse/lib/auth/audit"
	"github.com/gatehouse/gatehouse/lib/auth/authz"
	"github.com/gatehouse/gatehouse/lib/auth/crud"
	"github.com/gatehouse/gatehouse/lib/canonical"
	"github.com/gatehouse/gatehouse/lib/services"
	"github.com/gatehouse/gatehouse/lib/services/generic"
	lockpb "github.com/gatehouse/gatehouse/proto/gatehouse/lock/v1"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

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
	crud.Deps
	Locks Locks
}

// CheckAndSetDefaults validates the config.
func (c *Config) CheckAndSetDefaults() error {
	return trace.Wrap(crud.CheckConfig("lockv1", &c.Clock,
		crud.Need("Authorizer", c.Authorizer == nil),
		crud.Need("Recorder", c.Recorder == nil),
		crud.Need("Locks", c.Locks == nil),
	))
}

// Service implements lockpb.LockServiceServer.
type Service struct {
	lockpb.UnsafeLockServiceServer
	h   *crud.Handler[*typesv1.Lock]
	cfg Config
}

var _ lockpb.LockServiceServer = (*Service)(nil)

// New returns the service.
func New(cfg Config) (*Service, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, trace.Wrap(err)
	}
	h, err := crud.New(crud.Config[*typesv1.Lock]{
		Kind: services.KindLock,
		Deps: cfg.Deps,
		Store: crud.Store[*typesv1.Lock]{
			Get:    crud.NoSecrets(cfg.Locks.GetLock),
			List:   crud.NoSecretsList(cfg.Locks.ListLocks),
			Create: cfg.Locks.CreateLock,
			Update: cfg.Locks.UpdateLock,
			Upsert: cfg.Locks.UpsertLock,
			Delete: cfg.Locks.DeleteLock,
		},
		Events:       crud.Events{Create: audit.EventLockCreate, Update: audit.EventLockUpdate, Delete: audit.EventLockDelete},
		WithDefaults: withDefaults,
		CheckWrite:   checkWrite,
	})
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &Service{h: h, cfg: cfg}, nil
}

// checkWrite refuses a lock on the built-in operator identity by a caller
// whose roles do not allow every verb on every kind: @admin is the way back
// in when everything else is locked, and with it locked only gatehouse
// recover, with the server stopped, restores access. Whoever may only write
// locks must not be able to force that outage (a lock on a user or a role,
// which is what incident response needs, stays theirs to write).
func checkWrite(_ context.Context, actx *authz.Context, l *typesv1.Lock) error {
	if !services.IsBuiltinAdmin(canonical.Username(l.GetSpec().GetTarget().GetUser())) || actx.Checker.Unrestricted() {
		return nil
	}
	return trace.AccessDenied("lock %q: only a caller whose roles allow every verb on every kind may lock %s, the operator identity", l.GetMetadata().GetName(), services.BuiltinAdmin)
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

// DeleteLock deletes (lifts) a lock. Its audit event names who lifted it
// and, read just before, what the lock targeted, its message and the
// plugin that wrote it: a SCIM lock's name is a hash, so without them the
// audit log would not say whose lock was lifted.
func (s *Service) DeleteLock(ctx context.Context, req *lockpb.DeleteLockRequest) (*lockpb.DeleteLockResponse, error) {
	name := req.GetName()
	actx, err := crud.Authorize(ctx, s.cfg.Authorizer, services.KindLock, services.VerbDelete)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if err := generic.CheckName(services.KindLock, name); err != nil {
		return nil, trace.Wrap(err)
	}
	ev := audit.Event{Type: audit.EventLockDelete, User: actx.Username(), Resource: services.KindLock + "/" + name}
	l, err := s.cfg.Locks.GetLock(ctx, name)
	if err == nil {
		ev.Fields = liftFields(l)
		ev.Message = "lock lifted"
		if t := ev.Fields["target"]; t != "" {
			ev.Message += " on " + t
		}
		err = s.cfg.Locks.DeleteLock(ctx, name)
	}
	ev.Err = err
	s.cfg.Recorder.Record(ctx, ev)
	return crud.Reply(&lockpb.DeleteLockResponse{}, err)
}

// liftFields describes a lock being lifted, for its audit event.
func liftFields(l *typesv1.Lock) map[string]string {
	f := map[string]string{}
	t := l.GetSpec().GetTarget()
	var parts []string
	for _, p := range [][2]string{{"user", t.GetUser()}, {"role", t.GetRole()}, {"login", t.GetLogin()}, {"node", t.GetNode()}} {
		if p[1] != "" {
			parts = append(parts, p[0]+"="+p[1])
		}
	}
	if len(parts) > 0 {
		f["target"] = strings.Join(parts, ",")
	}
	if m := l.GetSpec().GetMessage(); m != "" {
		f["lock_message"] = m
	}
	if by := l.GetSpec().GetCreatedBy(); by != "" {
		f["lock_created_by"] = by
	}
	if p := l.GetMetadata().GetLabels()[services.LabelOrigin]; p != "" {
		f["lock_origin"] = p
	}
	return f
}
