package services

import (
	"context"
	"slices"
	"time"

	"github.com/gravitational/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/canonical"
	"github.com/gatehouse/gatehouse/lib/safetext"
	"github.com/gatehouse/gatehouse/lib/services/generic"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

const maxLockMessage = 4096

// ValidateLock checks a lock and sets its defaults (kind "lock", version
// "v1"): a target with at least one field set, sane field values and a
// bounded message. The target user is rewritten in canonical form, so a lock
// on "Alice" is stored as a lock on "alice", the account it locks.
func ValidateLock(l *typesv1.Lock) error {
	if l == nil {
		return trace.BadParameter("missing lock")
	}
	if err := checkHeader(KindLock, &l.Kind, &l.Version, l.GetMetadata()); err != nil {
		return trace.Wrap(err)
	}
	name := l.GetMetadata().GetName()
	t := l.GetSpec().GetTarget()
	if t == nil || (t.GetUser() == "" && t.GetRole() == "" && t.GetLogin() == "" && t.GetNode() == "") {
		return trace.BadParameter("lock %q: target must set at least one of user, role, login, node", name)
	}
	if t.GetUser() != "" {
		t.User = canonical.Username(t.GetUser())
		// Only a person (an editor, through the lock API) may lock a built-in
		// identity: a lock an integration writes for one of its accounts
		// carries the integration's origin label.
		if origin := l.GetMetadata().GetLabels()[LabelOrigin]; origin != "" && IsReservedUsername(t.GetUser()) {
			return trace.BadParameter("lock %q: an integration (origin %q) cannot lock the built-in identity %q", name, origin, t.GetUser())
		}
	}
	for field, v := range map[string]string{"user": t.GetUser(), "role": t.GetRole(), "login": t.GetLogin(), "node": t.GetNode()} {
		if len(v) > generic.MaxNameLength {
			return trace.BadParameter("lock %q: target %s is over %d bytes", name, field, generic.MaxNameLength)
		}
	}
	if len(l.GetSpec().GetMessage()) > maxLockMessage {
		return trace.BadParameter("lock %q: message is over %d bytes", name, maxLockMessage)
	}
	// The message is printed into the locked person's SSH session and the
	// operator's terminal: no escape sequences (lines and tabs are fine).
	if err := safetext.CheckText("message", l.GetSpec().GetMessage()); err != nil {
		return trace.BadParameter("lock %q: %v", name, err)
	}
	if ts := l.GetSpec().GetCreatedAt(); ts != nil {
		if err := ts.CheckValid(); err != nil {
			return trace.BadParameter("lock %q: created_at: %v", name, err)
		}
	}
	return nil
}

// LockSubject is who or what is asking for access, as a lock target sees it.
type LockSubject struct {
	// User is the username.
	User string
	// Roles are the roles the user holds.
	Roles []string
	// Logins are the OS logins in play: the one being used on a node, or every
	// login the user may use when the check is for the whole identity.
	Logins []string
	// Node is the SSH node being accessed, empty when none.
	Node string
}

// LockTargetMatches reports whether target applies to subject: every field
// set in the target must match (user equal, role held, login among the
// logins, node equal). Users are compared in canonical form on both sides:
// locks are stored canonical, but a lock written before that rule, or a
// subject taken from a certificate issued before it, must still match the
// account it names. A target with no field set matches nothing; such a lock
// never passes ValidateLock.
func LockTargetMatches(target *typesv1.LockTarget, subject LockSubject) bool {
	if target == nil {
		return false
	}
	set := false
	if t := target.GetUser(); t != "" {
		if !canonical.Equal(t, subject.User) {
			return false
		}
		set = true
	}
	if t := target.GetRole(); t != "" {
		if !slices.Contains(subject.Roles, t) {
			return false
		}
		set = true
	}
	if t := target.GetLogin(); t != "" {
		if !slices.Contains(subject.Logins, t) {
			return false
		}
		set = true
	}
	if t := target.GetNode(); t != "" {
		if t != subject.Node {
			return false
		}
		set = true
	}
	return set
}

// IsLockInForce reports whether a lock applies at now: it has no expiry or
// its expiry is after now.
func IsLockInForce(l *typesv1.Lock, now time.Time) bool {
	exp := l.GetMetadata().GetExpires()
	return exp == nil || !backend.Expired(exp.AsTime(), now)
}

// FindLock returns the first lock in force at now whose target matches
// subject, or nil.
func FindLock(locks []*typesv1.Lock, subject LockSubject, now time.Time) *typesv1.Lock {
	for _, l := range locks {
		if IsLockInForce(l, now) && LockTargetMatches(l.GetSpec().GetTarget(), subject) {
			return l
		}
	}
	return nil
}

// MarshalLock validates l (on a copy) and returns the backend item storing
// it at LockKey(name), with metadata.expires as the item's expiry.
func MarshalLock(l *typesv1.Lock) (backend.Item, error) {
	if !l.ProtoReflect().IsValid() {
		return backend.Item{}, trace.BadParameter("missing resource")
	}
	// As marshalValidated does (locks are a binary kind), with the direct encoder: every
	// deactivation writes a lock.
	c, ok := cloneLock(l)
	if !ok {
		c = proto.Clone(l).(*typesv1.Lock)
	}
	if err := ValidateLock(c); err != nil {
		return backend.Item{}, trace.Wrap(err)
	}
	item, err := generic.MarshalOwnedBinaryWith(LocksPrefix, c, marshalLockValue)
	return item, trace.Wrap(err)
}

func marshalLockValue(l *typesv1.Lock) ([]byte, error) { return marshalDeterministic(l) }

// UnmarshalLock decodes a stored lock.
func UnmarshalLock(item backend.Item) (*typesv1.Lock, error) {
	if !generic.IsJSON(item.Value) {
		if l, ok := decodeLockFast(item.Value); ok {
			// As generic.UnmarshalResource finishes a decoded resource.
			if l.Metadata == nil {
				l.Metadata = &typesv1.Metadata{}
			}
			l.Metadata.Revision = item.Revision
			l.Metadata.Expires = nil
			if !item.Expires.IsZero() {
				l.Metadata.Expires = timestamppb.New(item.Expires)
			}
			return l, nil
		}
	}
	return unmarshalStored[*typesv1.Lock](item)
}

// LockService stores locks at locks/<name>.
type LockService struct {
	svc   *generic.Service[*typesv1.Lock]
	clock interface{ Now() time.Time }
}

// NewLockService returns the lock service.
func NewLockService(cfg Config) (*LockService, error) {
	svc, err := newGeneric(cfg, generic.Config[*typesv1.Lock]{
		Kind:      KindLock,
		KeyPrefix: LocksPrefix,
		Validate:  ValidateLock,
	})
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &LockService{svc: svc, clock: cfg.Backend.Clock()}, nil
}

// GetLock reads a lock.
func (s *LockService) GetLock(ctx context.Context, name string) (*typesv1.Lock, error) {
	l, err := s.svc.Get(ctx, name)
	return l, trace.Wrap(err)
}

// ListLocks returns a page of locks in name order and the next page's token.
func (s *LockService) ListLocks(ctx context.Context, pageSize int, pageToken string) ([]*typesv1.Lock, string, error) {
	locks, next, err := s.svc.List(ctx, pageSize, pageToken)
	return locks, next, trace.Wrap(err)
}

// GetLocksInForce returns every lock in force now, in name order. It fails
// rather than skip a lock it cannot read.
func (s *LockService) GetLocksInForce(ctx context.Context) ([]*typesv1.Lock, error) {
	now := s.clock.Now()
	locks, err := s.svc.ListAll(ctx, func(l *typesv1.Lock) bool { return IsLockInForce(l, now) })
	return locks, trace.Wrap(err)
}

// CreateLock writes a new lock; trace.AlreadyExists if the name is taken.
func (s *LockService) CreateLock(ctx context.Context, l *typesv1.Lock) (*typesv1.Lock, error) {
	out, err := s.svc.Create(ctx, l)
	return out, trace.Wrap(err)
}

// UpdateLock overwrites a lock still at l.metadata.revision (required).
func (s *LockService) UpdateLock(ctx context.Context, l *typesv1.Lock) (*typesv1.Lock, error) {
	out, err := s.svc.Update(ctx, l)
	return out, trace.Wrap(err)
}

// UpsertLock writes a lock whether or not it exists.
func (s *LockService) UpsertLock(ctx context.Context, l *typesv1.Lock) (*typesv1.Lock, error) {
	out, err := s.svc.Upsert(ctx, l)
	return out, trace.Wrap(err)
}

// DeleteLock removes a lock; trace.NotFound if missing.
func (s *LockService) DeleteLock(ctx context.Context, name string) error {
	return trace.Wrap(s.svc.Delete(ctx, name))
}
