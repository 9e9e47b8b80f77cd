package sso_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/services"
	"github.com/gatehouse/gatehouse/lib/services/websession"
	"github.com/gatehouse/gatehouse/lib/web/sso"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

const (
	oldPassword  = "the victim's own password"
	linkPassword = "the link holder's password"
)

// setPassword posts a password link's token and a password, as the web
// page does.
func setPassword(t *testing.T, h http.Handler, tok, pw string) *httptest.ResponseRecorder {
	t.Helper()
	b, err := json.Marshal(sso.SetPasswordRequest{Token: tok, Password: pw})
	require.NoError(t, err)
	req := httptest.NewRequest(http.MethodPost, "/v1/webapi/users/password", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.RemoteAddr = "198.51.100.7:1"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// passwordIs reports whether name's stored password is pw.
func passwordIs(t *testing.T, svc *services.Services, name, pw string) bool {
	t.Helper()
	u, err := svc.GetUser(context.Background(), name, true)
	require.NoError(t, err)
	hash := u.GetSpec().GetLocalAuth().GetPasswordHash()
	return len(hash) > 0 && bcrypt.CompareHashAndPassword(hash, []byte(pw)) == nil
}

func createLocalUser(t *testing.T, svc *services.Services, name string) *typesv1.User {
	t.Helper()
	u, err := svc.CreateUser(context.Background(), &typesv1.User{Metadata: &typesv1.Metadata{Name: name}, Spec: &typesv1.UserSpec{Roles: []string{"access"}}})
	require.NoError(t, err)
	return u
}

// racingUsers deletes the link's user and creates it again right after the
// set-password handler has checked the user and before its write: the
// worst moment for a delete and re-create to race the use of a link.
type racingUsers struct {
	*services.Services
	t     *testing.T
	raced bool
}

func (r *racingUsers) UpdateAndSwapUser(ctx context.Context, name string, modify func(*typesv1.User) error) (*typesv1.User, error) {
	return r.Services.UpdateAndSwapUser(ctx, name, func(u *typesv1.User) error {
		err := modify(u)
		if !r.raced {
			r.raced = true
			require.NoError(r.t, r.DeleteUser(ctx, name))
			createLocalUser(r.t, r.Services, name)
			require.NoError(r.t, r.SetLocalPassword(ctx, name, oldPassword))
		}
		return err
	})
}

// TestPasswordLinkDiesWithAccount: a password link is a credential of the
// account it was made for. Whoever holds a link of an account that has
// since been deleted (and its name given to someone else), a link stored
// before links were bound to an account, or a link of a locked user, sets
// no password; the link is spent either way.
func TestPasswordLinkDiesWithAccount(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// race, if set, replaces the handler's Users.
		race bool
		// attack runs between the link's creation and its use, and
		// returns the token to use (tok, or one of its own).
		attack func(t *testing.T, svc *services.Services, bk backend.Backend, tok string) string
		// gone is false when the user no longer exists after the attack.
		gone    bool
		wantMsg string
	}{
		{
			name: "happy path",
		},
		{
			name: "user deleted and re-created under the same name",
			attack: func(t *testing.T, svc *services.Services, _ backend.Backend, tok string) string {
				ctx := context.Background()
				require.NoError(t, svc.DeleteUser(ctx, "alice"))
				createLocalUser(t, svc, "alice")
				require.NoError(t, svc.SetLocalPassword(ctx, "alice", oldPassword))
				return tok
			},
			wantMsg: "earlier account",
		},
		{
			name: "user re-created while the link is used",
			race: true,
			attack: func(_ *testing.T, _ *services.Services, _ backend.Backend, tok string) string {
				return tok
			},
			wantMsg: "earlier account",
		},
		{
			name: "user deleted",
			attack: func(t *testing.T, svc *services.Services, _ backend.Backend, tok string) string {
				require.NoError(t, svc.DeleteUser(context.Background(), "alice"))
				return tok
			},
			gone:    true,
			wantMsg: "earlier account",
		},
		{
			name: "legacy link without an incarnation",
			attack: func(t *testing.T, _ *services.Services, bk backend.Backend, _ string) string {
				const legacy = "a-link-stored-before-incarnations"
				exp := bk.Clock().Now().Add(time.Hour)
				value, err := json.Marshal(map[string]any{"user": "alice", "expires": exp})
				require.NoError(t, err)
				_, err = bk.Create(context.Background(), backend.Item{Key: websession.PasswordTokenKey(legacy), Value: value, Expires: exp})
				require.NoError(t, err)
				return legacy
			},
			wantMsg: "earlier account",
		},
		{
			name: "locked user",
			attack: func(t *testing.T, svc *services.Services, _ backend.Backend, tok string) string {
				// The lock names the user in another spelling: locks
				// compare canonical names.
				_, err := svc.CreateLock(context.Background(), &typesv1.Lock{
					Metadata: &typesv1.Metadata{Name: "alice-off"},
					Spec:     &typesv1.LockSpec{Target: &typesv1.LockTarget{User: "ALICE"}, Message: "under investigation"},
				})
				require.NoError(t, err)
				return tok
			},
			wantMsg: "under investigation",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			var racing *racingUsers
			h, svc, mgr, rec, bk := newHandlerOn(t, func(c *sso.Config) {
				if tc.race {
					racing = &racingUsers{Services: c.Users.(*services.Services), t: t}
					c.Users = racing
				}
			})
			alice := createLocalUser(t, svc, "alice")
			require.NoError(t, svc.SetLocalPassword(ctx, "alice", oldPassword))
			tok, _, err := mgr.CreatePasswordToken(ctx, alice, time.Hour)
			require.NoError(t, err)
			if tc.attack != nil {
				tok = tc.attack(t, svc, bk, tok)
			}

			w := setPassword(t, h, tok, linkPassword)
			if tc.wantMsg == "" {
				require.Equal(t, http.StatusOK, w.Code, w.Body.String())
				require.True(t, passwordIs(t, svc, "alice", linkPassword))
			} else {
				require.Equal(t, http.StatusForbidden, w.Code, w.Body.String())
				require.Contains(t, w.Body.String(), tc.wantMsg)
				if !tc.gone {
					require.True(t, passwordIs(t, svc, "alice", oldPassword), "the password is unchanged")
				}
				ev := rec.events[len(rec.events)-1]
				require.Equal(t, sso.EventPasswordSet, ev.Type)
				require.True(t, trace.IsAccessDenied(ev.Err), "the refusal is audited: %v", ev.Err)
			}
			if racing != nil {
				require.True(t, racing.raced)
			}
			// The link is spent: nothing is stored under it, and it works no more.
			_, err = bk.Get(ctx, websession.PasswordTokenKey(tok))
			require.True(t, trace.IsNotFound(err), "got %v", err)
			w = setPassword(t, h, tok, "yet another password")
			require.Equal(t, http.StatusForbidden, w.Code, w.Body.String())
			require.Contains(t, w.Body.String(), "invalid, used or expired")
		})
	}
}

// TestPasswordLinkEndsSessions: setting a password through a link (what a
// person whose password leaked is sent) ends every web session of the
// account, so a thief's session dies with the old password; other users'
// sessions stay.
func TestPasswordLinkEndsSessions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h, svc, mgr, rec, _ := newHandlerOn(t)
	alice := createLocalUser(t, svc, "alice")
	bob := createLocalUser(t, svc, "bob")
	require.NoError(t, svc.SetLocalPassword(ctx, "alice", oldPassword))
	stolen, err := mgr.CreateSession(ctx, alice, websession.MethodPassword, "", time.Hour)
	require.NoError(t, err)
	other, err := mgr.CreateSession(ctx, bob, websession.MethodPassword, "", time.Hour)
	require.NoError(t, err)
	tok, _, err := mgr.CreatePasswordToken(ctx, alice, time.Hour)
	require.NoError(t, err)

	w := setPassword(t, h, tok, linkPassword)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	_, err = mgr.GetSession(ctx, stolen.ID)
	require.True(t, trace.IsNotFound(err), "the session opened with the old password ended: %v", err)
	_, err = mgr.GetSession(ctx, other.ID)
	require.NoError(t, err, "another user's session stays")
	ev := rec.events[len(rec.events)-1]
	require.Equal(t, sso.EventPasswordSet, ev.Type)
	require.Equal(t, "1", ev.Fields["sessions_ended"])
}
