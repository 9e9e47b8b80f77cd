package websession_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/backend/memory"
	"github.com/gatehouse/gatehouse/lib/services/websession"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

func newManager(t *testing.T) (*websession.Manager, backend.Backend, *clockwork.FakeClock) {
	t.Helper()
	ctx := context.Background()
	clock := clockwork.NewFakeClockAt(time.Now())
	bk, err := memory.New(ctx, memory.Config{Clock: clock})
	require.NoError(t, err)
	t.Cleanup(func() { bk.Close() })
	mgr, err := websession.New(websession.Config{Backend: bk, Clock: clock})
	require.NoError(t, err)
	return mgr, bk, clock
}

func user(name, incarnation string) *typesv1.User {
	return &typesv1.User{Metadata: &typesv1.Metadata{Name: name}, Spec: &typesv1.UserSpec{Incarnation: incarnation}}
}

func TestPasswordTokens(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mgr, bk, clock := newManager(t)

	alice := user("alice", "inc-1")
	tok, expires, err := mgr.CreatePasswordToken(ctx, alice, time.Hour)
	require.NoError(t, err)
	require.Equal(t, clock.Now().Add(time.Hour), expires)
	// The secret is not the key.
	_, err = bk.Get(ctx, backend.NewKey(websession.PasswordTokensPrefix, tok))
	require.True(t, trace.IsNotFound(err), "got %v", err)

	link, err := mgr.ConsumePasswordToken(ctx, tok)
	require.NoError(t, err)
	require.Equal(t, "alice", link.User)
	require.Equal(t, "inc-1", link.Incarnation)
	_, err = mgr.ConsumePasswordToken(ctx, tok)
	require.True(t, trace.IsAccessDenied(err), "one use: %v", err)

	tok2, _, err := mgr.CreatePasswordToken(ctx, alice, time.Hour)
	require.NoError(t, err)
	clock.Advance(2 * time.Hour)
	_, err = mgr.ConsumePasswordToken(ctx, tok2)
	require.True(t, trace.IsAccessDenied(err), "expired: %v", err)

	for _, tc := range []struct {
		name string
		user *typesv1.User
		ttl  time.Duration
	}{
		{"no user", nil, 0},
		{"no name", user("", "inc-1"), 0},
		{"no incarnation", user("alice", ""), 0},
		{"negative ttl", alice, -time.Second},
		{"ttl over the maximum", alice, websession.MaxPasswordTokenTTL + time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := mgr.CreatePasswordToken(ctx, tc.user, tc.ttl)
			require.True(t, trace.IsBadParameter(err), "got %v", err)
		})
	}
}

// TestLegacyPasswordTokenIsVoid: a token stored before links were bound to
// an incarnation names only a user. Whoever holds the name now may be
// another account, so the token is refused as void and deleted.
func TestLegacyPasswordTokenIsVoid(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mgr, bk, clock := newManager(t)

	const tok = "legacy-token"
	value, err := json.Marshal(map[string]any{"user": "alice", "expires": clock.Now().Add(time.Hour)})
	require.NoError(t, err)
	_, err = bk.Create(ctx, backend.Item{Key: websession.PasswordTokenKey(tok), Value: value, Expires: clock.Now().Add(time.Hour)})
	require.NoError(t, err)

	_, err = mgr.ConsumePasswordToken(ctx, tok)
	require.True(t, trace.IsAccessDenied(err), "got %v", err)
	require.Contains(t, err.Error(), "earlier account")
	_, err = bk.Get(ctx, websession.PasswordTokenKey(tok))
	require.True(t, trace.IsNotFound(err), "the void token is deleted: %v", err)
}

func TestPasswordTokenCheckUser(t *testing.T) {
	t.Parallel()
	link := &websession.PasswordToken{User: "alice", Incarnation: "inc-1"}
	require.NoError(t, link.CheckUser(user("alice", "inc-1")))
	for _, tc := range []struct {
		name string
		link *websession.PasswordToken
		user *typesv1.User
	}{
		{"re-created account", link, user("alice", "inc-2")},
		{"other account", link, user("bob", "inc-1")},
		{"user without incarnation", link, user("alice", "")},
		{"link without incarnation", &websession.PasswordToken{User: "alice"}, user("alice", "")},
		{"no user", link, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.link.CheckUser(tc.user)
			require.True(t, trace.IsAccessDenied(err), "got %v", err)
		})
	}
}

func TestEachSession(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mgr, bk, _ := newManager(t)
	a, err := mgr.CreateSession(ctx, user("alice", "i1"), websession.MethodPassword, "", time.Hour)
	require.NoError(t, err)
	b, err := mgr.CreateSession(ctx, user("bob", "i2"), websession.MethodPassword, "", time.Hour)
	require.NoError(t, err)
	// An undecodable item is skipped, not an error.
	_, err = bk.Put(ctx, backend.Item{Key: backend.NewKey(websession.SessionsPrefix, "junk"), Value: []byte("{")})
	require.NoError(t, err)

	var seen []string
	err = mgr.EachSession(ctx, func(s *websession.Session, end func() error) {
		seen = append(seen, s.User)
		if s.User == "bob" {
			require.NoError(t, end())
			require.True(t, trace.IsNotFound(end()), "a second end finds nothing")
		}
	})
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"alice", "bob"}, seen)
	_, err = mgr.GetSession(ctx, a.ID)
	require.NoError(t, err)
	_, err = mgr.GetSession(ctx, b.ID)
	require.Error(t, err)
}

// TestEndUserSessions: every session of the user ends, those of other users
// (a name that differs only in case included) stay.
func TestEndUserSessions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mgr, bk, _ := newManager(t)
	var alice []*websession.Session
	for range 3 {
		s, err := mgr.CreateSession(ctx, user("alice", "i1"), websession.MethodPassword, "", time.Hour)
		require.NoError(t, err)
		alice = append(alice, s)
	}
	bob, err := mgr.CreateSession(ctx, user("bob", "i2"), websession.MethodPassword, "", time.Hour)
	require.NoError(t, err)
	upper, err := mgr.CreateSession(ctx, user("Alice", "i3"), websession.MethodPassword, "", time.Hour)
	require.NoError(t, err)
	_, err = bk.Put(ctx, backend.Item{Key: backend.NewKey(websession.SessionsPrefix, "junk"), Value: []byte("{")})
	require.NoError(t, err)

	n, err := mgr.EndUserSessions(ctx, "alice")
	require.NoError(t, err)
	require.Equal(t, 3, n)
	for _, s := range alice {
		_, err := mgr.GetSession(ctx, s.ID)
		require.True(t, trace.IsNotFound(err), "got %v", err)
	}
	for _, s := range []*websession.Session{bob, upper} {
		_, err := mgr.GetSession(ctx, s.ID)
		require.NoError(t, err, s.User)
	}
	n, err = mgr.EndUserSessions(ctx, "alice")
	require.NoError(t, err)
	require.Zero(t, n)
	_, err = mgr.EndUserSessions(ctx, "")
	require.True(t, trace.IsBadParameter(err), "got %v", err)
}

// TestSessionUsers: the users of the sessions EachSession visits, by key, and SessionUser reads
// a stored value the same way (an unreadable one is skipped by both).
func TestSessionUsers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mgr, bk, _ := newManager(t)
	a, err := mgr.CreateSession(ctx, user("alice", "i1"), websession.MethodPassword, "", time.Hour)
	require.NoError(t, err)
	_, err = bk.Put(ctx, backend.Item{Key: backend.NewKey(websession.SessionsPrefix, "junk"), Value: []byte("{")})
	require.NoError(t, err)

	users, err := mgr.SessionUsers(ctx)
	require.NoError(t, err)
	require.Equal(t, map[string]string{string(websession.SessionKey(a.ID)): "alice"}, users)

	it, err := bk.Get(ctx, websession.SessionKey(a.ID))
	require.NoError(t, err)
	u, ok := websession.SessionUser(it.Value)
	require.True(t, ok)
	require.Equal(t, "alice", u)
	for _, v := range []string{"{", `{"user":""}`, `{}`} {
		_, ok := websession.SessionUser([]byte(v))
		require.False(t, ok, v)
	}
	require.Equal(t, backend.NewKey(websession.SessionsPrefix, ""), websession.SessionsKeyPrefix())
}
