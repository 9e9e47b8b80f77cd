package lite

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/backend"
)

func newTestBackend(t *testing.T, path string, clock clockwork.Clock) *Backend {
	t.Helper()
	b, err := New(t.Context(), Config{Path: path, Clock: clock})
	require.NoError(t, err)
	return b
}

// TestReopen checks that every kind of write survives a close and reopen,
// that expiry is kept, and that revisions keep growing (never reused).
func TestReopen(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "sub", "gatehouse.db")
	clock := clockwork.NewFakeClockAt(time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC))

	b := newTestBackend(t, path, clock)
	expires := clock.Now().Add(time.Hour)
	put, err := b.Put(ctx, backend.Item{Key: backend.Key("a"), Value: []byte("1"), Expires: expires})
	require.NoError(t, err)
	rev, err := b.AtomicWrite(ctx, []backend.ConditionalAction{
		{Key: backend.Key("b"), Condition: backend.NotExists(), Action: backend.Put(backend.Item{Value: []byte("2")})},
		{Key: backend.Key("c"), Condition: backend.Whatever(), Action: backend.Put(backend.Item{Value: nil})},
	})
	require.NoError(t, err)
	_, err = b.Put(ctx, backend.Item{Key: backend.Key("gone"), Value: []byte("x")})
	require.NoError(t, err)
	require.NoError(t, b.Delete(ctx, backend.Key("gone")))
	for _, name := range []string{path, path + "-wal", path + "-shm", path + ".lock"} {
		fi, err := os.Stat(name)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), name)
	}
	require.NoError(t, b.Close())

	fi, err := os.Stat(filepath.Dir(path))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), fi.Mode().Perm())

	b = newTestBackend(t, path, clock)
	defer b.Close()
	got, err := b.Get(ctx, backend.Key("a"))
	require.NoError(t, err)
	require.Equal(t, "1", string(got.Value))
	require.Equal(t, put.Revision, got.Revision)
	require.True(t, expires.Equal(got.Expires), "expiry %v kept exactly, got %v", expires, got.Expires)
	for _, k := range []string{"b", "c"} {
		got, err := b.Get(ctx, backend.Key(k))
		require.NoError(t, err)
		require.Equal(t, rev, got.Revision, "every item of an atomic write has its revision")
	}
	got, err = b.Get(ctx, backend.Key("c"))
	require.NoError(t, err)
	require.Empty(t, got.Value)
	_, err = b.Get(ctx, backend.Key("gone"))
	require.True(t, trace.IsNotFound(err), "%v", err)

	next, err := b.Put(ctx, backend.Item{Key: backend.Key("d"), Value: []byte("4")})
	require.NoError(t, err)
	old, err := strconv.ParseInt(rev, 10, 64)
	require.NoError(t, err)
	n, err := strconv.ParseInt(next.Revision, 10, 64)
	require.NoError(t, err)
	require.Greater(t, n, old, "revisions continue after a reopen")

	var check string
	require.NoError(t, b.wdb.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&check))
	require.Equal(t, "ok", check)
	var mode string
	require.NoError(t, b.rdb.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode))
	require.Equal(t, "wal", mode)
	var sync int
	require.NoError(t, b.wdb.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync))
	require.Equal(t, 2, sync, "synchronous=FULL")
}

// TestExclusive checks that a second backend cannot open a database that is
// in use, since its writes would never reach the first one's watchers.
func TestExclusive(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	b := newTestBackend(t, path, nil)
	_, err := New(t.Context(), Config{Path: path})
	require.Error(t, err)
	require.True(t, trace.IsAlreadyExists(err), "%v", err)
	require.NoError(t, b.Close())
	b = newTestBackend(t, path, nil)
	require.NoError(t, b.Close())
}

func TestRegistry(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	b, err := backend.New(ctx, Name, backend.Params{Path: dir, Settings: map[string]any{"purge_interval": "2s"}})
	require.NoError(t, err)
	_, err = b.Put(ctx, backend.Item{Key: backend.Key("k"), Value: []byte("v")})
	require.NoError(t, err)
	require.NoError(t, b.Close())
	_, err = os.Stat(filepath.Join(dir, DBFileName))
	require.NoError(t, err)

	for name, p := range map[string]backend.Params{
		"unknown setting": {Path: t.TempDir(), Settings: map[string]any{"endpoints": "x"}},
		"bad interval":    {Path: t.TempDir(), Settings: map[string]any{"purge_interval": "-1s"}},
		"no path":         {},
		"path is a file":  {Path: filepath.Join(dir, DBFileName)},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := backend.New(ctx, Name, p)
			require.True(t, trace.IsBadParameter(err), "%v", err)
		})
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]Config{
		"no path":        {},
		"question mark":  {Path: "/tmp/a?b"},
		"negative purge": {Path: "/tmp/x", PurgeInterval: -time.Second},
	} {
		t.Run(name, func(t *testing.T) {
			require.True(t, trace.IsBadParameter(cfg.CheckAndSetDefaults()))
		})
	}
}

// TestClosed checks that calls after Close fail cleanly and watchers close.
func TestClosed(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := newTestBackend(t, filepath.Join(t.TempDir(), "gatehouse.db"), nil)
	w, err := b.NewWatcher(ctx, backend.Watch{})
	require.NoError(t, err)
	require.NoError(t, b.Close())
	require.NoError(t, b.Close(), "Close twice")
	select {
	case <-w.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("watcher not closed with the backend")
	}
	_, err = b.Put(ctx, backend.Item{Key: backend.Key("k")})
	require.Error(t, err)
	_, err = b.Get(ctx, backend.Key("k"))
	require.Error(t, err)
	_, err = b.GetRange(ctx, nil, nil, 0)
	require.Error(t, err)
	_, err = b.NewWatcher(ctx, backend.Watch{})
	require.Error(t, err)
}

// TestExpiryAndPurge checks that an expired item disappears from reads and
// conditions at once, and that the purge loop reports it to watchers.
func TestExpiryAndPurge(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	clock := clockwork.NewFakeClock()
	b, err := New(ctx, Config{Path: filepath.Join(t.TempDir(), "gatehouse.db"), Clock: clock, PurgeInterval: time.Minute})
	require.NoError(t, err)
	defer b.Close()

	w, err := b.NewWatcher(ctx, backend.Watch{Prefixes: []backend.Key{backend.Key("e/")}})
	require.NoError(t, err)
	requireEvent(t, w, backend.OpInit, "")

	lease, err := b.Put(ctx, backend.Item{Key: backend.Key("e/1"), Value: []byte("v"), Expires: clock.Now().Add(30 * time.Second)})
	require.NoError(t, err)
	requireEvent(t, w, backend.OpPut, "e/1")
	clock.Advance(30 * time.Second) // exactly at expiry: expired

	_, err = b.Get(ctx, backend.Key("e/1"))
	require.True(t, trace.IsNotFound(err), "%v", err)
	res, err := b.GetRange(ctx, backend.Key("e/"), backend.RangeEnd(backend.Key("e/")), 0)
	require.NoError(t, err)
	require.Empty(t, res.Items)
	_, err = b.ConditionalUpdate(ctx, backend.Item{Key: backend.Key("e/1"), Value: []byte("w"), Revision: lease.Revision})
	require.True(t, trace.IsCompareFailed(err), "%v", err)
	require.True(t, trace.IsNotFound(b.KeepAlive(ctx, *lease, clock.Now().Add(time.Hour))))

	clock.Advance(time.Minute) // purge tick
	requireEvent(t, w, backend.OpDelete, "e/1")
	var n int
	require.NoError(t, b.rdb.QueryRowContext(ctx, "SELECT count(*) FROM kv").Scan(&n))
	require.Zero(t, n)
}

// TestWatcherOverflow checks that a watcher that falls behind is closed
// without blocking the writer, and that the events it kept are in order.
func TestWatcherOverflow(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := newTestBackend(t, filepath.Join(t.TempDir(), "gatehouse.db"), nil)
	defer b.Close()
	slow, err := b.NewWatcher(ctx, backend.Watch{Name: "slow", QueueSize: 3})
	require.NoError(t, err)
	fast, err := b.NewWatcher(ctx, backend.Watch{Name: "fast", QueueSize: 100})
	require.NoError(t, err)
	for i := range 5 {
		_, err := b.Put(ctx, backend.Item{Key: backend.Key("k" + strconv.Itoa(i)), Value: []byte("v")})
		require.NoError(t, err)
	}
	select {
	case <-slow.Done():
	default:
		t.Fatal("slow watcher should be closed")
	}
	requireEvent(t, slow, backend.OpInit, "")
	requireEvent(t, slow, backend.OpPut, "k0")
	requireEvent(t, slow, backend.OpPut, "k1")
	requireEvent(t, fast, backend.OpInit, "")
	for i := range 5 {
		requireEvent(t, fast, backend.OpPut, "k"+strconv.Itoa(i))
	}
	select {
	case <-fast.Done():
		t.Fatal("fast watcher closed")
	default:
	}

	wctx, cancel := context.WithCancel(ctx)
	w, err := b.NewWatcher(wctx, backend.Watch{})
	require.NoError(t, err)
	cancel()
	select {
	case <-w.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("watcher not closed on context cancel")
	}
}

// TestContext checks that a cancelled context stops calls before they write.
func TestContext(t *testing.T) {
	t.Parallel()
	b := newTestBackend(t, filepath.Join(t.TempDir(), "gatehouse.db"), nil)
	defer b.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := b.Put(ctx, backend.Item{Key: backend.Key("k"), Value: []byte("v")})
	require.ErrorIs(t, err, context.Canceled)
	_, err = b.Get(ctx, backend.Key("k"))
	require.ErrorIs(t, err, context.Canceled)
	_, err = b.GetRange(ctx, nil, nil, 0)
	require.ErrorIs(t, err, context.Canceled)
	_, err = b.NewWatcher(ctx, backend.Watch{})
	require.ErrorIs(t, err, context.Canceled)
	_, err = b.Get(t.Context(), backend.Key("k"))
	require.True(t, trace.IsNotFound(err), "%v", err)

	// A write still queued behind a busy writer gives up when its context
	// ends, and is never applied.
	release := blockWriter(t, b)
	wctx, wcancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer wcancel()
	_, err = b.Put(wctx, backend.Item{Key: backend.Key("k"), Value: []byte("v")})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	release()
	_, err = b.Put(t.Context(), backend.Item{Key: backend.Key("after"), Value: []byte("v")})
	require.NoError(t, err)
	_, err = b.Get(t.Context(), backend.Key("k"))
	require.True(t, trace.IsNotFound(err), "a withdrawn write was applied: %v", err)
}

func requireEvent(t *testing.T, w backend.Watcher, typ backend.OpType, key string) {
	t.Helper()
	select {
	case ev := <-w.Events():
		require.Equal(t, typ, ev.Type, "event %v %q", ev.Type, ev.Item.Key)
		require.Equal(t, key, string(ev.Item.Key))
	case <-time.After(5 * time.Second):
		t.Fatalf("no %v event for %q", typ, key)
	}
}

// TestBinaryKeysAndExtremeExpiry checks byte-wise key order (keys are BLOBs,
// never TEXT) and expiries outside the int64-nanosecond range.
func TestBinaryKeysAndExtremeExpiry(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	clock := clockwork.NewFakeClock()
	b := newTestBackend(t, filepath.Join(t.TempDir(), "gatehouse.db"), clock)
	defer b.Close()
	keys := []string{"\x00", "\x00\x00", "a", "a\x00", "a\xff", "b", "\xff", "\xff\xff"}
	for _, k := range []int{5, 0, 7, 2, 6, 1, 4, 3} {
		_, err := b.Put(ctx, backend.Item{Key: backend.Key(keys[k]), Value: []byte(keys[k])})
		require.NoError(t, err)
	}
	res, err := b.GetRange(ctx, nil, nil, 0)
	require.NoError(t, err)
	var got []string
	for _, it := range res.Items {
		got = append(got, string(it.Key))
	}
	require.Equal(t, keys, got)
	res, err = b.GetRange(ctx, backend.Key("a"), backend.RangeEnd(backend.Key("a")), 0)
	require.NoError(t, err)
	require.Len(t, res.Items, 3)
	res, err = b.GetRange(ctx, backend.Key("\xff"), nil, 0)
	require.NoError(t, err)
	require.Len(t, res.Items, 2)

	far := time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)
	_, err = b.Put(ctx, backend.Item{Key: backend.Key("far"), Value: []byte("v"), Expires: far})
	require.NoError(t, err)
	it, err := b.Get(ctx, backend.Key("far"))
	require.NoError(t, err, "an expiry past 2262 is kept as the latest storable time")
	require.False(t, it.Expires.IsZero())
	_, err = b.Put(ctx, backend.Item{Key: backend.Key("past"), Value: []byte("v"), Expires: time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC)})
	require.NoError(t, err)
	_, err = b.Get(ctx, backend.Key("past"))
	require.True(t, trace.IsNotFound(err), "%v", err)
}
