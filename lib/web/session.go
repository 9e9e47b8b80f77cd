package web

import (
	"context"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"time"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"

	"github.com/gatehouse/gatehouse/lib/defaults"
	"github.com/gatehouse/gatehouse/lib/services"
	"github.com/gatehouse/gatehouse/lib/services/websession"
	"github.com/gatehouse/gatehouse/lib/srv/lockwatch"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// Cookie and header names of web sessions. The __Host- prefix makes
// browsers insist on Secure, Path=/ and no Domain, so no sibling host can
// set or shadow them.
const (
	// SessionCookie holds the session ID: HttpOnly, Secure, SameSite=Lax
	// (Lax, not Strict, because the SAML ACS is reached by a cross-site
	// POST and the redirect after it must carry the cookie).
	SessionCookie = "__Host-gatehouse_session"
	// CSRFCookie holds the session's CSRF token for scripts to echo in
	// CSRFHeader: readable by scripts, SameSite=Strict.
	CSRFCookie = "__Host-gatehouse_csrf"
	// CSRFHeader must carry the session's CSRF token on every request that
	// is not GET, HEAD or OPTIONS.
	CSRFHeader = "X-CSRF-Token"
)

// SessionStore reads and ends web sessions (websession.Manager).
type SessionStore interface {
	GetSession(ctx context.Context, id string) (*websession.Session, error)
	DeleteSession(ctx context.Context, id string) error
}

// UserGetter reads users (services.UserService).
type UserGetter interface {
	GetUser(ctx context.Context, name string, withSecrets bool) (*typesv1.User, error)
}

// LockChecker refuses a locked subject with trace.AccessDenied carrying the
// lock's message (lockwatch.Watcher).
type LockChecker interface {
	CheckLockInForce(ctx context.Context, subject services.LockSubject) error
}

// SessionAuthConfig configures SessionAuth.
type SessionAuthConfig struct {
	Sessions SessionStore
	Users    UserGetter
	Locks    LockChecker
	Clock    clockwork.Clock
	Logger   *slog.Logger
	// OnDenied, if set, is told about requests refused for a reason other
	// than a missing session (deleted or locked user, CSRF failure), for
	// the audit log.
	OnDenied func(ctx context.Context, user, reason string)
}

// CheckAndSetDefaults validates the config.
func (c *SessionAuthConfig) CheckAndSetDefaults() error {
	switch {
	case c.Sessions == nil:
		return trace.BadParameter("web: missing Sessions")
	case c.Users == nil:
		return trace.BadParameter("web: missing Users")
	case c.Locks == nil:
		return trace.BadParameter("web: missing Locks")
	}
	defaults.Clock(&c.Clock)
	defaults.Logger(&c.Logger, "websession")
	return nil
}

// SessionAuth authenticates web API requests by their session cookie.
type SessionAuth struct {
	cfg SessionAuthConfig
}

// NewSessionAuth returns a SessionAuth.
func NewSessionAuth(cfg SessionAuthConfig) (*SessionAuth, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, trace.Wrap(err)
	}
	return &SessionAuth{cfg: cfg}, nil
}

// AuthenticatedSession is what RequireSession puts in the request context.
type AuthenticatedSession struct {
	Session *websession.Session
	// User is the user as read for this request.
	User *typesv1.User
}

type sessionKey struct{}

// SessionFromContext returns the session RequireSession authenticated.
func SessionFromContext(ctx context.Context) (*AuthenticatedSession, bool) {
	s, ok := ctx.Value(sessionKey{}).(*AuthenticatedSession)
	return s, ok
}

// RequireSession wraps a web API handler: the request needs a live session
// cookie (401 otherwise); on EVERY request the session's user must still
// exist, not be expired and have the incarnation the session was opened for
// (401, and the session is ended) and no lock may
// target it (403 with the lock's message, and the session is ended, so a
// later unlock needs a new login); a request other than GET, HEAD or
// OPTIONS must carry the session's CSRF token in X-CSRF-Token (403).
func (a *SessionAuth) RequireSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		as, code, err := a.authenticate(r)
		if err != nil {
			if code == http.StatusUnauthorized {
				ClearSessionCookies(w)
			}
			WriteError(w, code, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, as)))
	})
}

func (a *SessionAuth) denied(ctx context.Context, user, reason string) {
	a.cfg.Logger.InfoContext(ctx, "Web request refused", "user", user, "reason", reason)
	if a.cfg.OnDenied != nil {
		a.cfg.OnDenied(ctx, user, reason)
	}
}

func (a *SessionAuth) authenticate(r *http.Request) (*AuthenticatedSession, int, error) {
	ctx := r.Context()
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return nil, http.StatusUnauthorized, trace.AccessDenied("not logged in")
	}
	sess, err := a.cfg.Sessions.GetSession(ctx, c.Value)
	if err != nil {
		if trace.IsNotFound(err) {
			return nil, http.StatusUnauthorized, trace.AccessDenied("the session has ended; log in again")
		}
		a.cfg.Logger.ErrorContext(ctx, "Reading a web session failed", "error", err)
		return nil, http.StatusServiceUnavailable, trace.ConnectionProblem(nil, "sessions are unavailable")
	}
	end := func() {
		if err := a.cfg.Sessions.DeleteSession(context.WithoutCancel(ctx), sess.ID); err != nil {
			a.cfg.Logger.WarnContext(ctx, "Ending a web session failed", "user", sess.User, "error", err)
		}
	}
	if services.IsReservedUsername(sess.User) {
		// Only a user stored before "@" names were reserved can have such a
		// session; the web API must not take it for a built-in identity.
		end()
		a.denied(ctx, sess.User, "reserved username")
		return nil, http.StatusUnauthorized, trace.AccessDenied("user %q has a reserved name and cannot use a web session; the session has ended", sess.User)
	}
	user, err := a.cfg.Users.GetUser(ctx, sess.User, false)
	if err != nil {
		if trace.IsNotFound(err) {
			end()
			a.denied(ctx, sess.User, "user no longer exists")
			return nil, http.StatusUnauthorized, trace.AccessDenied("user %q no longer exists; the session has ended", sess.User)
		}
		return nil, http.StatusServiceUnavailable, trace.ConnectionProblem(nil, "users are unavailable")
	}
	if services.IsUserExpired(user, a.cfg.Clock.Now()) {
		end()
		return nil, http.StatusUnauthorized, trace.AccessDenied("user %q has expired; log in again", sess.User)
	}
	if sess.Incarnation == "" || sess.Incarnation != user.GetSpec().GetIncarnation() {
		// The account the session was opened for is gone, even though an
		// account of the same name exists now.
		end()
		a.denied(ctx, sess.User, "session of an earlier incarnation of the user")
		return nil, http.StatusUnauthorized, trace.AccessDenied("the session belongs to an earlier incarnation of user %q and has ended; log in again", sess.User)
	}
	if err := a.cfg.Locks.CheckLockInForce(ctx, services.LockSubject{User: sess.User, Roles: user.GetSpec().GetRoles()}); err != nil {
		if lockwatch.IsStale(err) {
			// Fail closed, but do not end the session: the view is only
			// unavailable (storage unreachable), nobody has locked this user.
			// A lock written meanwhile ends it once the view is back.
			a.denied(ctx, sess.User, trace.UserMessage(err))
			return nil, http.StatusServiceUnavailable, trace.ConnectionProblem(nil, "%s; try again shortly", trace.UserMessage(err))
		}
		end()
		a.denied(ctx, sess.User, trace.UserMessage(err))
		return nil, http.StatusForbidden, trace.AccessDenied("%s", trace.UserMessage(err))
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		got := r.Header.Get(CSRFHeader)
		if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(sess.CSRFToken)) != 1 {
			a.denied(ctx, sess.User, "CSRF token missing or wrong")
			return nil, http.StatusForbidden, trace.AccessDenied("missing or wrong %s header", CSRFHeader)
		}
	}
	return &AuthenticatedSession{Session: sess, User: user}, 0, nil
}

// SetSessionCookies gives the browser a session's cookies.
func SetSessionCookies(w http.ResponseWriter, s *websession.Session, now time.Time) {
	maxAge := int(s.Expires.Sub(now).Seconds())
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: s.ID, Path: "/", MaxAge: maxAge, Expires: s.Expires,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode,
	})
	http.SetCookie(w, &http.Cookie{
		Name: CSRFCookie, Value: s.CSRFToken, Path: "/", MaxAge: maxAge, Expires: s.Expires,
		Secure: true, SameSite: http.SameSiteStrictMode,
	})
}

// ClearSessionCookies removes the session's cookies from the browser.
func ClearSessionCookies(w http.ResponseWriter) {
	for _, name := range []string{SessionCookie, CSRFCookie} {
		http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, HttpOnly: name == SessionCookie, Secure: true, SameSite: http.SameSiteLaxMode})
	}
}

// ErrorBody is the JSON body of every web API error.
type ErrorBody struct {
	Error string `json:"error"`
}

// WriteError answers with code and a JSON {"error": message}; the message
// is the error's user message, never a stack.
func WriteError(w http.ResponseWriter, code int, err error) {
	msg := trace.UserMessage(err)
	if code >= 500 {
		msg = "internal error"
		if trace.IsConnectionProblem(err) {
			msg = trace.UserMessage(err)
		}
	}
	writeJSON(w, code, ErrorBody{Error: msg})
}

// WriteJSON answers with code and v as JSON, uncached.
func WriteJSON(w http.ResponseWriter, code int, v any) { writeJSON(w, code, v) }

// StatusFor maps a trace error to an HTTP status.
func StatusFor(err error) int {
	switch {
	case err == nil:
		return http.StatusOK
	case trace.IsBadParameter(err):
		return http.StatusBadRequest
	case trace.IsNotFound(err):
		return http.StatusNotFound
	case trace.IsAccessDenied(err):
		return http.StatusForbidden
	case trace.IsAlreadyExists(err), trace.IsCompareFailed(err):
		return http.StatusConflict
	case trace.IsLimitExceeded(err):
		return http.StatusTooManyRequests
	case trace.IsConnectionProblem(err):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}
