package backendtest

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/backend"
)

func conditionalTests() []testCase {
	return []testCase{
		{"Update", testConditionalUpdate},
		{"Delete", testConditionalDelete},
		{"RevisionOfDeletedItem", testConditionalAfterRecreate},
	}
}

// revisionCase is one way a caller can hold the wrong revision for key.
type revisionCase struct {
	name string
	// setup writes what it needs and returns the key and the revision the
	// caller holds.
	setup func(f *fixture) (backend.Key, string)
	ok    bool
}

func revisionCases() []revisionCase {
	return []revisionCase{
		{name: "missing key", setup: func(f *fixture) (backend.Key, string) {
			other := f.put(f.key("other"), "v")
			return f.key("missing"), other.Revision
		}},
		{name: "stale revision", setup: func(f *fixture) (backend.Key, string) {
			old := f.put(f.key("a"), "v1")
			f.put(f.key("a"), "v2")
			return old.Key, old.Revision
		}},
		{name: "foreign revision", setup: func(f *fixture) (backend.Key, string) {
			own := f.put(f.key("a"), "v1")
			foreign := f.put(f.key("b"), "v1")
			require.NotEqual(f.t, own.Revision, foreign.Revision)
			return own.Key, foreign.Revision
		}},
		{name: "current revision", ok: true, setup: func(f *fixture) (backend.Key, string) {
			f.put(f.key("a"), "v1")
			cur := f.put(f.key("a"), "v2")
			return cur.Key, cur.Revision
		}},
	}
}

// forEachRevisionCase runs check once per revisionCase, in a subtest on a
// fresh fixture, with the key and revision the case set up and the item at
// key before the conditional write (nil if there was none).
func forEachRevisionCase(t *testing.T, f *fixture, check func(t *testing.T, f *fixture, tc revisionCase, key backend.Key, rev string, before *backend.Item)) {
	for _, tc := range revisionCases() {
		t.Run(tc.name, func(t *testing.T) {
			f := f.sub(t)
			key, rev := tc.setup(f)
			before, _ := f.b.Get(t.Context(), key)
			check(t, f, tc, key, rev, before)
		})
	}
}

// requireUnchanged requires key to hold before (missing if before is nil).
func (f *fixture) requireUnchanged(key backend.Key, before *backend.Item) {
	f.t.Helper()
	if before == nil {
		f.requireMissing(key)
		return
	}
	f.requireValue(key, string(before.Value), before.Revision)
}

func testConditionalUpdate(t *testing.T, f *fixture) {
	forEachRevisionCase(t, f, func(t *testing.T, f *fixture, tc revisionCase, key backend.Key, rev string, before *backend.Item) {
		lease, err := f.b.ConditionalUpdate(t.Context(), backend.Item{Key: key, Value: []byte("new"), Revision: rev})
		if !tc.ok {
			requireCompareFailed(t, err, "conditional update with %s", tc.name)
			f.requireUnchanged(key, before)
			return
		}
		require.NoError(t, err)
		requireLease(t, lease, key)
		require.NotEqual(t, rev, lease.Revision)
		f.requireValue(key, "new", lease.Revision)

		_, err = f.b.ConditionalUpdate(t.Context(), backend.Item{Key: key, Value: []byte("again"), Revision: rev})
		requireCompareFailed(t, err, "the same revision a second time")
	})
}

func testConditionalDelete(t *testing.T, f *fixture) {
	forEachRevisionCase(t, f, func(t *testing.T, f *fixture, tc revisionCase, key backend.Key, rev string, before *backend.Item) {
		err := f.b.ConditionalDelete(t.Context(), key, rev)
		if !tc.ok {
			requireCompareFailed(t, err, "conditional delete with %s", tc.name)
			f.requireUnchanged(key, before)
			return
		}
		require.NoError(t, err)
		f.requireMissing(key)
		requireCompareFailed(t, f.b.ConditionalDelete(t.Context(), key, rev), "delete of a deleted key")
	})
}

// testConditionalAfterRecreate: a revision read before a delete must not
// match the item created afterwards at the same key.
func testConditionalAfterRecreate(t *testing.T, f *fixture) {
	key := f.key("a")
	old := f.put(key, "v1")
	require.NoError(t, f.b.Delete(t.Context(), key))
	recreated := f.put(key, "v1")
	require.NotEqual(t, old.Revision, recreated.Revision)

	_, err := f.b.ConditionalUpdate(t.Context(), backend.Item{Key: key, Value: []byte("v2"), Revision: old.Revision})
	requireCompareFailed(t, err, "update with the revision of the deleted item")
	requireCompareFailed(t, f.b.ConditionalDelete(t.Context(), key, old.Revision), "delete with the revision of the deleted item")
	f.requireValue(key, "v1", recreated.Revision)
}
