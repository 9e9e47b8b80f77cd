package scimprov

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/gravitational/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gatehouse/gatehouse/lib/canonical"
	"github.com/gatehouse/gatehouse/lib/scim/scimrecord"
	"github.com/gatehouse/gatehouse/lib/services"
	"github.com/gatehouse/gatehouse/lib/services/generic"
	"github.com/gatehouse/gatehouse/lib/services/scimstore"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// Labels and values on the users and locks the provisioner writes (the
// locks' reason label and values are scimrecord's).
const (
	// LabelPlugin names the plugin that manages a user or wrote a lock.
	LabelPlugin = services.LabelPlugin
	// TraitGroups is the trait holding a user's SCIM group names, and the
	// attribute name the connector's attributes_to_roles are matched on.
	TraitGroups = "groups"
	// ConnectorTypeSAML is the created_by connector type of SCIM users.
	ConnectorTypeSAML = "saml"
)

// LockName is the name of the deactivation lock plugin writes for
// userName: deterministic, so that reactivation (and a later create of the
// same userName) finds exactly that lock, and by username rather than SCIM
// id, so that a lock left by a deleted record is lifted when the same user
// is provisioned again. Plugin names must be at most 216 bytes for the lock
// name to fit.
func LockName(plugin, userName string) string {
	sum := sha256.Sum256([]byte(canonical.Username(userName)))
	return "scim-" + plugin + "-" + hex.EncodeToString(sum[:16])
}

// normalizeUser checks a record from the client and returns the copy to
// store: a userName whose canonical form is a valid Gatehouse username (the
// record keeps the spelling the client sent, for display), a bounded
// externalId, and the attributes as a JSON object without password, id,
// meta, groups and what the record holds in its own fields (userName,
// externalId, active, schemas), at most services.MaxSCIMAttributesBytes.
func normalizeUser(rec *scimrecord.UserRecord) (*scimrecord.UserRecord, error) {
	if rec == nil {
		return nil, trace.BadParameter("missing user")
	}
	if err := generic.CheckName("user", rec.UserName); err != nil {
		return nil, trace.BadParameter("userName %q cannot be a Gatehouse username: %v", rec.UserName, err)
	}
	// The account is named by the canonical form, which must itself be a
	// valid name, and never a built-in identity's ("@...").
	name := canonical.Username(rec.UserName)
	if err := generic.CheckName("user", name); err != nil {
		return nil, trace.BadParameter("userName %q cannot be a Gatehouse username: %v", rec.UserName, err)
	}
	if services.IsReservedUsername(name) {
		return nil, trace.BadParameter("userName %q cannot be a Gatehouse username: names starting with %q are reserved for built-in identities", rec.UserName, services.ReservedUsernamePrefix)
	}
	if len(rec.ExternalID) > scimstore.MaxIndexedValueBytes {
		return nil, trace.BadParameter("externalId is over %d bytes", scimstore.MaxIndexedValueBytes)
	}
	// userName, externalId and active are kept in the record's own fields, and
	// a response takes them (and schemas) from there whatever the
	// attributes say: a second copy would only take room, twice (the record
	// and the account's label).
	attrs, err := cleanAttributes(rec.Attributes, "password", "id", "meta", "groups", "userName", "externalId", "active", "schemas")
	if err != nil {
		return nil, trace.Wrap(err)
	}
	out := *rec
	out.Attributes = attrs
	out.Groups = nil
	return &out, nil
}

// cleanAttributes parses raw as a JSON object, drops the named attributes
// (case-insensitively, as SCIM attribute names are) and bounds the size.
func cleanAttributes(raw json.RawMessage, drop ...string) (json.RawMessage, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return json.RawMessage("{}"), nil
	}
	if out, ok := cleanCanonical(raw, drop); ok {
		if len(out) > services.MaxSCIMAttributesBytes {
			return nil, trace.BadParameter("SCIM attributes are %d bytes, over the limit of %d", len(out), services.MaxSCIMAttributesBytes)
		}
		return out, nil
	}
	return cleanAttributesDecoded(raw, drop)
}

// cleanAttributesDecoded is cleanAttributes through encoding/json, for what cleanCanonical
// declines.
func cleanAttributesDecoded(raw json.RawMessage, drop []string) (json.RawMessage, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, trace.BadParameter("SCIM attributes must be a JSON object")
	}
	for k := range obj {
		for _, d := range drop {
			if strings.EqualFold(k, d) {
				delete(obj, k)
			}
		}
	}
	out, err := json.Marshal(obj)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if len(out) > services.MaxSCIMAttributesBytes {
		return nil, trace.BadParameter("SCIM attributes are %d bytes, over the limit of %d", len(out), services.MaxSCIMAttributesBytes)
	}
	return out, nil
}

// readUser reads the Gatehouse user whose name is the canonical form of
// name, secrets included (so that rewriting it keeps them); nil if missing.
func (p *Provisioner) readUser(ctx context.Context, name string) (*typesv1.User, error) {
	u, err := services.ReadUser(ctx, p.cfg.Backend, canonical.Username(name))
	return u, trace.Wrap(err)
}

// readLock reads a lock by name; nil if missing.
func (p *Provisioner) readLock(ctx context.Context, name string) (*typesv1.Lock, error) {
	l, err := services.ReadLock(ctx, p.cfg.Backend, name)
	return l, trace.Wrap(err)
}

// ownsUser reports whether u is the Gatehouse user of record id of plugin.
func ownsUser(plugin string, u *typesv1.User, id string) bool {
	l := u.GetMetadata().GetLabels()
	return l[services.LabelOrigin] == plugin && l[services.LabelSCIMID] == id
}

// adoptable reports whether u is a temporary user created by a login
// through the plugin's SAML connector, which SCIM may turn into the
// SCIM-managed account.
func adoptable(pc *pluginContext, u *typesv1.User) bool {
	conn := u.GetSpec().GetCreatedBy().GetConnector()
	return u.GetMetadata().GetExpires() != nil &&
		conn.GetType() == ConnectorTypeSAML &&
		conn.GetId() == pc.okta.GetSamlConnector() &&
		services.SCIMOrigin(u) == ""
}

// ownsLock reports whether l is a SCIM lock written by plugin.
func ownsLock(plugin string, l *typesv1.Lock) bool {
	lb := l.GetMetadata().GetLabels()
	return lb[services.LabelOrigin] == plugin && lb[LabelPlugin] == plugin && scimrecord.IsLockReason(lb[scimrecord.LabelReason])
}

func groupNames(rec *scimrecord.UserRecord) []string {
	names := make([]string, 0, len(rec.Groups))
	for _, g := range rec.Groups {
		if g.DisplayName != "" {
			names = append(names, g.DisplayName)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// buildUser returns the Gatehouse user for an active record, named by the
// canonical form of its userName, with roles. base is the stored user it
// replaces (ours, or a temporary SAML user being adopted), nil for a new one:
// its traits other than groups, its labels, description, incarnation and
// local_auth are kept; its expiry is not.
func buildUser(pc *pluginContext, rec *scimrecord.UserRecord, base *typesv1.User, roles []string, now time.Time) *typesv1.User {
	u := &typesv1.User{
		Kind:     services.KindUser,
		Version:  services.V1,
		Metadata: &typesv1.Metadata{Name: canonical.Username(rec.UserName), Labels: map[string]string{}},
		Spec:     &typesv1.UserSpec{Traits: map[string]*structpb.ListValue{}},
	}
	identity := rec.ExternalID
	if identity == "" {
		identity = rec.UserName
	}
	created := timestamppb.New(now)
	if base != nil {
		for k, v := range base.GetMetadata().GetLabels() {
			u.Metadata.Labels[k] = v
		}
		u.Metadata.Description = base.GetMetadata().GetDescription()
		for k, v := range base.GetSpec().GetTraits() {
			u.Spec.Traits[k] = proto.Clone(v).(*structpb.ListValue)
		}
		u.Spec.LocalAuth = base.GetSpec().GetLocalAuth()
		u.Spec.Incarnation = base.GetSpec().GetIncarnation()
		if ownsUser(pc.name, base, rec.ID) && base.GetSpec().GetCreatedBy().GetTime() != nil {
			created = base.GetSpec().GetCreatedBy().GetTime()
		}
	}
	u.Metadata.Labels[services.LabelOrigin] = pc.name
	u.Metadata.Labels[LabelPlugin] = pc.name
	u.Metadata.Labels[services.LabelSCIMID] = rec.ID
	// The attributes live in the record only. Builds before this one copied
	// them into a label of the user; a base written then loses the copy here.
	delete(u.Metadata.Labels, services.LabelSCIMAttributes)
	if groups := groupNames(rec); len(groups) > 0 {
		u.Spec.Traits[TraitGroups] = services.NewTraits(map[string][]string{TraitGroups: groups})[TraitGroups]
	} else {
		delete(u.Spec.Traits, TraitGroups)
	}
	u.Spec.Roles = roles
	u.Spec.CreatedBy = &typesv1.CreatedBy{
		Time:      created,
		Connector: &typesv1.ConnectorRef{Type: ConnectorTypeSAML, Id: pc.okta.GetSamlConnector(), Identity: identity},
	}
	return u
}

// buildLock returns the deactivation lock of rec.
func buildLock(pc *pluginContext, rec *scimrecord.UserRecord, deleted bool, now time.Time) *typesv1.Lock {
	reason, what := scimrecord.ReasonDeactivation, "deactivated"
	if deleted {
		reason, what = scimrecord.ReasonDeletion, "deleted"
	}
	l := &typesv1.Lock{
		Kind:    services.KindLock,
		Version: services.V1,
		Metadata: &typesv1.Metadata{
			Name: LockName(pc.name, rec.UserName),
			Labels: map[string]string{
				services.LabelOrigin:   pc.name,
				LabelPlugin:            pc.name,
				scimrecord.LabelReason: reason,
				services.LabelSCIMID:   rec.ID,
			},
		},
		Spec: &typesv1.LockSpec{
			Target: &typesv1.LockTarget{User: canonical.Username(rec.UserName)},
			Message: fmt.Sprintf("%s in Okta (SCIM, plugin %q, SCIM id %s, externalId %q) at %s",
				what, pc.name, rec.ID, rec.ExternalID, now.UTC().Format(time.RFC3339)),
			CreatedBy: actor(pc.name),
			CreatedAt: timestamppb.New(now),
		},
	}
	if pc.lockTTL > 0 {
		l.Metadata.Expires = timestamppb.New(now.Add(pc.lockTTL))
	}
	return l
}

// userEvent is an audit event about record rec.
func userEvent(pc *pluginContext, typ string, rec *scimrecord.UserRecord, msg string) *typesv1.AuditEvent {
	ev := &typesv1.AuditEvent{
		Type:     typ,
		User:     actor(pc.name),
		Resource: services.KindUser + "/" + rec.UserName,
		Message:  msg,
		Fields: map[string]string{
			"plugin":      pc.name,
			"scim_id":     rec.ID,
			"external_id": rec.ExternalID,
			"username":    rec.UserName,
		},
	}
	if pc.via != "" {
		ev.Fields["via"] = pc.via
	}
	return ev
}

func lockEvent(pc *pluginContext, typ string, l *typesv1.Lock, msg string) *typesv1.AuditEvent {
	ev := &typesv1.AuditEvent{
		Type:     typ,
		User:     actor(pc.name),
		Resource: services.KindLock + "/" + l.GetMetadata().GetName(),
		Message:  msg,
		Fields: map[string]string{
			"plugin": pc.name,
			"target": l.GetSpec().GetTarget().GetUser(),
			"reason": l.GetMetadata().GetLabels()[scimrecord.LabelReason],
		},
	}
	if pc.via != "" {
		ev.Fields["via"] = pc.via
	}
	return ev
}

// outcome is what a planned user write did, for status counters.
type outcome struct {
	provisioned bool
	deactivated bool
	locks       int
}

// taken reports whether another record than id holds value of attr.
func (p *Provisioner) taken(ctx context.Context, pc *pluginContext, attr, value, id string) (bool, error) {
	holder, err := p.store.LookupUserID(ctx, pc.name, attr, value)
	switch {
	case trace.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, trace.Wrap(err)
	}
	return holder != id, nil
}

// readUserState reads everything planUser decides the change from old (nil:
// a new record) to next (nil: delete the record) on.
func (p *Provisioner) readUserState(ctx context.Context, pc *pluginContext, old, next *scimrecord.UserRecord, checkByWriting bool) (*userState, error) {
	st := &userState{old: old, next: next, incarnation: services.NewIncarnation(), now: p.cfg.Clock.Now()}
	target := next
	if target == nil {
		target = old
	}
	renamed := old != nil && !canonical.Equal(old.UserName, target.UserName)
	var err error
	if next != nil {
		// A new record's name was just looked up by CreateUser; a record
		// that takes it meanwhile makes the write's NotExists condition on
		// the index entry fail, and the retry finds it. Only a rename needs
		// the lookup here.
		if renamed {
			if st.userNameTaken, err = p.taken(ctx, pc, scimstore.AttrUserName, next.UserName, next.ID); err != nil {
				return nil, trace.Wrap(err)
			}
		}
		if next.Active {
			if st.grantable, err = p.grantable(ctx, pc, candidateRoles(pc, next)); err != nil {
				return nil, trace.Wrap(err)
			}
		}
	}
	if renamed {
		if st.oldUser, err = p.readUser(ctx, old.UserName); err != nil {
			return nil, trace.Wrap(err)
		}
		if st.oldLock, err = p.readLock(ctx, LockName(pc.name, old.UserName)); err != nil {
			return nil, trace.Wrap(err)
		}
	}
	switch {
	case checkByWriting && old == nil:
		// A new record: no account under the name, which the plan's
		// NotExists on the user checks.
	case checkByWriting && old.Active:
		st.user = userWrittenWith(pc, old)
	default:
		if st.user, err = p.readUser(ctx, target.UserName); err != nil {
			return nil, trace.Wrap(err)
		}
	}
	// An active record updated in place under the same name neither writes
	// nor lifts a lock (planUser), so the most common SCIM write, a profile
	// update, skips that read.
	if !(old != nil && old.Active && next != nil && next.Active && !renamed) && !checkByWriting {
		if st.lock, err = p.readLock(ctx, LockName(pc.name, target.UserName)); err != nil {
			return nil, trace.Wrap(err)
		}
	}
	return st, nil
}

// writeUser reads the state, plans the change from old (nil: a new record)
// to next (nil: delete the record) with planUser, and commits the plan in
// ONE AtomicWrite: the record and indexes, the Gatehouse user (created,
// rewritten, adopted or deleted), the deactivation lock (written or removed)
// and the audit events. Every key is conditioned on what was read;
// trace.CompareFailed means something changed meanwhile and the caller may
// re-plan from a fresh read. A refused transition is audited and returned
// as trace.AlreadyExists.
func (p *Provisioner) writeUser(ctx context.Context, pc *pluginContext, old, next *scimrecord.UserRecord, checkByWriting bool) (string, outcome, error) {
	st, err := p.readUserState(ctx, pc, old, next, checkByWriting)
	if err != nil {
		return "", outcome{}, trace.Wrap(err)
	}
	plan, err := planUser(pc, st)
	if err != nil {
		var r *refusal
		if errors.As(err, &r) {
			p.auditRefusal(ctx, pc, r)
			return "", outcome{}, trace.Wrap(r.err)
		}
		return "", outcome{}, trace.Wrap(err)
	}
	if checkByWriting && old == nil {
		// planUser leaves an absent lock alone; a create that did not read
		// the lock name still requires it absent (a lock there is one to
		// lift, which the next, reading attempt plans).
		plan.writes.RequireNoLock(LockName(pc.name, next.UserName))
	}
	rev, err := p.commit(ctx, &plan.writes, plan.events)
	if err != nil {
		return "", outcome{}, trace.Wrap(err)
	}
	p.noteDropped(pc.name, plan.dropped)
	return rev, plan.out, nil
}

// userWrittenWith returns what the Gatehouse user under rec's name is if it
// was last written by the same AtomicWrite as rec: the plugin's account for
// rec, at rec's revision. A backend gives every item of one AtomicWrite the
// revision that write returns, and no two writes the same revision
// (backend.Backend), so a user still at rec's revision is the one that write
// built for rec (buildUser: ours, with rec's id), and nothing else can be.
// A plan made on it conditions the user on that revision, so if the user was
// written since, deleted, or never written with rec, the write fails with
// nothing written and the next attempt reads the user. Only the fields
// planUser reads for an account it deletes are set: name, revision, and
// the labels that make it the plugin's.
func userWrittenWith(pc *pluginContext, rec *scimrecord.UserRecord) *typesv1.User {
	return &typesv1.User{
		Kind:    services.KindUser,
		Version: services.V1,
		Metadata: &typesv1.Metadata{
			Name:     canonical.Username(rec.UserName),
			Revision: rec.Revision,
			Labels: map[string]string{
				services.LabelOrigin: pc.name,
				LabelPlugin:          pc.name,
				services.LabelSCIMID: rec.ID,
			},
		},
	}
}

// mayPlanUnread reports whether the change from old to next may be planned
// without reading what it will find under the name, the write itself
// checking what the plan assumed; the caller's next attempt, which reads,
// plans as before if it was wrong.
//   - A create of an active record assumes nothing is there: its plan puts
//     the index entry and the user under NotExists, and writeUser requires
//     the lock name absent.
//   - A deactivation or deletion under the record's own name (the SCIM
//     write that must be fastest) assumes no lock, and, for an active
//     record, that the account is the one written with the record
//     (userWrittenWith): its plan writes the plugin's lock under NotExists
//     or never looks at the lock (planUser), and deletes the account at
//     that revision.
func mayPlanUnread(old, next *scimrecord.UserRecord) bool {
	if old == nil {
		return next != nil && next.Active
	}
	if next == nil {
		return true
	}
	return !next.Active && canonical.Equal(old.UserName, next.UserName)
}

// commit writes plan and events in one AtomicWrite.
func (p *Provisioner) commit(ctx context.Context, plan *services.Plan, events []*typesv1.AuditEvent) (string, error) {
	if err := p.appendEvents(plan, events); err != nil {
		return "", trace.Wrap(err)
	}
	rev, err := plan.Commit(ctx, p.cfg.Backend)
	return rev, trace.Wrap(err)
}

// auditRefusal records a refused transition: what the client does not
// learn (which account holds the name) goes here.
func (p *Provisioner) auditRefusal(ctx context.Context, pc *pluginContext, r *refusal) {
	p.cfg.Logger.WarnContext(ctx, "Refused a SCIM write onto an account outside the plugin's reach.",
		"plugin", pc.name, "user", r.event.GetFields()["username"], "holder", r.event.GetFields()["holder"])
	if err := p.cfg.Audit.Emit(ctx, r.event); err != nil {
		p.cfg.Logger.WarnContext(ctx, "Failed to audit a refused SCIM write.", "plugin", pc.name, "error", err)
	}
}

// account updates the status counters after a successful write.
func (p *Provisioner) account(plugin string, o outcome) {
	if o.provisioned {
		p.countProvisioned(plugin)
	}
	if o.deactivated || o.locks > 0 {
		p.status.update(plugin, func(d *statusDelta) {
			if o.deactivated {
				d.deactivated++
			}
			d.locks += int64(o.locks)
		})
	}
}

// CreateUser provisions a user. A userName whose record exists but is
// inactive reactivates that record (same id) with the new attributes; an
// active one is trace.AlreadyExists. A Gatehouse user of that name is
// adopted if it is a temporary user of the plugin's SAML connector, and
// refused (trace.AlreadyExists, left untouched) otherwise.
func (p *Provisioner) CreateUser(ctx context.Context, plugin string, rec *scimrecord.UserRecord) (*scimrecord.UserRecord, error) {
	pc, in, err := loadAndNormalize(ctx, p, plugin, rec, normalizeUser)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	for attempt := range maxAttempts {
		now := p.cfg.Clock.Now().UTC()
		// The first attempt of the common create (an active record) plans on
		// nothing being under the name, and its write checks that; from the
		// second attempt on, what is there is read.
		fresh := attempt == 0 && mayPlanUnread(nil, in)
		var existing *scimrecord.UserRecord
		var err error
		if !fresh {
			existing, err = p.store.FindUser(ctx, pc.name, scimstore.AttrUserName, in.UserName)
		}
		var old, next *scimrecord.UserRecord
		switch {
		case err != nil:
			return nil, trace.Wrap(err)
		case existing != nil && (existing.Active || !in.Active):
			return nil, trace.AlreadyExists("a SCIM user with userName %q already exists", in.UserName)
		case existing != nil:
			old = existing
			n := *existing
			n.UserName, n.ExternalID, n.Attributes, n.Active = in.UserName, in.ExternalID, in.Attributes, true
			n.LastModified = now
			next = &n
		default:
			n := *in
			n.ID, n.Created, n.LastModified, n.Revision = newResourceID(), now, now, ""
			next = &n
		}
		rev, o, err := p.writeUser(ctx, pc, old, next, fresh)
		if trace.IsCompareFailed(err) {
			continue
		}
		if err != nil {
			return nil, trace.Wrap(err)
		}
		p.account(pc.name, o)
		if old == nil {
			p.counts.add(countKey{pc.name, "users"}, 1)
		}
		next.Revision = rev
		return next, nil
	}
	return nil, trace.CompareFailed("SCIM user %q kept changing while it was being created; try again", in.UserName)
}

// UpdateUser replaces the record rec.ID if it is still at rec.Revision
// (required; trace.CompareFailed otherwise) with rec's userName,
// externalId, active and attributes; id, groups and created are kept. An
// active change deactivates (user deleted and locked) or reactivates (user
// recreated, the plugin's lock removed) in the same atomic write.
//
// read, when not nil, is the record as GetUser returned it (unmodified) at
// rec.Revision, which the caller read to build rec: the first attempt plans
// on it instead of reading the record a second time. That is safe because
// the write conditions the record on read's revision and every write gives
// its items a revision no other write has: if the record is not at that
// revision any more, the write fails with nothing written and the next
// attempt reads it.
func (p *Provisioner) UpdateUser(ctx context.Context, plugin string, read, rec *scimrecord.UserRecord) (*scimrecord.UserRecord, error) {
	if rec == nil || rec.Revision == "" {
		return nil, trace.BadParameter("updating a SCIM user needs the revision it was read at")
	}
	if read != nil && read.ID != rec.ID {
		return nil, trace.BadParameter("SCIM user %q was read to update %q", read.ID, rec.ID)
	}
	pc, in, err := loadAndNormalize(ctx, p, plugin, rec, normalizeUser)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	for attempt := range maxAttempts {
		old := read
		if attempt > 0 || old == nil {
			if old, err = p.store.GetUser(ctx, pc.name, rec.ID); err != nil {
				return nil, trace.Wrap(err)
			}
		}
		if old.Revision != rec.Revision {
			return nil, trace.CompareFailed("SCIM user %q was changed since it was read", rec.ID)
		}
		n := *old
		n.UserName, n.ExternalID, n.Attributes, n.Active = in.UserName, in.ExternalID, in.Attributes, in.Active
		if sameUserRecord(old, &n) {
			// RFC 7644 §3.5.2.1: an update that changes nothing (a PATCH add of a value already
			// there, a PUT of what a GET returned) is not written: lastModified and the
			// version stay. The account is checked too, so that one that drifted from the
			// record (roles after a settings change) is still brought in step by the write.
			n.Attributes = old.Attributes
			unchanged, err := p.userUnchanged(ctx, pc, old, &n)
			if err != nil {
				return nil, trace.Wrap(err)
			}
			if unchanged {
				return old, nil
			}
		}
		n.LastModified = p.cfg.Clock.Now().UTC()
		rev, o, err := p.writeUser(ctx, pc, old, &n, attempt == 0 && mayPlanUnread(old, &n))
		if trace.IsCompareFailed(err) {
			// Re-read: if the record itself changed, the next round says
			// so; if only the user or lock did, the change is re-planned.
			continue
		}
		if err != nil {
			return nil, trace.Wrap(err)
		}
		p.account(pc.name, o)
		n.Revision = rev
		return &n, nil
	}
	return nil, trace.CompareFailed("SCIM user %q kept changing while it was being updated; try again", rec.ID)
}

// sameUserRecord reports whether next holds what old holds: the same userName (spelling
// included: it is returned), externalId, active and attributes (compared as JSON values, so that
// key order and spacing do not count).
func sameUserRecord(old, next *scimrecord.UserRecord) bool {
	return old.UserName == next.UserName && old.ExternalID == next.ExternalID && old.Active == next.Active &&
		sameJSON(old.Attributes, next.Attributes)
}

// sameJSON reports whether a and b are the same JSON value; numbers are compared as written.
func sameJSON(a, b json.RawMessage) bool {
	if bytes.Equal(a, b) {
		return true
	}
	decode := func(raw json.RawMessage) (any, bool) {
		if len(bytes.TrimSpace(raw)) == 0 {
			return map[string]any{}, true
		}
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		var v any
		return v, d.Decode(&v) == nil
	}
	av, aok := decode(a)
	bv, bok := decode(b)
	return aok && bok && reflect.DeepEqual(av, bv)
}

// userUnchanged reports whether writing next (the same record as old) would change nothing:
// planUser, run as for a real write, plans nothing beyond rewriting the record itself and the
// account with exactly the content it has. Any other action (an account to create, delete or
// bring in step, a lock) means the write is needed; a refusal is left to the real write, which
// audits it.
func (p *Provisioner) userUnchanged(ctx context.Context, pc *pluginContext, old, next *scimrecord.UserRecord) (bool, error) {
	st, err := p.readUserState(ctx, pc, old, next, false)
	if err != nil {
		return false, trace.Wrap(err)
	}
	plan, err := planUser(pc, st)
	if err != nil {
		return false, nil
	}
	for _, w := range plan.writes.Writes() {
		switch {
		case w.Kind == services.PlanKindSCIMUser && w.Name == old.ID:
		case st.user != nil && w.Put && w.Kind == services.KindUser && w.Name == st.user.GetMetadata().GetName():
			planned, err := w.User()
			if err != nil {
				return false, trace.Wrap(err)
			}
			stored := proto.Clone(st.user).(*typesv1.User)
			stored.GetMetadata().Revision = ""
			planned.GetMetadata().Revision = ""
			if !proto.Equal(planned, stored) {
				return false, nil
			}
		default:
			return false, nil
		}
	}
	return true, nil
}

// DeleteUser deletes record id, its indexes and its Gatehouse user, and
// locks the username, in one atomic write: like a deactivation, without the
// record. trace.NotFound if there is no such record.
func (p *Provisioner) DeleteUser(ctx context.Context, plugin, id string) error {
	pc, err := p.loadPlugin(ctx, plugin)
	if err != nil {
		return trace.Wrap(err)
	}
	for attempt := range maxAttempts {
		old, err := p.store.GetUser(ctx, pc.name, id)
		if err != nil {
			return trace.Wrap(err)
		}
		_, o, err := p.writeUser(ctx, pc, old, nil, attempt == 0 && mayPlanUnread(old, nil))
		if trace.IsCompareFailed(err) {
			continue
		}
		if err != nil {
			return trace.Wrap(err)
		}
		p.account(pc.name, o)
		p.counts.add(countKey{pc.name, "users"}, -1)
		return nil
	}
	return trace.CompareFailed("SCIM user %q kept changing while it was being deleted; try again", id)
}

// GetUser reads record id; trace.NotFound if none.
func (p *Provisioner) GetUser(ctx context.Context, plugin, id string) (*scimrecord.UserRecord, error) {
	rec, err := p.store.GetUser(ctx, plugin, id)
	return rec, trace.Wrap(err)
}

// LookupUsers finds the records with "userName" (case-insensitive),
// "externalId" (not unique: any number) or "id" equal to value, from an
// index, in id order; none is an empty list.
func (p *Provisioner) LookupUsers(ctx context.Context, plugin, attr, value string) ([]*scimrecord.UserRecord, error) {
	recs, err := p.store.LookupUsers(ctx, plugin, attr, value)
	return recs, trace.Wrap(err)
}

// ListUsers returns up to limit records after startAfterID, in id order.
func (p *Provisioner) ListUsers(ctx context.Context, plugin, startAfterID string, limit int) ([]*scimrecord.UserRecord, error) {
	recs, err := p.store.ListUsers(ctx, plugin, startAfterID, limit)
	return recs, trace.Wrap(err)
}

// CountUsers counts the records of plugin, active and inactive.
func (p *Provisioner) CountUsers(ctx context.Context, plugin string) (int, error) {
	n, err := p.counts.get(ctx, countKey{plugin, "users"}, p.cfg.Clock.Now(), func(ctx context.Context) (int, error) {
		return p.store.CountUsers(ctx, plugin)
	})
	return n, trace.Wrap(err)
}
