package scimprov

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// versioned answers a read with the version current when the read started,
// after holding it until release says so (nil: at once).
type versioned struct {
	version atomic.Int64
	release chan struct{}
	delay   time.Duration
	started atomic.Int64
}

func (v *versioned) list(ctx context.Context, labels map[string]string, withSecrets bool) ([]*typesv1.PluginStaticCredentials, error) {
	seen := v.version.Load()
	v.started.Add(1)
	if v.release != nil {
		<-v.release
	}
	time.Sleep(v.delay)
	return []*typesv1.PluginStaticCredentials{{Metadata: &typesv1.Metadata{Name: labels["plugin"], Revision: fmt.Sprint(seen)}}}, nil
}

// TestFreshReadsShareAWave: callers that arrive while a read is in flight
// share the next one, whatever their number: two reads for eleven callers.
func TestFreshReadsShareAWave(t *testing.T) {
	t.Parallel()
	var f freshReads
	v := &versioned{release: make(chan struct{})}
	sel := map[string]string{"plugin": "okta"}
	ctx := context.Background()

	first := make(chan error, 1)
	go func() { _, err := f.list(ctx, v.list, sel); first <- err }()
	require.Eventually(t, func() bool { return v.started.Load() == 1 }, 5*time.Second, time.Millisecond)

	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			got, err := f.list(ctx, v.list, sel)
			require.NoError(t, err)
			require.Equal(t, "okta", got[0].GetMetadata().GetName())
		})
	}
	// The ten are waiting for the next read, which cannot start while
	// the first is in flight.
	time.Sleep(50 * time.Millisecond)
	require.Equal(t, int64(1), v.started.Load())
	close(v.release)
	wg.Wait()
	require.NoError(t, <-first)
	require.Equal(t, int64(2), v.started.Load(), "one read in flight, one for the ten")

	// Another selector never shares a read with this one.
	got, err := f.list(ctx, v.list, map[string]string{"plugin": "other"})
	require.NoError(t, err)
	require.Equal(t, "other", got[0].GetMetadata().GetName())
}

// TestFreshReadsSeeEveryEarlierWrite: whatever the interleaving, a caller
// gets a read that started after it called, so it sees every write made
// before the call (here a version bumped before calling).
func TestFreshReadsSeeEveryEarlierWrite(t *testing.T) {
	t.Parallel()
	var f freshReads
	// Reads that take a while, so that callers arrive while one is in flight.
	v := &versioned{delay: 200 * time.Microsecond}
	sel := map[string]string{"plugin": "okta"}
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				before := v.version.Add(1)
				got, err := f.list(ctx, v.list, sel)
				require.NoError(t, err)
				var seen int64
				_, _ = fmt.Sscan(got[0].GetMetadata().GetRevision(), &seen)
				require.GreaterOrEqual(t, seen, before, "a read that started before the call was shared")
			}
		})
	}
	wg.Wait()
}

// TestFreshReadsCallerCancel: a caller that gives up does not cancel the
// read the others wait for.
func TestFreshReadsCallerCancel(t *testing.T) {
	t.Parallel()
	var f freshReads
	v := &versioned{release: make(chan struct{})}
	sel := map[string]string{"plugin": "okta"}
	ctx, cancel := context.WithCancel(context.Background())
	gone := make(chan error, 1)
	go func() { _, err := f.list(ctx, v.list, sel); gone <- err }()
	require.Eventually(t, func() bool { return v.started.Load() == 1 }, 5*time.Second, time.Millisecond)
	cancel()
	require.ErrorIs(t, <-gone, context.Canceled)

	done := make(chan error, 1)
	go func() { _, err := f.list(context.Background(), v.list, sel); done <- err }()
	close(v.release)
	require.NoError(t, <-done)
}

func TestSelectorKeyIsUnambiguous(t *testing.T) {
	t.Parallel()
	require.Equal(t, selectorKey(map[string]string{"a": "1", "b": "2"}), selectorKey(map[string]string{"b": "2", "a": "1"}))
	require.NotEqual(t, selectorKey(map[string]string{"a": "b\x00c"}), selectorKey(map[string]string{"a": "b", "c": ""}))
	require.NotEqual(t, selectorKey(map[string]string{"ab": "c"}), selectorKey(map[string]string{"a": "bc"}))
}

// TestFreshReadsForgetIdleSelectors: selectors come and go (plugins, the
// decoy); once their reads are done nothing of them is kept.
func TestFreshReadsForgetIdleSelectors(t *testing.T) {
	t.Parallel()
	var f freshReads
	v := &versioned{}
	for i := range 100 {
		_, err := f.list(context.Background(), v.list, map[string]string{"plugin": fmt.Sprint(i)})
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.next) == 0 && len(f.inFlight) == 0
	}, 5*time.Second, time.Millisecond)
}
