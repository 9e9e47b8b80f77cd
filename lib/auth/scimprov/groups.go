package scimprov

import (
	"context"
	"slices"
	"strconv"
	"strings"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/scim/scimrecord"
	"github.com/gatehouse/gatehouse/lib/services"
	"github.com/gatehouse/gatehouse/lib/services/scimstore"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// Group writes and what is atomic about them:
//
//   - A group change that touches few members (at most membersPerWrite,
//     which covers every change Okta makes one PATCH at a time) is ONE
//     AtomicWrite: the group record and its indexes, each affected member's
//     record (its Groups) and Gatehouse user (groups trait and roles
//     recomputed through the connector mapping), and the audit events, each
//     conditioned on the revision read.
//   - A larger change is split: the members are written in batches
//     (removals first, so that a failure part-way revokes rather than
//     grants), each batch also conditioned on the group record still being
//     at the revision read, and the group record is written last. A batch
//     that fails its conditions is re-read and retried. If the request
//     fails part-way, some members are updated and the group record is
//     still the old one; member updates are idempotent, so the client
//     retrying the same change (Okta retries failed group pushes) completes
//     it. A new group with many members is first created empty, so that no
//     member ever refers to a group that does not exist.
//   - Members must be users of the same plugin: an unknown member id is
//     trace.BadParameter (HTTP 400, invalidValue), per RFC 7644 §3.5.2,
//     which lets a service provider refuse a value it cannot apply.
//     Inactive members get the group in their record only; they have no
//     Gatehouse user.

// membersPerWrite is how many member changes share one AtomicWrite: each
// takes up to 3 actions (record, user, event), and up to 6 stay for the
// group record, its indexes, its event and the group guard.
const membersPerWrite = (backend.MaxAtomicWriteActions - 6) / 3

// normalizeGroup checks a group from the client and returns the copy to
// store.
func normalizeGroup(rec *scimrecord.GroupRecord) (*scimrecord.GroupRecord, error) {
	if rec == nil {
		return nil, trace.BadParameter("missing group")
	}
	if strings.TrimSpace(rec.DisplayName) == "" {
		return nil, trace.BadParameter("group displayName is required")
	}
	if len(rec.DisplayName) > scimstore.MaxIndexedValueBytes || len(rec.ExternalID) > scimstore.MaxIndexedValueBytes {
		return nil, trace.BadParameter("group displayName and externalId must be at most %d bytes", scimstore.MaxIndexedValueBytes)
	}
	attrs, err := cleanAttributes(rec.Attributes, "password", "id", "meta", "members")
	if err != nil {
		return nil, trace.Wrap(err)
	}
	out := *rec
	out.Attributes = attrs
	out.Members = nil
	seen := make(map[string]bool, len(rec.Members))
	for _, m := range rec.Members {
		if m.Value == "" {
			return nil, trace.BadParameter("group member without a value")
		}
		if seen[m.Value] {
			continue
		}
		seen[m.Value] = true
		out.Members = append(out.Members, m)
	}
	return &out, nil
}

// memberChange is what a group write does to one member.
type memberChange struct {
	id  string
	ref *scimrecord.GroupRef // nil: remove the group from the member
}

// memberChanges lists the member updates from old to next (either nil):
// removals first, then additions and, on a rename, refreshed names.
func memberChanges(old, next *scimrecord.GroupRecord) []memberChange {
	oldSet, newSet := map[string]bool{}, map[string]bool{}
	if old != nil {
		for _, m := range old.Members {
			oldSet[m.Value] = true
		}
	}
	if next != nil {
		for _, m := range next.Members {
			newSet[m.Value] = true
		}
	}
	renamed := old != nil && next != nil && old.DisplayName != next.DisplayName
	var removes, adds []memberChange
	for id := range oldSet {
		if !newSet[id] {
			removes = append(removes, memberChange{id: id})
		}
	}
	for id := range newSet {
		if !oldSet[id] || renamed {
			adds = append(adds, memberChange{id: id, ref: &scimrecord.GroupRef{ID: next.ID, DisplayName: next.DisplayName}})
		}
	}
	byID := func(a, b memberChange) int { return strings.Compare(a.id, b.id) }
	slices.SortFunc(removes, byID)
	slices.SortFunc(adds, byID)
	return append(removes, adds...)
}

// memberPlan returns the writes that apply change c of group gid to its
// member, nothing (nil) if the member already reflects it (so retries are
// idempotent) or is gone.
func (p *Provisioner) memberPlan(ctx context.Context, pc *pluginContext, gid string, c memberChange) (*services.Plan, error) {
	rec, err := p.store.GetUser(ctx, pc.name, c.id)
	if trace.IsNotFound(err) {
		if c.ref != nil {
			return nil, trace.BadParameter("group member %q is not a user of plugin %q", c.id, pc.name)
		}
		return nil, nil
	}
	if err != nil {
		return nil, trace.Wrap(err)
	}
	groups := slices.DeleteFunc(slices.Clone(rec.Groups), func(g scimrecord.GroupRef) bool { return g.ID == gid })
	if c.ref != nil {
		groups = append(groups, *c.ref)
	}
	if slices.Equal(groups, rec.Groups) {
		return nil, nil
	}
	next := *rec
	next.Groups = groups
	next.LastModified = p.cfg.Clock.Now().UTC()
	st := &memberState{old: rec, next: &next, now: p.cfg.Clock.Now()}
	if rec.Active {
		if st.user, err = p.readUser(ctx, rec.UserName); err != nil {
			return nil, trace.Wrap(err)
		}
		if st.grantable, err = p.grantable(ctx, pc, candidateRoles(pc, &next)); err != nil {
			return nil, trace.Wrap(err)
		}
	}
	plan, err := planMember(pc, st)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	p.noteDropped(pc.name, plan.dropped)
	if err := p.appendEvents(&plan.writes, plan.events); err != nil {
		return nil, trace.Wrap(err)
	}
	return &plan.writes, nil
}

// groupPlan returns the writes of the group record itself and its event.
func (p *Provisioner) groupPlan(ctx context.Context, pc *pluginContext, old, next *scimrecord.GroupRecord, nchanges int) (*services.Plan, error) {
	plan := &services.Plan{}
	var ev *typesv1.AuditEvent
	fields := map[string]string{"plugin": pc.name, "member_changes": strconv.Itoa(nchanges)}
	switch {
	case next == nil:
		plan.DeleteSCIMGroup(pc.name, old)
		fields["scim_id"] = old.ID
		ev = &typesv1.AuditEvent{Type: EventGroupDelete, Resource: "scim_group/" + old.DisplayName, Message: "group deleted over SCIM", Fields: fields}
	default:
		if err := p.checkGroupUnique(ctx, pc, old, next); err != nil {
			return nil, trace.Wrap(err)
		}
		if err := plan.PutSCIMGroup(pc.name, old, next); err != nil {
			return nil, trace.Wrap(err)
		}
		fields["scim_id"] = next.ID
		typ, msg := EventGroupUpdate, "group updated over SCIM"
		if old == nil {
			typ, msg = EventGroupCreate, "group created over SCIM"
		}
		ev = &typesv1.AuditEvent{Type: typ, Resource: "scim_group/" + next.DisplayName, Message: msg, Fields: fields}
	}
	ev.User = actor(pc.name)
	if err := p.appendEvents(plan, []*typesv1.AuditEvent{ev}); err != nil {
		return nil, trace.Wrap(err)
	}
	return plan, nil
}

func (p *Provisioner) checkGroupUnique(ctx context.Context, pc *pluginContext, old, next *scimrecord.GroupRecord) error {
	if old == nil || !strings.EqualFold(old.DisplayName, next.DisplayName) {
		id, err := p.store.LookupGroupID(ctx, pc.name, scimstore.AttrDisplayName, next.DisplayName)
		switch {
		case err == nil && id != next.ID:
			return trace.AlreadyExists("a SCIM group with displayName %q already exists", next.DisplayName)
		case err != nil && !trace.IsNotFound(err):
			return trace.Wrap(err)
		}
	}
	// externalId is not unique (RFC 7643 §3.1): nothing is keyed by it.
	return nil
}

// writeGroup applies the change from old (nil: new) to next (nil: delete);
// see the comment at the top of this file. It returns the group record's new
// revision.
func (p *Provisioner) writeGroup(ctx context.Context, pc *pluginContext, old, next *scimrecord.GroupRecord) (string, error) {
	changes := memberChanges(old, next)
	gid := ""
	if next != nil {
		gid = next.ID
	} else {
		gid = old.ID
	}
	// Unknown members are refused before anything is written.
	for _, c := range changes {
		if c.ref == nil {
			continue
		}
		if _, err := p.store.GetUser(ctx, pc.name, c.id); err != nil {
			if trace.IsNotFound(err) {
				return "", trace.BadParameter("group member %q is not a user of plugin %q", c.id, pc.name)
			}
			return "", trace.Wrap(err)
		}
	}
	if old == nil && len(changes) > membersPerWrite {
		// Create the group empty first, then add members as an update.
		empty := *next
		empty.Members = nil
		gp, err := p.groupPlan(ctx, pc, nil, &empty, 0)
		if err != nil {
			return "", trace.Wrap(err)
		}
		rev, err := gp.Commit(ctx, p.cfg.Backend)
		if err != nil {
			return "", trace.Wrap(err)
		}
		empty.Revision = rev
		return p.writeGroup(ctx, pc, &empty, next)
	}
	for len(changes) > membersPerWrite {
		batch := changes[:membersPerWrite]
		changes = changes[membersPerWrite:]
		if err := p.writeMemberBatch(ctx, pc, gid, old, batch); err != nil {
			return "", trace.Wrap(err)
		}
	}
	// The last batch goes with the group record; a member batch is retried
	// when only members changed, but a failure of the group record's own
	// condition is returned as is.
	for range maxAttempts {
		plan := &services.Plan{}
		for _, c := range changes {
			mp, err := p.memberPlan(ctx, pc, gid, c)
			if err != nil {
				return "", trace.Wrap(err)
			}
			plan.Add(mp)
		}
		gp, err := p.groupPlan(ctx, pc, old, next, len(changes))
		if err != nil {
			return "", trace.Wrap(err)
		}
		plan.Add(gp)
		rev, err := plan.Commit(ctx, p.cfg.Backend)
		if trace.IsCompareFailed(err) {
			if changed, cerr := p.groupChanged(ctx, pc, old, gid); cerr != nil || changed {
				return "", trace.Wrap(err)
			}
			continue
		}
		return rev, trace.Wrap(err)
	}
	return "", trace.CompareFailed("members of SCIM group %q kept changing; try again", gid)
}

// groupChanged reports whether the group record is no longer as read (old;
// nil for a new group: whether it now exists).
func (p *Provisioner) groupChanged(ctx context.Context, pc *pluginContext, old *scimrecord.GroupRecord, gid string) (bool, error) {
	cur, err := p.store.GetGroup(ctx, pc.name, gid)
	switch {
	case trace.IsNotFound(err):
		return old != nil, nil
	case err != nil:
		return false, trace.Wrap(err)
	case old == nil:
		return true, nil
	}
	return cur.Revision != old.Revision, nil
}

// writeMemberBatch applies a batch of member changes in one AtomicWrite
// guarded by the group record still being at old's revision, retrying when
// only members changed.
func (p *Provisioner) writeMemberBatch(ctx context.Context, pc *pluginContext, gid string, old *scimrecord.GroupRecord, batch []memberChange) error {
	for range maxAttempts {
		plan := &services.Plan{}
		for _, c := range batch {
			mp, err := p.memberPlan(ctx, pc, gid, c)
			if err != nil {
				return trace.Wrap(err)
			}
			plan.Add(mp)
		}
		if plan.Len() == 0 {
			return nil
		}
		if old != nil {
			plan.RequireSCIMGroup(pc.name, gid, old.Revision)
		}
		_, err := plan.Commit(ctx, p.cfg.Backend)
		if trace.IsCompareFailed(err) {
			if changed, cerr := p.groupChanged(ctx, pc, old, gid); cerr != nil || changed {
				return trace.Wrap(err)
			}
			continue
		}
		return trace.Wrap(err)
	}
	return trace.CompareFailed("members of SCIM group %q kept changing; try again", gid)
}

// CreateGroup creates a group with its members; trace.AlreadyExists if the
// displayName (case-insensitive) is taken, BadParameter for a member that is
// not a user of the plugin. externalId may repeat.
func (p *Provisioner) CreateGroup(ctx context.Context, plugin string, rec *scimrecord.GroupRecord) (*scimrecord.GroupRecord, error) {
	pc, in, err := loadAndNormalize(ctx, p, plugin, rec, normalizeGroup)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	for range maxAttempts {
		if _, err := p.store.LookupGroupID(ctx, pc.name, scimstore.AttrDisplayName, in.DisplayName); err == nil {
			return nil, trace.AlreadyExists("a SCIM group with displayName %q already exists", in.DisplayName)
		} else if !trace.IsNotFound(err) {
			return nil, trace.Wrap(err)
		}
		now := p.cfg.Clock.Now().UTC()
		next := *in
		next.ID, next.Created, next.LastModified, next.Revision = newResourceID(), now, now, ""
		rev, err := p.writeGroup(ctx, pc, nil, &next)
		if trace.IsCompareFailed(err) {
			continue
		}
		if err != nil {
			return nil, trace.Wrap(err)
		}
		p.counts.add(countKey{pc.name, "groups"}, 1)
		next.Revision = rev
		return &next, nil
	}
	return nil, trace.CompareFailed("SCIM group %q kept changing while it was being created; try again", in.DisplayName)
}

// UpdateGroup replaces group rec.ID if it is still at rec.Revision
// (required; trace.CompareFailed otherwise): displayName, externalId,
// members and attributes. Members added or removed, and all members on a
// rename, get their groups and roles updated.
func (p *Provisioner) UpdateGroup(ctx context.Context, plugin string, rec *scimrecord.GroupRecord) (*scimrecord.GroupRecord, error) {
	if rec == nil || rec.Revision == "" {
		return nil, trace.BadParameter("updating a SCIM group needs the revision it was read at")
	}
	pc, in, err := loadAndNormalize(ctx, p, plugin, rec, normalizeGroup)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	old, err := p.store.GetGroup(ctx, pc.name, rec.ID)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if old.Revision != rec.Revision {
		return nil, trace.CompareFailed("SCIM group %q was changed since it was read", rec.ID)
	}
	if sameGroupRecord(old, in) {
		// RFC 7644 §3.5.2.1: an update that changes nothing (a PATCH add of a member already
		// there, Okta's rename to the same name) is not written: lastModified and the version
		// stay. Members' records are untouched by an unchanged group.
		return old, nil
	}
	next := *old
	next.DisplayName, next.ExternalID, next.Members, next.Attributes = in.DisplayName, in.ExternalID, in.Members, in.Attributes
	next.LastModified = p.cfg.Clock.Now().UTC()
	rev, err := p.writeGroup(ctx, pc, old, &next)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	next.Revision = rev
	return &next, nil
}

// sameGroupRecord reports whether next holds what old holds: the same displayName (spelling
// included), externalId, attributes (as JSON values) and set of member ids. A member's display
// is not compared: responses show the member's userName, whatever the client sent.
func sameGroupRecord(old, next *scimrecord.GroupRecord) bool {
	if old.DisplayName != next.DisplayName || old.ExternalID != next.ExternalID ||
		len(old.Members) != len(next.Members) || !sameJSON(old.Attributes, next.Attributes) {
		return false
	}
	ids := make(map[string]bool, len(old.Members))
	for _, m := range old.Members {
		ids[m.Value] = true
	}
	for _, m := range next.Members {
		if !ids[m.Value] {
			return false
		}
	}
	return true
}

// DeleteGroup removes group id from its members (groups and roles
// recomputed) and deletes it; trace.NotFound if there is no such group.
func (p *Provisioner) DeleteGroup(ctx context.Context, plugin, id string) error {
	pc, err := p.loadPlugin(ctx, plugin)
	if err != nil {
		return trace.Wrap(err)
	}
	for range maxAttempts {
		old, err := p.store.GetGroup(ctx, pc.name, id)
		if err != nil {
			return trace.Wrap(err)
		}
		_, err = p.writeGroup(ctx, pc, old, nil)
		if trace.IsCompareFailed(err) {
			continue
		}
		if err == nil {
			p.counts.add(countKey{pc.name, "groups"}, -1)
		}
		return trace.Wrap(err)
	}
	return trace.CompareFailed("SCIM group %q kept changing while it was being deleted; try again", id)
}

// GetGroup reads group id; trace.NotFound if none.
func (p *Provisioner) GetGroup(ctx context.Context, plugin, id string) (*scimrecord.GroupRecord, error) {
	rec, err := p.store.GetGroup(ctx, plugin, id)
	return rec, trace.Wrap(err)
}

// LookupGroups finds the groups with "displayName" (case-insensitive),
// "externalId" (not unique: any number) or "id" equal to value, from an
// index, in id order; none is an empty list.
func (p *Provisioner) LookupGroups(ctx context.Context, plugin, attr, value string) ([]*scimrecord.GroupRecord, error) {
	recs, err := p.store.LookupGroups(ctx, plugin, attr, value)
	return recs, trace.Wrap(err)
}

// ListGroups returns up to limit groups after startAfterID, in id order.
func (p *Provisioner) ListGroups(ctx context.Context, plugin, startAfterID string, limit int) ([]*scimrecord.GroupRecord, error) {
	recs, err := p.store.ListGroups(ctx, plugin, startAfterID, limit)
	return recs, trace.Wrap(err)
}

// CountGroups counts the groups of plugin.
func (p *Provisioner) CountGroups(ctx context.Context, plugin string) (int, error) {
	n, err := p.counts.get(ctx, countKey{plugin, "groups"}, p.cfg.Clock.Now(), func(ctx context.Context) (int, error) {
		return p.store.CountGroups(ctx, plugin)
	})
	return n, trace.Wrap(err)
}
