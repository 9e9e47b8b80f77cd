package usersync

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/services"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

func newRunner(t *testing.T, e *env, id string) *Runner {
	t.Helper()
	r, err := NewRunner(RunnerConfig{
		Syncer: e.syncer, Backend: e.b, Plugins: e.svc.PluginService, ServerID: id,
		PollInterval: time.Second, LeaseTTL: 6 * time.Second, Clock: e.clock,
	})
	require.NoError(t, err)
	return r
}

func (e *env) leaseHolder(t *testing.T) string {
	t.Helper()
	item, err := e.b.Get(e.ctx, services.UserSyncLeaseKey(testPlugin))
	if err != nil {
		return ""
	}
	return string(item.Value)
}

// TestRunnerLeaseAndFailover runs two servers' runners on one backend: one
// holds the lease and runs the sync, a "sync now" request made anywhere is
// answered, and when the holder dies the other takes over once the lease
// expires.
func TestRunnerLeaseAndFailover(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 100)
	e.org.AddUser("a@example.com", true)
	a := newRunner(t, e, "server-a")
	// a's first tick takes the lease and runs the first sync.
	require.Eventually(t, func() bool {
		st, err := services.GetUserSyncState(e.ctx, e.b, testPlugin)
		return err == nil && st.GetLastRunOk() && !st.GetRunning()
	}, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, "server-a", e.leaseHolder(t))
	b := newRunner(t, e, "server-b")
	t.Cleanup(func() { b.Close() })
	require.NotNil(t, e.user(t, "a@example.com"))

	// A request is answered by the holder at its next tick.
	id, err := services.PutUserSyncTrigger(e.ctx, e.b, testPlugin, true)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		e.clock.Advance(time.Second)
		st, err := services.GetUserSyncState(e.ctx, e.b, testPlugin)
		return err == nil && st.GetLastTriggerId() == id && !st.GetRunning()
	}, 10*time.Second, 10*time.Millisecond)
	st, err := services.GetUserSyncState(e.ctx, e.b, testPlugin)
	require.NoError(t, err)
	require.Equal(t, "server-a", st.GetHolder())
	require.True(t, st.GetLastRunFull())

	// a dies without giving up its lease: b takes over after it expires.
	a.stop(false)
	require.Equal(t, "server-a", e.leaseHolder(t))
	e.org.AddUser("b@example.com", true)
	id, err = services.PutUserSyncTrigger(e.ctx, e.b, testPlugin, false)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		e.clock.Advance(time.Second)
		st, err := services.GetUserSyncState(e.ctx, e.b, testPlugin)
		return err == nil && st.GetLastTriggerId() == id && !st.GetRunning()
	}, 20*time.Second, 10*time.Millisecond)
	require.Equal(t, "server-b", e.leaseHolder(t))
	st, err = services.GetUserSyncState(e.ctx, e.b, testPlugin)
	require.NoError(t, err)
	require.Equal(t, "server-b", st.GetHolder())
	require.NotNil(t, e.user(t, "b@example.com"))

	// Turning user sync off makes the holder give the lease up.
	_, err = e.svc.UpdateAndSwapPlugin(e.ctx, testPlugin, func(p *typesv1.Plugin) error {
		p.GetSpec().GetOkta().UserSync.Enabled = false
		return nil
	})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		e.clock.Advance(time.Second)
		return e.leaseHolder(t) == ""
	}, 10*time.Second, 10*time.Millisecond)
}
