package etcdbk

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gravitational/trace"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"

	"github.com/gatehouse/gatehouse/lib/backend"
)

// The read cache.
//
// Every read on etcd is a quorum round trip, so a server on etcd answered
// SCIM lookups at a tenth of the rate of one on SQLite. Each server
// therefore keeps a replica of the backend prefix in memory, fed by one etcd
// watch, and serves Get from it when that is safe (see docs/design/etcd-cache.md).
//
// Sync: the cache loads the prefix with a paged range read pinned at one
// revision R (a consistent snapshot), then follows a watch from R. On any
// break of the watch (an error, a compaction of the revision it must resume
// from, a cancel, the channel closing) it stops serving at once, forgets
// everything and syncs again; reads go to etcd meanwhile.
//
// Freshness: the etcd client resumes a broken watch stream silently and for
// ever, so a cut-off server would see a quiet, healthy-looking stream. The
// cache therefore serves only while it is confirmed: every probe interval
// it makes a quorum read of the current revision H (sent at t) and asks etcd
// for a progress notification on its stream; once the watch has delivered
// everything up to H, the cache holds every write acknowledged before t.
// It serves only while the last such t is within Config.ReadCacheStaleness.
//
// Monotonic reads and reading one's own writes: the backend remembers the
// highest etcd revision any of its calls has seen (a write's, a failed
// transaction's, the revision of each item a read returned, the revision of
// a read that found nothing; Backend.fence). A read is served from the
// cache only once the watch has applied at least that revision, waiting up
// to Config.ReadCacheWait for it, and otherwise goes to etcd. So a read
// never returns an older version of an item than this process wrote or
// already read (nor of anything written in the same transaction), and a
// read after a failed conditional write sees the write that made it fail.
//
// Only found items are answered from the cache. A key the cache does not
// hold is read from etcd: so "not found" is always linearizable, and a user
// that another server created a moment ago (Okta may send the create to one
// server and the next request to another) is never reported missing. What
// may lag, by the watch delay, is another server's newer version of an
// item, or its deletion.
//
// Items with an expiry are not cached (as in the sqlite backend's cache):
// their visibility depends on the clock and on renewals by any server, and
// they (audit events, web sessions, temporary SAML users) are not the ones
// read in bulk; the audit log alone would take much of the memory.
//
// Fills: when the replica does not fit in its memory bound, entries are
// dropped at random; a read that misses goes to etcd, and what it read joins
// the cache if it is at least as new as the cache (the revision whose state
// it shows >= the applied revision). Events are applied to an entry only if they are
// newer than it, so a fill is never undone by an older event nor kept over a
// newer one.

// Read cache defaults.
const (
	// DefaultReadCacheSize bounds the read cache's memory, as the sqlite
	// backend's default does.
	DefaultReadCacheSize = 256 << 20
	// DefaultReadCacheWait bounds how long a read waits for the watch to
	// reach a revision this process has seen before it goes to etcd.
	// The watch is usually a millisecond or less behind; waiting longer
	// than an etcd read would take only adds latency.
	DefaultReadCacheWait = 20 * time.Millisecond
	// DefaultReadCacheStaleness is the longest the cache serves without a
	// confirmation that it missed no write.
	DefaultReadCacheStaleness = time.Second
	// minReadCacheSize is the smallest bound: room for a few thousand items.
	minReadCacheSize = 1 << 20
	// cacheEntryOverhead approximates what one entry costs beyond its key
	// and value: the map slot, the string and slice headers.
	cacheEntryOverhead = 96
	// cacheLoadPage is the page size of the sync's range read.
	cacheLoadPage = 1000
)

// cacheEntry is one cached item.
type cacheEntry struct {
	value []byte
	rev   int64
}

func (e cacheEntry) size(key string) int64 {
	return int64(len(key)+len(e.value)) + cacheEntryOverhead
}

// readCache is the replica. A nil *readCache is a disabled cache.
type readCache struct {
	b     *Backend
	limit int64
	// base makes the real-time stamps below monotonic integers.
	base time.Time

	mu      sync.RWMutex
	entries map[string]cacheEntry
	bytes   int64
	// applied is the revision up to which the watch (or the load) has been
	// applied; everything the entries say is as of applied.
	applied int64
	// advanced is closed (and replaced) whenever applied moves.
	advanced chan struct{}
	// ready is true from the end of a sync's load until the watch breaks.
	ready bool

	// confirmed is the real time (since base) up to which the cache is
	// known to hold every acknowledged write; 0 when not serving.
	confirmed atomic.Int64

	// Fenced reads (fence.go). fenceWant is what FenceReads asked for;
	// resync makes the sync start over to track it.
	fenceMu   sync.Mutex
	fenceWant []string
	resync    chan struct{}
	// Under mu: fenced are the prefixes this sync tracks; fencedIn holds
	// the fenced keys in entries, uncached the fenced keys etcd holds that
	// entries do not; fenceIncomplete is set when the load stopped at the
	// memory bound; fenceFrom is the registration's revision (0: not
	// registered).
	fenced          []string
	fencedIn        map[string]struct{}
	uncached        map[string]struct{}
	fenceIncomplete bool
	fenceFrom       int64
	// fenceUntil is the real time (since base) until which the reader's
	// lease is certainly alive; 0 when not registered.
	fenceUntil atomic.Int64
	// ackWanted asks the fence session to acknowledge what was applied.
	ackWanted chan struct{}

	hits, misses, waits, fills, evictions, syncs atomic.Int64
}

func newReadCache(b *Backend, limit int64) *readCache {
	if limit <= 0 {
		return nil
	}
	return &readCache{
		b:         b,
		limit:     max(limit, minReadCacheSize),
		base:      time.Now(),
		entries:   map[string]cacheEntry{},
		advanced:  make(chan struct{}),
		resync:    make(chan struct{}, 1),
		fencedIn:  map[string]struct{}{},
		uncached:  map[string]struct{}{},
		ackWanted: make(chan struct{}, 1),
	}
}

// now is the real time since base.
func (c *readCache) now() int64 { return int64(time.Since(c.base)) }

// fresh reports whether the cache may serve: it is synced and confirmed
// within the staleness bound.
func (c *readCache) fresh() bool {
	conf := c.confirmed.Load()
	return conf != 0 && c.now()-conf <= int64(c.b.cfg.ReadCacheStaleness)
}

// get answers a read of key from the cache once it has applied at least
// fence; it waits for that up to ReadCacheWait. ok false sends the read to
// etcd.
//
// A fenced key is answered only while the fence serves (fence.go), and
// then a key the cache does not hold is answered too: a nil item with ok
// true means that it does not exist.
func (c *readCache) get(ctx context.Context, key backend.Key, fence int64) (item *backend.Item, ok bool) {
	if c == nil {
		return nil, false
	}
	ok = c.read(ctx, fence, func() bool {
		var found bool
		item, found = c.lookupLocked(key)
		return found || item == nil && c.isFencedLocked(string(key)) && c.answersMissingLocked(string(key))
	})
	return item, ok
}

// answersMissingLocked reports whether the cache may say that key, which
// it does not hold, does not exist: only for a fenced key while the fence
// serves.
func (c *readCache) answersMissingLocked(key string) bool {
	if !c.ready || !c.fresh() || !c.fenceServingLocked() {
		return false
	}
	_, held := c.uncached[key]
	return !held
}

// getIndirect is GetIndirect from the cache: the index entry and its target
// are read under one lock, so they come from the same applied revision.
func (c *readCache) getIndirect(ctx context.Context, indexKey, targetPrefix backend.Key, fence int64) *backend.Item {
	if c == nil {
		return nil
	}
	var item *backend.Item
	c.read(ctx, fence, func() bool {
		idx, found := c.lookupLocked(indexKey)
		if !found {
			return false
		}
		item, found = c.lookupLocked(append(append(make(backend.Key, 0, len(targetPrefix)+len(idx.Value)), targetPrefix...), idx.Value...))
		return found
	})
	return item
}

// read runs lookup under the read lock once the cache has applied at least
// fence, waiting for that up to ReadCacheWait; lookup reports whether it
// answered. False if the cache could not answer.
func (c *readCache) read(ctx context.Context, fence int64, lookup func() bool) bool {
	if !c.fresh() {
		return false
	}
	var timer *time.Timer
	for {
		c.mu.RLock()
		if c.applied >= fence {
			answered := lookup()
			c.mu.RUnlock()
			if timer != nil {
				timer.Stop()
			}
			if answered {
				c.hits.Add(1)
			} else {
				c.misses.Add(1)
			}
			return answered
		}
		advanced, ready := c.advanced, c.ready
		c.mu.RUnlock()
		if !ready {
			return false
		}
		if timer == nil {
			c.waits.Add(1)
			timer = time.NewTimer(c.b.cfg.ReadCacheWait)
		}
		select {
		case <-advanced:
		case <-timer.C:
			return false
		case <-ctx.Done():
			timer.Stop()
			return false
		}
	}
}

// lookupLocked returns the item at key and true, or false, under at least
// the read lock. A fenced key is returned only while the fence serves.
func (c *readCache) lookupLocked(key backend.Key) (*backend.Item, bool) {
	if !c.ready || !c.fresh() {
		return nil, false
	}
	e, ok := c.entries[string(key)]
	if !ok || c.isFencedLocked(string(key)) && !c.fenceServingLocked() {
		return nil, false
	}
	return e.item(key), true
}

// item is the entry as an item the caller owns.
func (e cacheEntry) item(key backend.Key) *backend.Item {
	return &backend.Item{
		Key:      backend.Key(string(key)),
		Value:    bytes.Clone(e.value),
		Revision: formatRevision(e.rev),
	}
}

// getRange answers GetRange from memory when [start, end) lies inside one
// fenced prefix and the fence serves: the cache then holds every key of it.
func (c *readCache) getRange(ctx context.Context, start, end backend.Key, limit int, fence int64) (*backend.GetResult, bool) {
	if c == nil || end == nil {
		return nil, false
	}
	var res *backend.GetResult
	ok := c.read(ctx, fence, func() bool {
		inside := slices.ContainsFunc(c.fenced, func(p string) bool {
			pend := backend.RangeEnd(backend.Key(p))
			return bytes.HasPrefix(start, []byte(p)) && (pend == nil || bytes.Compare(end, pend) <= 0)
		})
		if !inside || !c.ready || !c.fresh() || !c.fenceServingLocked() {
			return false
		}
		in := func(k string) bool { return k >= string(start) && k < string(end) }
		for k := range c.uncached {
			if in(k) {
				return false
			}
		}
		var keys []string
		for k := range c.fencedIn {
			if in(k) {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		res = &backend.GetResult{Items: make([]backend.Item, 0, min(len(keys), limit))}
		for _, k := range keys[:min(len(keys), limit)] {
			res.Items = append(res.Items, *c.entries[k].item(backend.Key(k)))
		}
		return true
	})
	return res, ok
}

// setLocked stores an entry, making room by dropping others. It reports
// false if the entry is too big to cache.
func (c *readCache) setLocked(key string, e cacheEntry) bool {
	old, had := c.entries[key]
	if had {
		c.bytes -= old.size(key)
		delete(c.entries, key)
		delete(c.fencedIn, key)
	}
	n := e.size(key)
	if n > c.limit/16 {
		// One big item must not flush a large part of the cache.
		return false
	}
	if c.bytes+n > c.limit {
		// Map iteration starts at a random place: random eviction, no
		// bookkeeping per entry.
		for k, v := range c.entries {
			if c.isFencedLocked(k) {
				continue // fenced prefixes are held whole (fence.go)
			}
			c.bytes -= v.size(k)
			delete(c.entries, k)
			c.evictions.Add(1)
			if c.bytes+n <= c.limit*15/16 {
				break
			}
		}
	}
	c.entries[key] = e
	c.bytes += n
	if c.isFencedLocked(key) {
		c.fencedIn[key] = struct{}{}
	}
	return true
}

func (c *readCache) deleteLocked(key string) {
	if old, ok := c.entries[key]; ok {
		c.bytes -= old.size(key)
		delete(c.entries, key)
		delete(c.fencedIn, key)
	}
}

// advanceLocked moves applied to rev and wakes waiting readers.
func (c *readCache) advanceLocked(rev int64) {
	if rev <= c.applied {
		return
	}
	c.applied = rev
	close(c.advanced)
	c.advanced = make(chan struct{})
}

// stop makes the cache stop serving at once and forgets its entries.
func (c *readCache) stop() {
	c.confirmed.Store(0)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ready = false
	clear(c.entries)
	c.bytes = 0
	c.applied = 0
	c.fenceUntil.Store(0)
	clear(c.fencedIn)
	clear(c.uncached)
	c.fenced, c.fenceIncomplete, c.fenceFrom = nil, false, 0
	// Wake waiting readers: they see ready false and go to etcd.
	close(c.advanced)
	c.advanced = make(chan struct{})
}

// offer adds what a read from etcd found as of revision rev, if the cache
// is not ahead of that read and the item has no expiry.
func (c *readCache) offer(kv *mvccpb.KeyValue, item backend.Item, rev int64) {
	if c == nil || !item.Expires.IsZero() {
		return
	}
	key := string(item.Key)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.ready || rev < c.applied {
		return
	}
	if cur, ok := c.entries[key]; ok && cur.rev >= kv.ModRevision {
		return
	}
	// A copy: the caller owns item.Value.
	e := cacheEntry{value: bytes.Clone(item.Value), rev: kv.ModRevision}
	if c.setLocked(key, e) {
		c.fills.Add(1)
	}
}

// decodeEntry turns a stored key-value into a cache entry; ok is false
// for an item with an expiry (not cached) or a value gatehouse did not
// write (Get reads it from etcd and reports it).
func (c *readCache) decodeEntry(kv *mvccpb.KeyValue) (key string, e cacheEntry, ok bool) {
	value, expires, err := decodeEnvelope(kv.Value)
	if err != nil || !expires.IsZero() {
		return "", cacheEntry{}, false
	}
	return string(kv.Key[len(c.b.prefix):]), cacheEntry{value: value, rev: kv.ModRevision}, true
}

// errResync ends a sync so that the next one tracks new fenced prefixes.
var errResync = errors.New("the fenced prefixes changed")

// run keeps the cache synced until the backend closes.
func (c *readCache) run() {
	defer c.b.loops.Done()
	retry := newRetryDelay()
	for {
		err := c.sync(retry)
		c.stop()
		if c.b.ctx.Err() != nil {
			return
		}
		if errors.Is(err, errResync) {
			continue
		}
		c.b.log.Warn("Read cache stopped serving; reads go to etcd until it has re-synced.", "error", err)
		if !retry.wait(c.b.ctx) {
			return
		}
	}
}

// streamCtx gives the cache's watch a gRPC stream of its own (the etcd
// client shares one stream between watches with the same metadata), so
// that a progress request on it is answered for the cache's watch alone.
func (c *readCache) streamCtx(ctx context.Context) context.Context {
	return clientv3.WithRequireLeader(metadata.AppendToOutgoingContext(ctx, "gatehouse-watch", "read-cache"))
}

// load reads the prefix at one revision into the cache and returns the
// revision and the real time (since base) when the first read was sent.
func (c *readCache) load() (int64, int64, error) {
	b := c.b
	sent := c.now()
	from, to := b.prefix, b.etcdEnd(nil)
	var rev int64
	c.mu.Lock()
	c.fenced = c.fenceWanted()
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(to), clientv3.WithLimit(cacheLoadPage)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		c.mu.Unlock()
		callCtx, cancel := b.callCtx(b.ctx)
		resp, err := b.client.Get(callCtx, from, opts...)
		cancel()
		c.mu.Lock()
		if err != nil {
			c.mu.Unlock()
			return 0, 0, trace.Wrap(convertErr(err), "loading the read cache")
		}
		rev = resp.Header.Revision
		full := false
		for _, kv := range resp.Kvs {
			key, e, ok := c.decodeEntry(kv)
			if !ok {
				c.noteFencedLocked(string(kv.Key[len(b.prefix):]), false)
				continue
			}
			if c.bytes+e.size(key) > c.limit {
				// The rest is read on demand; keep the loaded part.
				full = true
				c.fenceIncomplete = len(c.fenced) > 0
				break
			}
			c.noteFencedLocked(key, c.setLocked(key, e))
		}
		if full || !resp.More || len(resp.Kvs) == 0 {
			break
		}
		from = string(backend.NextKey(backend.Key(resp.Kvs[len(resp.Kvs)-1].Key)))
	}
	c.applied = rev
	c.mu.Unlock()
	return rev, sent, nil
}

// sync loads the prefix, then applies the watch from the load's revision
// until the watch breaks or the backend closes.
func (c *readCache) sync(retry *retryDelay) error {
	b := c.b
	rev, loadSent, err := c.load()
	if err != nil {
		return trace.Wrap(err)
	}
	ctx, cancel := context.WithCancel(c.streamCtx(b.ctx))
	defer cancel()
	// The watch starts at the load's revision, not the next: etcd answers
	// a progress request only for watches that started at or below its
	// current revision. Events of the load's revision are already loaded.
	wch := b.client.Watch(ctx, b.prefix,
		clientv3.WithRange(b.etcdEnd(nil)),
		clientv3.WithRev(rev),
		clientv3.WithProgressNotify(),
	)
	c.syncs.Add(1)
	c.mu.Lock()
	c.ready = true
	c.mu.Unlock()
	// The load's snapshot holds every write acknowledged before its first
	// read was sent.
	c.confirmed.Store(max(loadSent, 1))
	b.log.Debug("Read cache synced.", "revision", rev)
	retry.reset()
	var fenceWG sync.WaitGroup
	defer fenceWG.Wait()
	defer cancel()
	if len(c.fenced) > 0 {
		fenceWG.Go(func() { c.runFence(ctx) })
	}

	interval := b.cfg.ReadCacheStaleness / 4
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	probes := make(chan cacheProbe, 1)
	probing := false
	var probesWG sync.WaitGroup
	defer probesWG.Wait()
	defer cancel()
	// pending is the latest probe not yet confirmed by the watch.
	var pending cacheProbe
	confirm := func() {
		c.mu.RLock()
		applied := c.applied
		c.mu.RUnlock()
		if pending.rev != 0 && applied >= pending.rev {
			if pending.sent > c.confirmed.Load() {
				c.confirmed.Store(pending.sent)
			}
			pending = cacheProbe{}
		}
	}
	for {
		select {
		case <-b.ctx.Done():
			return nil
		case <-c.resync:
			return errResync
		case <-ticker.C:
			if !probing {
				probing = true
				probesWG.Add(1)
				go func() {
					defer probesWG.Done()
					// A slow answer still confirms, for what is left
					// of the bound after it.
					probes <- c.probe(ctx, b.cfg.ReadCacheStaleness)
				}()
			}
		case p := <-probes:
			probing = false
			if p.err == nil {
				pending = p
				confirm()
			}
		case wr, ok := <-wch:
			switch {
			case !ok:
				return trace.ConnectionProblem(ctx.Err(), "the read cache's etcd watch closed")
			case wr.CompactRevision != 0:
				return trace.ConnectionProblem(nil, "the read cache's etcd watch lost revision %d to a compaction", wr.CompactRevision)
			case wr.Canceled || wr.Err() != nil:
				return trace.Wrap(convertErr(wr.Err()), "the read cache's etcd watch ended")
			}
			c.apply(wr, rev)
			confirm()
		}
	}
}

// apply applies one watch response; events at or below loaded are in the
// load already.
func (c *readCache) apply(wr clientv3.WatchResponse, loaded int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if wr.IsProgressNotify() {
		// Every event up to the header's revision has been delivered.
		c.advanceLocked(wr.Header.Revision)
		return
	}
	last := c.applied
	fencedEvent := false
	for _, ev := range wr.Events {
		if ev.Kv == nil || ev.Kv.ModRevision <= loaded || len(ev.Kv.Key) < len(c.b.prefix) {
			continue
		}
		last = max(last, ev.Kv.ModRevision)
		key := string(ev.Kv.Key[len(c.b.prefix):])
		fencedEvent = fencedEvent || c.isFencedLocked(key)
		cur, had := c.entries[key]
		if had && cur.rev >= ev.Kv.ModRevision {
			continue // a fill already holds this or a newer version
		}
		switch ev.Type {
		case clientv3.EventTypePut:
			if k, e, ok := c.decodeEntry(ev.Kv); ok {
				c.noteFencedLocked(k, c.setLocked(k, e))
			} else {
				c.deleteLocked(key) // an older version must not stay
				c.noteFencedLocked(key, false)
			}
		case clientv3.EventTypeDelete:
			c.deleteLocked(key)
			delete(c.uncached, key)
		}
	}
	c.advanceLocked(last)
	if fencedEvent {
		// Writers of fenced keys wait for this server's acknowledgement.
		select {
		case c.ackWanted <- struct{}{}:
		default:
		}
	}
}

// cacheProbe is one freshness probe: the revision etcd was at when it
// answered a quorum read sent at sent.
type cacheProbe struct {
	sent int64
	rev  int64
	err  error
}

// probe makes a quorum read of the current revision, then asks for a
// progress notification on the cache's stream, which (generated after the
// read) moves applied to at least that revision even when nothing under
// the prefix changed.
func (c *readCache) probe(ctx context.Context, timeout time.Duration) cacheProbe {
	sent := c.now()
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := c.b.client.Get(pctx, c.b.prefix, clientv3.WithCountOnly())
	if err != nil {
		return cacheProbe{err: err}
	}
	_ = c.b.client.RequestProgress(pctx)
	return cacheProbe{sent: sent, rev: resp.Header.Revision}
}

// CacheStats describes the read cache, for tests and benchmarks.
type CacheStats struct {
	// Entries and Bytes are what the cache holds; Limit is its bound.
	Entries, Bytes, Limit int64
	// Serving says reads are answered from the cache now; Fenced that
	// reads of the fenced prefixes are (fence.go).
	Serving, Fenced bool
	// Applied is the etcd revision the cache is at.
	Applied int64
	// Hits and Misses count reads the cache answered or passed to etcd
	// while serving; Waits counts reads that waited for the watch.
	Hits, Misses, Waits int64
	// Fills, Evictions and Syncs count entries added by reads, entries
	// dropped for room, and (re)loads.
	Fills, Evictions, Syncs int64
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
		Entries: int64(len(c.entries)), Bytes: c.bytes, Limit: c.limit,
		Serving: c.ready && c.fresh(), Fenced: c.ready && c.fresh() && c.fenceServingLocked(), Applied: c.applied,
		Hits: c.hits.Load(), Misses: c.misses.Load(), Waits: c.waits.Load(),
		Fills: c.fills.Load(), Evictions: c.evictions.Load(), Syncs: c.syncs.Load(),
	}
}
