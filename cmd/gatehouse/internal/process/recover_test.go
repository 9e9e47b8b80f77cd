package process

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/auth/client"
	"github.com/gatehouse/gatehouse/lib/auth/identityfile"
	"github.com/gatehouse/gatehouse/lib/services"
	lockv1 "github.com/gatehouse/gatehouse/proto/gatehouse/lock/v1"
	pluginv1 "github.com/gatehouse/gatehouse/proto/gatehouse/plugin/v1"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
	userv1 "github.com/gatehouse/gatehouse/proto/gatehouse/user/v1"
)

func adminClientFor(t *testing.T, p *Process, dir string) *client.Client {
	t.Helper()
	id, err := identityfile.Read(filepath.Join(dir, AdminIdentityFile))
	require.NoError(t, err)
	require.Equal(t, services.BuiltinAdmin, id.Username)
	c, err := client.New(context.Background(), client.Config{Addr: p.AuthAddr().String(), Identity: id})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func recoverDir(set *RecoverConfig) (*RecoverResult, string, error) {
	var out bytes.Buffer
	set.Stdout = &out
	set.Logger = slog.New(slog.DiscardHandler)
	res, err := Recover(context.Background(), *set)
	return res, out.String(), err
}

func TestRecover(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	set := settings(t, dir)
	p := start(t, set, nil, io.Discard)
	c := adminClientFor(t, p, dir)

	// Startup made one user, the first web administrator (a local user,
	// lib/auth/firstadmin); the operator identity is no account.
	users, err := c.Users.ListUsers(ctx, &userv1.ListUsersRequest{})
	require.NoError(t, err)
	require.Len(t, users.GetUsers(), 1)
	require.Equal(t, "admin", users.GetUsers()[0].GetMetadata().GetName())

	// An editor locks the operator out; other locks stay put through the
	// recovery.
	for _, l := range []struct {
		name   string
		target *typesv1.LockTarget
	}{
		{"keep-user-admin", &typesv1.LockTarget{User: "admin"}},
		{"keep-alice", &typesv1.LockTarget{User: "alice"}},
		{"operator", &typesv1.LockTarget{User: services.BuiltinAdmin}}, // last: it locks the caller
	} {
		_, err := c.Locks.CreateLock(ctx, &lockv1.CreateLockRequest{Lock: &typesv1.Lock{
			Metadata: &typesv1.Metadata{Name: l.name},
			Spec:     &typesv1.LockSpec{Target: l.target, Message: "lock " + l.name},
		}})
		require.NoError(t, err)
	}
	// The lock reaches the API's lock view through the event stream.
	require.Eventually(t, func() bool {
		_, err = c.Plugins.ListPlugins(ctx, &pluginv1.ListPluginsRequest{})
		return trace.IsAccessDenied(err)
	}, 5*time.Second, 10*time.Millisecond, "the operator is locked out")
	require.Contains(t, err.Error(), "lock operator")
	locked, err := os.ReadFile(filepath.Join(dir, AdminIdentityFile))
	require.NoError(t, err)

	// Refused while the server holds the data dir; nothing changes.
	rc := &RecoverConfig{Settings: set}
	_, _, err = recoverDir(rc)
	require.True(t, trace.IsAlreadyExists(err), "%v", err)
	require.Contains(t, err.Error(), "server is running on this data dir")
	stop(t, p)

	// A server whose operator identity is locked still starts (it serves
	// everyone else); it just cannot write admin.identity.
	require.NoError(t, os.Remove(filepath.Join(dir, AdminIdentityFile)))
	p = start(t, set, nil, io.Discard)
	_, err = os.Stat(filepath.Join(dir, AdminIdentityFile))
	require.True(t, os.IsNotExist(err), "no identity for a locked @admin: %v", err)
	stop(t, p)

	res, out, err := recoverDir(rc)
	require.NoError(t, err)
	require.Len(t, res.RemovedLocks, 1)
	require.Equal(t, "operator", res.RemovedLocks[0].GetMetadata().GetName())
	require.Contains(t, out, `Removed lock "operator" on @admin (message "lock operator", created by "@admin")`)
	require.Contains(t, out, "Voided every earlier admin identity of @admin")
	require.Contains(t, out, "Wrote a fresh identity for @admin to "+filepath.Join(dir, AdminIdentityFile))
	fresh, err := os.ReadFile(filepath.Join(dir, AdminIdentityFile))
	require.NoError(t, err)
	require.NotEqual(t, locked, fresh)
	_, err = identityfile.Read(filepath.Join(dir, AdminIdentityFile))
	require.NoError(t, err)

	// The new identity works, and only the @admin lock went.
	p = start(t, set, nil, io.Discard)
	defer stop(t, p)
	again, err := os.ReadFile(filepath.Join(dir, AdminIdentityFile))
	require.NoError(t, err)
	require.Equal(t, fresh, again, "startup keeps the identity recover wrote")
	c = adminClientFor(t, p, dir)
	_, err = c.Plugins.ListPlugins(ctx, &pluginv1.ListPluginsRequest{})
	require.NoError(t, err)

	// The identity from before the recovery (the leaked one, say) is
	// refused, though its certificate has not expired and no lock is left.
	leakedPath := filepath.Join(t.TempDir(), "leaked.identity")
	require.NoError(t, os.WriteFile(leakedPath, locked, 0o600))
	leaked, err := identityfile.Read(leakedPath)
	require.NoError(t, err)
	lc, err := client.New(ctx, client.Config{Addr: p.AuthAddr().String(), Identity: leaked})
	require.NoError(t, err)
	defer lc.Close()
	_, err = lc.Plugins.ListPlugins(ctx, &pluginv1.ListPluginsRequest{})
	require.True(t, trace.IsAccessDenied(err), "%v", err)
	require.ErrorContains(t, err, "this admin identity was replaced by gatehouse recover; use the new admin.identity")
	locks, err := c.Locks.ListLocks(ctx, &lockv1.ListLocksRequest{})
	require.NoError(t, err)
	var names []string
	for _, l := range locks.GetLocks() {
		names = append(names, l.GetMetadata().GetName())
	}
	require.ElementsMatch(t, []string{"keep-user-admin", "keep-alice"}, names)
	events, err := p.Auth().Services().Events.Search(ctx, p.cfg.Clock.Now().Add(-time.Hour), p.cfg.Clock.Now().Add(time.Hour), []string{"lock.delete"}, 10)
	require.NoError(t, err)
	require.Len(t, events, 1)
	require.Equal(t, RecoverActor, events[0].GetUser())
	require.Equal(t, "lock/operator", events[0].GetResource())
	events, err = p.Auth().Services().Events.Search(ctx, p.cfg.Clock.Now().Add(-time.Hour), p.cfg.Clock.Now().Add(time.Hour), []string{"builtin_admin.rotate"}, 10)
	require.NoError(t, err)
	require.Len(t, events, 1)
	require.Equal(t, RecoverActor, events[0].GetUser())
}

// TestStartReplacesStaleIdentity: an admin.identity issued to an earlier
// incarnation of @admin (before a recovery, or before an upgrade gave @admin
// one) is refused by the auth server, so the server replaces it: at startup,
// and while it runs (on etcd, recover may run against another server).
func TestStartReplacesStaleIdentity(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	set := settings(t, dir)
	idPath := filepath.Join(dir, AdminIdentityFile)
	// The fake clock starts one check interval behind, so that after the
	// advance the certificates it stamps are valid for TLS, which uses the
	// real time.
	clock := clockwork.NewFakeClockAt(time.Now().Add(-adminCheckInterval))
	p := start(t, set, clock, io.Discard)
	before, err := os.ReadFile(idPath)
	require.NoError(t, err)

	// While running: the next check replaces the file.
	require.NoError(t, p.Auth().RotateBuiltinAdminIncarnation(ctx, "test"))
	clock.Advance(adminCheckInterval)
	require.Eventually(t, func() bool {
		now, err := os.ReadFile(idPath)
		return err == nil && !bytes.Equal(now, before)
	}, 10*time.Second, 20*time.Millisecond)
	c := adminClientFor(t, p, dir)
	_, err = c.Plugins.ListPlugins(ctx, &pluginv1.ListPluginsRequest{})
	require.NoError(t, err)

	// At startup.
	current, err := os.ReadFile(idPath)
	require.NoError(t, err)
	require.NoError(t, p.Auth().RotateBuiltinAdminIncarnation(ctx, "test"))
	stop(t, p)
	p = start(t, set, clock, io.Discard)
	defer stop(t, p)
	now, err := os.ReadFile(idPath)
	require.NoError(t, err)
	require.NotEqual(t, current, now)
	c = adminClientFor(t, p, dir)
	_, err = c.Plugins.ListPlugins(ctx, &pluginv1.ListPluginsRequest{})
	require.NoError(t, err)
}

func TestRecoverRefusesWrongDataDir(t *testing.T) {
	t.Parallel()
	_, _, err := recoverDir(&RecoverConfig{Settings: settings(t, t.TempDir())})
	require.True(t, trace.IsNotFound(err), "%v", err)
	require.Contains(t, err.Error(), "no Gatehouse database")

	set := settings(t, t.TempDir())
	set.StorageType = "memory"
	_, _, err = recoverDir(&RecoverConfig{Settings: set})
	require.True(t, trace.IsBadParameter(err), "%v", err)
}
