package backendtest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/backend"
)

func watchTests() []testCase {
	return []testCase{
		{"CommitOrder", testWatchCommitOrder},
		{"EveryWriteKind", testWatchEveryWriteKind},
		{"PrefixFilter", testWatchPrefixFilter},
		{"NoPrefixesSeesEverything", testWatchNoPrefixes},
		{"EmptyPrefixSeesEverything", testWatchEmptyPrefix},
		{"AtomicWrite", testWatchAtomicWrite},
		{"FailedWritesAreSilent", testWatchFailedWrites},
		{"ClosesOnContextCancel", testWatchClosesOnCancel},
		{"ClosesOnClose", testWatchClosesOnClose},
		{"ClosesOnBackendClose", testWatchClosesOnBackendClose},
		{"SlowConsumerIsClosedNotSkipped", testWatchSlowConsumer},
	}
}

// testWatchCommitOrder makes sequential puts and deletes over a few keys and
// requires the watcher to report them exactly in that order.
func testWatchCommitOrder(t *testing.T, f *fixture) {
	w := f.watch(backend.Key(f.prefix))
	var want []backend.Event
	for i := range 60 {
		key := f.key(fmt.Sprintf("k%d", i%5))
		if i%7 == 6 {
			require.NoError(t, f.b.Delete(t.Context(), key))
			want = append(want, deleteEvent(key))
			continue
		}
		value := fmt.Sprintf("v%d", i)
		want = append(want, putEvent(f.put(key, value), value))
	}
	w.expect(want...)
}

func testWatchEveryWriteKind(t *testing.T, f *fixture) {
	ctx := t.Context()
	w := f.watch(backend.Key(f.prefix))
	a, b, c, d := f.key("a"), f.key("b"), f.key("c"), f.key("d")

	created, err := f.b.Create(ctx, item(a, "1"))
	require.NoError(t, err)
	updated, err := f.b.Update(ctx, item(a, "2"))
	require.NoError(t, err)
	swapped, err := f.b.ConditionalUpdate(ctx, backend.Item{Key: a, Value: []byte("3"), Revision: updated.Revision})
	require.NoError(t, err)
	bLease := f.put(b, "1")
	w.expect(putEvent(created, "1"), putEvent(updated, "2"), putEvent(swapped, "3"), putEvent(bLease, "1"))

	require.NoError(t, f.b.Delete(ctx, a))
	require.NoError(t, f.b.ConditionalDelete(ctx, b, bLease.Revision))
	w.expect(deleteEvent(a), deleteEvent(b))

	ranged := []backend.Key{c, backend.Key(f.prefix + "c/1"), d}
	var events []backend.Event
	for _, k := range ranged {
		events = append(events, putEvent(f.put(k, "v"), "v"))
	}
	w.expect(events...)
	require.NoError(t, f.b.DeleteRange(ctx, c, backend.RangeEnd(d)))
	w.expectSet(deleteEvent(ranged[0]), deleteEvent(ranged[1]), deleteEvent(ranged[2]))
}

func testWatchPrefixFilter(t *testing.T, f *fixture) {
	w := f.watch(backend.Key(f.prefix+"a/"), backend.Key(f.prefix+"c/"))
	var want []backend.Event
	for _, k := range []backend.Key{f.key("a", "1"), f.key("b", "1"), f.key("a"), f.key("c", "1"), f.key("ab", "1"), f.key("d", "1"), f.key("a", "2")} {
		lease := f.put(k, "v")
		if k.HasPrefix(backend.Key(f.prefix+"a/")) || k.HasPrefix(backend.Key(f.prefix+"c/")) {
			want = append(want, putEvent(lease, "v"))
		}
	}
	require.NoError(t, f.b.Delete(t.Context(), f.key("b", "1")))
	require.NoError(t, f.b.Delete(t.Context(), f.key("c", "1")))
	want = append(want, deleteEvent(f.key("c", "1")))
	// A last matching write: had a filtered-out event slipped through, it
	// would show up before this one.
	want = append(want, putEvent(f.put(f.key("a", "last"), "v"), "v"))
	w.expect(want...)
}

func testWatchNoPrefixes(t *testing.T, f *fixture) {
	requireSeesEverything(t, f, nil)
}

// requireSeesEverything requires a watch on prefixes to report puts and
// deletes of keys under and beside one another, like a watch of every key.
func requireSeesEverything(t *testing.T, f *fixture, prefixes []backend.Key) {
	w := f.watchWith(t.Context(), backend.Watch{Name: t.Name(), Prefixes: prefixes})
	w.under = f.prefix
	a := f.put(f.key("a"), "v")
	b := f.put(f.key("x", "b"), "v")
	require.NoError(t, f.b.Delete(t.Context(), f.key("a")))
	w.expect(putEvent(a, "v"), putEvent(b, "v"), deleteEvent(f.key("a")))
}

// testWatchEmptyPrefix requires the empty prefix, alone or beside another,
// to follow every key like no prefixes at all (backend.Watch): it is a
// prefix of every key.
func testWatchEmptyPrefix(t *testing.T, f *fixture) {
	for _, tc := range []struct {
		name     string
		prefixes []backend.Key
	}{
		{name: "nil", prefixes: []backend.Key{nil}},
		{name: "empty", prefixes: []backend.Key{{}}},
		{name: "beside another", prefixes: []backend.Key{backend.Key(f.prefix + "a/"), {}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requireSeesEverything(t, f.sub(t), tc.prefixes)
		})
	}
}

func testWatchAtomicWrite(t *testing.T, f *fixture) {
	w := f.watch(backend.Key(f.prefix))
	x, y, z, nop, missing := f.key("x"), f.key("y"), f.key("z"), f.key("nop"), f.key("missing")
	zLease := f.put(z, "v")
	nopLease := f.put(nop, "v")
	w.expect(putEvent(zLease, "v"), putEvent(nopLease, "v"))

	rev, err := f.b.AtomicWrite(t.Context(), []backend.ConditionalAction{
		{Key: x, Condition: backend.NotExists(), Action: backend.Put(item(x, "1"))},
		{Key: y, Condition: backend.Whatever(), Action: backend.Put(item(y, "2"))},
		{Key: z, Condition: backend.Revision(zLease.Revision), Action: backend.Delete()},
		{Key: nop, Condition: backend.Exists(), Action: backend.Nop()},
	})
	require.NoError(t, err)
	w.expectSet(
		putEvent(&backend.Lease{Key: x, Revision: rev}, "1"),
		putEvent(&backend.Lease{Key: y, Revision: rev}, "2"),
		deleteEvent(z),
	)
	// Deleting a missing key reports nothing (there was nothing to delete),
	// and a Nop reports nothing: the next event is the sentinel's.
	_, err = f.b.AtomicWrite(t.Context(), []backend.ConditionalAction{
		{Key: missing, Condition: backend.Whatever(), Action: backend.Delete()},
		{Key: nop, Condition: backend.Whatever(), Action: backend.Nop()},
	})
	require.NoError(t, err)
	sentinel := f.put(f.key("sentinel"), "v")
	w.expect(putEvent(sentinel, "v"))
}

// testWatchFailedWrites: refused writes must not be reported.
func testWatchFailedWrites(t *testing.T, f *fixture) {
	ctx := t.Context()
	w := f.watch(backend.Key(f.prefix))
	a := f.put(f.key("a"), "v")
	w.expect(putEvent(a, "v"))

	_, err := f.b.Create(ctx, item(f.key("a"), "v2"))
	requireAlreadyExists(t, err, "create")
	_, err = f.b.Update(ctx, item(f.key("missing"), "v"))
	requireNotFound(t, err, "update")
	_, err = f.b.ConditionalUpdate(ctx, backend.Item{Key: f.key("a"), Value: []byte("v2"), Revision: "stale-" + a.Revision})
	requireCompareFailed(t, err, "conditional update")
	requireCompareFailed(t, f.b.ConditionalDelete(ctx, f.key("a"), "stale-"+a.Revision), "conditional delete")
	requireNotFound(t, f.b.Delete(ctx, f.key("missing")), "delete")
	_, err = f.b.AtomicWrite(ctx, []backend.ConditionalAction{
		{Key: f.key("b"), Condition: backend.Whatever(), Action: backend.Put(item(f.key("b"), "v"))},
		{Key: f.key("a"), Condition: backend.NotExists(), Action: backend.Delete()},
	})
	requireCompareFailed(t, err, "atomic write")
	_, err = f.b.Put(ctx, backend.Item{Key: f.key("big"), Value: bigValue(backend.MaxValueSize + 1)})
	requireBadParameter(t, err, "oversized put")

	sentinel := f.put(f.key("sentinel"), "v")
	w.expect(putEvent(sentinel, "v"))
}

func testWatchClosesOnCancel(t *testing.T, f *fixture) {
	ctx, cancel := context.WithCancel(t.Context())
	w := f.watchWith(ctx, backend.Watch{Name: t.Name(), Prefixes: []backend.Key{backend.Key(f.prefix)}})
	other := f.watch(backend.Key(f.prefix))
	cancel()
	w.requireDone("its context was cancelled")

	// The backend and its other watchers keep working.
	lease := f.put(f.key("a"), "v")
	other.expect(putEvent(lease, "v"))
}

func testWatchClosesOnClose(t *testing.T, f *fixture) {
	w := f.watch(backend.Key(f.prefix))
	other := f.watch(backend.Key(f.prefix))
	require.NoError(t, w.w.Close())
	w.requireDone("Close")

	lease := f.put(f.key("a"), "v")
	other.expect(putEvent(lease, "v"))
}

func testWatchClosesOnBackendClose(t *testing.T, f *fixture) {
	watchers := []*testWatcher{f.watch(backend.Key(f.prefix)), f.watch(backend.Key(f.prefix + "a/")), f.watch(backend.Key(f.prefix))}
	require.NoError(t, f.close())
	for i, w := range watchers {
		w.requireDone(fmt.Sprintf("the backend closed (watcher %d)", i))
	}
}

// testWatchSlowConsumer leaves a watcher with a tiny buffer undrained while
// writes go on. The writes must not block, the watcher must close, and what
// it did deliver must be the first writes, without a gap: a consumer can
// trust every event it got and must reload for the rest.
func testWatchSlowConsumer(t *testing.T, f *fixture) {
	const queue, writes = 2, 50
	slow := f.watchWith(t.Context(), backend.Watch{Name: t.Name(), Prefixes: []backend.Key{backend.Key(f.prefix)}, QueueSize: queue})

	type result struct {
		want []backend.Event
		err  error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		for i := range writes {
			value := fmt.Sprintf("v%d", i)
			lease, err := f.b.Put(t.Context(), item(f.key(fmt.Sprintf("k%02d", i)), value))
			if err != nil {
				r.err = err
				break
			}
			r.want = append(r.want, putEvent(lease, value))
		}
		done <- r
	}()
	var r result
	select {
	case r = <-done:
	case <-time.After(f.cfg.waitTimeout):
		t.Fatalf("%d writes did not finish within %v: a slow watcher blocks writers", writes, f.cfg.waitTimeout)
	}
	require.NoError(t, r.err)

	slow.requireDone("its buffer overflowed")
	got := slow.drain()
	require.Less(t, len(got), writes, "a watcher with a buffer of %d delivered all %d events without being read", queue, writes)
	for i, ev := range got {
		require.Equal(t, describe(r.want[i]), describe(ev), "event %d of a closed slow watcher: delivered events must be the writes in order, without gaps", i)
	}
}
