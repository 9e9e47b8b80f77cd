package abuse

import (
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
)

// Aggregator turns repeated refusals from one source into one audit event
// per source and window: the first refusal of a window is recorded on its
// own, the others are only counted, and the count is handed back for one
// aggregate event once the window has ended. Without it, every
// unauthenticated request that fails would be one backend write.
type Aggregator struct {
	clock  clockwork.Clock
	window time.Duration
	max    int

	mu        sync.Mutex
	entries   map[string]*aggWindow
	lastSweep time.Time
}

type aggWindow struct {
	start      time.Time
	suppressed int
}

// Suppressed is the count of refusals of Key not recorded on their own in
// the window that started at Start.
type Suppressed struct {
	Key   string
	Start time.Time
	Count int
}

// NewAggregator aggregates per window, tracking at most max sources.
func NewAggregator(clock clockwork.Clock, window time.Duration, max int) *Aggregator {
	return &Aggregator{clock: clock, window: window, max: max, entries: map[string]*aggWindow{}, lastSweep: clock.Now()}
}

// Note records one refusal from key. record says whether to record this
// refusal on its own (the first of key's window). flush are the counts of
// windows that have ended with refusals not yet recorded: the caller
// records one aggregate event for each.
func (a *Aggregator) Note(key string) (record bool, flush []Suppressed) {
	now := a.clock.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if now.Sub(a.lastSweep) >= a.window {
		flush = a.sweepLocked(now, flush)
		a.lastSweep = now
	}
	w, ok := a.entries[key]
	if ok && now.Before(w.start.Add(a.window)) {
		w.suppressed++
		return false, flush
	}
	if ok && w.suppressed > 0 {
		flush = append(flush, Suppressed{Key: key, Start: w.start, Count: w.suppressed})
	}
	if !ok && len(a.entries) >= a.max {
		flush = a.sweepLocked(now, flush)
		if len(a.entries) >= a.max {
			// Full of live windows (refusals from very many sources):
			// count this one with the other sources that did not fit,
			// rather than record each or grow without bound.
			key = OverflowKey
			if w, ok := a.entries[key]; ok && now.Before(w.start.Add(a.window)) {
				w.suppressed++
				return false, flush
			}
		}
	}
	a.entries[key] = &aggWindow{start: now}
	return true, flush
}

// OverflowKey is the key under which refusals are counted once the
// aggregator tracks as many sources as it may.
const OverflowKey = "(other sources)"

// Flush returns every count not yet recorded, ended windows or not, and
// forgets them (a server shutting down).
func (a *Aggregator) Flush() []Suppressed {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []Suppressed
	for k, w := range a.entries {
		if w.suppressed > 0 {
			out = append(out, Suppressed{Key: k, Start: w.start, Count: w.suppressed})
		}
		delete(a.entries, k)
	}
	return out
}

func (a *Aggregator) sweepLocked(now time.Time, flush []Suppressed) []Suppressed {
	for k, w := range a.entries {
		if now.Before(w.start.Add(a.window)) {
			continue
		}
		if w.suppressed > 0 {
			flush = append(flush, Suppressed{Key: k, Start: w.start, Count: w.suppressed})
		}
		delete(a.entries, k)
	}
	return flush
}
