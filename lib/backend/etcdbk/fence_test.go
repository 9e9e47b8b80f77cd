package etcdbk

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/backend/backendtest"
	"github.com/gatehouse/gatehouse/lib/backend/etcdbk/etcdtest"
)

// waitFenced waits until b answers reads of its fenced prefixes from memory.
func waitFenced(t *testing.T, b *Backend) {
	t.Helper()
	require.Eventually(t, func() bool { return b.CacheStats().Fenced }, waitTimeout, 10*time.Millisecond, "the fenced reads never started serving")
}

// fencedPrefix is the prefix the two-server fence tests fence.
var fencedPrefix = backend.Key("creds/")

// fencedPair starts one etcd member and two servers on it (cfg's endpoints
// and prefix are filled in) that both fence fencedPrefix and serve it from
// memory.
func fencedPair(t *testing.T, cfg Config) (a, b *Backend) {
	t.Helper()
	cfg.Endpoints, cfg.Prefix = etcdtest.Start(t, 1), randomPrefix()
	a, b = newServer(t, cfg), newServer(t, cfg)
	for _, s := range []*Backend{a, b} {
		require.True(t, s.FenceReads(fencedPrefix))
		waitFenced(t, s)
	}
	return a, b
}

// TestComplianceFenced runs the compliance suite with every key the suite
// writes under a fenced prefix, so that its reads (Get of missing keys and
// GetRange included) are answered from the cache's fenced path.
func TestComplianceFenced(t *testing.T) {
	t.Parallel()
	endpoints := etcdtest.Start(t, 1)
	backendtest.RunSuite(t, func(t *testing.T, clock *clockwork.FakeClock) backend.Backend {
		b, err := New(t.Context(), Config{Endpoints: endpoints, Prefix: randomPrefix(), Clock: clock})
		require.NoError(t, err)
		require.True(t, b.FenceReads(backend.Key("/test-")))
		waitFenced(t, b)
		return b
	}, backendtest.WithWaitTimeout(10*time.Second))
}

// TestFencedReadsSeeOtherServersWrites is the attack on the guarantee fenced
// reads give: a write acknowledged by one server (a token rotation, a
// credentials deletion) is seen by the very next read on every other
// server, though that server answers from memory. Without the writers'
// wait, the other server's cache lags by the watch delay and the read
// right after the write returns the old value.
func TestFencedReadsSeeOtherServersWrites(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	a, b := fencedPair(t, Config{})
	key := backend.Key("creds/okta")
	end := backend.RangeEnd(fencedPrefix)

	hits := a.CacheStats().Hits
	for i := range 50 {
		value := []byte("hash-" + strconv.Itoa(i))
		_, err := b.Put(ctx, backend.Item{Key: key, Value: value})
		require.NoError(t, err)
		got, err := a.Get(ctx, key)
		require.NoError(t, err, "rotation %d", i)
		require.Equal(t, value, got.Value, "rotation %d: the other server read the old credentials", i)
		res, err := a.GetRange(ctx, fencedPrefix, end, 10)
		require.NoError(t, err)
		require.Len(t, res.Items, 1)
		require.Equal(t, value, res.Items[0].Value, "rotation %d: the other server's range read the old credentials", i)

		require.NoError(t, b.Delete(ctx, key))
		_, err = a.Get(ctx, key)
		require.True(t, trace.IsNotFound(err), "deletion %d: the other server still reads the deleted credentials: %v", i, err)
		res, err = a.GetRange(ctx, fencedPrefix, end, 10)
		require.NoError(t, err)
		require.Empty(t, res.Items, "deletion %d", i)
	}
	// Every one of those reads came from memory, not from etcd.
	require.GreaterOrEqual(t, a.CacheStats().Hits-hits, int64(200))
}

// TestFencedReadsStalledReader stalls one server's replica and checks that
// a write to a fenced prefix does not return until that server can no
// longer answer the prefix from memory (its lease revoked and waited out),
// and that a key the replica cannot hold (an item with an expiry) sends the
// prefix's reads to etcd.
func TestFencedReadsStalledReader(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	cfg := Config{FenceTTL: 2 * time.Second, FenceAckWait: 200 * time.Millisecond}
	a, b := fencedPair(t, cfg)
	key := backend.Key("creds/okta")
	_, err := b.Put(ctx, backend.Item{Key: key, Value: []byte("old")})
	require.NoError(t, err)

	writeWhileStalled(ctx, t, cfg, a, b, key)
	got, err := a.Get(ctx, key)
	require.NoError(t, err)
	require.Equal(t, "new", string(got.Value))

	// It registers again and serves again.
	waitFenced(t, a)
	_, err = b.Put(ctx, backend.Item{Key: backend.Key("creds/temporary"), Value: []byte("x"), Expires: a.Clock().Now().Add(time.Hour)})
	require.NoError(t, err)
	hits := a.CacheStats().Hits
	res, err := a.GetRange(ctx, fencedPrefix, backend.RangeEnd(fencedPrefix), 10)
	require.NoError(t, err)
	require.Len(t, res.Items, 2)
	require.Equal(t, hits, a.CacheStats().Hits, "a range holding an item the cache does not keep must come from etcd")
	_, err = a.Get(ctx, backend.Key("creds/temporary"))
	require.NoError(t, err, "a fenced key the cache does not hold is not missing")
}

// TestFencedWriteOutlivesItsCaller: a fenced write whose caller goes away
// while it waits for a stalled reader (a client that hangs up mid-rotation)
// still revokes that reader and waits out its lease: the write is in etcd,
// so no server may go on answering the old value from memory.
func TestFencedWriteOutlivesItsCaller(t *testing.T) {
	t.Parallel()
	cfg := Config{FenceTTL: 2 * time.Second, FenceAckWait: 200 * time.Millisecond}
	a, b := fencedPair(t, cfg)
	key := backend.Key("creds/okta")
	_, err := b.Put(t.Context(), backend.Item{Key: key, Value: []byte("old")})
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	writeWhileStalled(ctx, t, cfg, a, b, key)
}

// writeWhileStalled writes "new" at key through b while a's replica applies
// nothing (its lock held), and requires that the write succeeded only after
// a's lease was revoked and waited out, so that a no longer answers the
// fenced prefix from memory.
func writeWhileStalled(ctx context.Context, t *testing.T, cfg Config, a, b *Backend, key backend.Key) {
	t.Helper()
	a.cache.mu.Lock()
	start := time.Now()
	_, err := b.Put(ctx, backend.Item{Key: key, Value: []byte("new")})
	took := time.Since(start)
	fenceUntil := a.cache.fenceUntil.Load()
	now := a.cache.now()
	a.cache.mu.Unlock()
	require.NoError(t, err, "the write is in etcd; even a caller that went away does not make it fail")
	require.GreaterOrEqual(t, took, cfg.FenceAckWait+time.Second, "the write returned before the stalled server's lease was waited out")
	require.Less(t, fenceUntil, now, "the stalled server could still answer the fenced prefix from memory")
}

// TestFencedReaderRecord checks the reader key's encoding round trip and
// that a value it cannot read is waited on, not ignored.
func TestFencedReaderRecord(t *testing.T) {
	t.Parallel()
	r := fenceReader{acked: 42, ttl: 3 * time.Second, prefixes: []string{"plugins/", "we\nird/"}}
	got, ok := decodeFenceReader([]byte(r.encode()))
	require.True(t, ok)
	require.Equal(t, r, got)
	for _, bad := range []string{"", "x 1", "1", "1 0", "1 2\nunquoted"} {
		_, ok := decodeFenceReader([]byte(bad))
		require.False(t, ok, "%q", bad)
	}
	readers := []*mvccpb.KeyValue{
		{Key: []byte("r/acked"), Value: []byte(fenceReader{acked: 10, ttl: time.Second, prefixes: []string{"creds/"}}.encode())},
		{Key: []byte("r/behind"), Value: []byte(fenceReader{acked: 9, ttl: time.Second, prefixes: []string{"creds/"}}.encode())},
		{Key: []byte("r/elsewhere"), Value: []byte(fenceReader{acked: 9, ttl: time.Second, prefixes: []string{"plugins/"}}.encode())},
		{Key: []byte("r/garbled"), Value: []byte("garbled")},
	}
	w := newFenceWait(10, readers, keyChanged([]backend.Key{backend.Key("creds/okta")}))
	require.Equal(t, []string{"r/behind", "r/garbled"}, slices.Sorted(maps.Keys(w.pending)))
}
