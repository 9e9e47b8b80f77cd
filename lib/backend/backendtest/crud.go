package backendtest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/backend"
)

func crudTests() []testCase {
	return []testCase{
		{"CreateThenGet", testCreateThenGet},
		{"CreateExistingFails", testCreateExistingFails},
		{"PutCreatesAndOverwrites", testPutCreatesAndOverwrites},
		{"UpdateExisting", testUpdateExisting},
		{"UpdateMissingFails", testUpdateMissingFails},
		{"GetMissing", testGetMissing},
		{"Delete", testDelete},
		{"RevisionChangesOnEveryWrite", testRevisionChangesOnEveryWrite},
		{"ValuesRoundTrip", testValuesRoundTrip},
		{"CallerBuffersAreNotShared", testCallerBuffersAreNotShared},
		{"LargestKeyAndValueAccepted", testLargestKeyAndValueAccepted},
	}
}

func testCreateThenGet(t *testing.T, f *fixture) {
	key := f.key("a")
	expires := f.clock.Now().Add(time.Hour)
	lease, err := f.b.Create(t.Context(), backend.Item{Key: key, Value: []byte("v1"), Expires: expires})
	require.NoError(t, err)
	requireLease(t, lease, key)

	got := f.get(key)
	require.Equal(t, "v1", string(got.Value))
	require.Equal(t, lease.Revision, got.Revision, "Get shows the revision the lease returned")
	requireSameTime(t, expires, got.Expires, "expiry round-trip")

	noExpiry := f.key("b")
	f.put(noExpiry, "v")
	require.True(t, f.get(noExpiry).Expires.IsZero(), "an item written without expiry has none")
}

func testCreateExistingFails(t *testing.T, f *fixture) {
	key := f.key("a")
	first := f.put(key, "v1")
	_, err := f.b.Create(t.Context(), item(key, "v2"))
	requireAlreadyExists(t, err, "create over an existing key")
	f.requireValue(key, "v1", first.Revision)
}

func testPutCreatesAndOverwrites(t *testing.T, f *fixture) {
	key := f.key("a")
	first := f.put(key, "v1")
	f.requireValue(key, "v1", first.Revision)
	second := f.put(key, "v2")
	require.NotEqual(t, first.Revision, second.Revision)
	f.requireValue(key, "v2", second.Revision)
}

func testUpdateExisting(t *testing.T, f *fixture) {
	key := f.key("a")
	first := f.put(key, "v1")
	lease, err := f.b.Update(t.Context(), item(key, "v2"))
	require.NoError(t, err)
	requireLease(t, lease, key)
	require.NotEqual(t, first.Revision, lease.Revision)
	f.requireValue(key, "v2", lease.Revision)
}

func testUpdateMissingFails(t *testing.T, f *fixture) {
	key := f.key("missing")
	_, err := f.b.Update(t.Context(), item(key, "v"))
	requireNotFound(t, err, "update of a missing key")
	f.requireMissing(key)
}

func testGetMissing(t *testing.T, f *fixture) {
	f.put(f.key("a"), "v")
	f.requireMissing(f.key("b"))
	f.requireMissing(f.key("a", "child"))
	f.requireMissing(backend.Key(f.prefix + "a\x00"))
}

func testDelete(t *testing.T, f *fixture) {
	key, other := f.key("a"), f.key("b")
	f.put(key, "v")
	otherLease := f.put(other, "w")

	require.NoError(t, f.b.Delete(t.Context(), key))
	f.requireMissing(key)
	f.requireValue(other, "w", otherLease.Revision)

	requireNotFound(t, f.b.Delete(t.Context(), key), "second delete")
	requireNotFound(t, f.b.Delete(t.Context(), f.key("never")), "delete of a key never written")
}

// testRevisionChangesOnEveryWrite writes one key through every kind of write
// and requires a new revision each time, equal to what Get then shows. A
// delete followed by a re-create must not bring back an old revision, or a
// stale conditional write would succeed (the ABA problem).
func testRevisionChangesOnEveryWrite(t *testing.T, f *fixture) {
	ctx := t.Context()
	key := f.key("a")
	seen := map[string]string{}
	record := func(op string, rev string) {
		t.Helper()
		require.NotEmpty(t, rev, "%s returned an empty revision", op)
		if prev, dup := seen[rev]; dup {
			t.Fatalf("%s returned revision %q, already returned by %s", op, rev, prev)
		}
		seen[rev] = op
		require.Equal(t, rev, f.get(key).Revision, "Get after %s", op)
	}

	lease, err := f.b.Create(ctx, item(key, "1"))
	require.NoError(t, err)
	record("Create", lease.Revision)

	lease, err = f.b.Put(ctx, item(key, "2"))
	require.NoError(t, err)
	record("Put", lease.Revision)

	lease, err = f.b.Put(ctx, item(key, "2"))
	require.NoError(t, err)
	record("Put of the same value", lease.Revision)

	lease, err = f.b.Update(ctx, item(key, "3"))
	require.NoError(t, err)
	record("Update", lease.Revision)

	cu := item(key, "4")
	cu.Revision = lease.Revision
	lease, err = f.b.ConditionalUpdate(ctx, cu)
	require.NoError(t, err)
	record("ConditionalUpdate", lease.Revision)

	require.NoError(t, f.b.KeepAlive(ctx, *lease, f.clock.Now().Add(time.Hour)))
	record("KeepAlive", f.get(key).Revision)

	rev, err := f.b.AtomicWrite(ctx, []backend.ConditionalAction{
		{Key: key, Condition: backend.Exists(), Action: backend.Put(item(key, "5"))},
	})
	require.NoError(t, err)
	record("AtomicWrite", rev)

	require.NoError(t, f.b.Delete(ctx, key))
	lease, err = f.b.Create(ctx, item(key, "1"))
	require.NoError(t, err)
	record("Create after Delete", lease.Revision)
}

func testValuesRoundTrip(t *testing.T, f *fixture) {
	values := map[string][]byte{
		"empty":  {},
		"nil":    nil,
		"binary": {0x00, 0xff, 0x01, '\n', 0x00},
		"utf8":   []byte("héllo, 世界"),
		"json":   []byte(`{"kind":"user","spec":{"roles":["a"]}}`),
	}
	for name, v := range values {
		f.putItem(backend.Item{Key: f.key(name), Value: v})
	}
	for name, v := range values {
		got := f.get(f.key(name))
		require.Equal(t, len(v), len(got.Value), "length of %s value", name)
		if len(v) > 0 {
			require.Equal(t, v, got.Value, "%s value", name)
		}
	}
	// Keys are bytes too: ones that are not valid UTF-8 work and sort
	// byte-wise.
	odd := []backend.Key{backend.Key(f.prefix + "k\x00"), backend.Key(f.prefix + "k\xff"), backend.Key(f.prefix + "k\x80\x01")}
	for _, k := range odd {
		f.put(k, "odd")
	}
	start, end := backend.Key(f.prefix+"k"), backend.RangeEnd(backend.Key(f.prefix+"k"))
	require.Equal(t, strs(odd[0], odd[2], odd[1]), f.keys(start, end, 0))
}

// testCallerBuffersAreNotShared catches backends that keep the caller's
// slices: changing a buffer after Put, or a value returned by Get, must not
// change what is stored.
func testCallerBuffersAreNotShared(t *testing.T, f *fixture) {
	key := f.key("a")
	value := []byte("original")
	f.putItem(backend.Item{Key: key, Value: value})
	copy(value, "CHANGED!")

	got := f.get(key)
	require.Equal(t, "original", string(got.Value))
	copy(got.Value, "CHANGED!")
	f.requireValue(key, "original", "")

	res, err := f.b.GetRange(t.Context(), key, backend.NextKey(key), 1)
	require.NoError(t, err)
	require.Len(t, res.Items, 1)
	copy(res.Items[0].Value, "CHANGED!")
	f.requireValue(key, "original", "")
}

// testLargestKeyAndValueAccepted checks the limits are inclusive: every
// engine must accept what any engine accepts.
func testLargestKeyAndValueAccepted(t *testing.T, f *fixture) {
	key := backend.Key(f.prefix + string(bigKeyTail(backend.MaxKeySize-len(f.prefix))))
	require.Len(t, key, backend.MaxKeySize)
	value := bigValue(backend.MaxValueSize)
	f.putItem(backend.Item{Key: key, Value: value})
	got := f.get(key)
	require.Equal(t, value, got.Value)
}

// bigKeyTail returns n printable key bytes.
func bigKeyTail(n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = 'a' + byte(i%26)
	}
	return out
}
