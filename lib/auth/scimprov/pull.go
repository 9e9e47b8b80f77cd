package scimprov

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/safetext"
	"github.com/gatehouse/gatehouse/lib/scim/scimrecord"
	"github.com/gatehouse/gatehouse/lib/services/scimstore"
)

// Pulled users: user sync (lib/auth/usersync) reads users from the identity
// provider's API instead of receiving SCIM requests, and applies each one
// here as a SCIM record keyed by the provider's user id (externalId). Every
// change goes through writeUser and planUser, so pulled users follow the
// same origin, adoption, reach, canonical-name, incarnation and lock rules
// as SCIM users, in the same single atomic writes, with the same audit
// events (marked via="user sync").

// ViaUserSync marks audit events of pulled users.
const ViaUserSync = "user sync"

// PulledUser is one user as the provider's API reports it.
type PulledUser struct {
	// ExternalID is the provider's user id (Okta's 00u...).
	ExternalID string
	// UserName is the login; the account is its canonical form.
	UserName string
	// Active is false for a user who must not have an account
	// (unassigned, deactivated, suspended).
	Active bool
	// Attributes are stored as the record's attributes (a JSON object).
	Attributes json.RawMessage
	// Groups are the user's groups; their names map to roles through the
	// plugin's SAML connector.
	Groups []scimrecord.GroupRef
}

// PullResult is what applying a pulled user did.
type PullResult int

// Pull results.
const (
	PullUnchanged PullResult = iota
	PullCreated
	PullUpdated
	PullReactivated
	PullDeactivated
)

// ApplyPulledUser brings plugin's record of in.ExternalID, and the account
// it stands for, in step with in. An inactive user without a record is
// left alone. A name held by an account outside the plugin's reach is
// refused (trace.AlreadyExists, audited), as is an externalId carried by
// several records (trace.AlreadyExists). A login already used by another
// active record is trace.AlreadyExists: that record is deactivated first
// (by a full pass) if its user is gone.
func (p *Provisioner) ApplyPulledUser(ctx context.Context, plugin string, in PulledUser) (PullResult, error) {
	pc, err := p.loadPlugin(ctx, plugin)
	if err != nil {
		return PullUnchanged, trace.Wrap(err)
	}
	pc.via = ViaUserSync
	if in.ExternalID == "" {
		return PullUnchanged, trace.BadParameter("a pulled user needs its provider id")
	}
	// An active user is refused when the provider sent a control
	// character or a bidirectional override (they would reach the UI,
	// gatectl and the logs; a real Okta never sends one). An inactive one is
	// never refused for it: deprovisioning does not wait on a clean profile.
	if in.Active {
		if err := checkPulledText(in); err != nil {
			return PullUnchanged, trace.Wrap(err)
		}
	}
	norm, err := normalizeUser(&scimrecord.UserRecord{UserName: in.UserName, ExternalID: in.ExternalID, Active: in.Active, Attributes: in.Attributes})
	if err != nil {
		return PullUnchanged, trace.Wrap(err)
	}
	groups := slices.Clone(in.Groups)
	slices.SortFunc(groups, func(a, b scimrecord.GroupRef) int { return strings.Compare(a.ID, b.ID) })
	for range maxAttempts {
		now := p.cfg.Clock.Now().UTC()
		recs, err := p.store.LookupUsers(ctx, pc.name, scimstore.AttrExternalID, in.ExternalID)
		if err != nil {
			return PullUnchanged, trace.Wrap(err)
		}
		var old *scimrecord.UserRecord
		switch len(recs) {
		case 0:
		case 1:
			old = recs[0]
		default:
			return PullUnchanged, trace.AlreadyExists("%d SCIM records of plugin %q carry externalId %q; delete the extra ones", len(recs), pc.name, in.ExternalID)
		}
		var next *scimrecord.UserRecord
		switch {
		case old == nil && !norm.Active:
			return PullUnchanged, nil
		case old == nil:
			// A record of the same login under another externalId (an
			// inactive one is reused, as SCIM's create does).
			byName, err := p.store.LookupUser(ctx, pc.name, scimstore.AttrUserName, norm.UserName)
			switch {
			case err == nil && byName.Active:
				return PullUnchanged, trace.AlreadyExists("login %q is held by another active record of plugin %q (externalId %q)", norm.UserName, pc.name, byName.ExternalID)
			case err == nil:
				old = byName
			case !trace.IsNotFound(err):
				return PullUnchanged, trace.Wrap(err)
			}
		}
		if old == nil {
			next = &scimrecord.UserRecord{ID: newResourceID(), Created: now}
		} else {
			n := *old
			next = &n
		}
		next.UserName, next.ExternalID, next.Active, next.Attributes, next.Groups = norm.UserName, norm.ExternalID, norm.Active, norm.Attributes, groups
		next.LastModified = now
		if old != nil && sameUserRecord(old, next) && slices.Equal(old.Groups, next.Groups) {
			next.Attributes = old.Attributes
			unchanged, err := p.userUnchanged(ctx, pc, old, next)
			if err != nil {
				return PullUnchanged, trace.Wrap(err)
			}
			if unchanged {
				return PullUnchanged, nil
			}
		}
		_, o, err := p.writeUser(ctx, pc, old, next, false)
		if trace.IsCompareFailed(err) {
			continue
		}
		if err != nil {
			return PullUnchanged, trace.Wrap(err)
		}
		p.account(pc.name, o)
		switch {
		case old == nil:
			p.counts.add(countKey{pc.name, "users"}, 1)
			return PullCreated, nil
		case old.Active && !next.Active:
			return PullDeactivated, nil
		case !old.Active && next.Active:
			return PullReactivated, nil
		}
		return PullUpdated, nil
	}
	return PullUnchanged, trace.CompareFailed("pulled user %q kept changing while it was being applied; the next run retries", in.ExternalID)
}

// checkPulledText refuses a pulled user whose login, id, group or profile
// text holds a character lib/safetext calls unsafe.
func checkPulledText(in PulledUser) error {
	check := func(err error) error {
		if err != nil {
			return trace.BadParameter("%v", err)
		}
		return nil
	}
	if err := check(safetext.CheckName("the login", in.UserName)); err != nil {
		return err
	}
	if err := check(safetext.CheckName("the user id", in.ExternalID)); err != nil {
		return err
	}
	for _, g := range in.Groups {
		if err := check(safetext.CheckName("a group id", g.ID)); err != nil {
			return err
		}
		if err := check(safetext.CheckName("the name of group "+strconv.Quote(g.ID), g.DisplayName)); err != nil {
			return err
		}
	}
	if len(in.Attributes) == 0 {
		return nil
	}
	var attrs any
	if err := json.Unmarshal(in.Attributes, &attrs); err != nil {
		return trace.BadParameter("the profile is not JSON")
	}
	return check(checkJSONText("profile", attrs))
}

// checkJSONText checks every string and object key of a decoded JSON value
// as free text (lib/safetext's CheckText; keys as names).
func checkJSONText(path string, v any) error {
	switch t := v.(type) {
	case string:
		return safetext.CheckText(path, t)
	case []any:
		for _, e := range t {
			if err := checkJSONText(path, e); err != nil {
				return err
			}
		}
	case map[string]any:
		for k, e := range t {
			if err := safetext.CheckName("an attribute name in "+path, k); err != nil {
				// The error must not echo the refused text: the key is not named.
				return err
			}
			if err := checkJSONText(path+"."+k, e); err != nil {
				return err
			}
		}
	}
	return nil
}
