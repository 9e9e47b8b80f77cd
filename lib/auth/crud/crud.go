// Package crud is the shared body of the auth server's per-kind resource
// APIs (users, roles, locks, SAML connectors). A Handler runs every call in
// the order the auth server's handlers follow: authorize the caller, check
// the verbs on the kind, validate the request, call the service, record the
// audit event for a change, and return the error wrapped (the gRPC
// interceptor turns it into a status once). The per-kind packages
// (lib/auth/userv1, ...) only translate their generated request and
// response messages to a Handler and plug in what differs per kind.
package crud

import (
	"context"
	"time"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"

	"github.com/gatehouse/gatehouse/lib/auth/audit"
	"github.com/gatehouse/gatehouse/lib/auth/authz"
	"github.com/gatehouse/gatehouse/lib/defaults"
	"github.com/gatehouse/gatehouse/lib/services"
	"github.com/gatehouse/gatehouse/lib/services/generic"
)

// Authorizer identifies and authorizes the caller.
type Authorizer interface {
	Authorize(ctx context.Context) (*authz.Context, error)
}

// Recorder records audit events.
type Recorder interface {
	Record(ctx context.Context, e audit.Event)
}

// Deps are the dependencies every lib/auth gRPC service that changes
// resources shares: who is calling, where audit events go, and the clock
// (the real one when nil). Each service's Config embeds them, so the auth
// server builds one Deps and hands it to every service, and a service hands
// its Deps on to its Handler's Config.
type Deps struct {
	Authorizer Authorizer
	Recorder   Recorder
	Clock      clockwork.Clock
}

// Authorize authorizes the caller and checks each verb on kind, in order;
// the first refusal is returned.
func Authorize(ctx context.Context, a Authorizer, kind string, verbs ...string) (*authz.Context, error) {
	actx, err := a.Authorize(ctx)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	for _, v := range verbs {
		if err := actx.Checker.CheckAccess(kind, v); err != nil {
			return nil, trace.Wrap(err)
		}
	}
	return actx, nil
}

// Record records the event typ by the caller on resource kind/name, with
// the call's outcome err.
func Record(ctx context.Context, r Recorder, actx *authz.Context, kind, typ, name string, err error) {
	r.Record(ctx, audit.Event{Type: typ, User: actx.Username(), Resource: kind + "/" + name, Err: err})
}

// Reply returns resp, or a nil response and err wrapped when err is set:
// the last two lines of every adapter method.
func Reply[R any](resp R, err error) (R, error) {
	if err != nil {
		var zero R
		return zero, trace.Wrap(err)
	}
	return resp, nil
}

// Store is the part of a typed resource service a Handler calls. For a kind
// without secrets, withSecrets is always false (see NoSecrets and
// NoSecretsList).
type Store[T generic.Resource] struct {
	Get    func(ctx context.Context, name string, withSecrets bool) (T, error)
	List   func(ctx context.Context, pageSize int, pageToken string, withSecrets bool) ([]T, string, error)
	Create func(ctx context.Context, r T) (T, error)
	Update func(ctx context.Context, r T) (T, error)
	Upsert func(ctx context.Context, r T) (T, error)
	Delete func(ctx context.Context, name string) error
}

// NoSecrets adapts the Get of a kind that holds no secrets to Store.Get.
func NoSecrets[T any](get func(ctx context.Context, name string) (T, error)) func(context.Context, string, bool) (T, error) {
	return func(ctx context.Context, name string, _ bool) (T, error) { return get(ctx, name) }
}

// NoSecretsList adapts the List of a kind that holds no secrets to
// Store.List.
func NoSecretsList[T any](list func(ctx context.Context, pageSize int, pageToken string) ([]T, string, error)) func(context.Context, int, string, bool) ([]T, string, error) {
	return func(ctx context.Context, pageSize int, pageToken string, _ bool) ([]T, string, error) {
		return list(ctx, pageSize, pageToken)
	}
}

// Events are the audit event types of a kind. Upsert records Update.
type Events struct {
	Create string
	Update string
	Delete string
}

// Config configures a Handler for one kind.
type Config[T generic.Resource] struct {
	// Kind is the resource kind the verbs are checked on ("user"). Required.
	Kind string
	// Noun names one resource in error messages ("SAML connector");
	// defaults to Kind.
	Noun string
	Deps
	Store  Store[T]
	Events Events
	// WithDefaults, if set, returns the resource to create or upsert with
	// what the caller left unset filled in (created_by, ...). It must not
	// modify r: it returns a copy, or r itself when nothing is missing.
	WithDefaults func(actx *authz.Context, now time.Time, r T) T
	// PrepareCreate and PrepareUpsert, if set, complete r in place before
	// it is created or upserted (fetch metadata, generate keys). Their
	// error is audited as the failed change and returned.
	PrepareCreate func(ctx context.Context, r T) error
	PrepareUpsert func(ctx context.Context, r T) error
	// CheckWrite and CheckDelete, if set, refuse a write (create, update,
	// upsert) or a delete that the caller's verbs allow but that would give
	// someone more than the caller has (a role the caller does not hold, a
	// deny lifted). They run after the verbs are checked and the request
	// validated, so that nothing about the stored resources is told to a
	// caller without the verb; their refusal is audited as the failed
	// change.
	CheckWrite  func(ctx context.Context, actx *authz.Context, r T) error
	CheckDelete func(ctx context.Context, actx *authz.Context, name string) error
}

// CheckAndSetDefaults validates the config.
func (c *Config[T]) CheckAndSetDefaults() error {
	s := c.Store
	switch {
	case c.Kind == "":
		return trace.BadParameter("crud: missing Kind")
	case c.Authorizer == nil:
		return trace.BadParameter("crud: %s: missing Authorizer", c.Kind)
	case c.Recorder == nil:
		return trace.BadParameter("crud: %s: missing Recorder", c.Kind)
	case s.Get == nil || s.List == nil || s.Create == nil || s.Update == nil || s.Upsert == nil || s.Delete == nil:
		return trace.BadParameter("crud: %s: Store needs Get, List, Create, Update, Upsert and Delete", c.Kind)
	case c.Events.Create == "" || c.Events.Update == "" || c.Events.Delete == "":
		return trace.BadParameter("crud: %s: Events needs Create, Update and Delete", c.Kind)
	}
	defaults.IfZero(&c.Noun, c.Kind)
	defaults.Clock(&c.Clock)
	return nil
}

// Handler serves the CRUD calls of one kind.
type Handler[T generic.Resource] struct {
	cfg Config[T]
}

// New returns a Handler.
func New[T generic.Resource](cfg Config[T]) (*Handler[T], error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, trace.Wrap(err)
	}
	return &Handler[T]{cfg: cfg}, nil
}

func (h *Handler[T]) authorize(ctx context.Context, verbs ...string) (*authz.Context, error) {
	return Authorize(ctx, h.cfg.Authorizer, h.cfg.Kind, verbs...)
}

func (h *Handler[T]) record(ctx context.Context, actx *authz.Context, typ, name string, err error) {
	Record(ctx, h.cfg.Recorder, actx, h.cfg.Kind, typ, name, err)
}

// checkResource refuses a request without a resource or a name.
func (h *Handler[T]) checkResource(r T) error {
	if !r.ProtoReflect().IsValid() {
		return trace.BadParameter("missing %s", h.cfg.Noun)
	}
	return trace.Wrap(generic.CheckName(h.cfg.Kind, r.GetMetadata().GetName()))
}

func (h *Handler[T]) withDefaults(actx *authz.Context, r T) T {
	if h.cfg.WithDefaults == nil {
		return r
	}
	return h.cfg.WithDefaults(actx, h.cfg.Clock.Now(), r)
}

func (h *Handler[T]) checkWrite(ctx context.Context, actx *authz.Context, r T) error {
	if h.cfg.CheckWrite == nil {
		return nil
	}
	return trace.Wrap(h.cfg.CheckWrite(ctx, actx, r))
}

// Get reads one resource. Secrets come only with withSecrets, which needs
// the read verb; otherwise readnosecrets is enough.
func (h *Handler[T]) Get(ctx context.Context, name string, withSecrets bool) (T, error) {
	var zero T
	verb := services.VerbReadNoSecrets
	if withSecrets {
		verb = services.VerbRead
	}
	if _, err := h.authorize(ctx, verb); err != nil {
		return zero, trace.Wrap(err)
	}
	if err := generic.CheckName(h.cfg.Kind, name); err != nil {
		return zero, trace.Wrap(err)
	}
	r, err := h.cfg.Store.Get(ctx, name, withSecrets)
	if err != nil {
		return zero, trace.Wrap(err)
	}
	return r, nil
}

// List pages through resources, never with secrets; it needs list and
// readnosecrets.
func (h *Handler[T]) List(ctx context.Context, pageSize int32, pageToken string) ([]T, string, error) {
	if _, err := h.authorize(ctx, services.VerbList, services.VerbReadNoSecrets); err != nil {
		return nil, "", trace.Wrap(err)
	}
	if pageSize < 0 {
		return nil, "", trace.BadParameter("page_size must not be negative")
	}
	items, next, err := h.cfg.Store.List(ctx, int(pageSize), pageToken, false)
	if err != nil {
		return nil, "", trace.Wrap(err)
	}
	return items, next, nil
}

// Create creates r (with defaults, prepared); it needs create.
func (h *Handler[T]) Create(ctx context.Context, r T) (T, error) {
	return h.put(ctx, r, h.cfg.Events.Create, h.cfg.PrepareCreate, h.cfg.Store.Create, services.VerbCreate)
}

// Upsert creates or replaces r (with defaults, prepared); it needs create
// and update, and is audited as an update.
func (h *Handler[T]) Upsert(ctx context.Context, r T) (T, error) {
	return h.put(ctx, r, h.cfg.Events.Update, h.cfg.PrepareUpsert, h.cfg.Store.Upsert, services.VerbCreate, services.VerbUpdate)
}

// put is Create and Upsert: authorize, validate, fill defaults, prepare,
// write, audit.
func (h *Handler[T]) put(ctx context.Context, r T, event string, prepare func(context.Context, T) error, write func(context.Context, T) (T, error), verbs ...string) (T, error) {
	var zero T
	actx, err := h.authorize(ctx, verbs...)
	if err != nil {
		return zero, trace.Wrap(err)
	}
	if err := h.checkResource(r); err != nil {
		return zero, trace.Wrap(err)
	}
	if err := h.checkWrite(ctx, actx, r); err != nil {
		h.record(ctx, actx, event, r.GetMetadata().GetName(), err)
		return zero, trace.Wrap(err)
	}
	if prepare != nil {
		if err := trace.Wrap(prepare(ctx, r)); err != nil {
			h.record(ctx, actx, event, r.GetMetadata().GetName(), err)
			return zero, trace.Wrap(err)
		}
	}
	out, err := write(ctx, h.withDefaults(actx, r))
	h.record(ctx, actx, event, r.GetMetadata().GetName(), err)
	if err != nil {
		return zero, trace.Wrap(err)
	}
	return out, nil
}

// Update replaces r at the revision it carries, which is required; it
// needs update. Defaults are not filled and nothing is prepared: an update
// writes what the caller read and changed.
func (h *Handler[T]) Update(ctx context.Context, r T) (T, error) {
	var zero T
	actx, err := h.authorize(ctx, services.VerbUpdate)
	if err != nil {
		return zero, trace.Wrap(err)
	}
	if err := h.checkResource(r); err != nil {
		return zero, trace.Wrap(err)
	}
	if r.GetMetadata().GetRevision() == "" {
		return zero, trace.BadParameter("%s %q: metadata.revision is required to update; read the %s first", h.cfg.Noun, r.GetMetadata().GetName(), h.cfg.Noun)
	}
	if err := h.checkWrite(ctx, actx, r); err != nil {
		h.record(ctx, actx, h.cfg.Events.Update, r.GetMetadata().GetName(), err)
		return zero, trace.Wrap(err)
	}
	out, err := h.cfg.Store.Update(ctx, r)
	h.record(ctx, actx, h.cfg.Events.Update, r.GetMetadata().GetName(), err)
	if err != nil {
		return zero, trace.Wrap(err)
	}
	return out, nil
}

// Delete deletes the named resource; it needs delete.
func (h *Handler[T]) Delete(ctx context.Context, name string) error {
	actx, err := h.authorize(ctx, services.VerbDelete)
	if err != nil {
		return trace.Wrap(err)
	}
	if err := generic.CheckName(h.cfg.Kind, name); err != nil {
		return trace.Wrap(err)
	}
	if h.cfg.CheckDelete != nil {
		err = h.cfg.CheckDelete(ctx, actx, name)
	}
	if err == nil {
		err = h.cfg.Store.Delete(ctx, name)
	}
	h.record(ctx, actx, h.cfg.Events.Delete, name, err)
	return trace.Wrap(err)
}

// Dep is one dependency a service's Config requires (see CheckConfig).
type Dep struct {
	name    string
	missing bool
}

// Need names a required Config field and says whether it is missing
// (`crud.Need("Roles", c.Roles == nil)`).
func Need(name string, missing bool) Dep { return Dep{name: name, missing: missing} }

// CheckConfig is the CheckAndSetDefaults every lib/auth gRPC service
// shares: it refuses the first missing dependency, in the order given, as
// "<service>: missing <field>", and defaults *clock to the real clock.
func CheckConfig(service string, clock *clockwork.Clock, deps ...Dep) error {
	for _, d := range deps {
		if d.missing {
			return trace.BadParameter("%s: missing %s", service, d.name)
		}
	}
	defaults.Clock(clock)
	return nil
}
