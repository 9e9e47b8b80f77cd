package memory

import (
	"context"
	"sync"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/backend"
)

// watcher is one subscriber. Its events channel is written only under the
// backend mutex, and never blocks the writer: a watcher whose buffer is full
// is closed instead (its consumer must reload), so it never misses an event
// silently.
type watcher struct {
	name     string
	prefixes []backend.Key
	events   chan backend.Event
	done     chan struct{}
	doneOnce sync.Once
	backend  *Memory
}

// NewWatcher follows changes under w.Prefixes until ctx ends, Close is
// called, the consumer falls behind, or the backend closes.
func (m *Memory) NewWatcher(ctx context.Context, w backend.Watch) (backend.Watcher, error) {
	w, err := backend.PrepareWatch(ctx, w)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if err := m.lock(); err != nil {
		return nil, trace.Wrap(err)
	}
	wt := &watcher{
		name:     w.Name,
		prefixes: w.Prefixes,
		// One slot more than asked for, so that OpInit does not use up the
		// consumer's buffer.
		events:  make(chan backend.Event, w.QueueSize+1),
		done:    make(chan struct{}),
		backend: m,
	}
	wt.events <- backend.Event{Type: backend.OpInit}
	m.watchers[wt] = struct{}{}
	m.mu.Unlock()

	go func() {
		select {
		case <-ctx.Done():
			_ = wt.Close()
		case <-wt.done:
		}
	}()
	return wt, nil
}

// emitLocked hands ev to every matching watcher, closing those that are
// full. Called with m.mu held, in commit order.
func (m *Memory) emitLocked(ev backend.Event) {
	for w := range m.watchers {
		if !backend.MatchesPrefixes(ev.Item.Key, w.prefixes) {
			continue
		}
		select {
		case w.events <- ev:
		default:
			m.log.Warn("Closing a watcher that fell behind.", "watcher", w.name, "queue_size", cap(w.events)-1)
			m.dropWatcherLocked(w)
		}
	}
}

// dropWatcherLocked unsubscribes w and closes its Done channel. The events
// already buffered stay readable.
func (m *Memory) dropWatcherLocked(w *watcher) {
	delete(m.watchers, w)
	w.doneOnce.Do(func() { close(w.done) })
}

// Events delivers OpInit first, then Put and Delete events in commit order.
func (w *watcher) Events() <-chan backend.Event { return w.events }

// Done is closed when the watcher stops delivering events.
func (w *watcher) Done() <-chan struct{} { return w.done }

// Close stops the watcher; closing twice is harmless.
func (w *watcher) Close() error {
	w.backend.mu.Lock()
	defer w.backend.mu.Unlock()
	w.backend.dropWatcherLocked(w)
	return nil
}
