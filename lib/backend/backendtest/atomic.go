package backendtest

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/backend"
)

func atomicWriteTests() []testCase {
	return []testCase{
		{"Conditions", testAtomicConditions},
		{"Actions", testAtomicActions},
		{"AllOrNone", testAtomicAllOrNone},
		{"RevisionOfEveryWrittenKey", testAtomicRevision},
		{"MaxActions", testAtomicMaxActions},
	}
}

// testAtomicConditions checks every condition kind against a present and a
// missing key, each guarding a Put on a separate marker key.
func testAtomicConditions(t *testing.T, f *fixture) {
	type state int
	const (
		missing state = iota
		present
	)
	cases := []struct {
		name  string
		state state
		cond  func(current, stale string) backend.Condition
		holds bool
	}{
		{"whatever on missing", missing, func(_, _ string) backend.Condition { return backend.Whatever() }, true},
		{"whatever on present", present, func(_, _ string) backend.Condition { return backend.Whatever() }, true},
		{"exists on missing", missing, func(_, _ string) backend.Condition { return backend.Exists() }, false},
		{"exists on present", present, func(_, _ string) backend.Condition { return backend.Exists() }, true},
		{"not exists on missing", missing, func(_, _ string) backend.Condition { return backend.NotExists() }, true},
		{"not exists on present", present, func(_, _ string) backend.Condition { return backend.NotExists() }, false},
		{"current revision", present, func(cur, _ string) backend.Condition { return backend.Revision(cur) }, true},
		{"stale revision", present, func(_, stale string) backend.Condition { return backend.Revision(stale) }, false},
		{"revision on missing", missing, func(_, stale string) backend.Condition { return backend.Revision(stale) }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := f.sub(t)
			guarded, marker := f.key("guarded"), f.key("marker")
			stale := f.put(guarded, "old").Revision
			current := f.put(guarded, "current").Revision
			if tc.state == missing {
				require.NoError(t, f.b.Delete(t.Context(), guarded))
			}

			rev, err := f.b.AtomicWrite(t.Context(), []backend.ConditionalAction{
				{Key: guarded, Condition: tc.cond(current, stale), Action: backend.Nop()},
				{Key: marker, Condition: backend.Whatever(), Action: backend.Put(item(marker, "written"))},
			})
			if !tc.holds {
				requireCompareFailed(t, err, "atomic write with %s", tc.name)
				f.requireMissing(marker)
			} else {
				require.NoError(t, err)
				f.requireValue(marker, "written", rev)
			}
			// A Nop never changes its key.
			if tc.state == missing {
				f.requireMissing(guarded)
			} else {
				f.requireValue(guarded, "current", current)
			}
		})
	}
}

func testAtomicActions(t *testing.T, f *fixture) {
	created, overwritten, deleted, deletedMissing, untouched := f.key("created"), f.key("overwritten"), f.key("deleted"), f.key("never"), f.key("untouched")
	f.put(overwritten, "old")
	f.put(deleted, "doomed")
	keep := f.put(untouched, "same")

	rev, err := f.b.AtomicWrite(t.Context(), []backend.ConditionalAction{
		{Key: created, Condition: backend.NotExists(), Action: backend.Put(item(created, "new"))},
		{Key: overwritten, Condition: backend.Exists(), Action: backend.Put(item(overwritten, "new"))},
		{Key: deleted, Condition: backend.Exists(), Action: backend.Delete()},
		{Key: deletedMissing, Condition: backend.Whatever(), Action: backend.Delete()},
		{Key: untouched, Condition: backend.Revision(keep.Revision), Action: backend.Nop()},
	})
	require.NoError(t, err)
	require.NotEmpty(t, rev)
	f.requireValue(created, "new", rev)
	f.requireValue(overwritten, "new", rev)
	f.requireMissing(deleted)
	f.requireMissing(deletedMissing)
	f.requireValue(untouched, "same", keep.Revision)

	// The Put action's item key and revision are ignored: the action's key
	// wins.
	elsewhere := f.key("elsewhere")
	_, err = f.b.AtomicWrite(t.Context(), []backend.ConditionalAction{
		{Key: created, Condition: backend.Whatever(), Action: backend.Put(backend.Item{Key: elsewhere, Value: []byte("v2"), Revision: "bogus"})},
	})
	require.NoError(t, err)
	f.requireValue(created, "v2", "")
	f.requireMissing(elsewhere)
}

// testAtomicAllOrNone makes the last condition fail and checks that none of
// the earlier actions were applied.
func testAtomicAllOrNone(t *testing.T, f *fixture) {
	existing, toDelete, toCreate, guard := f.key("existing"), f.key("to-delete"), f.key("to-create"), f.key("guard")
	existingLease := f.put(existing, "v1")
	deleteLease := f.put(toDelete, "v1")
	guardLease := f.put(guard, "v1")

	for _, failing := range []backend.Condition{
		backend.NotExists(),
		backend.Revision(existingLease.Revision), // a foreign revision
	} {
		_, err := f.b.AtomicWrite(t.Context(), []backend.ConditionalAction{
			{Key: existing, Condition: backend.Revision(existingLease.Revision), Action: backend.Put(item(existing, "v2"))},
			{Key: toDelete, Condition: backend.Exists(), Action: backend.Delete()},
			{Key: toCreate, Condition: backend.NotExists(), Action: backend.Put(item(toCreate, "v1"))},
			{Key: guard, Condition: failing, Action: backend.Put(item(guard, "v2"))},
		})
		requireCompareFailed(t, err, "atomic write whose last condition fails (%v)", failing)
		f.requireValue(existing, "v1", existingLease.Revision)
		f.requireValue(toDelete, "v1", deleteLease.Revision)
		f.requireMissing(toCreate)
		f.requireValue(guard, "v1", guardLease.Revision)
	}
}

func testAtomicRevision(t *testing.T, f *fixture) {
	keys := []backend.Key{f.key("a"), f.key("b"), f.key("c")}
	old := f.put(keys[1], "old")

	var actions []backend.ConditionalAction
	for _, k := range keys {
		actions = append(actions, backend.ConditionalAction{Key: k, Condition: backend.Whatever(), Action: backend.Put(item(k, "v"))})
	}
	rev, err := f.b.AtomicWrite(t.Context(), actions)
	require.NoError(t, err)
	require.NotEmpty(t, rev)
	require.NotEqual(t, old.Revision, rev)
	for _, k := range keys {
		f.requireValue(k, "v", rev)
	}

	// The returned revision is a real revision: conditional writes take it.
	lease, err := f.b.ConditionalUpdate(t.Context(), backend.Item{Key: keys[0], Value: []byte("v2"), Revision: rev})
	require.NoError(t, err)
	require.NotEqual(t, rev, lease.Revision)
	require.NoError(t, f.b.ConditionalDelete(t.Context(), keys[1], rev))

	rev2, err := f.b.AtomicWrite(t.Context(), actions[2:])
	require.NoError(t, err)
	require.NotEqual(t, rev, rev2, "every atomic write has its own revision")
}

func testAtomicMaxActions(t *testing.T, f *fixture) {
	var actions []backend.ConditionalAction
	for i := range backend.MaxAtomicWriteActions {
		k := f.key(fmt.Sprintf("%02d", i))
		actions = append(actions, backend.ConditionalAction{Key: k, Condition: backend.NotExists(), Action: backend.Put(item(k, "v"))})
	}
	rev, err := f.b.AtomicWrite(t.Context(), actions)
	require.NoError(t, err)
	require.Len(t, f.allKeys(), backend.MaxAtomicWriteActions)
	f.requireValue(actions[len(actions)-1].Key, "v", rev)
}
