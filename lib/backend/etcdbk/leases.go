package etcdbk

import (
	"context"
	"errors"
	"math"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/lib/tick"
	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Expiry through shared leases.
//
// An item that expires at t belongs to the window that ends at t rounded up
// to a multiple of Config.LeaseWindow (an item written already expired
// belongs to the window of now). Each window this server writes into gets one
// lease, granted the first time it is needed with a TTL that runs to the
// window's end plus a second, and cached until the window ends. Every item of
// the window is attached to that lease, so the number of leases is the number
// of distinct windows in use, never the number of keys.
//
// Two things delete an expired item, and both are plain etcd deletions that
// watchers see as Delete events:
//
//   - the purge loop, on Config.Clock: once the clock reaches a window's end,
//     every item attached to the window's lease has expired (each expires at
//     or before the end, and an item that is rewritten or kept alive moves to
//     another lease or to none), so revoking the lease deletes exactly
//     expired items, all in one etcd operation;
//   - etcd itself, when the lease's TTL runs out in real time: the safety net
//     for windows whose server stopped before their end.
//
// Reads never wait for either: the envelope's expiry hides an expired item
// at once. With the real clock the two paths agree to within the purge
// interval; with a fake clock (tests) the purge loop does the work, because
// the fake clock runs ahead of the leases' real time.
//
// A lease can vanish under a write (revoked by the purge loop in a race, or
// lost after an etcd disaster); etcd then refuses the write with "lease not
// found" and the writer drops the lease from the cache and retries once with
// a fresh one.

// maxLeaseTTL is etcd's largest lease TTL, in seconds. An item that expires
// further ahead than that is stored without a lease: it is hidden when it
// expires but only deleted by a later write.
const maxLeaseTTL = 9_000_000_000

// leaseMargin is added to every lease's TTL so that rounding never lets a
// lease run out before its window ends.
const leaseMargin = time.Second

// window is one expiry window's lease.
type window struct {
	end   time.Time
	ready chan struct{} // closed once id or err is set
	id    clientv3.LeaseID
	err   error
}

// leaseCache holds this server's window leases.
type leaseCache struct {
	b       *Backend
	mu      sync.Mutex
	windows map[int64]*window // by end, in Unix nanoseconds
}

func newLeaseCache(b *Backend) *leaseCache {
	return &leaseCache{b: b, windows: map[int64]*window{}}
}

// windowEnd returns the end of the window an item expiring at expires falls
// in, at now.
func (c *leaseCache) windowEnd(expires, now time.Time) time.Time {
	t := expires
	if t.Before(now) {
		t = now
	}
	w := c.b.cfg.LeaseWindow
	end := t.Truncate(w)
	if end.Before(t) {
		end = end.Add(w)
	}
	return end
}

// leaseFor returns the lease an item expiring at expires must be attached
// to: clientv3.NoLease for an item that never expires (or expires too far
// ahead for a lease).
func (c *leaseCache) leaseFor(ctx context.Context, expires time.Time) (clientv3.LeaseID, error) {
	if expires.IsZero() {
		return clientv3.NoLease, nil
	}
	now := c.b.cfg.Clock.Now()
	end := c.windowEnd(expires, now)
	ttl := int64(math.Ceil((end.Sub(now) + leaseMargin).Seconds()))
	if ttl > maxLeaseTTL || ttl < 0 { // ttl < 0: the duration overflowed
		return clientv3.NoLease, nil
	}

	c.mu.Lock()
	w, ok := c.windows[end.UnixNano()]
	if ok {
		c.mu.Unlock()
		select {
		case <-w.ready:
		case <-ctx.Done():
			return 0, trace.Wrap(convertErr(ctx.Err()))
		}
		if w.err == nil {
			return w.id, nil
		}
		// The grant failed: try again below with a fresh entry.
		c.mu.Lock()
		if cur := c.windows[end.UnixNano()]; cur == w {
			delete(c.windows, end.UnixNano())
		}
	}
	w = &window{end: end, ready: make(chan struct{})}
	c.windows[end.UnixNano()] = w
	c.mu.Unlock()

	// One grant per window: concurrent writers into the same window wait on
	// ready instead of granting leases of their own.
	callCtx, cancel := c.b.callCtx(ctx)
	resp, err := c.b.client.Grant(callCtx, ttl)
	cancel()
	if err != nil {
		w.err = convertErr(err)
		close(w.ready)
		c.mu.Lock()
		if cur := c.windows[end.UnixNano()]; cur == w {
			delete(c.windows, end.UnixNano())
		}
		c.mu.Unlock()
		return 0, trace.Wrap(w.err, "granting an etcd lease")
	}
	w.id = resp.ID
	close(w.ready)
	return w.id, nil
}

// forget drops the window whose lease is id, after etcd reported it gone.
func (c *leaseCache) forget(id clientv3.LeaseID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, w := range c.windows {
		select {
		case <-w.ready:
			if w.err == nil && w.id == id {
				delete(c.windows, k)
			}
		default:
		}
	}
}

// takeEnded removes and returns the granted windows whose end is at or
// before now.
func (c *leaseCache) takeEnded(now time.Time) []*window {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*window
	for k, w := range c.windows {
		if w.end.After(now) {
			continue
		}
		select {
		case <-w.ready:
		default:
			continue // still being granted; next tick
		}
		delete(c.windows, k)
		if w.err == nil {
			out = append(out, w)
		}
	}
	return out
}

// purgeLoop revokes ended windows' leases on every tick of the clock.
func (b *Backend) purgeLoop(ticker clockwork.Ticker) {
	defer b.loops.Done()
	tick.Every(b.ctx.Done(), ticker, b.purge)
}

// purge revokes the lease of every window that has ended on the clock, which
// deletes the window's items (all expired) in etcd.
func (b *Backend) purge() {
	for _, w := range b.leases.takeEnded(b.cfg.Clock.Now()) {
		ctx, cancel := b.callCtx(b.ctx)
		_, err := b.client.Revoke(ctx, w.id)
		cancel()
		switch {
		case err == nil:
			b.log.Debug("Purged an expiry window.", "window_end", w.end)
		case errors.Is(err, rpctypes.ErrLeaseNotFound), b.ctx.Err() != nil:
		default:
			// The lease still runs out on its own in etcd; nothing is lost
			// but promptness.
			b.log.Warn("Could not revoke an ended expiry window's lease; etcd will expire it.", "window_end", w.end, "error", err)
		}
	}
}
