package etcdbk

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/backend/etcdbk/etcdtest"
)

// TestEnvelope: values and expiries round-trip, foreign values are refused,
// and the byte comparison etcd transactions rely on agrees with
// backend.Expired for every case around the boundary.
func TestEnvelope(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 2, 3, 4, 5, 600, time.UTC)
	expiries := map[string]time.Time{
		"never":         {},
		"now":           now,
		"1ns before":    now.Add(-time.Nanosecond),
		"1ns after":     now.Add(time.Nanosecond),
		"1s after":      now.Add(time.Second),
		"1970":          time.Unix(0, 0),
		"before 1970":   time.Date(1960, 5, 6, 7, 8, 9, 10, time.UTC),
		"far future":    time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		"other zone":    now.In(time.FixedZone("X", 3600)).Add(time.Hour),
		"year 1":        time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC),
		"just a second": now.Add(-time.Second),
	}
	values := map[string][]byte{
		"nil":        nil,
		"empty":      {},
		"ff":         bytes.Repeat([]byte{0xff}, 20),
		"zeros":      make([]byte, 20),
		"text":       []byte("hello"),
		"like a hdr": encodeEnvelope([]byte("x"), now),
	}
	for en, exp := range expiries {
		for vn, v := range values {
			t.Run(en+"/"+vn, func(t *testing.T) {
				env := encodeEnvelope(v, exp)
				gotV, gotExp, err := decodeEnvelope(env)
				require.NoError(t, err)
				require.Equal(t, len(v), len(gotV))
				if len(v) > 0 {
					require.Equal(t, v, gotV)
				}
				require.True(t, exp.Equal(gotExp), "expiry %v round-trips, got %v", exp, gotExp)
				require.Equal(t, exp.IsZero(), gotExp.IsZero())

				live := bytes.Compare(env, []byte(liveThreshold(now))) > 0
				require.Equal(t, !backend.Expired(exp, now), live, "live at %v with expiry %v", now, exp)
			})
		}
	}
	for _, foreign := range [][]byte{nil, []byte("plain"), make([]byte, 14), append([]byte{envelopeVersion}, bytes.Repeat([]byte{1}, 20)...)} {
		_, _, err := decodeEnvelope(foreign)
		require.Error(t, err, "%q", foreign)
	}
}

// TestSharedLeases: items that expire in the same window share one lease;
// items in different windows get one lease per window; items without expiry
// get none.
func TestSharedLeases(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	endpoints := etcdtest.Start(t, 1)
	clock := clockwork.NewFakeClockAt(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	prefix := randomPrefix()
	b, err := New(ctx, Config{Endpoints: endpoints, Prefix: prefix, Clock: clock, LeaseWindow: 10 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })

	base := clock.Now().Add(time.Hour)
	byWindow := map[int][]string{}
	for i := range 60 {
		window := i % 3
		// Spread inside each window: offsets 1s..9s past the window start.
		exp := base.Add(time.Duration(window)*10*time.Second + time.Duration(1+i%9)*time.Second)
		key := fmt.Sprintf("k%02d", i)
		_, err := b.Put(ctx, backend.Item{Key: backend.Key(key), Value: []byte("v"), Expires: exp})
		require.NoError(t, err)
		byWindow[window] = append(byWindow[window], key)
	}
	_, err = b.AtomicWrite(ctx, []backend.ConditionalAction{
		{Key: backend.Key("atomic"), Condition: backend.NotExists(), Action: backend.Put(backend.Item{Value: []byte("v"), Expires: base.Add(5 * time.Second)})},
	})
	require.NoError(t, err)
	byWindow[0] = append(byWindow[0], "atomic")
	put(t, b, "permanent", "v")

	leaseOf := func(key string) clientv3.LeaseID {
		resp, err := b.client.Get(ctx, prefix+key)
		require.NoError(t, err)
		require.Len(t, resp.Kvs, 1)
		return clientv3.LeaseID(resp.Kvs[0].Lease)
	}
	seen := map[clientv3.LeaseID]int{}
	for window, keys := range byWindow {
		id := leaseOf(keys[0])
		require.NotEqual(t, clientv3.NoLease, id)
		for _, k := range keys {
			require.Equal(t, id, leaseOf(k), "every item of window %d shares its lease", window)
		}
		seen[id] = window
	}
	require.Len(t, seen, 3, "one lease per window")
	require.Equal(t, clientv3.NoLease, leaseOf("permanent"))

	// The lease outlives the window's end in real time: its TTL covers the
	// time to the window's end plus the margin.
	ttl, err := b.client.TimeToLive(ctx, leaseOf("k00"))
	require.NoError(t, err)
	require.Greater(t, ttl.TTL, int64(time.Hour/time.Second))
	require.LessOrEqual(t, ttl.GrantedTTL, int64((time.Hour+30*time.Second+leaseMargin)/time.Second)+1)

	// Rewriting an item moves it off its window's lease: a KeepAlive to a
	// later window, and a put without expiry.
	got, err := b.Get(ctx, backend.Key("k00"))
	require.NoError(t, err)
	require.NoError(t, b.KeepAlive(ctx, backend.Lease{Key: backend.Key("k00"), Revision: got.Revision}, base.Add(time.Hour)))
	require.NotContains(t, seen, leaseOf("k00"))
	put(t, b, "k01", "v")
	require.Equal(t, clientv3.NoLease, leaseOf("k01"))
}

// TestLeaseDeletesWithoutThePurgeLoop: the lease alone, in real time,
// deletes an expired item and the watcher sees the Delete, even though the
// backend's (fake) clock never moves, so its purge loop does nothing: the
// safety net for servers that stop before a window ends.
func TestLeaseDeletesWithoutThePurgeLoop(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	endpoints := etcdtest.Start(t, 1)
	clock := clockwork.NewFakeClock()
	b, err := New(ctx, Config{Endpoints: endpoints, Prefix: randomPrefix(), Clock: clock, LeaseWindow: time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	w, err := b.NewWatcher(ctx, backend.Watch{Name: t.Name()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = w.Close() })
	require.Equal(t, initEv(), describeEvent(nextEvent(t, w)))

	l, err := b.Put(ctx, backend.Item{Key: backend.Key("short"), Value: []byte("v"), Expires: clock.Now().Add(time.Second)})
	require.NoError(t, err)
	require.Equal(t, putEv(l, "v"), describeEvent(nextEvent(t, w)))
	start := time.Now()
	require.Equal(t, delEv("short"), describeEvent(nextEvent(t, w)))
	require.Less(t, time.Since(start), 6*time.Second, "the lease ran out well after its TTL")
}

// TestPurgeLoopRealClock: with the real clock, the purge loop deletes an
// item within about a purge interval after its window ends, well before the
// lease's margin runs out.
func TestPurgeLoopRealClock(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	endpoints := etcdtest.Start(t, 1)
	b, err := New(ctx, Config{Endpoints: endpoints, Prefix: randomPrefix(), LeaseWindow: time.Second, PurgeInterval: 100 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	w, err := b.NewWatcher(ctx, backend.Watch{Name: t.Name()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = w.Close() })
	require.Equal(t, initEv(), describeEvent(nextEvent(t, w)))

	expires := time.Now().Add(1500 * time.Millisecond)
	l, err := b.Put(ctx, backend.Item{Key: backend.Key("a"), Value: []byte("v"), Expires: expires})
	require.NoError(t, err)
	require.Equal(t, putEv(l, "v"), describeEvent(nextEvent(t, w)))
	require.Equal(t, delEv("a"), describeEvent(nextEvent(t, w)))
	// The window ends at most a second after the expiry; the lease itself
	// would run out a margin later still.
	require.Less(t, time.Since(expires), time.Second+500*time.Millisecond)
}
