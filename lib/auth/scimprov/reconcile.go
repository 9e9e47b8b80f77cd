package scimprov

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/services"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// Grants follow the owner's ceiling, not only at the moment they are made.
// A SCIM user's roles are computed when SCIM writes it; when the owner later
// narrows grantable_roles or default_roles, rewrites the connector's
// mapping, or makes a granted role administrative, users written before
// would keep roles the plugin may no longer grant. The reconcile loop
// watches what a grant depends on (the plugin's role settings, the
// connector's mapping, the role definitions) and, at start and whenever it
// changes, recomputes every active SCIM user's roles and rewrites those
// that differ, in conditional writes with an audit event each. A user who
// loses a role has its live sessions ended by the node's user view.

// EventRolesReconciled is a SCIM user whose roles were recomputed because
// what the plugin may grant changed.
const EventRolesReconciled = "scim.roles.reconciled"

// reconcilePause is how long a reconcile pass rests between pages of users
// (wall-clock time: it paces the work, it measures nothing).
const reconcilePause = 25 * time.Millisecond

// reconcilePage is how many records a pass reads between rests: at 100,000
// users a pass rests 200 times, about 5 s in all.
const reconcilePage = 500

// DefaultReconcileInterval is how often the reconcile loop looks for a
// change of what SCIM grants. A look is cheap (the roles, the plugins and
// their fingerprints; no user is read unless one changed), and a short one
// matters twice: a narrowed grant reaches existing users within seconds, and
// a plugin installed just before Okta's first import is marked reconciled
// before the import, instead of having every user it imported scanned for
// nothing at the first look after it.
const DefaultReconcileInterval = 2 * time.Second

// reconcileLoop reconciles grants at start and whenever their inputs change,
// until ctx ends. The ticker is made by the caller, before the goroutine
// starts.
func (p *Provisioner) reconcileLoop(ctx context.Context, t clockwork.Ticker, done chan<- struct{}) {
	defer close(done)
	defer t.Stop()
	seen := map[string]string{} // plugin -> fingerprint of its grant inputs
	for {
		if err := p.reconcileChanged(ctx, seen); err != nil && ctx.Err() == nil {
			p.cfg.Logger.WarnContext(ctx, "Could not reconcile SCIM users' roles with what the plugin may grant; will retry.", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.Chan():
		}
	}
}

// SCIMPlugins returns the names of the plugins SCIM can serve: those with
// Okta settings, in the plugin service's order.
func (p *Provisioner) SCIMPlugins(ctx context.Context) ([]string, error) {
	plugins, err := p.cfg.Plugins.ListAllPlugins(ctx)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	var names []string
	for _, pl := range plugins {
		if pl.GetSpec().GetOkta() != nil {
			names = append(names, pl.GetMetadata().GetName())
		}
	}
	return names, nil
}

// reconcileChanged reconciles each SCIM plugin whose grant inputs differ
// from seen, and records the fingerprints of those it finished.
func (p *Provisioner) reconcileChanged(ctx context.Context, seen map[string]string) error {
	roles, err := p.cfg.Roles.ListAllRoles(ctx)
	if err != nil {
		return trace.Wrap(err)
	}
	names, err := p.SCIMPlugins(ctx)
	if err != nil {
		return trace.Wrap(err)
	}
	for _, name := range names {
		pc, err := p.loadPlugin(ctx, name)
		if err != nil {
			return trace.Wrap(err)
		}
		fp := grantFingerprint(pc, roles)
		if seen[name] == fp {
			continue
		}
		// The fingerprint is kept in the backend too, so that a restart
		// (or another server) does not scan the users again for nothing.
		done, err := p.store.GrantsReconciled(ctx, name, fp)
		if err != nil {
			return trace.Wrap(err)
		}
		if !done {
			n, err := p.ReconcileGrants(ctx, name)
			if err != nil {
				return trace.Wrap(err, "plugin %q", name)
			}
			p.cfg.Logger.InfoContext(ctx, "Reconciled SCIM users' roles with what the plugin may grant.", "plugin", name, "users_changed", n)
			if err := p.store.SetGrantsReconciled(ctx, name, fp); err != nil {
				return trace.Wrap(err)
			}
		}
		seen[name] = fp
	}
	return nil
}

// grantFingerprint sums what SCIM grants depend on for pc: its role
// settings, its connector's mapping and the definition (revision) of every
// role.
func grantFingerprint(pc *pluginContext, roles []*typesv1.Role) string {
	h := sha256.New()
	fmt.Fprintf(h, "default=%q\ngrantable=%q\n", pc.okta.GetDefaultRoles(), pc.okta.GetGrantableRoles())
	if pc.connector != nil {
		fmt.Fprintf(h, "connector=%q@%q\n", pc.connector.GetMetadata().GetName(), pc.connector.GetMetadata().GetRevision())
	}
	for _, r := range roles {
		fmt.Fprintf(h, "role=%q@%q\n", r.GetMetadata().GetName(), r.GetMetadata().GetRevision())
	}
	return hex.EncodeToString(h.Sum(nil))
}

// ReconcileGrants recomputes the roles of every active SCIM user of plugin
// (default_roles plus the connector's mapping of its groups, cut to what
// the plugin may grant now) and rewrites each account of the plugin whose
// stored roles differ, keeping its incarnation. Each rewrite is one
// AtomicWrite conditioned on the record and the user as read, with an
// audit event; one that meets a concurrent change is skipped (that change
// recomputed the roles itself). It returns how many users it rewrote.
func (p *Provisioner) ReconcileGrants(ctx context.Context, plugin string) (int, error) {
	pc, err := p.loadPlugin(ctx, plugin)
	if err != nil {
		return 0, trace.Wrap(err)
	}
	changed := 0
	grantable := map[string]bool{}
	after := ""
	for {
		recs, err := p.store.ListUsers(ctx, pc.name, after, reconcilePage)
		if err != nil {
			return changed, trace.Wrap(err)
		}
		// A pass yields between pages, so that scanning a large plugin
		// never takes the CPU that live requests (a deprovisioning) need.
		if after != "" {
			select {
			case <-ctx.Done():
				return changed, trace.Wrap(ctx.Err())
			case <-time.After(reconcilePause):
			}
		}
		for _, rec := range recs {
			if !rec.Active {
				continue
			}
			u, err := p.readUser(ctx, rec.UserName)
			if err != nil {
				return changed, trace.Wrap(err)
			}
			if classify(pc, u, rec.ID) != accountOurs {
				continue
			}
			// One role lookup per role and pass, not per user.
			var unknown []string
			for _, r := range candidateRoles(pc, rec) {
				if _, ok := grantable[r]; !ok {
					unknown = append(unknown, r)
				}
			}
			if len(unknown) > 0 {
				more, err := p.grantable(ctx, pc, unknown)
				if err != nil {
					return changed, trace.Wrap(err)
				}
				maps.Copy(grantable, more)
			}
			roles, dropped := grantedRoles(pc, rec, grantable)
			if slices.Equal(roles, u.GetSpec().GetRoles()) {
				continue
			}
			before := u.GetSpec().GetRoles()
			plan := &services.Plan{}
			if err := plan.PutUser(buildUser(pc, rec, u, roles, p.cfg.Clock.Now()), backend.Revision(u.GetMetadata().GetRevision())); err != nil {
				return changed, trace.Wrap(err)
			}
			plan.RequireSCIMUser(pc.name, rec.ID, rec.Revision)
			ev := userEvent(pc, EventRolesReconciled, rec,
				fmt.Sprintf("roles recomputed because what plugin %q may grant changed: %v -> %v", pc.name, before, roles))
			ev.Fields["roles_before"] = fmt.Sprint(before)
			ev.Fields["roles"] = fmt.Sprint(roles)
			if len(dropped) > 0 {
				ev.Fields["dropped_roles"] = fmt.Sprint(dropped)
			}
			_, err = p.commit(ctx, plan, []*typesv1.AuditEvent{ev})
			switch {
			case trace.IsCompareFailed(err):
				continue
			case err != nil:
				return changed, trace.Wrap(err)
			}
			p.noteDropped(pc.name, dropped)
			changed++
		}
		if len(recs) < reconcilePage {
			return changed, nil
		}
		after = recs[len(recs)-1].ID
	}
}
