package memory

import (
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/backend/backendtest"
)

func TestCompliance(t *testing.T) {
	backendtest.RunSuite(t, func(t *testing.T, clock *clockwork.FakeClock) backend.Backend {
		b, err := New(t.Context(), Config{Clock: clock})
		require.NoError(t, err)
		return b
	})
}

func TestRegistered(t *testing.T) {
	t.Parallel()
	require.Contains(t, backend.Names(), Name)

	clock := clockwork.NewFakeClock()
	b, err := backend.New(t.Context(), Name, backend.Params{Clock: clock})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	require.Same(t, clock, b.Clock())

	_, err = backend.New(t.Context(), Name, backend.Params{Path: "/tmp/x"})
	require.True(t, trace.IsBadParameter(err), "path: %v", err)
	_, err = backend.New(t.Context(), Name, backend.Params{Settings: map[string]any{"endpoints": "x"}})
	require.True(t, trace.IsBadParameter(err), "settings: %v", err)
}

func TestConfig(t *testing.T) {
	t.Parallel()
	cfg := Config{}
	require.NoError(t, cfg.CheckAndSetDefaults())
	require.NotNil(t, cfg.Clock)
	require.Equal(t, DefaultPurgeInterval, cfg.PurgeInterval)
	require.NotNil(t, cfg.Logger)

	bad := Config{PurgeInterval: -time.Second}
	require.True(t, trace.IsBadParameter(bad.CheckAndSetDefaults()))
}

// TestClosed: after Close every call fails cleanly and Close is idempotent.
func TestClosed(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b, err := New(ctx, Config{Clock: clockwork.NewFakeClock()})
	require.NoError(t, err)
	_, err = b.Put(ctx, backend.Item{Key: backend.Key("a"), Value: []byte("v")})
	require.NoError(t, err)
	require.NoError(t, b.Close())
	require.NoError(t, b.Close())

	key := backend.Key("a")
	calls := map[string]func() error{
		"Put":    func() error { _, err := b.Put(ctx, backend.Item{Key: key}); return err },
		"Get":    func() error { _, err := b.Get(ctx, key); return err },
		"Range":  func() error { _, err := b.GetRange(ctx, key, nil, 0); return err },
		"Delete": func() error { return b.Delete(ctx, key) },
		"Atomic": func() error {
			_, err := b.AtomicWrite(ctx, []backend.ConditionalAction{{Key: key, Condition: backend.Whatever(), Action: backend.Delete()}})
			return err
		},
		"Watch": func() error { _, err := b.NewWatcher(ctx, backend.Watch{}); return err },
	}
	for name, call := range calls {
		require.True(t, trace.IsConnectionProblem(call()), "%s after Close", name)
	}
}

// TestPurgeUsesTheConfiguredInterval: nothing is purged (and reported)
// before one interval of clock time has passed since New.
func TestPurgeUsesTheConfiguredInterval(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	clock := clockwork.NewFakeClock()
	b, err := New(ctx, Config{Clock: clock, PurgeInterval: time.Minute})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })

	w, err := b.NewWatcher(ctx, backend.Watch{})
	require.NoError(t, err)
	require.Equal(t, backend.OpInit, (<-w.Events()).Type)
	_, err = b.Put(ctx, backend.Item{Key: backend.Key("a"), Expires: clock.Now().Add(time.Second)})
	require.NoError(t, err)
	require.Equal(t, backend.OpPut, (<-w.Events()).Type)

	clock.Advance(30 * time.Second)
	select {
	case ev := <-w.Events():
		t.Fatalf("purged before one interval passed: %v", ev)
	case <-time.After(50 * time.Millisecond):
	}
	b.mu.Lock()
	stored := b.items.Len()
	b.mu.Unlock()
	require.Equal(t, 1, stored, "the expired item waits for the purge")

	clock.Advance(30 * time.Second)
	select {
	case ev := <-w.Events():
		require.Equal(t, backend.OpDelete, ev.Type)
		require.Equal(t, "a", ev.Item.Key.String())
	case <-time.After(5 * time.Second):
		t.Fatal("no purge after one interval")
	}
}
