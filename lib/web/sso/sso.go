// Package sso serves the web login API on the web listener: SAML
// (SP-initiated redirect, ACS, SP metadata), local password login, the
// current session, logout, SSH certificates for the session's user, and
// one-time password-set links. SAML validation and the login outcome live
// in lib/auth/saml; sessions in lib/services/websession; the session middleware
// in lib/web.
//
// Unauthenticated endpoints resist floods (lib/abuse): the source of a
// request is its address (IPv6 grouped by /64; X-Forwarded-For only from
// Config.Sources' trusted proxies); a login reserves one failure on its
// source and on its username before its password is hashed (all or none,
// in one step) and gets it back on success; password hashes run at most
// abuse.HashSlots at once; saml/sso, which stores a request item, is
// limited per source, and so are failed ACS posts (reserved before the
// post is parsed); the audit events of failed ACS posts and of throttled
// logins are one per source and minute, plus one with the count of the
// others.
//
// Endpoints (all under /v1/webapi/):
//
//	GET    saml/sso?connector_id=NAME[&redirect_url=/path]   302 to the IdP, and the browser binding cookie
//	POST   saml/acs/NAME                                      SAMLResponse (POST binding, application/x-www-form-urlencoded, else 415), SP- or IdP-initiated (unless the connector sets disable_idp_initiated)
//	GET    saml/metadata/NAME                                 SP metadata for the IdP
//	POST   sessions            {"user","password"}            local login (Content-Type: application/json, else 415)
//	GET    sessions/current                                   the session (user, roles, expiry, CSRF token, SSH address)
//	DELETE sessions/current                                   logout (CSRF)
//	POST   sessions/certs      {"public_key","ttl"}           OpenSSH user certificate (CSRF)
//	POST   users/password      {"token","password"}           set a password with a one-time token
package sso

import (
	"context"
	"encoding/json"
	"errors"
	"html/template"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/lib/web/jsonbody"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/ssh"
	"golang.org/x/time/rate"

	"github.com/gatehouse/gatehouse/lib/abuse"
	"github.com/gatehouse/gatehouse/lib/auth"
	"github.com/gatehouse/gatehouse/lib/auth/audit"
	"github.com/gatehouse/gatehouse/lib/auth/saml"
	"github.com/gatehouse/gatehouse/lib/canonical"
	"github.com/gatehouse/gatehouse/lib/defaults"
	"github.com/gatehouse/gatehouse/lib/services"
	"github.com/gatehouse/gatehouse/lib/services/websession"
	"github.com/gatehouse/gatehouse/lib/web"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// Limits and defaults.
const (
	// MaxACSBody caps the ACS form body.
	MaxACSBody = 256 << 10
	// maxJSONBody caps the JSON bodies of the other endpoints.
	maxJSONBody = 64 << 10
	// DefaultRedirect is where a login lands without a redirect_url.
	DefaultRedirect = "/web/"
	// Failed password logins allowed per user and per client address:
	// a burst of loginBurst, then one every loginEvery.
	loginBurst = 5
	loginEvery = 12 * time.Second
	// maxLimiters is the size at which limiters that have refilled (and so
	// carry no state) are pruned. Limiters are only added on a failed
	// attempt, which costs a bcrypt, so their number stays bounded.
	maxLimiters = 10000
	// maxUsernameLen is the longest username a login can name.
	maxUsernameLen = 255
	// SP-initiated logins a source may start (each stores a request item):
	// a burst of ssoBurst, then one every ssoEvery.
	ssoBurst = 30
	ssoEvery = 2 * time.Second
	// Failed SAML responses a source may post (each is parsed and its
	// signature checked): a burst of acsBurst, then one every acsEvery.
	acsBurst = 20
	acsEvery = 3 * time.Second
	// failureWindow is the window over which the audit events of failed
	// ACS posts are aggregated per source.
	failureWindow = time.Minute
	// maxAggregated bounds the sources whose ACS failures are aggregated.
	maxAggregated = 10000
)

// formContentType is the content type of the HTTP-POST binding's form.
const formContentType = "application/x-www-form-urlencoded"

// ReasonContentType refuses an ACS post that is not an HTML form.
const ReasonContentType = "the SAML response must be posted as an HTML form (Content-Type: " + formContentType + ")"

// BindingCookie binds an SP-initiated SAML login to the browser that
// started it (see saml.NewBinding): set by saml/sso, required by the ACS
// for a response to that login, cleared once the login is answered. It
// must be SameSite=None: the ACS is a cross-site POST from the IdP, on
// which Lax and Strict cookies are not sent. The __Host- prefix (which
// implies Path=/, Secure and no Domain) keeps a sibling subdomain or a
// plain-HTTP man in the middle from planting an attacker's binding in
// the victim's browser, which would defeat the check.
const BindingCookie = "__Host-gatehouse_saml_state"

// Audit event types of the web login API.
const (
	EventWebLogin    = "web.login"
	EventWebLogout   = "web.logout"
	EventPasswordSet = "user.password.set"
	EventWebDenied   = "web.denied"
)

// Connectors reads SAML connectors.
type Connectors interface {
	GetSAMLConnector(ctx context.Context, name string, withSecrets bool) (*typesv1.SAMLConnector, error)
}

// Users reads and changes users.
type Users interface {
	GetUser(ctx context.Context, name string, withSecrets bool) (*typesv1.User, error)
	// UpdateAndSwapUser applies modify to the user as stored and writes it
	// back only if the user is still at the revision read (retrying on a
	// concurrent write): a check made in modify holds for the write.
	UpdateAndSwapUser(ctx context.Context, name string, modify func(*typesv1.User) error) (*typesv1.User, error)
}

var _ Users = (*services.UserService)(nil)

// CertSigner signs SSH user certificates (auth.Server).
type CertSigner interface {
	SignSSHUserCert(ctx context.Context, req auth.SSHCertRequest) ([]byte, error)
}

// Config configures the handler.
type Config struct {
	Connectors  Connectors
	SAML        *saml.Provider
	Login       saml.LoginConfig
	Sessions    *websession.Manager
	SessionAuth *web.SessionAuth
	Users       Users
	Certs       CertSigner
	Recorder    saml.Recorder
	Clock       clockwork.Clock
	Logger      *slog.Logger
	// Sources resolves a request's client (trusted proxies, IPv6 /64
	// grouping) for the limiters and audit events; nil trusts no proxy.
	Sources *abuse.Sources
	// SSHAddr is the host:port of the SSH node that people give ssh; the
	// session's info carries it, so the web UI can show the ssh command
	// to use with a certificate. Empty when there is none.
	SSHAddr string
}

// CheckAndSetDefaults validates the config.
func (c *Config) CheckAndSetDefaults() error {
	switch {
	case c.Connectors == nil:
		return trace.BadParameter("sso: missing Connectors")
	case c.SAML == nil:
		return trace.BadParameter("sso: missing SAML")
	case c.Sessions == nil:
		return trace.BadParameter("sso: missing Sessions")
	case c.SessionAuth == nil:
		return trace.BadParameter("sso: missing SessionAuth")
	case c.Users == nil:
		return trace.BadParameter("sso: missing Users")
	case c.Certs == nil:
		return trace.BadParameter("sso: missing Certs")
	case c.Recorder == nil:
		return trace.BadParameter("sso: missing Recorder")
	}
	if err := c.Login.CheckAndSetDefaults(); err != nil {
		return trace.Wrap(err)
	}
	defaults.Clock(&c.Clock)
	defaults.Logger(&c.Logger, "sso")
	return nil
}

// Handler serves the endpoints.
type Handler struct {
	cfg   Config
	mux   *http.ServeMux
	dummy []byte
	// hashes bounds concurrent password hashing, so that a flood of
	// guesses cannot take every core.
	hashes *abuse.Semaphore
	// acsFailures and throttled aggregate the audit events of failed ACS
	// posts and of logins refused by the limiter, per source.
	acsFailures, throttled *abuse.Aggregator

	// compares counts bcrypt comparisons; hashing and peakHashing the
	// ones running now and the most at once (PasswordHashStats).
	compares, hashing, peakHashing atomic.Int64

	mu       sync.Mutex
	limiters map[string]*rate.Limiter
}

// New returns the handler. Mount it at "/v1/webapi/" (it answers only its
// own paths, and longer mounts such as SCIM's take precedence).
func New(cfg Config) (*Handler, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, trace.Wrap(err)
	}
	// A hash to compare against when the user has no password, so that a
	// failed login costs one bcrypt whether or not the user exists.
	dummy, err := bcrypt.GenerateFromPassword([]byte("gatehouse-dummy-password"), bcrypt.DefaultCost)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	h := &Handler{
		cfg:         cfg,
		mux:         http.NewServeMux(),
		dummy:       dummy,
		hashes:      abuse.NewSemaphore(abuse.HashSlots()),
		acsFailures: abuse.NewAggregator(cfg.Clock, failureWindow, maxAggregated),
		throttled:   abuse.NewAggregator(cfg.Clock, failureWindow, maxAggregated),
		limiters:    map[string]*rate.Limiter{},
	}
	req := cfg.SessionAuth.RequireSession
	h.mux.HandleFunc("GET /v1/webapi/saml/sso", h.handleSSO)
	h.mux.HandleFunc("POST /v1/webapi/saml/acs/{connector}", h.handleACS)
	h.mux.HandleFunc("GET /v1/webapi/saml/metadata/{connector}", h.handleMetadata)
	h.mux.HandleFunc("POST /v1/webapi/sessions", h.handlePasswordLogin)
	h.mux.Handle("GET /v1/webapi/sessions/current", req(http.HandlerFunc(h.handleCurrent)))
	h.mux.Handle("DELETE /v1/webapi/sessions/current", req(http.HandlerFunc(h.handleLogout)))
	h.mux.Handle("POST /v1/webapi/sessions/certs", req(http.HandlerFunc(h.handleCerts)))
	h.mux.HandleFunc("POST /v1/webapi/users/password", h.handleSetPassword)
	return h, nil
}

// ServeHTTP implements http.Handler; unknown paths are a JSON 404.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pattern := h.mux.Handler(r); pattern == "" {
		web.WriteError(w, http.StatusNotFound, trace.NotFound("no such endpoint: %s %s", r.Method, r.URL.Path))
		return
	}
	h.mux.ServeHTTP(w, r)
}

// OnDenied is a web.SessionAuthConfig.OnDenied that audits the refusal.
func OnDenied(rec saml.Recorder) func(ctx context.Context, user, reason string) {
	return func(ctx context.Context, user, reason string) {
		rec.Record(ctx, audit.Event{Type: EventWebDenied, User: user, Err: trace.AccessDenied("%s", reason)})
	}
}

// --- SAML ---

func (h *Handler) handleSSO(w http.ResponseWriter, r *http.Request) {
	// Every SP-initiated login stores a request item: an unauthenticated
	// write, limited per source before anything is read.
	if !h.take("sso:"+h.sourceKey(r), ssoEvery, ssoBurst, h.cfg.Clock.Now()) {
		w.Header().Set("Retry-After", strconv.Itoa(int(ssoEvery/time.Second)))
		h.writeLoginError(w, r, http.StatusTooManyRequests, "too many sign-in attempts from this address; try again in a few seconds")
		return
	}
	name := r.URL.Query().Get("connector_id")
	if name == "" {
		h.writeLoginError(w, r, http.StatusBadRequest, "connector_id is required")
		return
	}
	redirect, err := checkRedirect(r.URL.Query().Get("redirect_url"))
	if err != nil {
		h.writeLoginError(w, r, http.StatusBadRequest, trace.UserMessage(err))
		return
	}
	c, err := h.cfg.Connectors.GetSAMLConnector(r.Context(), name, true)
	if err != nil {
		if trace.IsNotFound(err) || trace.IsBadParameter(err) {
			h.writeLoginError(w, r, http.StatusNotFound, "no SAML connector named "+quote(name))
			return
		}
		h.cfg.Logger.ErrorContext(r.Context(), "Reading a SAML connector failed", "connector", name, "error", err)
		h.writeLoginError(w, r, http.StatusServiceUnavailable, "SAML login is unavailable")
		return
	}
	// A browser with a login already under way keeps its binding, so that
	// logins started in two tabs can both finish; any other gets a new one.
	binding := ""
	if ck, err := r.Cookie(BindingCookie); err == nil && saml.ValidBinding(ck.Value) {
		binding = ck.Value
	} else if binding, err = saml.NewBinding(); err != nil {
		h.cfg.Logger.ErrorContext(r.Context(), "Starting a SAML login failed", "connector", name, "error", err)
		h.writeLoginError(w, r, http.StatusServiceUnavailable, "SAML login is unavailable")
		return
	}
	u, err := h.cfg.SAML.AuthnRequest(r.Context(), c, redirect, binding)
	if err != nil {
		h.cfg.Logger.ErrorContext(r.Context(), "Starting a SAML login failed", "connector", name, "error", err)
		h.writeLoginError(w, r, web.StatusFor(err), "cannot start the SAML login: "+trace.UserMessage(err))
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: BindingCookie, Value: binding, Path: "/",
		MaxAge: int(saml.RequestTTL / time.Second), Expires: h.cfg.Clock.Now().Add(saml.RequestTTL),
		HttpOnly: true, Secure: true, SameSite: http.SameSiteNoneMode,
	})
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, u.String(), http.StatusFound)
}

func (h *Handler) handleACS(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	name := r.PathValue("connector")
	fields := map[string]string{"connector": name, "remote_addr": h.clientAddr(r)}
	fail := func(code int, reason, detail string, err error) {
		// Failed posts need no credential: one audit event per source
		// and window, the others counted into the next.
		if h.note(ctx, h.acsFailures, r, saml.EventLogin, "failed SAML responses", trace.AccessDenied("failed SAML responses")) {
			h.cfg.Recorder.Record(ctx, audit.Event{
				Type:     saml.EventLogin,
				Resource: services.KindSAMLConnector + "/" + name,
				Message:  detail,
				Fields:   fields,
				Err:      err,
			})
		}
		h.writeLoginError(w, r, code, reason)
	}
	// A failure is reserved for the source before the post is parsed and
	// verified, and given back when the login succeeds or the server is at
	// fault.
	att, ok := h.reserveWith([]string{"acs:" + h.sourceKey(r)}, acsEvery, acsBurst, h.cfg.Clock.Now())
	if !ok {
		h.note(ctx, h.acsFailures, r, saml.EventLogin, "failed SAML responses", trace.AccessDenied("failed SAML responses"))
		w.Header().Set("Retry-After", strconv.Itoa(int(acsEvery/time.Second)))
		h.writeLoginError(w, r, http.StatusTooManyRequests, "too many failed sign-ins from this address; try again in a few seconds")
		return
	}
	// The HTTP-POST binding is an HTML form. Any other body would be read
	// as an empty form and refused as a malformed response, which misleads
	// whoever debugs the integration; say what is wrong instead.
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != formContentType {
		fail(http.StatusUnsupportedMediaType, ReasonContentType, "Content-Type is "+quote(r.Header.Get("Content-Type")), trace.BadParameter("%s", ReasonContentType))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxACSBody)
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			fail(http.StatusRequestEntityTooLarge, saml.ReasonTooLarge, "form body over the limit", trace.LimitExceeded("%s", saml.ReasonTooLarge))
			return
		}
		fail(http.StatusBadRequest, saml.ReasonMalformed, "unreadable form", trace.BadParameter("%s", saml.ReasonMalformed))
		return
	}
	c, err := h.cfg.Connectors.GetSAMLConnector(ctx, name, true)
	if err != nil {
		if trace.IsNotFound(err) || trace.IsBadParameter(err) {
			fail(http.StatusNotFound, "no SAML connector named "+quote(name), "", trace.NotFound("no SAML connector"))
			return
		}
		h.cfg.Logger.ErrorContext(ctx, "Reading a SAML connector failed", "connector", name, "error", err)
		att.refund()
		h.writeLoginError(w, r, http.StatusServiceUnavailable, "SAML login is unavailable")
		return
	}
	binding := ""
	if ck, err := r.Cookie(BindingCookie); err == nil {
		binding = ck.Value
	}
	a, err := h.cfg.SAML.ParseResponse(ctx, c, r.PostForm.Get("SAMLResponse"), r.PostForm.Get("RelayState"), binding)
	if err != nil {
		var re *saml.ResponseError
		if errors.As(err, &re) {
			h.cfg.Logger.InfoContext(ctx, "SAML response refused", "connector", name, "reason", re.Reason, "detail", re.Detail)
			code := http.StatusBadRequest
			switch {
			case re.Reason == saml.ReasonTooLarge:
				code = http.StatusRequestEntityTooLarge
			case errors.Is(err, saml.ErrIdPInitiatedDisabled):
				// A well-formed post the connector's policy refuses.
				code = http.StatusForbidden
				fields["idp_initiated"] = "true"
			case errors.Is(err, saml.ErrBrowserMismatch):
				// Login CSRF, or a login finished in another browser
				// than it started in. The cookie is left alone: it may
				// belong to a login of this browser still under way.
				code = http.StatusForbidden
				fields["idp_initiated"] = "false"
			}
			fail(code, re.Reason, re.Detail, trace.AccessDenied("%s", re.Reason))
			return
		}
		// Not a refusal of the response (the storage failed): the server's
		// fault, so the source's failure is given back.
		h.cfg.Logger.ErrorContext(ctx, "Validating a SAML response failed", "connector", name, "error", err)
		att.refund()
		fail(web.StatusFor(err), "the SAML login failed", trace.UserMessage(err), err)
		return
	}
	if !a.IdPInitiated {
		// The request is answered; its binding has no further use.
		clearBindingCookie(w)
	}
	res, err := saml.Login(ctx, h.cfg.Login, c, a, h.cfg.Clock.Now())
	if err != nil {
		// Login recorded its own audit event.
		code := web.StatusFor(err)
		msg := trace.UserMessage(err)
		if code >= 500 {
			h.cfg.Logger.ErrorContext(ctx, "SAML login failed", "connector", name, "user", a.NameID, "error", err)
			msg = "the SAML login failed"
			att.refund()
		}
		h.writeLoginError(w, r, code, msg)
		return
	}
	sess, err := h.cfg.Sessions.CreateSession(ctx, res.User, websession.MethodSAML, name, res.SessionTTL)
	if err != nil {
		h.cfg.Logger.ErrorContext(ctx, "Creating a web session failed", "user", a.NameID, "error", err)
		att.refund()
		h.writeLoginError(w, r, http.StatusServiceUnavailable, "cannot create a session")
		return
	}
	att.refund()
	web.SetSessionCookies(w, sess, h.cfg.Clock.Now())
	target := a.RedirectURL
	if target == "" {
		target = DefaultRedirect
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, target, http.StatusSeeOther)
}

func (h *Handler) handleMetadata(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("connector")
	c, err := h.cfg.Connectors.GetSAMLConnector(r.Context(), name, false)
	if err != nil {
		code := web.StatusFor(err)
		if trace.IsBadParameter(err) {
			code = http.StatusNotFound
		}
		web.WriteError(w, code, err)
		return
	}
	out, err := saml.Metadata(c, h.cfg.Clock)
	if err != nil {
		web.WriteError(w, http.StatusInternalServerError, err)
		return
	}
	w.Header().Set("Content-Type", "application/samlmetadata+xml")
	_, _ = w.Write(out)
}

func clearBindingCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: BindingCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: true, SameSite: http.SameSiteNoneMode})
}

// checkRedirect accepts only a local absolute path, so a login cannot be
// turned into an open redirect.
func checkRedirect(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "" || u.Host != "" || !strings.HasPrefix(raw, "/") || strings.HasPrefix(raw, "//") || strings.ContainsAny(raw, "\\\r\n") {
		return "", trace.BadParameter("redirect_url must be a path on this server")
	}
	return raw, nil
}

// ErrorPageCSP is the Content-Security-Policy of the login error page.
const ErrorPageCSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

var errorPage = template.Must(template.New("error").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Gatehouse login failed</title></head>
<body><h1>Login failed</h1><p>{{.}}</p></body></html>
`))

// writeLoginError answers a browser with an HTML page and an API client
// (Accept: application/json) with JSON.
func (h *Handler) writeLoginError(w http.ResponseWriter, r *http.Request, code int, msg string) {
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		web.WriteJSON(w, code, web.ErrorBody{Error: msg})
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	// The page runs nothing and loads nothing: should the escaping of msg
	// ever fail, no script or style of it runs.
	w.Header().Set("Content-Security-Policy", ErrorPageCSP)
	w.WriteHeader(code)
	_ = errorPage.Execute(w, msg)
}

// --- sessions ---

// SessionInfo is the JSON of a session.
type SessionInfo struct {
	User      string    `json:"user"`
	Roles     []string  `json:"roles"`
	Method    string    `json:"method"`
	Expires   time.Time `json:"expires"`
	CSRFToken string    `json:"csrf_token"`
	// SSHAddr is the SSH node's host:port (Config.SSHAddr), if any.
	SSHAddr string `json:"ssh_addr,omitempty"`
}

func (h *Handler) info(s *websession.Session, u *typesv1.User) SessionInfo {
	return SessionInfo{User: s.User, Roles: u.GetSpec().GetRoles(), Method: s.Method, Expires: s.Expires, CSRFToken: s.CSRFToken, SSHAddr: h.cfg.SSHAddr}
}

// PasswordLoginRequest is the body of POST /v1/webapi/sessions.
type PasswordLoginRequest struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxJSONBody))
	if err != nil {
		return trace.BadParameter("request body is unreadable or over %d bytes", maxJSONBody)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return trace.BadParameter("%s", jsonbody.Problem(err))
	}
	return nil
}

// limiterLocked returns key's limiter, adding one; h.mu is held. When the
// map is full, only limiters that have refilled are dropped: they are
// equivalent to new ones, whereas dropping a drained one would hand its
// attempts back.
func (h *Handler) limiterLocked(key string, every time.Duration, burst int, now time.Time) *rate.Limiter {
	l, ok := h.limiters[key]
	if ok {
		return l
	}
	if len(h.limiters) >= maxLimiters {
		for k, old := range h.limiters {
			if old.TokensAt(now) >= float64(old.Burst()) {
				delete(h.limiters, k)
			}
		}
	}
	l = rate.NewLimiter(rate.Every(every), burst)
	h.limiters[key] = l
	return l
}

// canonicalLoginName is the username a password login names: the canonical
// form of what was typed. A name too long to be any user's is left as it is
// (it matches nobody) rather than normalized at the client's expense.
func canonicalLoginName(user string) string {
	if len(user) > maxUsernameLen {
		return user
	}
	return canonical.Username(user)
}

// take spends one attempt of key now, or reports false (spending nothing)
// when none is left.
func (h *Handler) take(key string, every time.Duration, burst int, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if l, ok := h.limiters[key]; ok && l.TokensAt(now) < 1 {
		return false
	}
	return h.limiterLocked(key, every, burst, now).AllowN(now, 1)
}

// attempt is one failure reserved on each of a login's limiter keys before
// its password is verified; refund gives them back.
type attempt struct {
	h   *Handler
	at  time.Time
	res []*rate.Reservation
}

// reserve takes one attempt from every key, all or none, in one step under
// h.mu: N concurrent guesses can never all see an attempt left and all go
// on to bcrypt. Keys are tried in order, and a refused key stops the walk,
// so a source that is throttled adds no limiter for the usernames it
// tries (a flood of made-up names can neither grow nor flush the map).
func (h *Handler) reserve(keys []string, now time.Time) (*attempt, bool) {
	return h.reserveWith(keys, loginEvery, loginBurst, now)
}

// reserveWith is reserve with limiters of the given rate.
func (h *Handler) reserveWith(keys []string, every time.Duration, burst int, now time.Time) (*attempt, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	a := &attempt{h: h, at: now}
	for _, k := range keys {
		if l, ok := h.limiters[k]; ok && l.TokensAt(now) < 1 {
			a.cancelLocked()
			return nil, false
		}
		a.res = append(a.res, h.limiterLocked(k, every, burst, now).ReserveN(now, 1))
	}
	return a, true
}

// refund gives the reserved attempts back (a success, or a failure that was
// not the client's: storage unavailable).
func (a *attempt) refund() {
	a.h.mu.Lock()
	defer a.h.mu.Unlock()
	a.cancelLocked()
}

func (a *attempt) cancelLocked() {
	for _, r := range a.res {
		r.CancelAt(a.at)
	}
	a.res = nil
}

// loginKeys are the limiter keys of a login attempt: its source, and its
// username when it could name a user.
func (h *Handler) loginKeys(r *http.Request, user string) []string {
	keys := []string{"addr:" + h.sourceKey(r)}
	if len(user) <= maxUsernameLen {
		keys = append(keys, "user:"+user)
	}
	return keys
}

// note counts one refusal of r's source in agg, records the aggregate
// events of windows that have ended, and reports whether this refusal is
// the first of its window (to be recorded on its own).
func (h *Handler) note(ctx context.Context, agg *abuse.Aggregator, r *http.Request, typ, what string, err error) bool {
	record, flush := agg.Note(h.sourceKey(r))
	for _, f := range flush {
		h.cfg.Recorder.Record(ctx, audit.Event{
			Type:    typ,
			Message: strconv.Itoa(f.Count) + " more " + what + " from this source in the minute after window_start",
			Fields: map[string]string{
				"source": f.Key, "count": strconv.Itoa(f.Count), "window_start": f.Start.UTC().Format(time.RFC3339),
			},
			Err: err,
		})
	}
	return record
}

// PasswordHashStats returns the bcrypt comparisons run by password logins
// and the most that ran at once (tests, diagnostics).
func (h *Handler) PasswordHashStats() (compares, peak int64) {
	return h.compares.Load(), h.peakHashing.Load()
}

// isJSON reports whether the request says its body is JSON. A login from a
// cross-site HTML form (text/plain, urlencoded, multipart) cannot set it
// without a CORS preflight, which this server never grants.
func isJSON(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "application/json"
}

func (h *Handler) handlePasswordLogin(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if !isJSON(r) {
		web.WriteError(w, http.StatusUnsupportedMediaType, trace.BadParameter("the login must be sent as Content-Type: application/json"))
		return
	}
	var req PasswordLoginRequest
	if err := readJSON(w, r, &req); err != nil {
		web.WriteError(w, http.StatusBadRequest, err)
		return
	}
	// One account, one name: "Alice" and "ａｌｉｃｅ" sign in as "alice" and
	// share its failure limit.
	req.User = canonicalLoginName(req.User)
	now := h.cfg.Clock.Now()
	source := h.clientAddr(r)
	att, ok := h.reserve(h.loginKeys(r, req.User), now)
	if !ok {
		if h.note(ctx, h.throttled, r, EventWebLogin, "password logins refused by the failure limiter", trace.LimitExceeded("too many failed logins")) {
			h.cfg.Recorder.Record(ctx, audit.Event{Type: EventWebLogin, User: req.User, Fields: map[string]string{"remote_addr": source}, Err: trace.LimitExceeded("too many failed logins")})
		}
		w.Header().Set("Retry-After", strconv.Itoa(int(loginEvery/time.Second)))
		web.WriteError(w, http.StatusTooManyRequests, trace.LimitExceeded("too many failed logins; try again later"))
		return
	}
	user, err := h.checkPassword(ctx, req)
	if err != nil {
		if !trace.IsAccessDenied(err) {
			att.refund()
		}
		h.cfg.Recorder.Record(ctx, audit.Event{Type: EventWebLogin, User: req.User, Fields: map[string]string{"method": websession.MethodPassword, "remote_addr": source}, Err: err})
		web.WriteError(w, web.StatusFor(err), err)
		return
	}
	att.refund()
	var roles []*typesv1.Role
	for _, n := range user.GetSpec().GetRoles() {
		if role, err := h.cfg.Login.Roles.GetRole(ctx, n); err == nil {
			roles = append(roles, role)
		}
	}
	sess, err := h.cfg.Sessions.CreateSession(ctx, user, websession.MethodPassword, "", saml.SessionTTL(roles))
	if err != nil {
		web.WriteError(w, http.StatusServiceUnavailable, trace.ConnectionProblem(nil, "cannot create a session"))
		return
	}
	h.cfg.Recorder.Record(ctx, audit.Event{Type: EventWebLogin, User: req.User, Fields: map[string]string{"method": websession.MethodPassword, "remote_addr": source}})
	web.SetSessionCookies(w, sess, h.cfg.Clock.Now())
	web.WriteJSON(w, http.StatusOK, h.info(sess, user))
}

// checkPassword returns the local user whose password matches, or one
// AccessDenied for every kind of mismatch, after one bcrypt comparison
// either way.
func (h *Handler) checkPassword(ctx context.Context, req PasswordLoginRequest) (*typesv1.User, error) {
	bad := trace.AccessDenied("wrong username or password")
	var user *typesv1.User
	hash := h.dummy
	// A built-in identity has no password; a stored user with a reserved
	// name (left from before names were reserved) must not become one.
	if req.User != "" && len(req.User) <= 255 && !strings.ContainsRune(req.User, '/') && !services.IsReservedUsername(req.User) {
		u, err := h.cfg.Users.GetUser(ctx, req.User, true)
		switch {
		case err == nil:
			user = u
			if ph := u.GetSpec().GetLocalAuth().GetPasswordHash(); len(ph) > 0 {
				hash = ph
			}
		case !trace.IsNotFound(err):
			return nil, trace.ConnectionProblem(nil, "users are unavailable")
		}
	}
	if err := h.hashes.Acquire(ctx); err != nil {
		return nil, trace.ConnectionProblem(err, "the login was cancelled")
	}
	n := h.hashing.Add(1)
	for peak := h.peakHashing.Load(); n > peak && !h.peakHashing.CompareAndSwap(peak, n); peak = h.peakHashing.Load() {
	}
	h.compares.Add(1)
	pwErr := bcrypt.CompareHashAndPassword(hash, []byte(req.Password))
	h.hashing.Add(-1)
	h.hashes.Release()
	if user == nil || len(user.GetSpec().GetLocalAuth().GetPasswordHash()) == 0 || pwErr != nil || req.Password == "" {
		return nil, bad
	}
	if services.IsUserExpired(user, h.cfg.Clock.Now()) {
		return nil, bad
	}
	if err := h.cfg.Login.Locks.CheckLockInForce(ctx, services.LockSubject{User: req.User, Roles: user.GetSpec().GetRoles()}); err != nil {
		return nil, trace.Wrap(err)
	}
	services.StripUserSecrets(user)
	return user, nil
}

func (h *Handler) handleCurrent(w http.ResponseWriter, r *http.Request) {
	as, _ := web.SessionFromContext(r.Context())
	web.WriteJSON(w, http.StatusOK, h.info(as.Session, as.User))
}

func (h *Handler) handleLogout(w http.ResponseWriter, r *http.Request) {
	as, _ := web.SessionFromContext(r.Context())
	if err := h.cfg.Sessions.DeleteSession(r.Context(), as.Session.ID); err != nil {
		web.WriteError(w, http.StatusServiceUnavailable, trace.ConnectionProblem(nil, "cannot end the session"))
		return
	}
	h.cfg.Recorder.Record(r.Context(), audit.Event{Type: EventWebLogout, User: as.Session.User})
	web.ClearSessionCookies(w)
	web.WriteJSON(w, http.StatusOK, map[string]string{"status": "logged out"})
}

// CertRequest is the body of POST /v1/webapi/sessions/certs.
type CertRequest struct {
	// PublicKey is in authorized_keys format.
	PublicKey string `json:"public_key"`
	// TTL, a Go duration, is optional: the certificate lasts at most
	// until the session ends and the roles' max_session_ttl.
	TTL string `json:"ttl,omitempty"`
}

// CertResponse is the answer of POST /v1/webapi/sessions/certs.
type CertResponse struct {
	// SSHCert is the certificate in authorized_keys format (the
	// <key>-cert.pub file).
	SSHCert string `json:"ssh_cert"`
	// ValidBefore is when it expires.
	ValidBefore time.Time `json:"valid_before"`
	// Principals are the logins it is valid for.
	Principals []string `json:"principals"`
}

func (h *Handler) handleCerts(w http.ResponseWriter, r *http.Request) {
	as, _ := web.SessionFromContext(r.Context())
	var req CertRequest
	if err := readJSON(w, r, &req); err != nil {
		web.WriteError(w, http.StatusBadRequest, err)
		return
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(req.PublicKey))
	if err != nil {
		web.WriteError(w, http.StatusBadRequest, trace.BadParameter("public_key is not an SSH public key in authorized_keys format"))
		return
	}
	var ttl time.Duration
	if req.TTL != "" {
		if ttl, err = time.ParseDuration(req.TTL); err != nil || ttl < 0 {
			web.WriteError(w, http.StatusBadRequest, trace.BadParameter("ttl must be a Go duration such as \"1h\""))
			return
		}
	}
	certText, err := h.cfg.Certs.SignSSHUserCert(r.Context(), auth.SSHCertRequest{
		Username:  as.Session.User,
		PublicKey: pub,
		TTL:       ttl,
		NotAfter:  as.Session.Expires,
		Reason:    "web session",
	})
	if err != nil {
		web.WriteError(w, web.StatusFor(err), err)
		return
	}
	parsed, _, _, _, err := ssh.ParseAuthorizedKey(certText)
	if err != nil {
		web.WriteError(w, http.StatusInternalServerError, err)
		return
	}
	cert, _ := parsed.(*ssh.Certificate)
	resp := CertResponse{SSHCert: string(certText)}
	if cert != nil {
		resp.ValidBefore = time.Unix(int64(cert.ValidBefore), 0).UTC()
		resp.Principals = cert.ValidPrincipals
	}
	web.WriteJSON(w, http.StatusOK, resp)
}

// SetPasswordRequest is the body of POST /v1/webapi/users/password.
type SetPasswordRequest struct {
	Token    string `json:"token"`
	Password string `json:"password"`
}

func (h *Handler) handleSetPassword(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var req SetPasswordRequest
	if err := readJSON(w, r, &req); err != nil {
		web.WriteError(w, http.StatusBadRequest, err)
		return
	}
	// Check the policy first, so a weak password does not burn the token.
	if err := services.CheckPassword(req.Password); err != nil {
		web.WriteError(w, http.StatusBadRequest, err)
		return
	}
	now := h.cfg.Clock.Now()
	att, ok := h.reserve([]string{"addr:" + h.sourceKey(r)}, now)
	if !ok {
		web.WriteError(w, http.StatusTooManyRequests, trace.LimitExceeded("too many failed attempts; try again later"))
		return
	}
	link, err := h.cfg.Sessions.ConsumePasswordToken(ctx, req.Token)
	if err != nil {
		if !trace.IsAccessDenied(err) {
			att.refund()
		}
		h.cfg.Recorder.Record(ctx, audit.Event{Type: EventPasswordSet, Fields: map[string]string{"remote_addr": h.clientAddr(r)}, Err: err})
		web.WriteError(w, web.StatusFor(err), err)
		return
	}
	// A real link, used: whatever follows, it is gone.
	att.refund()
	err = h.setPasswordWithLink(ctx, link, req.Password)
	fields := map[string]string{"method": "password_link", "remote_addr": h.clientAddr(r)}
	if err == nil {
		// Whoever signed in with the old password (a reset link is what
		// someone gets whose password leaked) must sign in again.
		n, endErr := h.cfg.Sessions.EndUserSessions(context.WithoutCancel(ctx), link.User)
		fields["sessions_ended"] = strconv.Itoa(n)
		if endErr != nil {
			// The password is set and the link spent: the person cannot
			// retry, so say it in the log and the audit event.
			h.cfg.Logger.ErrorContext(ctx, "The password is set but the user's web sessions could not all be ended", "user", link.User, "error", endErr)
			fields["sessions_error"] = "the web sessions could not all be ended"
		}
	}
	h.cfg.Recorder.Record(ctx, audit.Event{Type: EventPasswordSet, User: link.User, Resource: services.KindUser + "/" + link.User, Fields: fields, Err: err})
	if err != nil {
		web.WriteError(w, web.StatusFor(err), err)
		return
	}
	web.WriteJSON(w, http.StatusOK, map[string]string{"status": "password set", "user": link.User})
}

// setPasswordWithLink sets the password of the account a consumed link was
// made for, if that account still exists, is the same incarnation, is
// local, has not expired and is not locked.
//
// What is atomic: the account checks and the password write are one
// conditional update (UpdateAndSwapUser writes only if the user is still at
// the revision the checks read; a delete and re-create always changes the
// revision, and a re-created user also has a new incarnation). So a link of
// an earlier account can never set the password of the account that holds
// the name at the moment of the write, whatever races it. The link itself
// was deleted before (ConsumePasswordToken, a conditional delete that one
// caller wins): a link sets at most one password, and a link refused here,
// or whose write fails, is spent, never reusable.
//
// What is not: the lock check reads the lock view (as every login does), so
// a lock written concurrently with the use of the link may land just after
// the write. The lock then refuses every login with that password.
func (h *Handler) setPasswordWithLink(ctx context.Context, link *websession.PasswordToken, pw string) error {
	if services.IsReservedUsername(link.User) {
		// A built-in identity has no password (see checkPassword).
		return trace.AccessDenied("%q is a built-in identity and has no password", link.User)
	}
	// Hash once, outside the swap's retries.
	hash, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
	if err != nil {
		return trace.Wrap(err)
	}
	_, err = h.cfg.Users.UpdateAndSwapUser(ctx, link.User, func(u *typesv1.User) error {
		if err := link.CheckUser(u); err != nil {
			return trace.Wrap(err)
		}
		if err := services.CheckLocalUser(u); err != nil {
			return trace.Wrap(err)
		}
		if services.IsUserExpired(u, h.cfg.Clock.Now()) {
			return trace.AccessDenied("user %q has expired; the password link is void", link.User)
		}
		if err := h.cfg.Login.Locks.CheckLockInForce(ctx, services.LockSubject{User: link.User, Roles: u.GetSpec().GetRoles()}); err != nil {
			return trace.Wrap(err)
		}
		if u.Spec == nil {
			u.Spec = &typesv1.UserSpec{}
		}
		u.Spec.LocalAuth = &typesv1.LocalAuthSecrets{PasswordHash: hash}
		return nil
	})
	if trace.IsNotFound(err) {
		// Deleted since the link was made (and not created again).
		return websession.VoidPasswordToken()
	}
	return trace.Wrap(err)
}

// clientAddr is the request's client address for audit events: the TCP
// peer, or behind a trusted proxy the address it forwarded.
func (h *Handler) clientAddr(r *http.Request) string {
	if a, ok := h.cfg.Sources.Client(r); ok {
		return a.String()
	}
	return r.RemoteAddr
}

// sourceKey is the request's limiter key (IPv6 grouped by /64).
func (h *Handler) sourceKey(r *http.Request) string { return h.cfg.Sources.Key(r) }

func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return "\"" + s + "\""
}
