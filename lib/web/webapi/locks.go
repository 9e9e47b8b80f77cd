package webapi

import (
	"context"
	"net/http"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/auth/crud"
	"github.com/gatehouse/gatehouse/lib/scim/scimrecord"
	"github.com/gatehouse/gatehouse/lib/services"
	"github.com/gatehouse/gatehouse/lib/services/generic"
	lockpb "github.com/gatehouse/gatehouse/proto/gatehouse/lock/v1"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// Locks is the lock API (lib/auth/lockv1.Service): listing and lifting
// go through it, so they are authorized as over gRPC and a lift is audited
// (lock.delete, naming the caller).
type Locks interface {
	GetLock(ctx context.Context, req *lockpb.GetLockRequest) (*lockpb.GetLockResponse, error)
	ListLocks(ctx context.Context, req *lockpb.ListLocksRequest) (*lockpb.ListLocksResponse, error)
	DeleteLock(ctx context.Context, req *lockpb.DeleteLockRequest) (*lockpb.DeleteLockResponse, error)
}

// LockRow is one lock on the Locks page.
type LockRow struct {
	Name string `json:"name"`
	// Target is what the lock applies to; only the fields set.
	Target LockTarget `json:"target"`
	// Message is the reason shown to whoever the lock refuses.
	Message   string `json:"message,omitempty"`
	CreatedBy string `json:"created_by,omitempty"`
	CreatedAt string `json:"created_at,omitempty"`
	// Expires is empty for a lock in force until lifted.
	Expires string `json:"expires,omitempty"`
	InForce bool   `json:"in_force"`
	// Origin is the SCIM plugin that wrote the lock, empty for a lock an
	// administrator wrote.
	Origin string `json:"origin,omitempty"`
	// Reason is why an integration wrote it (scim-deactivation,
	// scim-deletion).
	Reason string `json:"reason,omitempty"`
	// SCIM is set for a lock SCIM wrote when it deleted a deactivated or
	// unassigned account.
	SCIM bool `json:"scim"`
}

// LockTarget is a lock's target.
type LockTarget struct {
	User  string `json:"user,omitempty"`
	Role  string `json:"role,omitempty"`
	Login string `json:"login,omitempty"`
	Node  string `json:"node,omitempty"`
}

// LocksResponse is GET /v1/webapi/admin/locks.
type LocksResponse struct {
	Locks      []LockRow `json:"locks"`
	NextCursor string    `json:"next_cursor,omitempty"`
	// CanLift says whether the caller's roles allow deleting locks; for
	// the UI only, the lock API decides.
	CanLift bool `json:"can_lift"`
}

// LiftResponse is DELETE /v1/webapi/admin/locks/{name}.
type LiftResponse struct {
	Lifted LockRow `json:"lifted"`
	// Note says what lifting meant.
	Note string `json:"note"`
}

// Notes on a lifted lock.
const (
	noteLiftedSCIM = "The lock is lifted. The account stays deleted: re-assigning the person to the app in Okta " +
		"(or reactivating them) creates it again, with a new identity, and lifts SCIM's own lock. " +
		"Certificates and sessions of the old account stay void."
	noteLifted = "The lock is lifted: what it targeted can sign in and connect again."
)

func (h *Handler) lockRow(l *typesv1.Lock) LockRow {
	md, spec := l.GetMetadata(), l.GetSpec()
	t := spec.GetTarget()
	labels := md.GetLabels()
	row := LockRow{
		Name:      md.GetName(),
		Target:    LockTarget{User: t.GetUser(), Role: t.GetRole(), Login: t.GetLogin(), Node: t.GetNode()},
		Message:   spec.GetMessage(),
		CreatedBy: spec.GetCreatedBy(),
		CreatedAt: formatTime(spec.GetCreatedAt()),
		Expires:   formatTime(md.GetExpires()),
		InForce:   services.IsLockInForce(l, h.cfg.Clock.Now()),
		Origin:    labels[services.LabelOrigin],
		Reason:    labels[scimrecord.LabelReason],
	}
	row.SCIM = row.Origin != "" && scimrecord.IsLockReason(row.Reason)
	return row
}

// listLocks is GET /v1/webapi/admin/locks?limit=&cursor=: one page of locks
// in name order through the lock API.
func (h *Handler) listLocks(_ http.ResponseWriter, r *http.Request) (any, error) {
	ctx := r.Context()
	limit, cursor, err := pageParams(r)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	resp, err := h.cfg.Locks.ListLocks(ctx, &lockpb.ListLocksRequest{PageSize: int32(limit), PageToken: cursor})
	if err != nil {
		if trace.IsBadParameter(err) && cursor != "" {
			return nil, trace.BadParameter("invalid cursor; start again from the first page")
		}
		return nil, trace.Wrap(err)
	}
	out := LocksResponse{Locks: make([]LockRow, 0, len(resp.GetLocks())), NextCursor: resp.GetNextPageToken()}
	for _, l := range resp.GetLocks() {
		out.Locks = append(out.Locks, h.lockRow(l))
	}
	if actx, err := h.cfg.Authorizer.Authorize(ctx); err == nil {
		out.CanLift = actx.Checker.CheckAccess(services.KindLock, services.VerbDelete) == nil
	}
	return out, nil
}

// liftLock is DELETE /v1/webapi/admin/locks/{name}: it reads the lock (to
// say what lifting it meant) and deletes it through the lock API, which
// authorizes the delete and records lock.delete with the caller.
func (h *Handler) liftLock(_ http.ResponseWriter, r *http.Request) (any, error) {
	ctx := r.Context()
	name := r.PathValue("name")
	// A caller who may not lift locks learns nothing of the lock: refused
	// before it is read (the lock API checks again when it deletes).
	if _, err := crud.Authorize(ctx, h.cfg.Authorizer, services.KindLock, services.VerbDelete); err != nil {
		return nil, trace.Wrap(err)
	}
	if err := generic.CheckName(services.KindLock, name); err != nil {
		return nil, trace.Wrap(err)
	}
	got, err := h.cfg.Locks.GetLock(ctx, &lockpb.GetLockRequest{Name: name})
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if _, err := h.cfg.Locks.DeleteLock(ctx, &lockpb.DeleteLockRequest{Name: name}); err != nil {
		return nil, trace.Wrap(err)
	}
	row := h.lockRow(got.GetLock())
	note := noteLifted
	if row.SCIM {
		note = noteLiftedSCIM
	}
	h.cfg.Logger.InfoContext(ctx, "Lock lifted from the web UI.", "lock", name, "scim", row.SCIM)
	return LiftResponse{Lifted: row, Note: note}, nil
}
