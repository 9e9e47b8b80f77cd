package etcdbk

import (
	"fmt"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/backend/etcdbk/etcdtest"
)

const waitTimeout = 15 * time.Second

// nextEvent returns the watcher's next event or fails.
func nextEvent(t *testing.T, w backend.Watcher) backend.Event {
	t.Helper()
	select {
	case ev := <-w.Events():
		return ev
	case <-w.Done():
		select {
		case ev := <-w.Events():
			return ev
		default:
		}
		t.Fatal("watcher closed while waiting for an event")
	case <-time.After(waitTimeout):
		t.Fatalf("no event within %v", waitTimeout)
	}
	return backend.Event{}
}

func describeEvent(ev backend.Event) string {
	if ev.Type == backend.OpPut {
		return fmt.Sprintf("put %s=%s @%s", ev.Item.Key, ev.Item.Value, ev.Item.Revision)
	}
	return fmt.Sprintf("%v %s", ev.Type, ev.Item.Key)
}

func putEv(l *backend.Lease, value string) string {
	return describeEvent(backend.Event{Type: backend.OpPut, Item: backend.Item{Key: l.Key, Value: []byte(value), Revision: l.Revision}})
}

func delEv(key string) string {
	return describeEvent(backend.Event{Type: backend.OpDelete, Item: backend.Item{Key: backend.Key(key)}})
}

func initEv() string { return describeEvent(backend.Event{Type: backend.OpInit}) }

// proxiedPair returns a backend that reaches etcd only through a proxy the
// test can cut, and a second backend on the same prefix that reaches etcd
// directly (to write while the first is cut off).
func proxiedPair(t *testing.T, endpoint string, healthTimeout ...time.Duration) (watched, writer *Backend, proxy *etcdtest.Proxy) {
	t.Helper()
	proxy = etcdtest.NewProxy(t, endpoint)
	prefix := randomPrefix()
	clock := clockwork.NewFakeClock()
	cfg := Config{Endpoints: []string{proxy.Endpoint()}, Prefix: prefix, Clock: clock, RequestTimeout: 2 * time.Second}
	if len(healthTimeout) > 0 {
		cfg.WatchHealthTimeout = healthTimeout[0]
	}
	var err error
	watched, err = New(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, watched.Close()) })
	writer, err = New(t.Context(), Config{Endpoints: []string{endpoint}, Prefix: prefix, Clock: clock})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, writer.Close()) })
	return watched, writer, proxy
}

// cutOff cuts the proxy and checks that the watched backend really cannot
// reach etcd any more.
func cutOff(t *testing.T, watched *Backend, proxy *etcdtest.Proxy) {
	t.Helper()
	proxy.Cut()
	_, err := watched.Get(t.Context(), backend.Key("probe"))
	require.Error(t, err, "a read through a cut proxy must fail")
}

func put(t *testing.T, b backend.Backend, key, value string) *backend.Lease {
	t.Helper()
	l, err := b.Put(t.Context(), backend.Item{Key: backend.Key(key), Value: []byte(value)})
	require.NoError(t, err)
	return l
}

// TestWatcherResumesAfterDisconnect: events written while a watcher's
// connection is down are delivered, in order and without a new OpInit, once
// it is back.
func TestWatcherResumesAfterDisconnect(t *testing.T) {
	t.Parallel()
	endpoints := etcdtest.Start(t, 1)
	watched, writer, proxy := proxiedPair(t, endpoints[0])
	w, err := watched.NewWatcher(t.Context(), backend.Watch{Name: t.Name(), Prefixes: []backend.Key{backend.Key("k/")}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = w.Close() })
	require.Equal(t, initEv(), describeEvent(nextEvent(t, w)))

	a := put(t, writer, "k/a", "1")
	require.Equal(t, putEv(a, "1"), describeEvent(nextEvent(t, w)))

	cutOff(t, watched, proxy)
	b := put(t, writer, "k/b", "2")
	put(t, writer, "other/x", "filtered out")
	c := put(t, writer, "k/c", "3")
	require.NoError(t, writer.Delete(t.Context(), backend.Key("k/a")))
	proxy.Restore()

	for _, want := range []string{putEv(b, "2"), putEv(c, "3"), delEv("k/a")} {
		require.Equal(t, want, describeEvent(nextEvent(t, w)))
	}
	d := put(t, writer, "k/d", "4")
	require.Equal(t, putEv(d, "4"), describeEvent(nextEvent(t, w)))

	// A second disconnect works the same way.
	cutOff(t, watched, proxy)
	e := put(t, writer, "k/e", "5")
	proxy.Restore()
	require.Equal(t, putEv(e, "5"), describeEvent(nextEvent(t, w)))
}

// TestWatcherCompactionSendsFreshInit: if the revision a watcher must resume
// from was compacted while it was disconnected, it sends a fresh OpInit
// instead of the lost events, then carries on from the current revision.
func TestWatcherCompactionSendsFreshInit(t *testing.T) {
	t.Parallel()
	endpoints := etcdtest.Start(t, 1)
	watched, writer, proxy := proxiedPair(t, endpoints[0])
	w, err := watched.NewWatcher(t.Context(), backend.Watch{Name: t.Name()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = w.Close() })
	require.Equal(t, initEv(), describeEvent(nextEvent(t, w)))
	a := put(t, writer, "a", "1")
	require.Equal(t, putEv(a, "1"), describeEvent(nextEvent(t, w)))

	cutOff(t, watched, proxy)
	put(t, writer, "b", "lost")
	last := put(t, writer, "c", "lost")
	rev, ok := parseRevision(last.Revision)
	require.True(t, ok)
	raw, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = raw.Close() })
	_, err = raw.Compact(t.Context(), rev, clientv3.WithCompactPhysical())
	require.NoError(t, err)
	proxy.Restore()

	require.Equal(t, initEv(), describeEvent(nextEvent(t, w)), "the lost events are replaced by a fresh init")
	// After the init, a reload sees the state the lost events made, and
	// new events flow.
	got, err := watched.Get(t.Context(), backend.Key("c"))
	require.NoError(t, err)
	require.Equal(t, "lost", string(got.Value))
	d := put(t, writer, "d", "2")
	require.Equal(t, putEv(d, "2"), describeEvent(nextEvent(t, w)))
	select {
	case <-w.Done():
		t.Fatal("the watcher closed after the compaction")
	default:
	}
}

// TestWatcherStopsWhenEtcdIsGone: closing the backend while etcd is
// unreachable still closes the watcher promptly.
func TestWatcherClosesWhileDisconnected(t *testing.T) {
	t.Parallel()
	endpoints := etcdtest.Start(t, 1)
	watched, _, proxy := proxiedPair(t, endpoints[0])
	w, err := watched.NewWatcher(t.Context(), backend.Watch{Name: t.Name()})
	require.NoError(t, err)
	require.Equal(t, initEv(), describeEvent(nextEvent(t, w)))
	cutOff(t, watched, proxy)
	closed := make(chan error, 1)
	go func() { closed <- w.Close() }()
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(waitTimeout):
		t.Fatal("Close blocked while etcd was unreachable")
	}
	<-w.Done()
}

// TestNewWatcherFailsWithoutEtcd: a watcher is not started (and reported
// as started) when etcd cannot be reached.
func TestNewWatcherFailsWithoutEtcd(t *testing.T) {
	t.Parallel()
	endpoints := etcdtest.Start(t, 1)
	watched, _, proxy := proxiedPair(t, endpoints[0])
	proxy.Cut()
	_, err := watched.NewWatcher(t.Context(), backend.Watch{Name: t.Name()})
	require.Error(t, err)
}

// testHealthTimeout is a watch health timeout short enough for tests.
const testHealthTimeout = time.Second

// waitDone waits for the watcher to close and returns how long it took.
func waitDone(t *testing.T, w backend.Watcher, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	select {
	case <-w.Done():
		return time.Since(start)
	case <-time.After(within):
		t.Fatalf("the watcher was still open %v later", within)
		return 0
	}
}

// requireOpen fails if the watcher has closed.
func requireOpen(t *testing.T, w backend.Watcher) {
	t.Helper()
	select {
	case <-w.Done():
		t.Fatal("a healthy watcher was closed")
	default:
	}
}

// TestWatcherClosesWhenEtcdIsUnreachable: the etcd client would retry the
// broken stream for ever; the watcher is closed within the health timeout
// instead, so that its consumer knows its view may be stale.
func TestWatcherClosesWhenEtcdIsUnreachable(t *testing.T) {
	t.Parallel()
	endpoints := etcdtest.Start(t, 1)
	watched, writer, proxy := proxiedPair(t, endpoints[0], testHealthTimeout)
	w, err := watched.NewWatcher(t.Context(), backend.Watch{Name: t.Name()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = w.Close() })
	require.Equal(t, initEv(), describeEvent(nextEvent(t, w)))
	a := put(t, writer, "a", "1")
	require.Equal(t, putEv(a, "1"), describeEvent(nextEvent(t, w)))

	proxy.Cut()
	took := waitDone(t, w, testHealthTimeout+5*time.Second)
	t.Logf("watcher closed %v after etcd became unreachable (health timeout %v)", took, testHealthTimeout)
	require.GreaterOrEqual(t, took, testHealthTimeout/2, "closed by the health bound, not by something else")
}

// TestWatcherClosesWithoutQuorum: with two of three members stopped, the
// remaining member has no leader; the watcher is closed within the health
// timeout (plus the few election timeouts etcd waits before it ends a
// leaderless member's watches).
func TestWatcherClosesWithoutQuorum(t *testing.T) {
	t.Parallel()
	cluster := etcdtest.StartCluster(t, 3)
	b, err := New(t.Context(), Config{Endpoints: cluster.Endpoints(), Prefix: randomPrefix(), Clock: clockwork.NewFakeClock(),
		RequestTimeout: 2 * time.Second, WatchHealthTimeout: testHealthTimeout})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	w, err := b.NewWatcher(t.Context(), backend.Watch{Name: t.Name()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = w.Close() })
	require.Equal(t, initEv(), describeEvent(nextEvent(t, w)))
	a := put(t, b, "a", "1")
	require.Equal(t, putEv(a, "1"), describeEvent(nextEvent(t, w)))

	cluster.Members[0].Stop()
	cluster.Members[1].Stop()
	took := waitDone(t, w, testHealthTimeout+10*time.Second)
	t.Logf("watcher closed %v after quorum was lost (health timeout %v)", took, testHealthTimeout)
	_, err = b.NewWatcher(t.Context(), backend.Watch{Name: t.Name()})
	require.Error(t, err, "no new watcher without quorum")
}

// TestQuietWatcherStaysOpen: a healthy watcher is not closed for lack of
// events, whether nothing at all is written or only keys outside its range
// are, and still delivers afterwards.
func TestQuietWatcherStaysOpen(t *testing.T) {
	t.Parallel()
	endpoints := etcdtest.Start(t, 1)
	watched, writer, _ := proxiedPair(t, endpoints[0], testHealthTimeout)
	w, err := watched.NewWatcher(t.Context(), backend.Watch{Name: t.Name(), Prefixes: []backend.Key{backend.Key("k/")}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = w.Close() })
	require.Equal(t, initEv(), describeEvent(nextEvent(t, w)))

	// Nothing written for three health timeouts.
	time.Sleep(3 * testHealthTimeout)
	requireOpen(t, w)
	a := put(t, writer, "k/a", "1")
	require.Equal(t, putEv(a, "1"), describeEvent(nextEvent(t, w)))

	// Only other keys written for three more.
	for range 6 {
		put(t, writer, "other/x", "y")
		time.Sleep(testHealthTimeout / 2)
	}
	requireOpen(t, w)
	b := put(t, writer, "k/b", "2")
	require.Equal(t, putEv(b, "2"), describeEvent(nextEvent(t, w)))
}
