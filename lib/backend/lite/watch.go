package lite

import (
	"context"
	"sync"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/backend"
)

// watcher is one in-process subscriber. Its events channel is written only
// under Backend.watchMu, with non-blocking sends: a full buffer closes the
// watcher rather than blocking the writer or dropping an event.
type watcher struct {
	b        *Backend
	name     string
	prefixes []backend.Key
	events   chan backend.Event
	done     chan struct{}
	once     sync.Once
}

var _ backend.Watcher = (*watcher)(nil)

// Events delivers OpInit first, then Put and Delete events in commit order.
func (w *watcher) Events() <-chan backend.Event { return w.events }

// Done is closed when the watcher stops delivering events.
func (w *watcher) Done() <-chan struct{} { return w.done }

// Close stops the watcher.
func (w *watcher) Close() error {
	w.b.watchMu.Lock()
	defer w.b.watchMu.Unlock()
	w.b.removeLocked(w)
	return nil
}

// NewWatcher follows changes under w.Prefixes until ctx ends, the watcher
// or the backend is closed, or the watcher's buffer overflows.
func (b *Backend) NewWatcher(ctx context.Context, w backend.Watch) (backend.Watcher, error) {
	w, err := backend.PrepareWatch(ctx, w)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	wt := &watcher{
		b:        b,
		name:     w.Name,
		prefixes: w.Prefixes,
		events:   make(chan backend.Event, w.QueueSize),
		done:     make(chan struct{}),
	}

	b.watchMu.Lock()
	// Close marks the backend closed before it closes the registered
	// watchers under watchMu, so a watcher registered here is either seen
	// and closed by it, or refused now.
	if b.isClosed() {
		b.watchMu.Unlock()
		return nil, errClosed()
	}
	// Registration and fan-out both hold watchMu: every transaction whose
	// events are not yet delivered when the watcher registers will reach it
	// after OpInit, and every earlier one is committed, so a read made
	// after OpInit sees it.
	wt.events <- backend.Event{Type: backend.OpInit}
	b.watchers[wt] = struct{}{}
	b.watchMu.Unlock()

	go func() {
		select {
		case <-ctx.Done():
			wt.Close()
		case <-wt.done:
		}
	}()
	return wt, nil
}

// AckAfterWatchFanOut reports that a write's events are in every matching
// watcher's queue (or the watcher is closed) before the write returns:
// fanOut runs before any request of the batch is acknowledged. Consumers
// that keep a watcher-fed cache (lib/auth/scimprov) rely on it to serve
// the cache without ever missing an acknowledged write.
func (b *Backend) AckAfterWatchFanOut() bool { return true }

// fanOut hands a committed batch's events to every matching watcher. Only
// the writer goroutine calls it, one batch at a time, so events arrive in
// commit order.
func (b *Backend) fanOut(events []backend.Event) {
	if len(events) == 0 {
		return
	}
	b.watchMu.Lock()
	defer b.watchMu.Unlock()
	for w := range b.watchers {
		for _, ev := range events {
			if !backend.MatchesPrefixes(ev.Item.Key, w.prefixes) {
				continue
			}
			select {
			case w.events <- ev:
			default:
				b.log.Warn("Watcher fell behind; closing it so that its consumer reloads.", "watcher", w.name, "queue_size", cap(w.events))
				b.removeLocked(w)
			}
			if _, ok := b.watchers[w]; !ok {
				break
			}
		}
	}
}

// removeLocked unregisters and closes w; watchMu is held.
func (b *Backend) removeLocked(w *watcher) {
	delete(b.watchers, w)
	w.once.Do(func() { close(w.done) })
}

// closeAllWatchers closes every watcher.
func (b *Backend) closeAllWatchers() {
	b.watchMu.Lock()
	defer b.watchMu.Unlock()
	for w := range b.watchers {
		b.removeLocked(w)
	}
}
