package lite

import (
	"bytes"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/gatehouse/gatehouse/lib/backend"
)

// The read cache.
//
// SQLite drops a read connection's whole page cache whenever another
// connection has committed since its last read (in WAL mode a reader cannot
// tell which pages changed), so with writes every few seconds a read of a
// random key among many pays a pread and a page allocation for nearly every
// B-tree page it touches: at 100,000 SCIM users that was over half of a
// filter lookup's CPU. Items are small and reads outnumber writes, so the
// backend keeps the items it knows in memory instead.
//
// It can do so exactly, without a staleness window, because this process is
// the database's only writer (the lock file keeps other backends out) and
// every write goes through the writer goroutine, which knows each committed
// change from its events. The writer applies a batch's events to the cache
// after COMMIT and before watchers hear of it or any caller is
// acknowledged, so a read that starts after a write returned, or after its
// event arrived, finds the new state, as it would in SQLite.
//
// A read that misses goes to SQLite and then offers what it read to the
// cache. That read may have seen the state before a batch that is being
// applied, so the offer is accepted only if no batch was applied between the
// moment the read began and the offer (the generation counter did not move);
// otherwise it is dropped, and the next read tries again.
//
// Only items without an expiry are kept: an expiring item's visibility
// depends on the clock, and such items (audit events, web sessions, SAML
// temporary users) are not the ones read in bulk.
//
// The entries live in a ring buffer outside the Go heap (ring.go), so that a
// cache of hundreds of thousands of items costs the garbage collector
// nothing and the memory is bounded by construction; the oldest entries make
// room for new ones.

// readCache is the in-memory copy of recently written or read items. A nil
// *readCache is a disabled cache: every method works and keeps nothing.
type readCache struct {
	limit int64
	// mu orders whole batches against reads: apply, offer and reset hold
	// it exclusively, reads share it, so a read never sees half a batch
	// and the ring is never written while read.
	mu   sync.RWMutex
	ring *ring
	// gen counts the batches applied (and resets). It is written under mu
	// and read without it by readers taking a snapshot before they go to
	// SQLite.
	gen          atomic.Uint64
	hits, misses atomic.Int64
	// whenRead match the keys whose items enter the cache when they are
	// read, not when they are written (CacheWhenRead). Written under mu.
	whenRead []func(backend.Key) bool
}

// minReadCacheSize is the smallest cache: room for a few thousand items.
const minReadCacheSize = 1 << 20

func newReadCache(limit int64) (*readCache, error) {
	if limit <= 0 {
		return nil, nil
	}
	limit = max(limit, minReadCacheSize)
	r, err := newRing(int(limit))
	if err != nil {
		return nil, err
	}
	return &readCache{limit: limit, ring: r}, nil
}

// generation returns the token a reader takes before going to SQLite.
func (c *readCache) generation() uint64 {
	if c == nil {
		return 0
	}
	return c.gen.Load()
}

// get returns a copy of the cached item at key.
func (c *readCache) get(key backend.Key) (*backend.Item, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.RLock()
	item, ok := c.getLocked(key, false)
	c.mu.RUnlock()
	c.count(ok)
	return item, ok
}

// getLocked reads key into an item; the item's Key is key itself when owned,
// a copy otherwise.
func (c *readCache) getLocked(key []byte, owned bool) (*backend.Item, bool) {
	rev, value, ok := c.ring.get(key)
	if !ok {
		return nil, false
	}
	if !owned {
		key = bytes.Clone(key)
	}
	return &backend.Item{Key: key, Value: cloneValue(value), Revision: strconv.FormatInt(rev, 10)}, true
}

// getIndirect is GetIndirect from the cache: both the index entry and its
// target must be cached, and they are read under one lock, so they belong
// to the same applied state.
func (c *readCache) getIndirect(indexKey, targetPrefix backend.Key) (*backend.Item, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.RLock()
	var item *backend.Item
	_, ref, ok := c.ring.get(indexKey)
	if ok {
		key := make([]byte, 0, len(targetPrefix)+len(ref))
		key = append(append(key, targetPrefix...), ref...)
		item, ok = c.getLocked(key, true)
	}
	c.mu.RUnlock()
	c.count(ok)
	return item, ok
}

func (c *readCache) count(hit bool) {
	if hit {
		c.hits.Add(1)
	} else {
		c.misses.Add(1)
	}
}

// offer caches what a read found, unless a batch was applied since the
// reader took gen: then the read may predate that batch and is dropped.
// Items with an expiry are never cached.
func (c *readCache) offer(gen uint64, items ...cacheOffer) {
	if c == nil || !slices.ContainsFunc(items, func(o cacheOffer) bool { return !o.expires }) {
		return // nothing to keep: skip the exclusive lock
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen.Load() != gen {
		return
	}
	for _, o := range items {
		if !o.expires {
			c.ring.set(o.key, o.rev, o.value)
		}
	}
}

// cacheOffer is one item a reader read from SQLite.
type cacheOffer struct {
	key     []byte
	value   []byte
	rev     int64
	expires bool
}

// apply brings the cache up to date with a committed batch's events, in
// commit order. It runs on the writer goroutine before anybody learns of
// the batch.
func (c *readCache) apply(events []backend.Event) {
	if c == nil || len(events) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen.Add(1)
	for _, ev := range events {
		if ev.Type != backend.OpPut || !ev.Item.Expires.IsZero() || c.cachedWhenReadLocked(ev.Item.Key) {
			c.ring.del(ev.Item.Key)
			continue
		}
		rev, err := strconv.ParseInt(ev.Item.Revision, 10, 64)
		if err != nil {
			// Not expected: our own revisions are integers. Forget the key.
			c.ring.del(ev.Item.Key)
			continue
		}
		c.ring.set(ev.Item.Key, rev, ev.Item.Value)
	}
}

// cachedWhenReadLocked reports whether a CacheWhenRead rule matches key.
func (c *readCache) cachedWhenReadLocked(key backend.Key) bool {
	for _, match := range c.whenRead {
		if match(key) {
			return true
		}
	}
	return false
}

// addWhenRead adds a CacheWhenRead rule.
func (c *readCache) addWhenRead(match func(backend.Key) bool) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.whenRead = append(c.whenRead, match)
}

// reset forgets everything: after a failed COMMIT, what is stored is not
// known.
func (c *readCache) reset() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen.Add(1)
	c.ring.clear()
}

// close releases the cache's memory; it answers nothing afterwards.
func (c *readCache) close() error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen.Add(1)
	return c.ring.close()
}

// cloneValue copies v, giving nil for an empty value as SQLite reads do.
func cloneValue(v []byte) []byte {
	if len(v) == 0 {
		return nil
	}
	return bytes.Clone(v)
}

// CacheWhenRead makes the items whose keys match enter the read cache when
// they are read rather than when they are written: a write of such a key
// only drops it from the cache, and the next read caches what it finds, as
// for any miss. It is for kinds written in bulk and rarely read by key on a
// hot path (user resources: 100,000 SCIM creates wrote about 60 MB of them
// into the cache, which no SCIM lookup reads; index entries only ever read
// by range, which the cache never answers), so that the cache's memory goes
// to what is read. Reads stay exact either way. Rules add up; match must be
// cheap and safe for concurrent use, as it runs on the writer goroutine for
// every key written.
func (b *Backend) CacheWhenRead(match func(key backend.Key) bool) {
	b.cache.addWhenRead(match)
}

// CacheStats describes the read cache, for tests and benchmarks.
type CacheStats struct {
	Entries, Evictions int64
	Limit              int64
	Hits, Misses       int64
}

// CacheStats returns the read cache's counters (zero when it is off).
func (b *Backend) CacheStats() CacheStats {
	c := b.cache
	if c == nil {
		return CacheStats{}
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return CacheStats{
		Entries: int64(len(c.ring.index)), Evictions: c.ring.evictions, Limit: c.limit,
		Hits: c.hits.Load(), Misses: c.misses.Load(),
	}
}
