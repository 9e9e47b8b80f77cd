package backendtest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/backend"
)

func expiryTests() []testCase {
	return []testCase{
		{"HiddenAtOnce", testExpiryHiddenAtOnce},
		{"ConditionsSeeExpiredAsMissing", testExpiryConditions},
		{"WrittenAlreadyExpired", testExpiryWrittenExpired},
		{"PurgeEmitsDelete", testExpiryPurgeEmitsDelete},
		{"KeepAlive", testKeepAlive},
		{"KeepAliveRefusals", testKeepAliveRefusals},
	}
}

// purgeStep is how far the suite moves the fake clock per poll while it waits
// for a background purge.
const purgeStep = time.Second

// expiring writes key=value expiring after ttl of fake time.
func (f *fixture) expiring(key backend.Key, value string, ttl time.Duration) *backend.Lease {
	f.t.Helper()
	return f.putItem(backend.Item{Key: key, Value: []byte(value), Expires: f.clock.Now().Add(ttl)})
}

func testExpiryHiddenAtOnce(t *testing.T, f *fixture) {
	ctx := t.Context()
	key, permanent := f.key("expiring"), f.key("permanent")
	lease := f.expiring(key, "v", time.Minute)
	f.put(permanent, "v")

	f.clock.Advance(time.Minute - time.Second)
	f.requireValue(key, "v", lease.Revision)
	require.Equal(t, strs(key, permanent), f.allKeys())

	f.clock.Advance(time.Second) // expires == now: expired.
	f.requireMissing(key)
	require.Equal(t, strs(permanent), f.allKeys(), "GetRange hides the expired item")
	_, err := f.b.Update(ctx, item(key, "v2"))
	requireNotFound(t, err, "Update of an expired item")
	_, err = f.b.ConditionalUpdate(ctx, backend.Item{Key: key, Value: []byte("v2"), Revision: lease.Revision})
	requireCompareFailed(t, err, "ConditionalUpdate of an expired item")
	requireCompareFailed(t, f.b.ConditionalDelete(ctx, key, lease.Revision), "ConditionalDelete of an expired item")
	requireNotFound(t, f.b.Delete(ctx, key), "Delete of an expired item")
	f.requireMissing(key)

	created, err := f.b.Create(ctx, item(key, "new"))
	require.NoError(t, err, "Create over an expired item")
	require.NotEqual(t, lease.Revision, created.Revision)
	got := f.get(key)
	require.Equal(t, "new", string(got.Value))
	require.True(t, got.Expires.IsZero(), "the new item does not inherit the old expiry")
}

func testExpiryConditions(t *testing.T, f *fixture) {
	ctx := t.Context()
	key, marker := f.key("expiring"), f.key("marker")
	lease := f.expiring(key, "v", time.Minute)
	f.clock.Advance(time.Minute)

	for name, cond := range map[string]backend.Condition{
		"Exists":               backend.Exists(),
		"Revision of the item": backend.Revision(lease.Revision),
	} {
		_, err := f.b.AtomicWrite(ctx, []backend.ConditionalAction{
			{Key: key, Condition: cond, Action: backend.Nop()},
			{Key: marker, Condition: backend.Whatever(), Action: backend.Put(item(marker, "v"))},
		})
		requireCompareFailed(t, err, "%s on an expired item", name)
		f.requireMissing(marker)
	}

	rev, err := f.b.AtomicWrite(ctx, []backend.ConditionalAction{
		{Key: key, Condition: backend.NotExists(), Action: backend.Put(item(key, "new"))},
	})
	require.NoError(t, err, "NotExists holds for an expired item")
	f.requireValue(key, "new", rev)
}

func testExpiryWrittenExpired(t *testing.T, f *fixture) {
	ctx := t.Context()
	now := f.clock.Now()
	put, atomic := f.key("put"), f.key("atomic")
	f.putItem(backend.Item{Key: put, Value: []byte("v"), Expires: now})
	_, err := f.b.AtomicWrite(ctx, []backend.ConditionalAction{
		{Key: atomic, Condition: backend.Whatever(), Action: backend.Put(backend.Item{Value: []byte("v"), Expires: now.Add(-time.Hour)})},
	})
	require.NoError(t, err)
	f.requireMissing(put)
	f.requireMissing(atomic)
	require.Empty(t, f.allKeys())
	_, err = f.b.Create(ctx, item(put, "v2"))
	require.NoError(t, err)
}

func testExpiryPurgeEmitsDelete(t *testing.T, f *fixture) {
	ctx := t.Context()
	w := f.watch(backend.Key(f.prefix))
	short, long, permanent, atomic := f.key("short"), f.key("long"), f.key("permanent"), f.key("atomic")

	shortLease := f.expiring(short, "v", time.Minute)
	longLease := f.expiring(long, "v", time.Hour)
	longExpires := f.clock.Now().Add(time.Hour)
	permanentLease := f.put(permanent, "v")
	expires := f.clock.Now().Add(time.Minute)
	rev, err := f.b.AtomicWrite(ctx, []backend.ConditionalAction{
		{Key: atomic, Condition: backend.Whatever(), Action: backend.Put(backend.Item{Value: []byte("v"), Expires: expires})},
	})
	require.NoError(t, err)
	requireSameTime(t, expires, f.get(atomic).Expires, "expiry written by AtomicWrite")
	w.expect(putEvent(shortLease, "v"), putEvent(longLease, "v"), putEvent(permanentLease, "v"),
		putEvent(&backend.Lease{Key: atomic, Revision: rev}, "v"))

	f.clock.Advance(time.Minute)
	var deleted []string
	for len(deleted) < 2 {
		ev, ok := w.tryNext(f.cfg.waitTimeout, purgeStep)
		require.True(t, ok, "no delete event for the expired items within %v (moving the clock %v per poll)", f.cfg.waitTimeout, purgeStep)
		require.Equal(t, backend.OpDelete, ev.Type, "unexpected event %s", describe(ev))
		deleted = append(deleted, ev.Item.Key.String())
	}
	require.ElementsMatch(t, strs(short, atomic), deleted)
	// Only keys that had expired were purged, even though the polling moved
	// the clock further.
	f.requireValue(permanent, "v", permanentLease.Revision)
	if f.clock.Now().Before(longExpires) {
		f.requireValue(long, "v", longLease.Revision)
	}
}

func testKeepAlive(t *testing.T, f *fixture) {
	ctx := t.Context()
	key := f.key("a")
	lease := f.expiring(key, "v", time.Minute)
	extended := f.clock.Now().Add(3 * time.Minute)

	require.NoError(t, f.b.KeepAlive(ctx, *lease, extended))
	got := f.get(key)
	require.Equal(t, "v", string(got.Value), "KeepAlive keeps the value")
	requireSameTime(t, extended, got.Expires, "expiry after KeepAlive")
	require.NotEmpty(t, got.Revision)
	require.NotEqual(t, lease.Revision, got.Revision, "KeepAlive gives the item a new revision")

	f.clock.Advance(2 * time.Minute)
	f.requireValue(key, "v", got.Revision)

	requireCompareFailed(t, f.b.KeepAlive(ctx, *lease, extended.Add(time.Hour)), "KeepAlive with the revision from before the last KeepAlive")
	require.NoError(t, f.b.KeepAlive(ctx, backend.Lease{Key: key, Revision: got.Revision}, extended.Add(time.Hour)), "KeepAlive with the new revision")
	f.clock.Advance(time.Hour)
	require.Equal(t, "v", string(f.get(key).Value))

	f.clock.Advance(time.Minute)
	f.requireMissing(key)
}

func testKeepAliveRefusals(t *testing.T, f *fixture) {
	ctx := t.Context()
	later := f.clock.Now().Add(time.Hour)

	requireNotFound(t, f.b.KeepAlive(ctx, backend.Lease{Key: f.key("missing"), Revision: "1"}, later), "KeepAlive of a missing key")
	f.requireMissing(f.key("missing"))

	stale := f.expiring(f.key("stale"), "v1", time.Minute)
	current := f.expiring(f.key("stale"), "v2", time.Minute)
	requireCompareFailed(t, f.b.KeepAlive(ctx, *stale, later), "KeepAlive with a stale revision")
	f.requireValue(f.key("stale"), "v2", current.Revision)
	requireSameTime(t, f.clock.Now().Add(time.Minute), f.get(f.key("stale")).Expires, "a refused KeepAlive keeps the expiry")

	gone := f.expiring(f.key("gone"), "v", time.Minute)
	f.clock.Advance(time.Minute)
	requireNotFound(t, f.b.KeepAlive(ctx, *gone, later), "KeepAlive of an expired item")
	f.requireMissing(f.key("gone"))
}
