package etcdbk

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/backend/etcdbk/etcdtest"
)

// newServer opens a backend (one "server") on endpoints and prefix.
func newServer(t *testing.T, cfg Config) *Backend {
	t.Helper()
	if cfg.Clock == nil {
		cfg.Clock = clockwork.NewFakeClock()
	}
	b, err := New(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	return b
}

// waitServing waits until b's read cache answers reads.
func waitServing(t *testing.T, b *Backend) {
	t.Helper()
	require.Eventually(t, func() bool { return b.CacheStats().Serving }, waitTimeout, 10*time.Millisecond, "the read cache never started serving")
}

// etcdRevision is etcd's current revision, from a quorum read.
func etcdRevision(t *testing.T, b *Backend) int64 {
	t.Helper()
	resp, err := b.client.Get(t.Context(), b.prefix, clientv3.WithCountOnly())
	require.NoError(t, err)
	return resp.Header.Revision
}

// waitApplied waits until b's cache has applied rev.
func waitApplied(t *testing.T, b *Backend, rev int64) {
	t.Helper()
	require.Eventually(t, func() bool { return b.CacheStats().Applied >= rev }, waitTimeout, 5*time.Millisecond,
		"the read cache never reached revision %d", rev)
}

// TestReadCacheCoherence races writers and readers on two servers sharing
// one etcd prefix, one with a cache big enough for everything and one so
// small that it evicts and fills from reads, and checks what the
// cache must never do: return, on a server, a revision older than one that
// server acknowledged or already returned (reads go back), or disagree with
// etcd once the writes stop. Index/target pairs are swapped in atomic
// writes on both servers and read with GetIndirect, which must never see a
// pair half-swapped.
func TestReadCacheCoherence(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	endpoints := etcdtest.Start(t, 1)
	prefix := randomPrefix()
	servers := []*Backend{
		newServer(t, Config{Endpoints: endpoints, Prefix: prefix}),
		newServer(t, Config{Endpoints: endpoints, Prefix: prefix, ReadCacheSize: minReadCacheSize}),
	}
	const keys, writersPerServer, readersPerServer = 8, 2, 2
	duration := 3 * time.Second
	if testing.Short() {
		duration = time.Second
	}
	key := func(i int) backend.Key { return backend.Key(fmt.Sprintf("counter/%d", i)) }
	// Filler that overflows the small cache, before the race and during
	// it, so that it evicts and serves fills (entries stay under 1/16 of
	// it).
	filler := make([]byte, 40_000)
	var setup *backend.Lease
	for i := range 40 {
		_, err := servers[0].Put(ctx, backend.Item{Key: backend.Key(fmt.Sprintf("fill/setup/%d", i)), Value: filler})
		require.NoError(t, err)
	}
	record := []byte("record")
	for i := range keys {
		// idx/i names rec/i/0 to start with.
		_, err := servers[0].AtomicWrite(ctx, []backend.ConditionalAction{
			{Key: backend.Key(fmt.Sprintf("idx/%d", i)), Condition: backend.Whatever(), Action: backend.Put(backend.Item{Value: []byte(fmt.Sprintf("%d/0", i))})},
			{Key: backend.Key(fmt.Sprintf("rec/%d/0", i)), Condition: backend.Whatever(), Action: backend.Put(backend.Item{Value: record})},
		})
		require.NoError(t, err)
		setup, err = servers[0].Put(ctx, backend.Item{Key: key(i), Value: []byte("0")})
		require.NoError(t, err)
	}
	for _, s := range servers {
		// Another server's write reaches a cache after the watch delay.
		waitApplied(t, s, revNum(t, setup.Revision))
		waitServing(t, s)
	}
	revNum := func(rev string) int64 {
		n, _ := strconv.ParseInt(rev, 10, 64)
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
	// seen[s][i] is the highest revision of key i that server s has
	// acknowledged or returned: no later read on s may return less.
	seen := make([][keys]atomic.Int64, len(servers))
	raise := func(s, i int, rev int64) {
		for {
			cur := seen[s][i].Load()
			if rev <= cur || seen[s][i].CompareAndSwap(cur, rev) {
				return
			}
		}
	}
	for si, b := range servers {
		for w := range writersPerServer {
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
					if n%5 == 4 {
						// Swap idx/i to a new target and drop the old one, in one write.
						idx := backend.Key(fmt.Sprintf("idx/%d", i))
						cur, err := b.Get(ctx, idx)
						if err != nil {
							fail("get %s: %v", idx, err)
							return
						}
						next := fmt.Sprintf("%d/%d-%d-%d", i, si, w, n)
						_, err = b.AtomicWrite(ctx, []backend.ConditionalAction{
							{Key: idx, Condition: backend.Revision(cur.Revision), Action: backend.Put(backend.Item{Value: []byte(next)})},
							{Key: backend.Key("rec/" + string(cur.Value)), Condition: backend.Exists(), Action: backend.Delete()},
							{Key: backend.Key("rec/" + next), Condition: backend.NotExists(), Action: backend.Put(backend.Item{Value: record})},
						})
						if err != nil && !trace.IsCompareFailed(err) {
							fail("swap %s: %v", idx, err)
							return
						}
						continue
					}
					if n%3 == 2 {
						_, err := b.Put(ctx, backend.Item{Key: backend.Key(fmt.Sprintf("fill/%d/%d/%d", si, w, n%200)), Value: filler})
						if err != nil {
							fail("filler: %v", err)
							return
						}
						continue
					}
					// Read-modify-write a counter; a lost race retries.
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
					acked := revNum(lease.Revision)
					raise(si, i, acked)
					// Read your own write.
					got, err := b.Get(ctx, key(i))
					if err != nil {
						fail("get after update: %v", err)
						return
					}
					if r := revNum(got.Revision); r < acked {
						fail("server %d, %s: read revision %d after acknowledging %d", si, key(i), r, acked)
					}
				}
			}()
		}
		for r := range readersPerServer {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					if n%64 == 63 {
						// Leave the two shared cores to the writers and
						// etcd now and then: readers only need to race.
						time.Sleep(time.Millisecond)
					}
					i := (r + n) % keys
					if n%2 == 0 {
						it, err := b.GetIndirect(ctx, backend.Key(fmt.Sprintf("idx/%d", i)), backend.Key("rec/"))
						if err != nil {
							fail("server %d, indirect idx/%d: %v (index and target are swapped atomically)", si, i, err)
							return
						}
						if string(it.Value) != string(record) {
							fail("server %d, indirect idx/%d: value %q", si, i, it.Value)
						}
						continue
					}
					floor := seen[si][i].Load()
					it, err := b.Get(ctx, key(i))
					if err != nil {
						fail("get: %v", err)
						return
					}
					rev := revNum(it.Revision)
					if rev < floor {
						fail("server %d, %s: read revision %d, older than %d already acknowledged or read there", si, key(i), rev, floor)
					}
					raise(si, i, rev)
				}
			}()
		}
	}
	time.Sleep(duration)
	close(stop)
	wg.Wait()

	// Quiescence: both caches reach etcd's revision and agree with etcd,
	// item by item, and every increment landed once.
	rev := etcdRevision(t, servers[0])
	raw, err := servers[0].client.Get(ctx, prefix, clientv3.WithPrefix())
	require.NoError(t, err)
	total := 0
	for si, s := range servers {
		waitApplied(t, s, rev)
		waitServing(t, s)
		st := s.CacheStats()
		require.NotZero(t, st.Hits, "server %d: %+v", si, st)
		t.Logf("server %d: cache %+v", si, st)
		for _, kv := range raw.Kvs {
			want, err := s.decode(kv)
			require.NoError(t, err)
			s.cache.mu.RLock()
			got, _ := s.cache.lookupLocked(want.Key)
			s.cache.mu.RUnlock()
			if got == nil {
				require.Equal(t, 1, si, "the big cache lacks %s", want.Key)
				continue // evicted: the small cache reads it from etcd
			}
			require.Equal(t, want, *got, "server %d", si)
		}
	}
	require.Zero(t, servers[0].CacheStats().Evictions)
	require.Positive(t, servers[1].CacheStats().Evictions)
	for i := range keys {
		it, err := servers[0].Get(ctx, key(i))
		require.NoError(t, err)
		v, _ := strconv.Atoi(string(it.Value))
		total += v
	}
	require.Equal(t, int(increments.Load()), total)
	require.Zero(t, failures.Load())
}

// TestReadCacheOtherServer: an item another server just created is never
// reported missing (misses go to etcd), its later writes reach the cache
// through the watch, deletes too, and a read after a failed conditional
// write sees the write that made it fail.
func TestReadCacheOtherServer(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	endpoints := etcdtest.Start(t, 1)
	prefix := randomPrefix()
	a := newServer(t, Config{Endpoints: endpoints, Prefix: prefix})
	b := newServer(t, Config{Endpoints: endpoints, Prefix: prefix})
	waitServing(t, a)
	waitServing(t, b)

	old := put(t, b, "k", "from b")
	it, err := a.Get(ctx, backend.Key("k"))
	require.NoError(t, err, "a key another server created is found at once")
	require.Equal(t, old.Revision, it.Revision)
	it.Value[0] = 'X' // the caller owns what it read; the cache keeps its own copy
	waitApplied(t, a, revNum(t, old.Revision))
	hits := a.CacheStats().Hits
	it, err = a.Get(ctx, backend.Key("k"))
	require.NoError(t, err)
	require.Equal(t, old.Revision, it.Revision)
	require.Equal(t, "from b", string(it.Value))
	it.Value[0] = 'X'
	it, err = a.Get(ctx, backend.Key("k"))
	require.NoError(t, err)
	require.Equal(t, "from b", string(it.Value))
	require.Greater(t, a.CacheStats().Hits, hits, "served from the cache")

	// b rewrites k; a, still holding the old revision, fails its
	// conditional update and its next read sees b's write at once.
	newer := put(t, b, "k", "again from b")
	_, err = a.ConditionalUpdate(ctx, backend.Item{Key: backend.Key("k"), Value: []byte("from a"), Revision: old.Revision})
	require.True(t, trace.IsCompareFailed(err), "%v", err)
	it, err = a.Get(ctx, backend.Key("k"))
	require.NoError(t, err)
	require.Equal(t, newer.Revision, it.Revision)

	// Another server's delete reaches the cache after the watch delay.
	require.NoError(t, b.Delete(ctx, backend.Key("k")))
	require.Eventually(t, func() bool {
		_, err := a.Get(ctx, backend.Key("k"))
		return trace.IsNotFound(err)
	}, waitTimeout, time.Millisecond)
}

// TestReadCacheKeepsNoExpiringItems: an item with an expiry is read from
// etcd every time (so it disappears at its expiry and a renewal by any
// server counts at once), neither loaded, filled nor kept from events, and
// rewriting a cached item with an expiry drops its cached copy.
func TestReadCacheKeepsNoExpiringItems(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	clock := clockwork.NewFakeClock()
	endpoints := etcdtest.Start(t, 1)
	prefix := randomPrefix()
	writer := newServer(t, Config{Endpoints: endpoints, Prefix: prefix, Clock: clock, ReadCacheSize: -1})
	_, err := writer.Put(ctx, backend.Item{Key: backend.Key("loaded"), Value: []byte("v"), Expires: clock.Now().Add(time.Hour)})
	require.NoError(t, err)
	b := newServer(t, Config{Endpoints: endpoints, Prefix: prefix, Clock: clock})
	waitServing(t, b)
	cached := func(key string) bool {
		b.cache.mu.RLock()
		defer b.cache.mu.RUnlock()
		_, ok := b.cache.entries[key]
		return ok
	}
	require.False(t, cached("loaded"))

	forever := put(t, b, "a", "forever")
	waitApplied(t, b, revNum(t, forever.Revision))
	require.True(t, cached("a"))
	expires := clock.Now().Add(time.Minute)
	brief, err := b.Put(ctx, backend.Item{Key: backend.Key("a"), Value: []byte("brief"), Expires: expires})
	require.NoError(t, err)
	waitApplied(t, b, revNum(t, brief.Revision))
	require.False(t, cached("a"))
	hits := b.CacheStats().Hits
	it, err := b.Get(ctx, backend.Key("a"))
	require.NoError(t, err)
	require.Equal(t, "brief", string(it.Value))
	require.Equal(t, expires.UTC(), it.Expires)
	require.Equal(t, hits, b.CacheStats().Hits)
	require.False(t, cached("a"), "read fills skip expiring items")
	clock.Advance(time.Minute)
	_, err = b.Get(ctx, backend.Key("a"))
	require.True(t, trace.IsNotFound(err), "%v", err)
}

// TestReadCacheBounded: the cache stays within its bound however much is
// written, and what it dropped is read from etcd (and filled back); an item
// over 1/16 of the bound is never cached.
func TestReadCacheBounded(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := newServer(t, Config{Endpoints: etcdtest.Start(t, 1), Prefix: randomPrefix(), ReadCacheSize: minReadCacheSize})
	waitServing(t, b)
	value := make([]byte, 1000)
	const n = 3000 // 3 MB in a 1 MiB cache
	var last string
	for i := range n {
		last = put(t, b, fmt.Sprintf("k/%04d", i), string(value)).Revision
	}
	waitApplied(t, b, revNum(t, last))
	st := b.CacheStats()
	require.LessOrEqual(t, st.Bytes, st.Limit)
	require.Positive(t, st.Evictions)
	for i := range n {
		it, err := b.Get(ctx, backend.Key(fmt.Sprintf("k/%04d", i)))
		require.NoError(t, err)
		require.Len(t, it.Value, 1000)
	}
	require.Positive(t, b.CacheStats().Fills)
	_, err := b.Get(ctx, backend.Key("k/missing"))
	require.True(t, trace.IsNotFound(err))

	big := put(t, b, "big", string(make([]byte, minReadCacheSize/16)))
	waitApplied(t, b, revNum(t, big.Revision))
	b.cache.mu.RLock()
	_, cached := b.cache.entries["big"]
	b.cache.mu.RUnlock()
	require.False(t, cached)
	it, err := b.Get(ctx, backend.Key("big"))
	require.NoError(t, err)
	require.Len(t, it.Value, minReadCacheSize/16)
}

func revNum(t *testing.T, rev string) int64 {
	t.Helper()
	n, ok := parseRevision(rev)
	require.True(t, ok, rev)
	return n
}

// TestReadCacheStopsWhenCutOff: a server cut off from etcd stops serving
// from its cache within the staleness bound (its reads fail instead of
// returning what may be stale); when it comes back and the revision its
// watch must resume from was compacted, the cache re-syncs from a fresh
// snapshot and serves the writes it missed.
func TestReadCacheStopsWhenCutOff(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	endpoints := etcdtest.Start(t, 1)
	proxy := etcdtest.NewProxy(t, endpoints[0])
	prefix := randomPrefix()
	staleness := 300 * time.Millisecond
	watched := newServer(t, Config{Endpoints: []string{proxy.Endpoint()}, Prefix: prefix, RequestTimeout: time.Second, ReadCacheStaleness: staleness})
	writer := newServer(t, Config{Endpoints: endpoints, Prefix: prefix, ReadCacheSize: -1})
	put(t, writer, "k", "old")
	waitServing(t, watched)
	require.Eventually(t, func() bool {
		it, err := watched.Get(ctx, backend.Key("k"))
		return err == nil && string(it.Value) == "old"
	}, waitTimeout, time.Millisecond)

	proxy.Cut()
	cut := time.Now()
	last := put(t, writer, "k", "new")
	put(t, writer, "other", "x")
	require.Eventually(t, func() bool { return !watched.CacheStats().Serving }, waitTimeout, time.Millisecond)
	// Serving stops within the staleness bound (plus a probe interval and
	// scheduling on a busy machine).
	require.Less(t, time.Since(cut), staleness+time.Second)
	_, err := watched.Get(ctx, backend.Key("k"))
	require.Error(t, err, "a cut-off server must not answer from a cache it cannot confirm")

	_, err = writer.client.Compact(ctx, revNum(t, last.Revision)+1, clientv3.WithCompactPhysical())
	require.NoError(t, err)
	syncs := watched.CacheStats().Syncs
	proxy.Restore()
	require.Eventually(t, func() bool { return watched.CacheStats().Syncs > syncs && watched.CacheStats().Serving }, waitTimeout, 5*time.Millisecond,
		"the cache re-syncs after its watch lost its place")
	hits := watched.CacheStats().Hits
	it, err := watched.Get(ctx, backend.Key("k"))
	require.NoError(t, err)
	require.Equal(t, "new", string(it.Value))
	require.Greater(t, watched.CacheStats().Hits, hits)
}

// TestReadCacheSetting: a negative size or 0 turns the cache off; the registry
// setting sizes it.
func TestReadCacheSetting(t *testing.T) {
	t.Parallel()
	endpoints := etcdtest.Start(t, 1)
	for _, tc := range []struct {
		setting any
		want    int64
	}{{nil, DefaultReadCacheSize}, {int64(4 << 20), 4 << 20}, {int64(-1), 0}, {0, 0}, {4096, minReadCacheSize}} {
		settings := map[string]any{"endpoints": endpoints, "prefix": randomPrefix()}
		if tc.setting != nil {
			settings["read_cache_size"] = tc.setting
		}
		bk, err := backend.New(t.Context(), Name, backend.Params{Settings: settings})
		require.NoError(t, err)
		require.Equal(t, tc.want, bk.(*Backend).CacheStats().Limit, "%v", tc.setting)
		require.NoError(t, bk.Close())
	}
	_, err := backend.New(t.Context(), Name, backend.Params{Settings: map[string]any{"endpoints": endpoints, "read_cache_size": "big"}})
	require.True(t, trace.IsBadParameter(err), "%v", err)
}
