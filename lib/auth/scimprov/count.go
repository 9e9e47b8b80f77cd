package scimprov

import (
	"context"
	"sync"
	"time"

	"github.com/gravitational/trace"
)

// countTTL is how long a counted total is reused. Counting reads every
// record (the backend has no key-only range): about 20 µs a record on
// SQLite, so 2 s for 100,000 users, too much for every unfiltered list page.
// Within the TTL, this process's own creates and deletes adjust the cached
// total; another auth server's changes show after at most countTTL.
const countTTL = 10 * time.Second

type countKey struct{ plugin, kind string }

type cachedCount struct {
	n  int
	at time.Time
}

// countCache remembers record totals per plugin and kind.
type countCache struct {
	mu sync.Mutex
	m  map[countKey]cachedCount
}

// get returns the cached total, or counts with fn.
func (c *countCache) get(ctx context.Context, k countKey, now time.Time, fn func(context.Context) (int, error)) (int, error) {
	c.mu.Lock()
	if v, ok := c.m[k]; ok && now.Sub(v.at) < countTTL {
		c.mu.Unlock()
		return v.n, nil
	}
	c.mu.Unlock()
	n, err := fn(ctx)
	if err != nil {
		return 0, trace.Wrap(err)
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[countKey]cachedCount)
	}
	c.m[k] = cachedCount{n: n, at: now}
	c.mu.Unlock()
	return n, nil
}

// add adjusts a cached total after a local create (+1) or delete (-1).
func (c *countCache) add(k countKey, delta int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.m[k]; ok {
		v.n += delta
		if v.n < 0 {
			v.n = 0
		}
		c.m[k] = v
	}
}
