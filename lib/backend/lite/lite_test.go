package lite

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/backend/backendtest"
)

// TestCompliance runs the shared backend compliance suite against lite, one
// fresh database per sub-test.
// It runs twice: with the read cache (the default) and without it, so that
// both read paths answer the suite.
func TestCompliance(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		cache int64
	}{{"cache", 0}, {"nocache", -1}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			backendtest.RunSuite(t, func(t *testing.T, clock *clockwork.FakeClock) backend.Backend {
				b, err := New(t.Context(), Config{
					Path:          filepath.Join(t.TempDir(), "db", "gatehouse.db"),
					Clock:         clock,
					PurgeInterval: time.Second,
					ReadCacheSize: tc.cache,
				})
				require.NoError(t, err)
				return b
			})
		})
	}
}

// TestReadConnPragmas: read connections map the file only when asked and
// are read-only; GetRange's prepared shapes answer each kind of bound.
func TestReadConnPragmas(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	off, err := New(ctx, Config{Path: filepath.Join(t.TempDir(), "gatehouse.db")})
	require.NoError(t, err)
	t.Cleanup(func() { off.Close() })
	var mmap int64
	require.NoError(t, off.rdb.QueryRowContext(ctx, "PRAGMA mmap_size").Scan(&mmap))
	require.Zero(t, mmap)
	b, err := New(ctx, Config{Path: filepath.Join(t.TempDir(), "gatehouse.db"), ReadMmapSize: 1 << 28})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	require.NoError(t, b.rdb.QueryRowContext(ctx, "PRAGMA mmap_size").Scan(&mmap))
	require.Equal(t, int64(1<<28), mmap)
	_, err = b.rdb.ExecContext(ctx, "CREATE TABLE x (y)")
	require.Error(t, err, "read connections are query_only")

	for _, k := range []string{"a", "b", "c"} {
		_, err := b.Put(ctx, backend.Item{Key: backend.Key(k), Value: []byte(k)})
		require.NoError(t, err)
	}
	for _, tc := range []struct {
		start, end backend.Key
		want       string
	}{
		{nil, nil, "abc"},
		{backend.Key("b"), nil, "bc"},
		{nil, backend.Key("c"), "ab"},
		{backend.Key("b"), backend.Key("c"), "b"},
	} {
		res, err := b.GetRange(ctx, tc.start, tc.end, 10)
		require.NoError(t, err)
		got := ""
		for _, it := range res.Items {
			got += string(it.Key)
		}
		require.Equal(t, tc.want, got, "%q..%q", tc.start, tc.end)
	}
}

// TestGetIndirect: one read follows an index entry to its item, with the
// same answers as two Gets (missing, expired, odd bytes), by key lookups
// only.
// With the cache on, the second pass answers from memory what the first
// read from SQLite.
func TestGetIndirect(t *testing.T) {
	t.Parallel()
	t.Run("cache", func(t *testing.T) { t.Parallel(); testGetIndirect(t, 0) })
	t.Run("nocache", func(t *testing.T) { t.Parallel(); testGetIndirect(t, -1) })
}

func testGetIndirect(t *testing.T, cacheSize int64) {
	ctx := t.Context()
	clock := clockwork.NewFakeClock()
	b, err := New(ctx, Config{Path: filepath.Join(t.TempDir(), "gatehouse.db"), Clock: clock, ReadCacheSize: cacheSize})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	put := func(k, v string, ttl time.Duration) {
		i := backend.Item{Key: backend.Key(k), Value: []byte(v)}
		if ttl > 0 {
			i.Expires = clock.Now().Add(ttl)
		}
		_, err := b.Put(ctx, i)
		require.NoError(t, err)
	}
	odd := "x\x00\xff\xfe/é"
	put("idx/a", "1", 0)
	put("rec/1", "one", 0)
	put("idx/odd", odd, 0)
	put("rec/"+odd, "odd", 0)
	put("idx/gone", "2", 0)
	put("idx/short", "3", 0)
	put("rec/3", "three", time.Minute)
	put("idx/expiring", "1", time.Minute)

	// Forget what the writes cached, so that the first pass reads SQLite.
	b.cache.reset()
	prefix := backend.Key("rec/")
	cases := []struct{ idx, want string }{
		{"idx/a", "one"}, {"idx/odd", "odd"}, {"idx/short", "three"}, {"idx/expiring", "one"},
		{"idx/gone", ""}, {"idx/none", ""},
	}
	for _, tc := range append(cases, cases...) {
		it, err := b.GetIndirect(ctx, backend.Key(tc.idx), prefix)
		if tc.want == "" {
			require.True(t, trace.IsNotFound(err), "%s: %v", tc.idx, err)
			continue
		}
		require.NoError(t, err, tc.idx)
		require.Equal(t, tc.want, string(it.Value))
		direct, err := b.Get(ctx, it.Key)
		require.NoError(t, err)
		require.Equal(t, direct, it, "same item as Get")
	}
	if cacheSize >= 0 {
		// idx/a and idx/odd, with their items, are cached by the first pass.
		require.GreaterOrEqual(t, b.CacheStats().Hits, int64(2), "%+v", b.CacheStats())
	}
	clock.Advance(time.Minute)
	for _, idx := range []string{"idx/short", "idx/expiring"} {
		_, err := b.GetIndirect(ctx, backend.Key(idx), prefix)
		require.True(t, trace.IsNotFound(err), "%s after expiry: %v", idx, err)
	}

	rows, err := b.rdb.QueryContext(ctx, "EXPLAIN QUERY PLAN "+sqlGetIndirect, []byte("idx/a"), []byte(prefix), 0)
	require.NoError(t, err)
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		require.NoError(t, rows.Scan(&id, &parent, &unused, &detail))
		plan = append(plan, detail)
	}
	require.NoError(t, rows.Err())
	require.Len(t, plan, 2, "%q", plan)
	for _, d := range plan {
		require.Contains(t, d, "SEARCH", "%q", plan)
	}
}
