package web_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/gatehouse/gatehouse/lib/auth/saml"
	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/backend/memory"
	"github.com/gatehouse/gatehouse/lib/services"
	"github.com/gatehouse/gatehouse/lib/services/generic"
	"github.com/gatehouse/gatehouse/lib/services/websession"
	"github.com/gatehouse/gatehouse/lib/srv/lockwatch"
	"github.com/gatehouse/gatehouse/lib/web"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// sessionFixture is a memory backend with the services and the web-session
// manager the middleware needs.
type sessionFixture struct {
	clock *clockwork.FakeClock
	bk    backend.Backend
	svc   *services.Services
	mgr   *websession.Manager
}

func newSessionFixture(t *testing.T) *sessionFixture {
	t.Helper()
	clock := clockwork.NewFakeClockAt(time.Now())
	bk, err := memory.New(context.Background(), memory.Config{Clock: clock})
	require.NoError(t, err)
	t.Cleanup(func() { bk.Close() })
	svc, err := services.New(services.Config{Backend: bk})
	require.NoError(t, err)
	mgr, err := websession.New(websession.Config{Backend: bk, Clock: clock})
	require.NoError(t, err)
	return &sessionFixture{clock: clock, bk: bk, svc: svc, mgr: mgr}
}

func TestRequireSession(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newSessionFixture(t)
	clock, bk, svc, mgr := f.clock, f.bk, f.svc, f.mgr
	var denied []string
	auth, err := web.NewSessionAuth(web.SessionAuthConfig{
		Sessions: mgr, Users: svc, Locks: saml.BackendLocks{Locks: svc, Now: clock.Now}, Clock: clock,
		OnDenied: func(_ context.Context, user, reason string) { denied = append(denied, user+": "+reason) },
	})
	require.NoError(t, err)
	var seen string
	h := auth.RequireSession(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		as, ok := web.SessionFromContext(r.Context())
		require.True(t, ok)
		seen = as.User.GetMetadata().GetName()
		w.WriteHeader(http.StatusNoContent)
	}))
	newUser := func(name string) *websession.Session {
		u, err := svc.CreateUser(ctx, &typesv1.User{Metadata: &typesv1.Metadata{Name: name}, Spec: &typesv1.UserSpec{Roles: []string{"dev"}}})
		require.NoError(t, err)
		s, err := mgr.CreateSession(ctx, u, websession.MethodPassword, "", time.Hour)
		require.NoError(t, err)
		return s
	}
	do := func(method string, s *websession.Session, csrf string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, "/v1/webapi/x", nil)
		if s != nil {
			req.AddCookie(&http.Cookie{Name: web.SessionCookie, Value: s.ID})
		}
		if csrf != "" {
			req.Header.Set(web.CSRFHeader, csrf)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}

	t.Run("no session", func(t *testing.T) {
		require.Equal(t, http.StatusUnauthorized, do(http.MethodGet, nil, "").Code)
		require.Equal(t, http.StatusUnauthorized, do(http.MethodGet, &websession.Session{ID: "made-up"}, "").Code)
	})
	t.Run("session and CSRF", func(t *testing.T) {
		s := newUser("alice")
		require.Equal(t, http.StatusNoContent, do(http.MethodGet, s, "").Code)
		require.Equal(t, "alice", seen)
		require.Equal(t, http.StatusForbidden, do(http.MethodPost, s, "").Code)
		require.Equal(t, http.StatusForbidden, do(http.MethodPost, s, "wrong").Code)
		require.Equal(t, http.StatusForbidden, do(http.MethodDelete, s, s.ID).Code, "the session ID is not the CSRF token")
		require.Equal(t, http.StatusNoContent, do(http.MethodPost, s, s.CSRFToken).Code)
		// The key is the hash of the ID, never the ID.
		_, err := bk.Get(ctx, websession.SessionKey(s.ID))
		require.NoError(t, err)
		res, err := bk.GetRange(ctx, []byte("web_sessions/"), []byte("web_sessions0"), 0)
		require.NoError(t, err)
		for _, it := range res.Items {
			require.NotContains(t, string(it.Key), s.ID)
			require.NotContains(t, string(it.Value), s.ID)
		}
	})
	t.Run("locked mid-session", func(t *testing.T) {
		s := newUser("bob")
		require.Equal(t, http.StatusNoContent, do(http.MethodGet, s, "").Code)
		_, err := svc.CreateLock(ctx, &typesv1.Lock{Metadata: &typesv1.Metadata{Name: "bob"}, Spec: &typesv1.LockSpec{Target: &typesv1.LockTarget{User: "bob"}, Message: "deactivated in Okta"}})
		require.NoError(t, err)
		rec := do(http.MethodGet, s, "")
		require.Equal(t, http.StatusForbidden, rec.Code)
		require.Contains(t, rec.Body.String(), "deactivated in Okta")
		require.NotEmpty(t, denied)
		// The session was ended: unlocking does not revive it.
		require.NoError(t, svc.DeleteLock(ctx, "bob"))
		require.Equal(t, http.StatusUnauthorized, do(http.MethodGet, s, "").Code)
	})
	t.Run("locked by role", func(t *testing.T) {
		s := newUser("carol")
		_, err := svc.CreateLock(ctx, &typesv1.Lock{Metadata: &typesv1.Metadata{Name: "dev"}, Spec: &typesv1.LockSpec{Target: &typesv1.LockTarget{Role: "dev"}, Message: "dev frozen"}})
		require.NoError(t, err)
		t.Cleanup(func() { _ = svc.DeleteLock(ctx, "dev") })
		require.Equal(t, http.StatusForbidden, do(http.MethodGet, s, "").Code)
	})
	t.Run("deleted user", func(t *testing.T) {
		s := newUser("dave")
		require.NoError(t, svc.DeleteUser(ctx, "dave"))
		require.Equal(t, http.StatusUnauthorized, do(http.MethodGet, s, "").Code)
	})
	t.Run("reserved user stored before names were reserved", func(t *testing.T) {
		// Written raw: ValidateUser refuses the name now.
		reserved := &typesv1.User{Kind: services.KindUser, Version: services.V1, Metadata: &typesv1.Metadata{Name: services.BuiltinAdmin}, Spec: &typesv1.UserSpec{Incarnation: services.NewIncarnation()}}
		item, err := generic.MarshalResource(services.UsersPrefix, reserved, protojson.MarshalOptions{})
		require.NoError(t, err)
		_, err = bk.Put(ctx, item)
		require.NoError(t, err)
		s, err := mgr.CreateSession(ctx, reserved, websession.MethodPassword, "", time.Hour)
		require.NoError(t, err)
		require.Equal(t, http.StatusUnauthorized, do(http.MethodGet, s, "").Code)
		_, err = mgr.GetSession(ctx, s.ID)
		require.True(t, trace.IsNotFound(err), "the session was ended: %v", err)
	})
	t.Run("user deleted and created again", func(t *testing.T) {
		s := newUser("frank")
		require.Equal(t, http.StatusNoContent, do(http.MethodGet, s, "").Code)
		require.NoError(t, svc.DeleteUser(ctx, "frank"))
		_, err := svc.CreateUser(ctx, &typesv1.User{Metadata: &typesv1.Metadata{Name: "frank"}, Spec: &typesv1.UserSpec{Roles: []string{"dev"}, Incarnation: s.Incarnation}})
		require.NoError(t, err)
		rec := do(http.MethodGet, s, "")
		require.Equal(t, http.StatusUnauthorized, rec.Code)
		require.Contains(t, rec.Body.String(), `earlier incarnation of user \"frank\"`)
		require.Contains(t, denied, "frank: session of an earlier incarnation of the user")
		// The session was ended, not merely refused.
		_, err = mgr.GetSession(ctx, s.ID)
		require.True(t, trace.IsNotFound(err), "%v", err)
	})
	t.Run("user updated", func(t *testing.T) {
		s := newUser("gina")
		_, err := svc.UpdateAndSwapUser(ctx, "gina", func(u *typesv1.User) error {
			u.Spec.Roles = append(u.Spec.Roles, "ops")
			return nil
		})
		require.NoError(t, err)
		require.Equal(t, http.StatusNoContent, do(http.MethodGet, s, "").Code, "an update keeps the incarnation")
	})
	t.Run("session without an incarnation", func(t *testing.T) {
		s := newUser("hank")
		// A session stored before incarnations existed.
		item, err := bk.Get(ctx, websession.SessionKey(s.ID))
		require.NoError(t, err)
		item.Value = []byte(strings.Replace(string(item.Value), `"incarnation":"`+s.Incarnation+`"`, `"incarnation":""`, 1))
		_, err = bk.Put(ctx, *item)
		require.NoError(t, err)
		require.Equal(t, http.StatusUnauthorized, do(http.MethodGet, s, "").Code)
	})
	t.Run("expired session", func(t *testing.T) {
		s := newUser("erin")
		clock.Advance(time.Hour + time.Second)
		require.Equal(t, http.StatusUnauthorized, do(http.MethodGet, s, "").Code)
	})
}

// switchableLocks answers CheckLockInForce with err.
type switchableLocks struct{ err error }

func (l *switchableLocks) CheckLockInForce(context.Context, services.LockSubject) error { return l.err }

// TestRequireSessionStaleLockView: while the lock view is stale a request is
// refused (fail closed) with 503, but the session is not ended, since
// nobody locked the user; once the view is back the same session works.
func TestRequireSessionStaleLockView(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newSessionFixture(t)
	svc, mgr := f.svc, f.mgr
	locks := &switchableLocks{err: trace.AccessDenied(lockwatch.StaleMessage)}
	auth, err := web.NewSessionAuth(web.SessionAuthConfig{Sessions: mgr, Users: svc, Locks: locks, Clock: f.clock})
	require.NoError(t, err)
	h := auth.RequireSession(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	u, err := svc.CreateUser(ctx, &typesv1.User{Metadata: &typesv1.Metadata{Name: "alice"}, Spec: &typesv1.UserSpec{Roles: []string{"dev"}}})
	require.NoError(t, err)
	s, err := mgr.CreateSession(ctx, u, websession.MethodPassword, "", time.Hour)
	require.NoError(t, err)
	do := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/v1/webapi/x", nil)
		req.AddCookie(&http.Cookie{Name: web.SessionCookie, Value: s.ID})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	rec := do()
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	require.Contains(t, rec.Body.String(), lockwatch.StaleMessage)
	_, err = mgr.GetSession(ctx, s.ID)
	require.NoError(t, err, "a stale view must not end the session")

	locks.err = nil
	require.Equal(t, http.StatusNoContent, do().Code)

	// A real lock still ends it.
	locks.err = trace.AccessDenied("user alice is locked")
	require.Equal(t, http.StatusForbidden, do().Code)
	_, err = mgr.GetSession(ctx, s.ID)
	require.True(t, trace.IsNotFound(err), "%v", err)
}
