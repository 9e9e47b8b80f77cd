package lockwatch_test

import (
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/services"
	"github.com/gatehouse/gatehouse/lib/srv/lockwatch"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// putUser stores a user as the user service would, with the incarnation
// given (the services layer owns incarnations; the view only reads them).
func (f *fixture) putUser(t *testing.T, name, incarnation string, roles ...string) {
	t.Helper()
	item, err := services.MarshalUser(&typesv1.User{
		Metadata: &typesv1.Metadata{Name: name},
		Spec:     &typesv1.UserSpec{Roles: roles, Incarnation: incarnation},
	})
	require.NoError(t, err)
	_, err = f.bk.Put(f.ctx, item)
	require.NoError(t, err)
}

func (f *fixture) deleteUser(t *testing.T, name string) {
	t.Helper()
	require.NoError(t, f.bk.Delete(f.ctx, services.UserKey(name)))
}

const (
	inc1 = "11111111111111111111111111111111"
	inc2 = "22222222222222222222222222222222"
)

func aliceCred() lockwatch.Credential {
	return lockwatch.Credential{User: "alice", Incarnation: inc1, Roles: []string{"access"}}
}

// watchCred waits until the view admits cred (the user written just
// before reaches the view through the event stream) and returns its
// subscription with the reasons fn was called with.
func (f *fixture) watchCred(t *testing.T, cred lockwatch.Credential) (*lockwatch.CredentialSubscription, chan string) {
	t.Helper()
	reasons := make(chan string, 1)
	var sub *lockwatch.CredentialSubscription
	require.Eventually(t, func() bool {
		var err error
		sub, err = f.w.WatchCredential(cred, func(reason string) { reasons <- reason })
		return err == nil
	}, 5*time.Second, 5*time.Millisecond)
	t.Cleanup(sub.Close)
	return sub, reasons
}

func voided(t *testing.T, sub *lockwatch.CredentialSubscription, reasons chan string) string {
	t.Helper()
	select {
	case <-sub.Voided():
	case <-time.After(5 * time.Second):
		t.Fatal("the credential was not voided within 5s")
	}
	require.Equal(t, sub.Reason(), <-reasons, "fn is told the same reason")
	return sub.Reason()
}

func TestCredentialVoided(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(t *testing.T, f *fixture)
		reason string
		// login is why a new login with the credential is refused
		// afterwards, when not reason.
		login string
	}{
		{"user deleted", func(t *testing.T, f *fixture) { f.deleteUser(t, "alice") },
			`user "alice" no longer exists`, ""},
		{"user created again", func(t *testing.T, f *fixture) {
			f.deleteUser(t, "alice")
			f.putUser(t, "alice", inc2, "access")
		}, `user "alice" no longer exists`, `credentials were issued to an earlier incarnation of user "alice"`},
		{"incarnation replaced in place", func(t *testing.T, f *fixture) { f.putUser(t, "alice", inc2, "access") },
			`credentials were issued to an earlier incarnation of user "alice"`, ""},
		{"role removed", func(t *testing.T, f *fixture) { f.putUser(t, "alice", inc1, "auditor") },
			`user "alice" no longer holds role "access"`, ""},
		{"record unreadable", func(t *testing.T, f *fixture) {
			_, err := f.bk.Put(f.ctx, backend.Item{Key: services.UserKey("alice"), Value: []byte("{not json")})
			require.NoError(t, err)
		}, `the record of user "alice" cannot be read`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, nil, false)
			f.putUser(t, "alice", inc1, "access", "dev")
			f.putUser(t, "bob", inc2, "access")
			sub, reasons := f.watchCred(t, aliceCred())
			other, _ := f.watchCred(t, lockwatch.Credential{User: "bob", Incarnation: inc2, Roles: []string{"access"}})

			tc.change(t, f)
			require.Equal(t, tc.reason, voided(t, sub, reasons))
			// A new login with the same credential is refused.
			login := tc.reason
			if tc.login != "" {
				login = tc.login
			}
			require.Eventually(t, func() bool {
				_, err := f.w.WatchCredential(aliceCred(), nil)
				return trace.IsAccessDenied(err) && err.Error() == login
			}, 5*time.Second, 5*time.Millisecond)
			select {
			case <-other.Voided():
				t.Fatal("another user's credential was voided")
			default:
			}
		})
	}
}

func TestCredentialKeptAcrossUpdates(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, false)
	f.putUser(t, "alice", inc1, "access")
	sub, reasons := f.watchCred(t, aliceCred())
	// An update that keeps the incarnation and the role, and adds one.
	f.putUser(t, "alice", inc1, "access", "auditor")
	// A later change to alice is seen in order: once it voids the
	// credential, the update before it was applied without voiding.
	f.putUser(t, "alice", inc1, "auditor")
	require.Equal(t, `user "alice" no longer holds role "access"`, voided(t, sub, reasons))
}

func TestWatchCredentialRefuses(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, false)
	// Legacy first: once the view shows alice, it shows legacy too.
	f.putUser(t, "legacy", "", "access")
	f.putUser(t, "alice", inc1, "access")
	f.watchCred(t, aliceCred())
	for name, tc := range map[string]struct {
		cred   lockwatch.Credential
		reason string
	}{
		"unknown user":        {lockwatch.Credential{User: "nobody", Incarnation: inc1}, `user "nobody" no longer exists`},
		"other incarnation":   {lockwatch.Credential{User: "alice", Incarnation: inc2, Roles: []string{"access"}}, `credentials were issued to an earlier incarnation of user "alice"`},
		"no incarnation":      {lockwatch.Credential{User: "alice", Roles: []string{"access"}}, `credentials were issued to an earlier incarnation of user "alice"`},
		"user without one":    {lockwatch.Credential{User: "legacy", Roles: []string{"access"}}, `credentials were issued to an earlier incarnation of user "legacy"`},
		"role the user lacks": {lockwatch.Credential{User: "alice", Incarnation: inc1, Roles: []string{"editor"}}, `user "alice" no longer holds role "editor"`},
	} {
		_, err := f.w.WatchCredential(tc.cred, nil)
		require.True(t, trace.IsAccessDenied(err), "%s: %v", name, err)
		require.Equal(t, tc.reason, err.Error(), name)
	}
	_, err := f.w.WatchCredential(lockwatch.Credential{}, nil)
	require.True(t, trace.IsBadParameter(err))
}

// TestCredentialsFailClosed: a stale view refuses every credential, and a
// user deleted while the stream was down voids its credentials when the
// view reloads.
func TestCredentialsFailClosed(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, false)
	f.putUser(t, "alice", inc1, "access")
	sub, reasons := f.watchCred(t, aliceCred())

	f.bk.breakStreams(true)
	require.Eventually(t, f.w.Stale, 5*time.Second, 5*time.Millisecond)
	_, err := f.w.WatchCredential(aliceCred(), nil)
	require.True(t, trace.IsAccessDenied(err))
	require.Equal(t, lockwatch.StaleMessage, err.Error())
	select {
	case <-sub.Voided():
		t.Fatal("a stale view alone must not void live credentials before the live-session bound")
	default:
	}

	f.deleteUser(t, "alice")
	f.bk.setFail(false)
	require.Eventually(t, func() bool {
		f.clock.Advance(lockwatch.DefaultRetryMax)
		return !f.w.Stale()
	}, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, `user "alice" no longer exists`, voided(t, sub, reasons))
}

func TestNeverSyncedRefusesCredentials(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, true)
	_, err := f.w.WatchCredential(aliceCred(), nil)
	require.True(t, trace.IsAccessDenied(err))
	require.Equal(t, lockwatch.StaleMessage, err.Error())
}

func TestCloseVoidsCredentials(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, false)
	f.putUser(t, "alice", inc1, "access")
	sub, reasons := f.watchCred(t, aliceCred())
	require.NoError(t, f.w.Close())
	require.Equal(t, "lock watcher closed", voided(t, sub, reasons))
}

// TestWatchCredentialWaitsForTheView: a certificate can reach a node just
// before the node's view applies the write of its user. Such a credential
// is admitted once the view catches up, rather than refused; one that stays
// void is refused within the catch-up bound.
func TestWatchCredentialWaitsForTheView(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, false)
	done := make(chan error, 1)
	go func() {
		sub, err := f.w.WatchCredential(aliceCred(), nil)
		if err == nil {
			sub.Close()
		}
		done <- err
	}()
	time.Sleep(100 * time.Millisecond) // the check is waiting by now
	f.putUser(t, "alice", inc1, "access")
	select {
	case err := <-done:
		require.NoError(t, err, "admitted once the view has the user")
	case <-time.After(5 * time.Second):
		t.Fatal("WatchCredential did not return")
	}

	start := time.Now()
	_, err := f.w.WatchCredential(lockwatch.Credential{User: "nobody", Incarnation: inc1}, nil)
	require.True(t, trace.IsAccessDenied(err), "%v", err)
	require.Less(t, time.Since(start), 3*time.Second, "refused within the catch-up bound")
}
