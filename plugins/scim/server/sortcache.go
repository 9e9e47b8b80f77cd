package server

import (
	"sync"
	"time"
)

// The sorted-list snapshots.
//
// Sorting reads every record (about a second at 100,000 users on SQLite, see
// BenchmarkSortedList), and a client reads a sorted list page by page: without a snapshot,
// reading 100,000 users 100 at a time would cost a thousand full scans. A snapshot keeps the
// sorted (value, id) list of one query for SortSnapshotTTL, so that the next pages cost only the
// reads of their own records.
//
// A snapshot is dropped by any write (POST, PUT, PATCH, DELETE other than a search) this server
// answers for the plugin, whatever its outcome, so that a client that writes and then lists sees
// its write. Writes that do not come through this server (an administrator deleting a user,
// another auth server behind the same backend) show within SortSnapshotTTL: until then a deleted
// record is left out of its page and a new one is missing, which RFC 7644 §3.4.2.4 allows
// ("paging ... not guaranteed to be consistent between requests").
//
// Memory: the snapshots held together never have more than Config.MaxSortResults entries (the
// bound of one sorted query), the oldest are dropped first.

// DefaultSortSnapshotTTL is how long a sorted list serves the next pages.
const DefaultSortSnapshotTTL = 30 * time.Second

// snapshotKey names one sorted query.
type snapshotKey struct {
	plugin string
	// scope is the endpoint: "Users", "Groups", or "" for the root search.
	scope  string
	filter string
	attr   string
	desc   bool
}

type snapshot struct {
	gen     uint64
	at      time.Time
	entries []sortEntry
}

// snapshots is the snapshot cache and the per-plugin write generation that invalidates it.
type snapshots struct {
	mu    sync.Mutex
	gen   map[string]uint64
	byKey map[snapshotKey]*snapshot
	// size is the total number of entries held.
	size int
}

func newSnapshots() *snapshots {
	return &snapshots{gen: map[string]uint64{}, byKey: map[snapshotKey]*snapshot{}}
}

// generation is the plugin's write generation, read before a scan starts: a write that lands
// during the scan makes the snapshot stale at once.
func (c *snapshots) generation(plugin string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen[plugin]
}

// wrote drops the plugin's snapshots, including any being built.
func (c *snapshots) wrote(plugin string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen[plugin]++
	for k, s := range c.byKey {
		if k.plugin == plugin {
			c.size -= len(s.entries)
			delete(c.byKey, k)
		}
	}
}

// get returns the entries of a snapshot younger than ttl, and still of the current generation.
func (c *snapshots) get(k snapshotKey, now time.Time, ttl time.Duration) ([]sortEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.byKey[k]
	if !ok {
		return nil, false
	}
	if s.gen != c.gen[k.plugin] || now.Sub(s.at) >= ttl {
		c.size -= len(s.entries)
		delete(c.byKey, k)
		return nil, false
	}
	return s.entries, true
}

// put keeps entries (sorted, never modified after) as of generation gen, dropping the oldest
// snapshots to stay within limit entries. A snapshot whose generation moved is not kept.
func (c *snapshots) put(k snapshotKey, gen uint64, now time.Time, entries []sortEntry, limit int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen[k.plugin] || len(entries) > limit {
		return
	}
	if old, ok := c.byKey[k]; ok {
		c.size -= len(old.entries)
		delete(c.byKey, k)
	}
	for c.size+len(entries) > limit {
		var oldest snapshotKey
		var oldestAt time.Time
		first := true
		for ok, s := range c.byKey {
			if first || s.at.Before(oldestAt) {
				oldest, oldestAt, first = ok, s.at, false
			}
		}
		c.size -= len(c.byKey[oldest].entries)
		delete(c.byKey, oldest)
	}
	c.byKey[k] = &snapshot{gen: gen, at: now, entries: entries}
	c.size += len(entries)
}
