// Package audit records what happens on the auth server as structured audit
// events (who, what, when, outcome), through the services audit log, which
// keeps them for its retention period. Recording never fails the call it describes: a change that
// happened must not be reported as failed because its event could not be
// written; the failure is logged instead. Events never carry secrets: callers
// put names, kinds and outcomes in them, never tokens, hashes or keys.
package audit

import (
	"context"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gatehouse/gatehouse/lib/defaults"
	"github.com/gatehouse/gatehouse/lib/services"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// Audit event types the auth server records.
const (
	EventUserCreate          = "user.create"
	EventUserUpdate          = "user.update"
	EventUserDelete          = "user.delete"
	EventRoleCreate          = "role.create"
	EventRoleUpdate          = "role.update"
	EventRoleDelete          = "role.delete"
	EventLockCreate          = "lock.create"
	EventLockUpdate          = "lock.update"
	EventLockDelete          = "lock.delete"
	EventSAMLConnectorCreate = "saml.create"
	EventSAMLConnectorUpdate = "saml.update"
	EventSAMLConnectorDelete = "saml.delete"
	EventPluginCreate        = "plugin.create"
	EventPluginUpdate        = "plugin.update"
	EventPluginDelete        = "plugin.delete"
	EventPluginStatus        = "plugin.status"
	EventPluginTokenCreate   = "plugin.token.create"
	EventPluginTokenRotate   = "plugin.token.rotate"
	EventCertIssue           = "cert.issue"
	// EventBuiltinAdminRotate is a new incarnation of the built-in operator
	// identity, which voids every credential issued to it before.
	EventBuiltinAdminRotate = "builtin_admin.rotate"
	// EventAccessDenied is any API call refused for lack of rights or a lock.
	EventAccessDenied = "access.denied"
)

// Outcomes of an audit event.
const (
	OutcomeSuccess = services.OutcomeSuccess
	OutcomeFailure = services.OutcomeFailure
	OutcomeDenied  = services.OutcomeDenied
)

// Sink stores one audit event for the retention period
// (services.AuditLog).
type Sink interface {
	Emit(ctx context.Context, e *typesv1.AuditEvent) error
}

var _ Sink = (*services.AuditLog)(nil)

// RecorderConfig configures a Recorder.
type RecorderConfig struct {
	// Sink stores events. Required.
	Sink Sink
	// Clock stamps events.
	Clock clockwork.Clock
	// Logger reports events that could not be stored.
	Logger *slog.Logger
}

// CheckAndSetDefaults validates the config.
func (c *RecorderConfig) CheckAndSetDefaults() error {
	if c.Sink == nil {
		return trace.BadParameter("audit: missing Sink")
	}
	defaults.Clock(&c.Clock)
	defaults.Logger(&c.Logger, "audit")
	return nil
}

// Recorder turns what handlers did into audit events.
type Recorder struct {
	cfg RecorderConfig
}

// NewRecorder returns a Recorder.
func NewRecorder(cfg RecorderConfig) (*Recorder, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, trace.Wrap(err)
	}
	return &Recorder{cfg: cfg}, nil
}

// Event is what a handler reports.
type Event struct {
	// Type is one of the Event* constants.
	Type string
	// User is who acted.
	User string
	// Resource is kind/name acted on, if any.
	Resource string
	// Message is human-readable detail; never a secret.
	Message string
	// Fields are structured detail; never a secret.
	Fields map[string]string
	// Err is the call's error: nil records success, an access-denied error
	// records denied, any other error failure (with its message).
	Err error
}

// Record stores e; failures are logged, never returned.
func (r *Recorder) Record(ctx context.Context, e Event) {
	ev := &typesv1.AuditEvent{
		Id:       uuid.NewString(),
		Type:     e.Type,
		Time:     timestamppb.New(r.cfg.Clock.Now()),
		User:     e.User,
		Outcome:  OutcomeSuccess,
		Resource: e.Resource,
		Message:  e.Message,
		Fields:   e.Fields,
	}
	if e.Err != nil {
		ev.Outcome = OutcomeFailure
		if trace.IsAccessDenied(e.Err) {
			ev.Outcome = OutcomeDenied
		}
		if ev.Message == "" {
			ev.Message = trace.UserMessage(e.Err)
		} else {
			ev.Message += ": " + trace.UserMessage(e.Err)
		}
	}
	// The caller's context may be ending (a cancelled request is still an
	// event worth keeping), so the write gets its own short deadline.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := r.cfg.Sink.Emit(wctx, ev); err != nil {
		r.cfg.Logger.ErrorContext(ctx, "Failed to record audit event", "type", e.Type, "user", e.User, "resource", e.Resource, "error", err)
	}
}
