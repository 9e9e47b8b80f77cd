package scimprov

import (
	"context"
	"slices"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/auth/authz"
)

// grantable says, for each of roles, whether plugin pc may grant it to a
// SCIM user (invariant 4, "grants have a ceiling"):
//
//   - With grantable_roles set, exactly the roles it lists that exist. Who
//     sets it must hold every role it lists (pluginv1 checks that).
//   - Without it, every existing role that is not administrative
//     (authz.IsAdministrative: no write on plugins, connectors, roles,
//     users, locks or certificates).
//
// A role that does not exist is never grantable: a name granted today must
// not turn into whatever an editor later creates under it.
func (p *Provisioner) grantable(ctx context.Context, pc *pluginContext, roles []string) (map[string]bool, error) {
	out := make(map[string]bool, len(roles))
	explicit := pc.okta.GetGrantableRoles()
	for _, name := range roles {
		if len(explicit) > 0 && !slices.Contains(explicit, name) {
			out[name] = false
			continue
		}
		r, err := p.cfg.Roles.GetRole(ctx, name)
		switch {
		case trace.IsNotFound(err):
			out[name] = false
		case err != nil:
			return nil, trace.Wrap(err)
		default:
			out[name] = len(explicit) > 0 || !authz.IsAdministrative(r)
		}
	}
	return out, nil
}

// noteDropped records roles cut by the ceiling for the plugin's status.
func (p *Provisioner) noteDropped(plugin string, dropped []string) {
	if len(dropped) == 0 {
		return
	}
	now := p.cfg.Clock.Now()
	p.status.update(plugin, func(d *statusDelta) {
		d.rolesDropped = dropped
		d.rolesDroppedTime = now
	})
}
