package scimprov

import (
	"github.com/google/uuid"
	"github.com/gravitational/trace"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gatehouse/gatehouse/lib/auth/audit"
	"github.com/gatehouse/gatehouse/lib/backend"
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

// eventAction returns the put of audit event e into the events keyspace,
// for the same AtomicWrite as the change it describes: the event exists if
// and only if the change happened. Events carry names and ids, never a
// secret or the SCIM attributes.
func (p *Provisioner) eventAction(e *typesv1.AuditEvent) (backend.ConditionalAction, error) {
	now := p.cfg.Clock.Now()
	e.Id = uuid.NewString()
	e.Time = timestamppb.New(now)
	if e.Outcome == "" {
		e.Outcome = audit.OutcomeSuccess
	}
	if err := services.ValidateAuditEvent(e); err != nil {
		return backend.ConditionalAction{}, trace.Wrap(err)
	}
	value, err := services.MarshalAuditEvent(e)
	if err != nil {
		return backend.ConditionalAction{}, trace.Wrap(err)
	}
	return backend.ConditionalAction{
		Key:       services.EventKey(now, e.Id),
		Condition: backend.NotExists(),
		Action:    backend.Put(backend.Item{Value: value, Expires: now.Add(p.cfg.AuditRetention)}),
	}, nil
}
