package backendtest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/backend"
)

// testWatcher wraps a watcher with bounded, failing reads.
type testWatcher struct {
	f *fixture
	w backend.Watcher
	// under, if set, drops events for keys outside it (for watchers with no
	// prefixes on a backend other sub-tests may share).
	under string
}

// watch starts a watcher on prefixes and consumes its OpInit.
func (f *fixture) watch(prefixes ...backend.Key) *testWatcher {
	f.t.Helper()
	return f.watchWith(f.t.Context(), backend.Watch{Name: f.t.Name(), Prefixes: prefixes})
}

// watchWith starts a watcher and consumes its OpInit. The watcher is closed
// at cleanup.
func (f *fixture) watchWith(ctx context.Context, w backend.Watch) *testWatcher {
	f.t.Helper()
	watcher, err := f.b.NewWatcher(ctx, w)
	require.NoError(f.t, err)
	require.NotNil(f.t, watcher)
	f.t.Cleanup(func() { _ = watcher.Close() })
	tw := &testWatcher{f: f, w: watcher}
	first := tw.next()
	require.Equal(f.t, backend.OpInit, first.Type, "the first event of a watcher is OpInit, got %v", first)
	return tw
}

// next returns the next event, failing if none arrives in time or the
// watcher closes first.
func (tw *testWatcher) next() backend.Event {
	tw.f.t.Helper()
	ev, ok := tw.tryNext(tw.f.cfg.waitTimeout, 0)
	if !ok {
		tw.f.t.Fatalf("no event within %v", tw.f.cfg.waitTimeout)
	}
	return ev
}

// tryNext waits up to timeout for an event, advancing the fake clock by step
// (if not 0) every few milliseconds meanwhile. It fails the test if the
// watcher closes with no event buffered.
func (tw *testWatcher) tryNext(timeout, step time.Duration) (backend.Event, bool) {
	tw.f.t.Helper()
	deadline := time.Now().Add(timeout)
	poll := time.NewTicker(5 * time.Millisecond)
	defer poll.Stop()
	for {
		select {
		case ev, ok := <-tw.w.Events():
			require.True(tw.f.t, ok, "watcher events channel closed")
			if tw.under != "" && !strings.HasPrefix(ev.Item.Key.String(), tw.under) {
				continue
			}
			return ev, true
		case <-tw.w.Done():
			// Events buffered before the close are still ours.
			select {
			case ev, ok := <-tw.w.Events():
				if ok && (tw.under == "" || strings.HasPrefix(ev.Item.Key.String(), tw.under)) {
					return ev, true
				}
				if ok {
					continue
				}
			default:
			}
			tw.f.t.Fatalf("watcher closed while waiting for an event")
		case <-poll.C:
			if time.Now().After(deadline) {
				return backend.Event{}, false
			}
			if step > 0 {
				tw.f.clock.Advance(step)
			}
		}
	}
}

// expect requires the next events to be exactly want, in order.
func (tw *testWatcher) expect(want ...backend.Event) {
	tw.f.t.Helper()
	for i, w := range want {
		got := tw.next()
		require.Equal(tw.f.t, describe(w), describe(got), "event %d of %d", i+1, len(want))
	}
}

// expectSet requires the next len(want) events to be want, in any order.
func (tw *testWatcher) expectSet(want ...backend.Event) {
	tw.f.t.Helper()
	var wantDesc, gotDesc []string
	for _, w := range want {
		wantDesc = append(wantDesc, describe(w))
		gotDesc = append(gotDesc, describe(tw.next()))
	}
	slices.Sort(wantDesc)
	slices.Sort(gotDesc)
	require.Equal(tw.f.t, wantDesc, gotDesc)
}

// requireDone requires the watcher to close in time.
func (tw *testWatcher) requireDone(why string) {
	tw.f.t.Helper()
	select {
	case <-tw.w.Done():
	case <-time.After(tw.f.cfg.waitTimeout):
		tw.f.t.Fatalf("watcher not closed %v after %s", tw.f.cfg.waitTimeout, why)
	}
}

// drain returns the events buffered in a closed watcher.
func (tw *testWatcher) drain() []backend.Event {
	var out []backend.Event
	for {
		select {
		case ev, ok := <-tw.w.Events():
			if !ok {
				return out
			}
			out = append(out, ev)
		default:
			return out
		}
	}
}

// putEvent is the event a write acknowledged with lease must produce.
func putEvent(lease *backend.Lease, value string) backend.Event {
	return backend.Event{Type: backend.OpPut, Item: backend.Item{Key: lease.Key, Value: []byte(value), Revision: lease.Revision}}
}

func deleteEvent(key backend.Key) backend.Event {
	return backend.Event{Type: backend.OpDelete, Item: backend.Item{Key: key}}
}

// describe renders the parts of an event the contract fixes: the type and
// key always, the value and revision of a put.
func describe(ev backend.Event) string {
	switch ev.Type {
	case backend.OpPut:
		return fmt.Sprintf("put %q=%q @%s", ev.Item.Key, ev.Item.Value, ev.Item.Revision)
	default:
		return fmt.Sprintf("%v %q", ev.Type, ev.Item.Key)
	}
}
