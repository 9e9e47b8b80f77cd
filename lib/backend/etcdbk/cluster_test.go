package etcdbk

import (
	"fmt"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/backend/etcdbk/etcdtest"
)

// TestClusterSurvivesLosingTheLeader runs a three-member cluster, stops the
// leader, and requires that writes resume (after the election) and that a
// watcher started before the failure delivers every acknowledged write, in
// order, with no fresh init.
func TestClusterSurvivesLosingTheLeader(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	cluster := etcdtest.StartCluster(t, 3)
	b, err := New(ctx, Config{Endpoints: cluster.Endpoints(), Prefix: randomPrefix(), Clock: clockwork.NewFakeClock(), RequestTimeout: 3 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	w, err := b.NewWatcher(ctx, backend.Watch{Name: t.Name()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = w.Close() })
	require.Equal(t, initEv(), describeEvent(nextEvent(t, w)))

	var want []string
	for i := range 10 {
		v := fmt.Sprint(i)
		want = append(want, putEv(put(t, b, "before/"+v, v), v))
	}

	var leader *etcdtest.Member
	require.Eventually(t, func() bool {
		for _, m := range cluster.Members {
			if m.IsLeader() {
				leader = m
				return true
			}
		}
		return false
	}, waitTimeout, 10*time.Millisecond)
	leader.Stop()

	// Writes during the election may fail (the client does not retry a
	// write that may have been sent); one must succeed soon, and then all.
	deadline := time.Now().Add(waitTimeout)
	for {
		l, err := b.Put(ctx, backend.Item{Key: backend.Key("after/first"), Value: []byte("x")})
		if err == nil {
			want = append(want, putEv(l, "x"))
			break
		}
		require.True(t, time.Now().Before(deadline), "no write succeeded within %v of losing the leader: %v", waitTimeout, err)
		time.Sleep(50 * time.Millisecond)
	}
	for i := range 50 {
		v := fmt.Sprint(i)
		want = append(want, putEv(put(t, b, "after/"+v, v), v))
	}
	res, err := b.GetRange(ctx, backend.Key("after/"), backend.RangeEnd(backend.Key("after/")), 0)
	require.NoError(t, err)
	require.Len(t, res.Items, 51)

	for i, ev := range want {
		require.Equal(t, ev, describeEvent(nextEvent(t, w)), "event %d", i)
	}

	// The stopped member comes back and catches up.
	leader.Restart()
	last := put(t, b, "after/restart", "v")
	rev, _ := parseRevision(last.Revision)
	require.Eventually(t, func() bool {
		e := leader.Etcd()
		return e != nil && e.Server.KV().Rev() >= rev
	}, waitTimeout, 50*time.Millisecond, "the restarted member catches up")
}
