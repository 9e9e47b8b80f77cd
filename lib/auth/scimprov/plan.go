package scimprov

import (
	"fmt"
	"slices"
	"time"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/canonical"
	"github.com/gatehouse/gatehouse/lib/scim/scimrecord"
	"github.com/gatehouse/gatehouse/lib/services"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// A SCIM user transition is decided by planUser, a pure function of what was
// read (userState) and the plugin's settings: it returns the writes to commit
// in one AtomicWrite (a services.Plan: keys and stored bytes are built in
// lib/services), or a refusal. All reads happen before it (readUserState)
// and the write after it (commit), so the rules below can be tested as a
// table without a backend.
//
// The rules (the reach of SCIM, invariant 1 in ARCHITECTURE.md):
//
//   - The Gatehouse account a record stands for is the user named by the
//     canonical form of the record's userName (lib/canonical).
//   - SCIM writes an account only if it is ours (origin = this plugin and the
//     same SCIM id) or a temporary user created by a login through the
//     plugin's own SAML connector (adoptable). Any other account is foreign.
//   - Creating, renaming onto, or (re)activating a record whose name a
//     foreign account holds is refused with AlreadyExists: the client learns
//     only that the name is taken, the audit log learns who holds it.
//     Nothing is written.
//   - Deactivating or deleting a record whose name is now held by a foreign
//     account (ours was deleted out of band and the name reused) touches
//     neither that account nor its locks: the record changes alone.
//   - A deactivation lock is written only for a name whose account SCIM
//     deletes in the same write, or whose account of ours vanished out of
//     band while the record was active. A lock is removed only if this
//     plugin wrote it.
//   - A user created, re-created, reactivated or renamed gets a fresh
//     incarnation, which voids every credential issued before; an update in
//     place and an adoption keep the account's incarnation.
//   - Roles are the plugin's default_roles plus the connector's mapping of
//     the record's groups, cut to the roles the plugin may grant; what is cut
//     is reported (event and status).

// userState is everything a user transition is decided on.
type userState struct {
	// old is the record before the change (nil: a new record); next is the
	// record after it (nil: the record is deleted).
	old, next *scimrecord.UserRecord
	// userNameTaken says that another record of the plugin holds next's
	// userName (canonically). externalId is not unique (RFC 7643 §3.1
	// leaves it to the client; the Gatehouse account is keyed by the
	// canonical userName, and externalId is only recorded as the connector
	// identity, never used to find an account).
	userNameTaken bool
	// oldUser is the Gatehouse user at old's name, read only when the
	// canonical name changes.
	oldUser *typesv1.User
	// user is the Gatehouse user at the target's name (next, or old when the
	// record is deleted).
	user *typesv1.User
	// lock is the plugin's lock name for the target; oldLock for old's name
	// when the name changes.
	lock, oldLock *typesv1.Lock
	// grantable says, for each role the record would get, whether the plugin
	// may grant it.
	grantable map[string]bool
	// incarnation is fresh: the incarnation of a user the plan creates.
	incarnation string
	now         time.Time
}

// userPlan is what planUser decided: the backend actions (records, user,
// locks) and the audit events to write with them, in one AtomicWrite.
type userPlan struct {
	writes services.Plan
	events []*typesv1.AuditEvent
	out    outcome
	// dropped are the roles cut because the plugin may not grant them.
	dropped []string
}

// refusal is a transition SCIM may not make: err goes to the client, event
// (which may name the account in the way) to the audit log.
type refusal struct {
	err   error
	event *typesv1.AuditEvent
}

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

// accountKind is how an existing Gatehouse account relates to the record.
type accountKind int

const (
	accountNone      accountKind = iota // no account holds the name
	accountOurs                         // written by this plugin for this record
	accountAdoptable                    // a temporary user of the plugin's SAML connector
	accountForeign                      // anyone else: out of SCIM's reach
)

func classify(pc *pluginContext, u *typesv1.User, id string) accountKind {
	switch {
	case u == nil:
		return accountNone
	case ownsUser(pc.name, u, id):
		return accountOurs
	case adoptable(pc, u):
		return accountAdoptable
	default:
		return accountForeign
	}
}

// describeAccount says, for the audit log only, whose account u is.
func describeAccount(pc *pluginContext, u *typesv1.User) string {
	origin := services.SCIMOrigin(u)
	conn := u.GetSpec().GetCreatedBy().GetConnector()
	switch {
	case origin == pc.name:
		return fmt.Sprintf("managed by plugin %q under SCIM id %q", pc.name, u.GetMetadata().GetLabels()[services.LabelSCIMID])
	case origin != "":
		return fmt.Sprintf("managed by plugin %q", origin)
	case conn.GetType() != "" && conn.GetId() == pc.okta.GetSamlConnector():
		return fmt.Sprintf("created by %s connector %q and not temporary", conn.GetType(), conn.GetId())
	case conn.GetType() != "":
		return fmt.Sprintf("created by %s connector %q", conn.GetType(), conn.GetId())
	default:
		return "a local user"
	}
}

// takenRefusal refuses a write onto a name that a foreign account holds.
func takenRefusal(pc *pluginContext, rec *scimrecord.UserRecord, holder *typesv1.User, what string) *refusal {
	ev := userEvent(pc, EventUserRefused, rec,
		fmt.Sprintf("SCIM %s refused: the name belongs to an account outside the plugin's reach (%s), which was left untouched",
			what, describeAccount(pc, holder)))
	ev.Outcome = services.OutcomeDenied
	ev.Fields["holder"] = holder.GetMetadata().GetName()
	return &refusal{
		err:   trace.AlreadyExists("userName %q is already taken", rec.UserName),
		event: ev,
	}
}

// grantedRoles returns the roles rec gets (default_roles plus the
// connector's mapping of its groups) that grantable admits, and the ones it
// does not, both sorted.
func grantedRoles(pc *pluginContext, rec *scimrecord.UserRecord, grantable map[string]bool) (roles, dropped []string) {
	for _, r := range candidateRoles(pc, rec) {
		if grantable[r] {
			roles = append(roles, r)
		} else {
			dropped = append(dropped, r)
		}
	}
	return roles, dropped
}

// candidateRoles are the roles rec would get without a ceiling, sorted.
func candidateRoles(pc *pluginContext, rec *scimrecord.UserRecord) []string {
	roles := slices.Clone(pc.okta.GetDefaultRoles())
	roles = append(roles, services.RolesFromAttributes(pc.connector, map[string][]string{TraitGroups: groupNames(rec)})...)
	slices.Sort(roles)
	return slices.Compact(roles)
}

// planUser decides the change from st.old to st.next; see the rules at the
// top of this file. A *refusal error means the transition is not allowed.
func planUser(pc *pluginContext, st *userState) (*userPlan, error) {
	old, next := st.old, st.next
	if old == nil && next == nil {
		return nil, trace.BadParameter("nothing to plan")
	}
	plan := &userPlan{}
	target := next
	if target == nil {
		target = old
	}
	name := canonical.Username(target.UserName)
	renamed := old != nil && canonical.Username(old.UserName) != name
	wasActive := old != nil && old.Active
	wantUser := next != nil && next.Active

	// The record and its indexes.
	if next != nil {
		if st.userNameTaken {
			return nil, trace.AlreadyExists("a SCIM user with userName %q already exists", next.UserName)
		}
		if err := plan.writes.PutSCIMUser(pc.name, old, next); err != nil {
			return nil, trace.Wrap(err)
		}
	} else {
		plan.writes.DeleteSCIMUser(pc.name, old)
	}

	kind := classify(pc, st.user, target.ID)
	if kind == accountForeign && next != nil && (old == nil || renamed || wantUser) {
		what := "update"
		switch {
		case old == nil:
			what = "create"
		case renamed:
			what = "rename"
		case !wasActive:
			what = "reactivation"
		}
		return nil, takenRefusal(pc, target, st.user, what)
	}

	// A renamed active record leaves its old name: the account there is
	// deleted if it is ours (its credentials die with its incarnation).
	if renamed && wasActive && classify(pc, st.oldUser, old.ID) == accountOurs {
		plan.writes.DeleteUser(st.oldUser.GetMetadata().GetName(), st.oldUser.GetMetadata().GetRevision())
		// Renamed and deactivated at once: the account taken away is the
		// one under the old name, so that is the name locked, as any
		// deactivation locks the account it deletes.
		if !wantUser && (st.oldLock == nil || ownsLock(pc.name, st.oldLock)) {
			nl := buildLock(pc, old, next == nil, st.now)
			cond := backend.NotExists()
			if st.oldLock != nil {
				cond = backend.Revision(st.oldLock.GetMetadata().GetRevision())
			}
			if err := plan.writes.PutLock(nl, cond); err != nil {
				return nil, trace.Wrap(err)
			}
			plan.events = append(plan.events, lockEvent(pc, EventLockCreate, nl, nl.GetSpec().GetMessage()))
			plan.out.locks++
		}
	}

	deletesAccount := false
	if wantUser {
		var base *typesv1.User
		cond := backend.NotExists()
		incarnation := st.incarnation
		switch kind {
		case accountOurs:
			base, cond = st.user, backend.Revision(st.user.GetMetadata().GetRevision())
			if wasActive && !renamed && st.user.GetSpec().GetIncarnation() != "" {
				incarnation = st.user.GetSpec().GetIncarnation()
			}
		case accountAdoptable:
			base, cond = st.user, backend.Revision(st.user.GetMetadata().GetRevision())
			if inc := st.user.GetSpec().GetIncarnation(); inc != "" {
				incarnation = inc
			}
		}
		roles, dropped := grantedRoles(pc, next, st.grantable)
		plan.dropped = dropped
		u := buildUser(pc, next, base, roles, st.now)
		u.Spec.Incarnation = incarnation
		// u is this plan's own (buildUser): marshalled without a copy.
		if err := plan.writes.PutOwnedUser(u, cond); err != nil {
			return nil, trace.Wrap(err)
		}
		switch {
		case old == nil:
			plan.events = append(plan.events, userEvent(pc, EventUserCreate, next, "user provisioned over SCIM"))
			plan.out.provisioned = true
		case !wasActive:
			plan.events = append(plan.events, userEvent(pc, EventUserReactivate, next, "user reactivated over SCIM"))
		default:
			plan.events = append(plan.events, userEvent(pc, EventUserUpdate, next, "user updated over SCIM"))
		}
		if kind == accountAdoptable {
			plan.events = append(plan.events, userEvent(pc, EventUserAdopt, next, "temporary SAML user adopted as a SCIM-managed user"))
			plan.out.provisioned = old == nil
		}
		if len(dropped) > 0 {
			ev := userEvent(pc, EventRolesDropped, next, fmt.Sprintf("roles not grantable by plugin %q were not given: %v", pc.name, dropped))
			ev.Fields["dropped_roles"] = fmt.Sprint(dropped)
			plan.events = append(plan.events, ev)
		}
	} else {
		switch kind {
		case accountOurs, accountAdoptable:
			plan.writes.DeleteUser(name, st.user.GetMetadata().GetRevision())
			deletesAccount = true
		}
		msgSuffix := ""
		if kind == accountForeign {
			msgSuffix = "; the name now belongs to an account outside the plugin's reach, which was left untouched"
		}
		switch {
		case next == nil:
			plan.events = append(plan.events, userEvent(pc, EventUserDelete, target, "user deleted over SCIM"+msgSuffix))
			plan.out.deactivated = wasActive
		case wasActive || old == nil:
			plan.events = append(plan.events, userEvent(pc, EventUserDeactivate, target, "user deactivated over SCIM"+msgSuffix))
			plan.out.deactivated = wasActive
		default:
			plan.events = append(plan.events, userEvent(pc, EventUserUpdate, target, "deactivated user's record updated over SCIM"+msgSuffix))
		}
	}

	// Locks on the target name: written when SCIM takes an account away
	// (or ours vanished out of band while the record was active), removed
	// when the record becomes active under that name.
	writeLock := !wantUser && (deletesAccount || (kind == accountNone && wasActive && !renamed))
	removeLock := wantUser && (old == nil || !wasActive || renamed)
	lockName := LockName(pc.name, name)
	l := st.lock
	switch {
	case writeLock && (l == nil || ownsLock(pc.name, l)):
		nl := buildLock(pc, target, next == nil, st.now)
		cond := backend.NotExists()
		if l != nil {
			cond = backend.Revision(l.GetMetadata().GetRevision())
		}
		if err := plan.writes.PutLock(nl, cond); err != nil {
			return nil, trace.Wrap(err)
		}
		plan.events = append(plan.events, lockEvent(pc, EventLockCreate, nl, nl.GetSpec().GetMessage()))
		plan.out.locks++
	case writeLock && canonical.Equal(l.GetSpec().GetTarget().GetUser(), name):
		// Someone else's lock under our name already locks the user.
	case writeLock:
		return nil, trace.AlreadyExists("lock %q exists and was not written by plugin %q", l.GetMetadata().GetName(), pc.name)
	case removeLock && l != nil && ownsLock(pc.name, l):
		plan.writes.DeleteLock(lockName, l.GetMetadata().GetRevision())
		plan.events = append(plan.events, lockEvent(pc, EventLockDelete, l, "deactivation lock removed: user reactivated over SCIM"))
	}
	// A renamed inactive record's lock leaves the old name with it: the
	// account it locked is gone, and the plugin no longer claims that name.
	if renamed && !wasActive && st.oldLock != nil && ownsLock(pc.name, st.oldLock) {
		plan.writes.DeleteLock(st.oldLock.GetMetadata().GetName(), st.oldLock.GetMetadata().GetRevision())
		plan.events = append(plan.events, lockEvent(pc, EventLockDelete, st.oldLock, "deactivation lock removed: user renamed over SCIM"))
	}
	return plan, nil
}

// memberState is what one member's part of a group change is decided on.
type memberState struct {
	// old is the member's record as read; next is it with its new groups.
	old, next *scimrecord.UserRecord
	// user is the Gatehouse user at the member's name (read only for an
	// active member).
	user      *typesv1.User
	grantable map[string]bool
	now       time.Time
}

// planMember decides the writes of a group change for one member: its
// record, and its Gatehouse user's groups and roles if the account is ours.
// An account of another owner under the member's name is never written
// (only the record changes), and neither is an inactive member's (it has no
// account). Dropped roles go into the event's fields, so a member costs at
// most three actions (see membersPerWrite).
func planMember(pc *pluginContext, st *memberState) (*userPlan, error) {
	plan := &userPlan{}
	if err := plan.writes.PutSCIMUser(pc.name, st.old, st.next); err != nil {
		return nil, trace.Wrap(err)
	}
	ev := userEvent(pc, EventUserUpdate, st.next, "group membership changed over SCIM")
	if st.old.Active && classify(pc, st.user, st.old.ID) == accountOurs {
		roles, dropped := grantedRoles(pc, st.next, st.grantable)
		if err := plan.writes.PutOwnedUser(buildUser(pc, st.next, st.user, roles, st.now), backend.Revision(st.user.GetMetadata().GetRevision())); err != nil {
			return nil, trace.Wrap(err)
		}
		if len(dropped) > 0 {
			plan.dropped = dropped
			ev.Message += fmt.Sprintf("; roles not grantable by plugin %q were not given: %v", pc.name, dropped)
			ev.Fields["dropped_roles"] = fmt.Sprint(dropped)
		}
	}
	plan.events = append(plan.events, ev)
	return plan, nil
}
