package abuse

import (
	"context"
	"runtime"
	"sync"
	"time"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
)

// FailureLimiter counts failed attempts per key (a source from Sources.Key)
// in fixed windows. An attempt reserves its failure before anything is
// verified and gives it back on success (Refund): the count and the check
// are one step under one lock, so N concurrent attempts from a key can
// never all see "below the limit" and all go on to verify.
type FailureLimiter struct {
	clock  clockwork.Clock
	limit  int
	window time.Duration
	max    int

	mu      sync.Mutex
	entries map[string]*failureWindow
}

type failureWindow struct {
	start    time.Time
	failures int
}

// NewFailureLimiter allows limit failures per key per window, tracking at
// most max keys.
func NewFailureLimiter(clock clockwork.Clock, limit int, window time.Duration, max int) *FailureLimiter {
	return &FailureLimiter{clock: clock, limit: limit, window: window, max: max, entries: map[string]*failureWindow{}}
}

// Reserve counts one failure of key if it is below the limit and returns
// 0; otherwise it counts nothing and returns how long until the window
// ends. A reservation is given back with Refund when the attempt succeeds.
func (l *FailureLimiter) Reserve(key string) time.Duration {
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.currentLocked(key, now)
	if w.failures >= l.limit {
		return w.start.Add(l.window).Sub(now)
	}
	w.failures++
	return 0
}

// Add counts one failure of key whatever its count (an attempt that was
// let through without a reservation and failed).
func (l *FailureLimiter) Add(key string) {
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.currentLocked(key, now).failures++
}

// Refund gives back one reservation of key (the attempt succeeded). A
// reservation made in a window that has ended since is gone already.
func (l *FailureLimiter) Refund(key string) {
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if w, ok := l.entries[key]; ok && now.Before(w.start.Add(l.window)) && w.failures > 0 {
		w.failures--
	}
}

// Failures returns key's count in its current window.
func (l *FailureLimiter) Failures(key string) int {
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if w, ok := l.entries[key]; ok && now.Before(w.start.Add(l.window)) {
		return w.failures
	}
	return 0
}

// currentLocked returns key's live window, starting one if needed, and
// keeps the map bounded.
func (l *FailureLimiter) currentLocked(key string, now time.Time) *failureWindow {
	w, ok := l.entries[key]
	if ok && now.Before(w.start.Add(l.window)) {
		return w
	}
	if !ok && len(l.entries) >= l.max {
		for k, e := range l.entries {
			if !now.Before(e.start.Add(l.window)) {
				delete(l.entries, k)
			}
		}
		if len(l.entries) >= l.max {
			// Still full of live windows (a wide scan): forget one entry
			// rather than grow without bound.
			for k := range l.entries {
				delete(l.entries, k)
				break
			}
		}
	}
	w = &failureWindow{start: now}
	l.entries[key] = w
	return w
}

// HashSlots bounds how many password or token hashes (bcrypt) run at once:
// half the CPUs, at least one, so that a flood of guesses can never take
// every core from the rest of the server.
func HashSlots() int { return max(1, runtime.GOMAXPROCS(0)/2) }

// Semaphore bounds concurrent expensive work.
type Semaphore struct {
	slots chan struct{}
}

// NewSemaphore returns a semaphore of n slots (at least one).
func NewSemaphore(n int) *Semaphore {
	return &Semaphore{slots: make(chan struct{}, max(1, n))}
}

// Acquire waits for a slot, or for ctx.
func (s *Semaphore) Acquire(ctx context.Context) error {
	select {
	case s.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return trace.Wrap(ctx.Err())
	}
}

// TryAcquire takes a slot only if one is free now.
func (s *Semaphore) TryAcquire() bool {
	select {
	case s.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

// Release frees a slot taken by Acquire or TryAcquire.
func (s *Semaphore) Release() { <-s.slots }

// Size is the number of slots.
func (s *Semaphore) Size() int { return cap(s.slots) }
