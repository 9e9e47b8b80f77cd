package lite

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/backend/backendtest"
)

// TestCompliance runs the shared backend compliance suite against lite, one
// fresh database per sub-test.
func TestCompliance(t *testing.T) {
	t.Parallel()
	backendtest.RunSuite(t, func(t *testing.T, clock *clockwork.FakeClock) backend.Backend {
		b, err := New(t.Context(), Config{
			Path:          filepath.Join(t.TempDir(), "db", "gatehouse.db"),
			Clock:         clock,
			PurgeInterval: time.Second,
		})
		require.NoError(t, err)
		return b
	})
}

// TestReadConnPragmas: read connections map the file and are read-only;
// GetRange's prepared shapes answer each kind of bound.
func TestReadConnPragmas(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b, err := New(ctx, Config{Path: filepath.Join(t.TempDir(), "gatehouse.db")})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	var mmap int64
	require.NoError(t, b.rdb.QueryRowContext(ctx, "PRAGMA mmap_size").Scan(&mmap))
	require.Equal(t, int64(readMmapSize), mmap)
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
