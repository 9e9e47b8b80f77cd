package services

import (
	"bytes"
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/gravitational/trace"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/scim/scimrecord"
	"github.com/gatehouse/gatehouse/lib/services/generic"
	"github.com/gatehouse/gatehouse/lib/services/scimstore"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// Plan collects writes of several kinds (users, locks, plugins, their
// credentials, SCIM records, audit events) to commit as ONE
// backend.AtomicWrite: a change that spans kinds happens whole or not at all.
// Callers add typed writes (PutUser, DeleteLock, AppendEvent, ...); the keys
// and the stored bytes are built here, so no package outside lib/services
// knows how a kind is stored.
//
// Every write carries its condition: backend.NotExists() for a create,
// backend.Revision(rev) for a write or delete of what was read,
// backend.Whatever() for an unconditional one. The zero Plan is empty and
// ready to use.
type Plan struct {
	writes []PlannedWrite
}

// Kinds of PlannedWrite beyond the resource kinds (KindUser, KindLock, ...).
const (
	// PlanKindSCIMUser is a SCIM user record (PlannedWrite.Name is its id).
	PlanKindSCIMUser = "scim_user"
	// PlanKindSCIMGroup is a SCIM group record (Name is its id).
	PlanKindSCIMGroup = "scim_group"
	// PlanKindSCIMIndex is an index entry of a SCIM record (Name is the
	// record's id).
	PlanKindSCIMIndex = "scim_index"
	// PlanKindEvent is an audit event (Name is its id).
	PlanKindEvent = "event"
	// PlanKindFirstAdminMarker is the first-administrator marker.
	PlanKindFirstAdminMarker = "first_admin_marker"
	// PlanKindPasswordToken is a one-time password-set token (Name is its
	// user when created, empty when deleted).
	PlanKindPasswordToken = "password_token"
)

// PlannedWrite is one write of a Plan, as a caller inspecting a plan before
// committing it sees it.
type PlannedWrite struct {
	// Kind is the resource kind (KindUser, KindLock, ...) or one of the
	// PlanKind* values.
	Kind string
	// Name is the resource's name (or record's or event's id).
	Name string
	// Put is set for a write of a value; a delete or a mere condition
	// (Require*) leaves it unset.
	Put bool

	action backend.ConditionalAction
}

// User decodes the user a put of KindUser writes.
func (w PlannedWrite) User() (*typesv1.User, error) {
	if w.Kind != KindUser || !w.Put {
		return nil, trace.BadParameter("planned write of %s %q is not a put of a user", w.Kind, w.Name)
	}
	item := w.action.Action.Item
	item.Key = w.action.Key
	u, err := UnmarshalUser(item)
	return u, trace.Wrap(err)
}

// Len is the number of backend actions the plan commits.
func (p *Plan) Len() int { return len(p.writes) }

// Writes returns the plan's writes in the order they were added.
func (p *Plan) Writes() []PlannedWrite { return append([]PlannedWrite(nil), p.writes...) }

// Actions returns the backend actions the plan commits, in order: for tests
// and for callers that compare plans. They cannot be added back to a plan.
func (p *Plan) Actions() []backend.ConditionalAction {
	out := make([]backend.ConditionalAction, len(p.writes))
	for i, w := range p.writes {
		out[i] = w.action
	}
	return out
}

// Add appends the writes of other to p.
func (p *Plan) Add(other *Plan) {
	if other != nil {
		p.writes = append(p.writes, other.writes...)
	}
}

// Commit writes the plan in one backend.AtomicWrite and returns the
// revision of the written items. The backend refuses a plan of more than
// backend.MaxAtomicWriteActions writes (trace.BadParameter); callers that
// can grow a plan past it check Len first.
func (p *Plan) Commit(ctx context.Context, b backend.Backend) (string, error) {
	rev, err := b.AtomicWrite(ctx, p.Actions())
	return rev, trace.Wrap(err)
}

// planCapacity is the room a plan starts with: a SCIM write plans up to
// about eight writes (the record, its index entries, the user, a lock, the
// audit event), and growing the slice of these large entries from one by
// doubling copied them three or four times per write.
const planCapacity = 8

func (p *Plan) add(kind, name string, key backend.Key, cond backend.Condition, action backend.Action) {
	if p.writes == nil {
		p.writes = make([]PlannedWrite, 0, planCapacity)
	}
	p.writes = append(p.writes, PlannedWrite{
		Kind:   kind,
		Name:   name,
		Put:    action.Kind == backend.ActionPut,
		action: backend.ConditionalAction{Key: key, Condition: cond, Action: action},
	})
}

// putResource adds the write of r, which marshal validates (on a copy) and
// encodes, at key(its name), under cond: the body of every typed Put.
func putResource[T generic.Resource](p *Plan, kind string, r T, marshal func(T) (backend.Item, error), key func(string) backend.Key, cond backend.Condition) error {
	item, err := marshal(r)
	if err != nil {
		return trace.Wrap(err)
	}
	name := r.GetMetadata().GetName()
	p.add(kind, name, key(name), cond, backend.Put(item))
	return nil
}

// PutUser adds the write of u (validated on a copy, stored at its name)
// under cond.
func (p *Plan) PutUser(u *typesv1.User, cond backend.Condition) error {
	return trace.Wrap(putResource(p, KindUser, u, MarshalUser, UserKey, cond))
}

// PutOwnedUser is PutUser for a user the caller built for this plan and
// does not use again, nor shares with another goroutine while this runs (a
// SCIM write's account): it is validated, which may set its defaults, and
// marshalled as it is, without the copy PutUser makes (a reflective clone, a
// tenth of a SCIM create's allocations). The stored bytes are PutUser's.
func (p *Plan) PutOwnedUser(u *typesv1.User, cond backend.Condition) error {
	return trace.Wrap(putResource(p, KindUser, u, marshalOwnedUser, UserKey, cond))
}

// DeleteUser adds the deletion of user name, still at revision.
func (p *Plan) DeleteUser(name, revision string) {
	p.add(KindUser, name, UserKey(name), backend.Revision(revision), backend.Delete())
}

// RequireUser conditions the plan on user name still being at revision,
// without writing it.
func (p *Plan) RequireUser(name, revision string) {
	p.add(KindUser, name, UserKey(name), backend.Revision(revision), backend.Nop())
}

// PutLock adds the write of l under cond.
func (p *Plan) PutLock(l *typesv1.Lock, cond backend.Condition) error {
	return trace.Wrap(putResource(p, KindLock, l, MarshalLock, LockKey, cond))
}

// RequireNoLock conditions the plan on there being no lock name, without
// writing it.
func (p *Plan) RequireNoLock(name string) {
	p.add(KindLock, name, LockKey(name), backend.NotExists(), backend.Nop())
}

// DeleteLock adds the deletion of lock name, still at revision.
func (p *Plan) DeleteLock(name, revision string) {
	p.add(KindLock, name, LockKey(name), backend.Revision(revision), backend.Delete())
}

// PutPlugin adds the write of plugin pl under cond.
func (p *Plan) PutPlugin(pl *typesv1.Plugin, cond backend.Condition) error {
	return trace.Wrap(putResource(p, KindPlugin, pl, MarshalPlugin, PluginKey, cond))
}

// DeletePlugin adds the deletion of plugin name, still at revision.
func (p *Plan) DeletePlugin(name, revision string) {
	p.add(KindPlugin, name, PluginKey(name), backend.Revision(revision), backend.Delete())
}

// RequirePlugin conditions the plan on plugin name still being at revision,
// without writing it.
func (p *Plan) RequirePlugin(name, revision string) {
	p.add(KindPlugin, name, PluginKey(name), backend.Revision(revision), backend.Nop())
}

// PutPluginStaticCredentials adds the write of c under cond.
func (p *Plan) PutPluginStaticCredentials(c *typesv1.PluginStaticCredentials, cond backend.Condition) error {
	return trace.Wrap(putResource(p, KindPluginStaticCredentials, c, MarshalPluginStaticCredentials, PluginStaticCredentialsKey, cond))
}

// DeletePluginStaticCredentials adds the deletion of credentials name,
// still at revision.
func (p *Plan) DeletePluginStaticCredentials(name, revision string) {
	p.add(KindPluginStaticCredentials, name, PluginStaticCredentialsKey(name), backend.Revision(revision), backend.Delete())
}

// addSCIM adds the actions of a SCIM record change, telling the record
// (at recordKey) from its index entries.
func (p *Plan) addSCIM(kind, id string, recordKey backend.Key, actions []backend.ConditionalAction) {
	for _, a := range actions {
		k := PlanKindSCIMIndex
		if bytes.Equal(a.Key, recordKey) {
			k = kind
		}
		p.add(k, id, a.Key, a.Condition, a.Action)
	}
}

// PutSCIMUser adds the writes that store SCIM user record next of plugin in
// place of old (nil for a new record) with its indexes; see
// scimstore.PutUserActions.
func (p *Plan) PutSCIMUser(plugin string, old, next *scimrecord.UserRecord) error {
	a, err := scimstore.PutUserActions(plugin, old, next)
	if err != nil {
		return trace.Wrap(err)
	}
	p.addSCIM(PlanKindSCIMUser, next.ID, scimstore.UserKey(plugin, next.ID), a)
	return nil
}

// DeleteSCIMUser adds the removal of SCIM user record old (as read) and its
// indexes; see scimstore.DeleteUserActions.
func (p *Plan) DeleteSCIMUser(plugin string, old *scimrecord.UserRecord) {
	p.addSCIM(PlanKindSCIMUser, old.ID, scimstore.UserKey(plugin, old.ID), scimstore.DeleteUserActions(plugin, old))
}

// PutSCIMGroup is PutSCIMUser for group records.
func (p *Plan) PutSCIMGroup(plugin string, old, next *scimrecord.GroupRecord) error {
	a, err := scimstore.PutGroupActions(plugin, old, next)
	if err != nil {
		return trace.Wrap(err)
	}
	p.addSCIM(PlanKindSCIMGroup, next.ID, scimstore.GroupKey(plugin, next.ID), a)
	return nil
}

// DeleteSCIMGroup is DeleteSCIMUser for group records.
func (p *Plan) DeleteSCIMGroup(plugin string, old *scimrecord.GroupRecord) {
	p.addSCIM(PlanKindSCIMGroup, old.ID, scimstore.GroupKey(plugin, old.ID), scimstore.DeleteGroupActions(plugin, old))
}

// RequireSCIMGroup conditions the plan on plugin's group record id still
// being at revision, without writing it.
func (p *Plan) RequireSCIMGroup(plugin, id, revision string) {
	p.add(PlanKindSCIMGroup, id, scimstore.GroupKey(plugin, id), backend.Revision(revision), backend.Nop())
}

// AppendEvent adds audit event e to the plan, so that it is stored if and
// only if the change it describes is: e gets a fresh id and now as its time
// (set on e), the outcome success unless it has one, and is kept for
// retention from now, as AuditLog.Emit stores events. The caller must leave
// secrets out of it (see AuditLog).
func (p *Plan) AppendEvent(e *typesv1.AuditEvent, now time.Time, retention time.Duration) error {
	e.Id = uuid.NewString()
	e.Time = timestamppb.New(now)
	if e.Outcome == "" {
		e.Outcome = OutcomeSuccess
	}
	if err := ValidateAuditEvent(e); err != nil {
		return trace.Wrap(err)
	}
	// e is the caller's, and this already sets its id and time: marshal
	// it as it is rather than a clone.
	value, err := marshalOwnedEvent(e)
	if err != nil {
		return trace.Wrap(err)
	}
	p.add(PlanKindEvent, e.Id, EventKey(now, e.Id), backend.NotExists(),
		backend.Put(backend.Item{Value: value, Expires: now.Add(retention)}))
	return nil
}

// RequireSCIMUser conditions the plan on plugin's user record id still
// being at revision, without writing it.
func (p *Plan) RequireSCIMUser(plugin, id, revision string) {
	p.add(PlanKindSCIMUser, id, scimstore.UserKey(plugin, id), backend.Revision(revision), backend.Nop())
}

// PrefixKey is the start of the key range holding every resource stored at
// <prefix>/<name> (UsersPrefix, LocksPrefix, ...), with its trailing
// separator so that "users_x/" is not in the range of "users": what a
// watcher of that kind watches.
func PrefixKey(prefix string) backend.Key { return backend.NewKey(prefix, "") }

// ReadUser reads user name straight from b, secrets included, for a plan
// that rewrites it (which must keep them); nil if there is none.
func ReadUser(ctx context.Context, b backend.Backend, name string) (*typesv1.User, error) {
	item, err := b.Get(ctx, UserKey(name))
	if trace.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, trace.Wrap(err)
	}
	u, err := UnmarshalUser(*item)
	return u, trace.Wrap(err)
}

// ReadLock reads lock name straight from b; nil if there is none.
func ReadLock(ctx context.Context, b backend.Backend, name string) (*typesv1.Lock, error) {
	item, err := b.Get(ctx, LockKey(name))
	if trace.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, trace.Wrap(err)
	}
	l, err := UnmarshalLock(*item)
	return l, trace.Wrap(err)
}
