package lite

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/backend"
)

func newCached(t *testing.T, cfg Config) *Backend {
	t.Helper()
	if cfg.Path == "" {
		cfg.Path = filepath.Join(t.TempDir(), "gatehouse.db")
	}
	b, err := New(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	return b
}

// sqlGet reads key from SQLite, bypassing the cache: the truth the cache
// must agree with.
func sqlGet(t *testing.T, b *Backend, key string) (value string, rev string, found bool) {
	t.Helper()
	var v []byte
	var r int64
	err := b.getStmt.QueryRowContext(t.Context(), []byte(key), unixNanos(b.cfg.Clock.Now())).Scan(&v, new(any), &r)
	if err != nil {
		return "", "", false
	}
	return string(v), formatRevision(r), true
}

// TestReadCacheCoherence races writers against readers on a few hot keys and
// checks what a cache must never do: return a revision older than one
// already acknowledged to the reader's goroutine, go backwards, or disagree
// with SQLite once the writes stop. Index/target pairs are swapped in
// atomic writes and read with GetIndirect, which must never miss.
func TestReadCacheCoherence(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	// The smallest cache (1 MiB), which the swaps' records wrap many
	// times over, so eviction runs too.
	b := newCached(t, Config{ReadCacheSize: 1})
	const keys, writers, readers = 8, 4, 4
	duration := 2 * time.Second
	if testing.Short() {
		duration = 500 * time.Millisecond
	}
	filler := make([]byte, 2000)
	key := func(i int) backend.Key { return backend.Key(fmt.Sprintf("counter/%d", i)) }
	for i := range keys {
		_, err := b.Put(ctx, backend.Item{Key: key(i), Value: []byte("0")})
		require.NoError(t, err)
		// idx/i names rec/i/0 to start with.
		_, err = b.AtomicWrite(ctx, []backend.ConditionalAction{
			{Key: backend.Key(fmt.Sprintf("idx/%d", i)), Condition: backend.Whatever(), Action: backend.Put(backend.Item{Value: []byte(fmt.Sprintf("%d/0", i))})},
			{Key: backend.Key(fmt.Sprintf("rec/%d/0", i)), Condition: backend.Whatever(), Action: backend.Put(backend.Item{Value: filler})},
		})
		require.NoError(t, err)
	}
	revNum := func(rev string) int64 {
		n, err := strconv.ParseInt(rev, 10, 64)
		require.NoError(t, err)
		return n
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var failures atomic.Int64
	fail := func(format string, args ...any) {
		if failures.Add(1) <= 5 {
			t.Errorf(format, args...)
		}
	}
	var increments atomic.Int64
	var recKeys sync.Map // every rec/ key ever written
	for i := range keys {
		recKeys.Store(fmt.Sprintf("rec/%d/0", i), true)
	}
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				i := (w + n) % keys
				if n%3 == 2 {
					// Swap idx/i to a new target and drop the old one, in one write.
					idx := backend.Key(fmt.Sprintf("idx/%d", i))
					cur, err := b.Get(ctx, idx)
					if err != nil {
						fail("get %s: %v", idx, err)
						return
					}
					next := fmt.Sprintf("%d/%d-%d", i, w, n)
					recKeys.Store("rec/"+next, true)
					_, err = b.AtomicWrite(ctx, []backend.ConditionalAction{
						{Key: idx, Condition: backend.Revision(cur.Revision), Action: backend.Put(backend.Item{Value: []byte(next)})},
						{Key: backend.Key("rec/" + string(cur.Value)), Condition: backend.Exists(), Action: backend.Delete()},
						{Key: backend.Key("rec/" + next), Condition: backend.NotExists(), Action: backend.Put(backend.Item{Value: filler})},
					})
					if err != nil && !trace.IsCompareFailed(err) {
						fail("swap %s: %v", idx, err)
						return
					}
					continue
				}
				// Read-modify-write a counter; a lost race retries later.
				cur, err := b.Get(ctx, key(i))
				if err != nil {
					fail("get %s: %v", key(i), err)
					return
				}
				v, _ := strconv.Atoi(string(cur.Value))
				lease, err := b.ConditionalUpdate(ctx, backend.Item{Key: key(i), Value: []byte(strconv.Itoa(v + 1)), Revision: cur.Revision})
				if trace.IsCompareFailed(err) {
					continue
				}
				if err != nil {
					fail("update %s: %v", key(i), err)
					return
				}
				increments.Add(1)
				// Read your own write: never older than what was acknowledged.
				got, err := b.Get(ctx, key(i))
				if err != nil {
					fail("get after update: %v", err)
					return
				}
				if revNum(got.Revision) < revNum(lease.Revision) {
					fail("%s: read revision %s after acknowledged %s", key(i), got.Revision, lease.Revision)
				}
			}
		}()
	}
	for r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := make(map[int]int64)
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				i := (r + n) % keys
				if n%2 == 0 {
					it, err := b.GetIndirect(ctx, backend.Key(fmt.Sprintf("idx/%d", i)), backend.Key("rec/"))
					if err != nil {
						fail("indirect idx/%d: %v (index and target are swapped atomically)", i, err)
						return
					}
					if len(it.Value) != len(filler) {
						fail("indirect idx/%d: value of %d bytes", i, len(it.Value))
					}
					continue
				}
				it, err := b.Get(ctx, key(i))
				if err != nil {
					fail("get: %v", err)
					return
				}
				rev := revNum(it.Revision)
				if rev < last[i] {
					fail("%s went back from revision %d to %d", key(i), last[i], rev)
				}
				last[i] = rev
			}
		}()
	}
	time.Sleep(duration)
	close(stop)
	wg.Wait()

	// Every increment landed exactly once, and the cache agrees with SQLite.
	total := int64(0)
	for i := range keys {
		it, err := b.Get(ctx, key(i))
		require.NoError(t, err)
		v, _ := strconv.Atoi(string(it.Value))
		total += int64(v)
		value, rev, found := sqlGet(t, b, string(key(i)))
		require.True(t, found)
		require.Equal(t, value, string(it.Value))
		require.Equal(t, rev, it.Revision)
	}
	require.Equal(t, increments.Load(), total)
	recKeys.Range(func(k, _ any) bool {
		_, _, found := sqlGet(t, b, k.(string))
		_, err := b.Get(ctx, backend.Key(k.(string)))
		require.Equal(t, found, err == nil, "%s: in SQLite %v, Get says %v", k, found, err)
		return true
	})
	st := b.CacheStats()
	require.NotZero(t, st.Hits, "%+v", st)
	t.Logf("%d increments; cache %+v", total, st)
}

// TestReadCacheKeepsNoExpiringItems: an item with an expiry is read from
// SQLite every time, so it disappears at its expiry whatever the cache
// holds; rewriting an item with an expiry drops its cached copy.
func TestReadCacheKeepsNoExpiringItems(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	clock := clockwork.NewFakeClock()
	b := newCached(t, Config{Clock: clock})
	_, err := b.Put(ctx, backend.Item{Key: backend.Key("a"), Value: []byte("forever")})
	require.NoError(t, err)
	it, err := b.Get(ctx, backend.Key("a"))
	require.NoError(t, err)
	require.Equal(t, "forever", string(it.Value))
	require.Equal(t, int64(1), b.CacheStats().Entries)

	_, err = b.Put(ctx, backend.Item{Key: backend.Key("a"), Value: []byte("brief"), Expires: clock.Now().Add(time.Minute)})
	require.NoError(t, err)
	require.Zero(t, b.CacheStats().Entries)
	it, err = b.Get(ctx, backend.Key("a"))
	require.NoError(t, err)
	require.Equal(t, "brief", string(it.Value))
	require.Equal(t, clock.Now().Add(time.Minute).UTC(), it.Expires)
	require.Zero(t, b.CacheStats().Entries, "read fills skip expiring items")
	clock.Advance(time.Minute)
	_, err = b.Get(ctx, backend.Key("a"))
	require.True(t, trace.IsNotFound(err), "%v", err)
}

// TestReadCacheBounded: the cache evicts to stay within its size however
// much is written, what it dropped is still read from SQLite, and an item too
// big for it is not cached at all (nor is its older, smaller version kept).
func TestReadCacheBounded(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := newCached(t, Config{ReadCacheSize: minReadCacheSize})
	value := make([]byte, 1000)
	const n = 3000 // 3 MB of values in a 1 MiB cache
	for i := range n {
		_, err := b.Put(ctx, backend.Item{Key: backend.Key(fmt.Sprintf("k/%04d", i)), Value: value})
		require.NoError(t, err)
	}
	st := b.CacheStats()
	require.Positive(t, st.Evictions, "%+v", st)
	require.Less(t, st.Entries, int64(1100), "%+v", st)
	for i := range n {
		it, err := b.Get(ctx, backend.Key(fmt.Sprintf("k/%04d", i)))
		require.NoError(t, err)
		require.Len(t, it.Value, 1000)
	}

	_, err := b.Put(ctx, backend.Item{Key: backend.Key("big"), Value: []byte("small")})
	require.NoError(t, err)
	_, ok := b.cache.get(backend.Key("big"))
	require.True(t, ok)
	_, err = b.Put(ctx, backend.Item{Key: backend.Key("big"), Value: make([]byte, minReadCacheSize/16)})
	require.NoError(t, err)
	_, ok = b.cache.get(backend.Key("big"))
	require.False(t, ok, "an item over 1/16 of the cache is not cached, and the old one is gone")
	it, err := b.Get(ctx, backend.Key("big"))
	require.NoError(t, err)
	require.Len(t, it.Value, minReadCacheSize/16)
}

// TestReadCacheStaleFillDropped: a read that went to SQLite before a batch
// was applied must not put what it read into the cache afterwards.
func TestReadCacheStaleFillDropped(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := newCached(t, Config{})
	_, err := b.Put(ctx, backend.Item{Key: backend.Key("a"), Value: []byte("old")})
	require.NoError(t, err)
	b.cache.reset()
	gen := b.cache.generation()
	// The "slow reader" read "old" at revision 1; then a write lands.
	_, err = b.Put(ctx, backend.Item{Key: backend.Key("a"), Value: []byte("new")})
	require.NoError(t, err)
	b.cache.offer(gen, cacheOffer{key: []byte("a"), value: []byte("old"), rev: 1})
	it, err := b.Get(ctx, backend.Key("a"))
	require.NoError(t, err)
	require.Equal(t, "new", string(it.Value))
}

// TestReadCacheOff: a negative size turns the cache off.
func TestReadCacheOff(t *testing.T) {
	t.Parallel()
	b := newCached(t, Config{ReadCacheSize: -1})
	_, err := b.Put(context.Background(), backend.Item{Key: backend.Key("a"), Value: []byte("x")})
	require.NoError(t, err)
	_, err = b.Get(context.Background(), backend.Key("a"))
	require.NoError(t, err)
	require.Equal(t, CacheStats{}, b.CacheStats())
}

// TestReadCacheSettingFromRegistry: the registry setting sizes the cache.
func TestReadCacheSettingFromRegistry(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		setting any
		want    int64
	}{{int64(4 << 20), 4 << 20}, {int64(-1), 0}, {4096, minReadCacheSize}} {
		bk, err := backend.New(t.Context(), Name, backend.Params{Path: t.TempDir(), Settings: map[string]any{"read_cache_size": tc.setting}})
		require.NoError(t, err)
		require.Equal(t, tc.want, bk.(*Backend).CacheStats().Limit)
		require.NoError(t, bk.Close())
	}
	_, err := backend.New(t.Context(), Name, backend.Params{Path: t.TempDir(), Settings: map[string]any{"read_cache_size": "big"}})
	require.ErrorContains(t, err, "integer")
}

// TestReadCacheWhenRead: under a CacheWhenRead prefix a write leaves the key out of the cache
// (an older cached version is dropped, never served), a read caches it, and other prefixes are
// still cached on write.
func TestReadCacheWhenRead(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := newCached(t, Config{})
	b.CacheWhenRead(func(k backend.Key) bool { return bytes.HasPrefix(k, []byte("users/")) })

	_, err := b.Put(ctx, backend.Item{Key: backend.Key("users/alice"), Value: []byte("v1")})
	require.NoError(t, err)
	_, err = b.Put(ctx, backend.Item{Key: backend.Key("records/1"), Value: []byte("r1")})
	require.NoError(t, err)
	require.Equal(t, int64(1), b.CacheStats().Entries, "only records/1 was cached by its write")

	it, err := b.Get(ctx, backend.Key("users/alice"))
	require.NoError(t, err)
	require.Equal(t, "v1", string(it.Value))
	require.Equal(t, int64(2), b.CacheStats().Entries, "the read cached users/alice")
	hits := b.CacheStats().Hits
	it, err = b.Get(ctx, backend.Key("users/alice"))
	require.NoError(t, err)
	require.Equal(t, "v1", string(it.Value))
	require.Equal(t, hits+1, b.CacheStats().Hits)

	// A write drops the cached version; the next read finds the new one.
	_, err = b.Put(ctx, backend.Item{Key: backend.Key("users/alice"), Value: []byte("v2")})
	require.NoError(t, err)
	require.Equal(t, int64(1), b.CacheStats().Entries)
	it, err = b.Get(ctx, backend.Key("users/alice"))
	require.NoError(t, err)
	require.Equal(t, "v2", string(it.Value))
	value, rev, found := sqlGet(t, b, "users/alice")
	require.True(t, found)
	require.Equal(t, "v2", value)
	require.Equal(t, rev, it.Revision)
}
