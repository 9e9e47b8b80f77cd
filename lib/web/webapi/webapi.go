// Package webapi serves the web UI's JSON API under /v1/webapi/: the Okta
// integration's tile state, creating its SAML connector from metadata,
// generating and rotating the SCIM token, turning SCIM on and off, its
// provisioning settings (default and grantable roles, lock TTL), the recent
// SCIM audit events; and, under /v1/webapi/admin/, the Users page (paged,
// searched by name prefix) and the Locks page (listing and lifting locks).
//
// It authorizes nothing itself. Each request goes through the web
// listener's session middleware (401 without a session, 403 on a CSRF
// failure or a lock); then the handler calls the very auth API
// implementations the gRPC server registers (pluginv1, samlv1, auditv1),
// in-process, with the session's user put in the context through
// authz.ContextWithIdentity. RBAC, validation and audit events are therefore
// those of the gRPC path, and a user whose roles lack the plugin verbs gets
// 403 here exactly as over gRPC.
package webapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"

	"github.com/gatehouse/gatehouse/lib/web/jsonbody"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"

	"github.com/gatehouse/gatehouse/lib/auth/audit"
	"github.com/gatehouse/gatehouse/lib/auth/authz"
	"github.com/gatehouse/gatehouse/lib/auth/crud"
	"github.com/gatehouse/gatehouse/lib/defaults"
	"github.com/gatehouse/gatehouse/lib/web"
	auditpb "github.com/gatehouse/gatehouse/proto/gatehouse/audit/v1"
	pluginpb "github.com/gatehouse/gatehouse/proto/gatehouse/plugin/v1"
	samlpb "github.com/gatehouse/gatehouse/proto/gatehouse/saml/v1"
)

// MaxBodyBytes caps a request body; SAML metadata is the largest (the
// stored entity_descriptor limit is 512 KiB).
const MaxBodyBytes = 640 << 10

// RequireSession is the web listener's session middleware
// (web.SessionAuth.RequireSession): it answers 401 without a live session,
// 403 on a CSRF failure or a lock, and otherwise puts the session in the
// request context for web.SessionFromContext.
type RequireSession func(http.Handler) http.Handler

// Plugins is the plugin API (lib/auth/pluginv1.Service).
type Plugins interface {
	GetPlugin(ctx context.Context, req *pluginpb.GetPluginRequest) (*pluginpb.GetPluginResponse, error)
	CreatePlugin(ctx context.Context, req *pluginpb.CreatePluginRequest) (*pluginpb.CreatePluginResponse, error)
	UpdatePlugin(ctx context.Context, req *pluginpb.UpdatePluginRequest) (*pluginpb.UpdatePluginResponse, error)
	GenerateSCIMToken(ctx context.Context, req *pluginpb.GenerateSCIMTokenRequest) (*pluginpb.GenerateSCIMTokenResponse, error)
}

// SAML is the SAML connector API (lib/auth/samlv1.Service).
type SAML interface {
	GetSAMLConnector(ctx context.Context, req *samlpb.GetSAMLConnectorRequest) (*samlpb.GetSAMLConnectorResponse, error)
	ListSAMLConnectors(ctx context.Context, req *samlpb.ListSAMLConnectorsRequest) (*samlpb.ListSAMLConnectorsResponse, error)
	CreateSAMLConnector(ctx context.Context, req *samlpb.CreateSAMLConnectorRequest) (*samlpb.CreateSAMLConnectorResponse, error)
}

// Events is the audit API (lib/auth/auditv1.Service).
type Events interface {
	SearchEvents(ctx context.Context, req *auditpb.SearchEventsRequest) (*auditpb.SearchEventsResponse, error)
}

// Config configures the handler.
type Config struct {
	RequireSession RequireSession
	Plugins        Plugins
	SAML           SAML
	Events         Events
	// Authorizer tells the UI what the caller may do, so that it can show
	// a "you lack permission" state instead of buttons that would fail. It
	// never decides a request: the APIs above do.
	Authorizer crud.Authorizer
	// Recorder records the access-denied events the gRPC interceptor
	// records for gRPC calls.
	Recorder crud.Recorder
	// Users pages through users for the Users page; the handler
	// authorizes the caller first, as the user API does.
	Users UserDirectory
	// LockView marks locked users on the Users page.
	LockView LockView
	// SCIM reads a SCIM user's record for the Users page.
	SCIM SCIMRecords
	// Locks is the lock API, for the Locks page.
	Locks Locks
	// PublicAddr is the host:port people and Okta reach the web listener
	// at; the ACS and SCIM base URLs are built from it. When empty,
	// WebAddr is used.
	PublicAddr string
	// WebAddr is the web listener's address as the process knows it (its
	// dialable host:port), for the URLs when PublicAddr is empty. The URLs
	// are never built from a request's Host header: a client controls it,
	// and the ACS URL is stored in the connector and both are pasted into
	// Okta. One of PublicAddr and WebAddr is required.
	WebAddr string
	Clock   clockwork.Clock
	Logger  *slog.Logger
}

// CheckAndSetDefaults validates the config.
func (c *Config) CheckAndSetDefaults() error {
	switch {
	case c.RequireSession == nil:
		return trace.BadParameter("webapi: missing RequireSession")
	case c.Plugins == nil:
		return trace.BadParameter("webapi: missing Plugins")
	case c.SAML == nil:
		return trace.BadParameter("webapi: missing SAML")
	case c.Events == nil:
		return trace.BadParameter("webapi: missing Events")
	case c.Authorizer == nil:
		return trace.BadParameter("webapi: missing Authorizer")
	case c.Recorder == nil:
		return trace.BadParameter("webapi: missing Recorder")
	case c.Users == nil:
		return trace.BadParameter("webapi: missing Users")
	case c.LockView == nil:
		return trace.BadParameter("webapi: missing LockView")
	case c.SCIM == nil:
		return trace.BadParameter("webapi: missing SCIM")
	case c.Locks == nil:
		return trace.BadParameter("webapi: missing Locks")
	case c.PublicAddr == "" && c.WebAddr == "":
		return trace.BadParameter("webapi: missing PublicAddr or WebAddr")
	}
	defaults.Clock(&c.Clock)
	defaults.Logger(&c.Logger, "webapi")
	return nil
}

// Handler serves the web API.
type Handler struct {
	cfg Config
	mux *http.ServeMux
}

// New returns the handler. Mount it at PluginsPrefix and AdminPrefix.
func New(cfg Config) (*Handler, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, trace.Wrap(err)
	}
	h := &Handler{cfg: cfg, mux: http.NewServeMux()}
	h.mux.Handle("GET /v1/webapi/plugins", h.authed(h.listIntegrations))
	h.mux.Handle("GET /v1/webapi/plugins/{$}", h.authed(h.listIntegrations))
	h.mux.Handle("GET /v1/webapi/plugins/okta", h.authed(h.getOkta))
	h.mux.Handle("POST /v1/webapi/plugins/okta/saml", h.authed(h.createSAML))
	h.mux.Handle("POST /v1/webapi/plugins/okta/scim/token", h.authed(h.generateToken))
	h.mux.Handle("PUT /v1/webapi/plugins/okta/scim", h.authed(h.setSCIM))
	h.mux.Handle("GET /v1/webapi/plugins/okta/events", h.authed(h.listEvents))
	h.mux.Handle("PUT /v1/webapi/plugins/okta/settings", h.authed(h.setSettings))
	h.mux.Handle("GET /v1/webapi/admin/users", h.authed(h.listUsers))
	h.mux.Handle("GET /v1/webapi/admin/locks", h.authed(h.listLocks))
	h.mux.Handle("DELETE /v1/webapi/admin/locks/{name}", h.authed(h.liftLock))
	h.registerUserSync()
	return h, nil
}

// PluginsPrefix is where the handler is mounted on the web listener, and
// AdminPrefix too.
const PluginsPrefix = "/v1/webapi/plugins/"

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	h.mux.ServeHTTP(w, r)
}

type handlerFunc func(w http.ResponseWriter, r *http.Request) (any, error)

// authed runs fn behind the session middleware with the session's user
// as the caller's identity, and writes its result or error.
func (h *Handler) authed(fn handlerFunc) http.Handler {
	return h.cfg.RequireSession(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		as, ok := web.SessionFromContext(r.Context())
		if !ok || as.Session == nil || as.Session.User == "" {
			// Only a miswired middleware gets here; never serve unauthenticated.
			writeError(w, http.StatusUnauthorized, "sign in first")
			return
		}
		user := as.Session.User
		ctx := authz.ContextWithIdentity(r.Context(), authz.Identity{Username: user, CertRoles: as.User.GetSpec().GetRoles(), Incarnation: as.Session.Incarnation})
		out, err := fn(w, r.WithContext(ctx))
		if err != nil {
			if trace.IsAccessDenied(err) {
				h.recordDenied(ctx, user, r, err)
			}
			h.writeTraceError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, out)
	}))
}

func (h *Handler) recordDenied(ctx context.Context, user string, r *http.Request, err error) {
	h.cfg.Recorder.Record(ctx, audit.Event{
		Type:   audit.EventAccessDenied,
		User:   user,
		Fields: map[string]string{"method": r.Method + " " + r.URL.Path},
		Err:    err,
	})
}

// writeError answers with the web listener's error body,
// {"error": "message"}.
func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, web.ErrorBody{Error: msg})
}

// writeTraceError maps a trace error kind to an HTTP status once. The caller
// is authenticated, so the message is shown; internal errors are logged and
// answered generically.
func (h *Handler) writeTraceError(w http.ResponseWriter, r *http.Request, err error) {
	code := web.StatusFor(err)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		code = http.StatusRequestEntityTooLarge
	}
	if code == http.StatusInternalServerError {
		h.cfg.Logger.ErrorContext(r.Context(), "Web API request failed.", "path", r.URL.Path, "error", err)
		writeError(w, code, "internal error; see the server log")
		return
	}
	writeError(w, code, trace.UserMessage(err))
}

func writeJSON(w http.ResponseWriter, code int, v any) { web.WriteJSON(w, code, v) }

// readJSON decodes a JSON request body into v, refusing other content
// types (a cross-site form cannot send application/json without a
// preflight), unknown fields and oversized bodies.
func readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return trace.BadParameter("the request body must be application/json")
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return trace.Wrap(mbe) // 413, see writeTraceError
		}
		return trace.BadParameter("%s", jsonbody.Problem(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return trace.BadParameter("request body is not valid JSON (data after the object)")
	}
	return nil
}
