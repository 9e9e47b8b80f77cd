package scimprov

import (
	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/auth/audit"
	"github.com/gatehouse/gatehouse/lib/services"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// Audit event types of SCIM provisioning. Lock events reuse the auth
// server's lock event types, so that a lock search finds them.
const (
	EventUserCreate     = "scim.user.create"
	EventUserUpdate     = "scim.user.update"
	EventUserAdopt      = "scim.user.adopt"
	EventUserDeactivate = "scim.user.deactivate"
	EventUserReactivate = "scim.user.reactivate"
	EventUserDelete     = "scim.user.delete"
	// EventUserRefused is a user write refused because the name belongs to
	// an account outside the plugin's reach.
	EventUserRefused = "scim.user.refused"
	// EventRolesDropped is a user written without roles the plugin may not
	// grant.
	EventRolesDropped = "scim.roles.dropped"
	EventGroupCreate  = "scim.group.create"
	EventGroupUpdate  = "scim.group.update"
	EventGroupDelete  = "scim.group.delete"
	EventLockCreate   = audit.EventLockCreate
	EventLockDelete   = audit.EventLockDelete
)

// actor is who acts in the events of a plugin.
func actor(plugin string) string { return "plugin:" + plugin }

// appendEvents adds audit events to plan, for the same AtomicWrite as the
// change they describe: an event exists if and only if the change happened.
// Events carry names and ids, never a secret or the SCIM attributes. Their
// expiry is the provisioner's AuditRetention, which matches the audit log's.
func (p *Provisioner) appendEvents(plan *services.Plan, events []*typesv1.AuditEvent) error {
	for _, e := range events {
		if err := plan.AppendEvent(e, p.cfg.Clock.Now(), p.cfg.AuditRetention); err != nil {
			return trace.Wrap(err)
		}
	}
	return nil
}
