package etcdbk

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gravitational/trace"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gatehouse/gatehouse/lib/backend"
)

// Fenced reads.
//
// The read cache answers a read from memory without asking etcd, so on its
// own it may miss another server's write for the watch delay. For a few
// small prefixes whose every read must see every write acknowledged before
// it on any server (the SCIM plugin and its token hashes: a rotated token
// must be refused by the very next request everywhere), the backend makes
// the writers wait instead of the readers, the way a lease-based read works:
//
//   - A server that serves fenced reads from its cache registers as a
//     reader: a key under fenceReadersPrefix, attached to an etcd lease of
//     FenceTTL, whose value names the prefixes it serves and the revision
//     its cache has applied (its acknowledgement). It serves fenced reads
//     from memory only while its lease is certainly alive (until the send
//     time of its last successful keepalive plus the TTL, minus a third of
//     it) and once its cache has applied the revision of its registration.
//   - Every write (every transaction of apply, and DeleteRange) reads the
//     reader keys in the same etcd transaction. If it changed a key under a
//     reader's prefixes and that reader has not acknowledged the write's
//     revision, the write waits, before it returns, until the reader
//     acknowledges it (its cache applied the write's event and wrote its
//     applied revision) or its key is gone (its lease ended). A reader that
//     has not done so within FenceAckWait has its lease revoked, and the
//     write then waits out the lease's TTL, past which the reader no longer
//     serves on it.
//
// So when a write returns, every reader either holds it or has stopped
// serving fenced reads from memory: a fenced read that starts after the
// write was acknowledged sees it, on every server. A reader that registers
// after the write read the reader keys has applied the write before it
// serves (its registration's revision is later). Fenced keys are never
// evicted, and a fenced key the cache cannot hold (an item with an expiry,
// one too big, one gatehouse did not write) sends every read of its prefix
// to etcd, so a fenced prefix is answered from memory only while the cache
// holds all of it: Get of a missing key and GetRange inside the prefix
// included.

// Fence defaults.
const (
	// DefaultFenceTTL is the reader lease's TTL: how long a write that a
	// reader did not acknowledge may wait, after revoking it.
	DefaultFenceTTL = 3 * time.Second
	// DefaultFenceAckWait is how long a write waits for the readers'
	// acknowledgements before it revokes the late readers' leases. A
	// healthy reader acknowledges within a few milliseconds.
	DefaultFenceAckWait = 2 * time.Second
)

// fenceReadersPrefix holds the reader keys. It is outside the backend's key
// range (the prefix without its final "/", then a NUL), so that no read,
// range or watch of the backend's own keys ever sees it.
func (b *Backend) fenceReadersPrefix() string {
	return b.prefix[:len(b.prefix)-1] + "\x00fence-readers/"
}

// fenceReader is a reader key's value.
type fenceReader struct {
	// acked is the revision the reader's cache has applied.
	acked int64
	// ttl is the reader's lease TTL: what a writer that revoked it waits.
	ttl time.Duration
	// prefixes are the backend key prefixes it serves from memory.
	prefixes []string
}

// encode is "<acked> <ttl in ms>" then one Go-quoted prefix per line
// (quoted: a backend key may hold any byte, a newline included).
func (r fenceReader) encode() string {
	var sb strings.Builder
	sb.WriteString(strconv.FormatInt(r.acked, 10))
	sb.WriteByte(' ')
	sb.WriteString(strconv.FormatInt(r.ttl.Milliseconds(), 10))
	for _, p := range r.prefixes {
		sb.WriteByte('\n')
		sb.WriteString(strconv.Quote(p))
	}
	return sb.String()
}

func decodeFenceReader(v []byte) (fenceReader, bool) {
	lines := strings.Split(string(v), "\n")
	head := strings.Fields(lines[0])
	if len(head) != 2 {
		return fenceReader{}, false
	}
	acked, err1 := strconv.ParseInt(head[0], 10, 64)
	ttl, err2 := strconv.ParseInt(head[1], 10, 64)
	if err1 != nil || err2 != nil || ttl <= 0 {
		return fenceReader{}, false
	}
	r := fenceReader{acked: acked, ttl: time.Duration(ttl) * time.Millisecond}
	for _, l := range lines[1:] {
		p, err := strconv.Unquote(l)
		if err != nil {
			return fenceReader{}, false
		}
		r.prefixes = append(r.prefixes, p)
	}
	return r, true
}

// FenceReads makes every read of keys under prefixes (plugin settings and
// credentials: few, small items) see every write acknowledged before it on
// any server that runs this code, while still answering it from the read
// cache (see above). It reports false when the read cache is off: every
// read then goes to etcd, which is as fresh but not free. The cache reloads
// once to track the new prefixes; until it has, and whenever it cannot
// confirm its lease, such reads go to etcd.
func (b *Backend) FenceReads(prefixes ...backend.Key) bool {
	c := b.cache
	if c == nil {
		return false
	}
	c.fenceMu.Lock()
	defer c.fenceMu.Unlock()
	next := slices.Clone(c.fenceWant)
	for _, p := range prefixes {
		if s := string(p); s != "" && !slices.Contains(next, s) {
			next = append(next, s)
		}
	}
	if len(next) == len(c.fenceWant) {
		return true
	}
	slices.Sort(next)
	c.fenceWant = next
	select {
	case c.resync <- struct{}{}:
	default:
	}
	return true
}

// fenceWanted returns the prefixes FenceReads asked for.
func (c *readCache) fenceWanted() []string {
	c.fenceMu.Lock()
	defer c.fenceMu.Unlock()
	return c.fenceWant
}

// isFencedLocked reports whether key is under a fenced prefix of this sync.
func (c *readCache) isFencedLocked(key string) bool {
	for _, p := range c.fenced {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// fenceServingLocked reports whether fenced keys may be answered from
// memory: the lease is certainly alive, the cache has applied the
// registration's revision and holds every fenced key.
func (c *readCache) fenceServingLocked() bool {
	return c.fenceFrom > 0 && c.applied >= c.fenceFrom && !c.fenceIncomplete && c.now() < c.fenceUntil.Load()
}

// noteFencedLocked records whether a fenced key etcd holds is in entries.
func (c *readCache) noteFencedLocked(key string, cached bool) {
	if !c.isFencedLocked(key) {
		return
	}
	if cached {
		delete(c.uncached, key)
	} else {
		c.uncached[key] = struct{}{}
	}
}

// runFence keeps this server registered as a reader of the fenced prefixes
// while the sync runs (ctx), re-registering after a lost lease.
func (c *readCache) runFence(ctx context.Context) {
	retry := newRetryDelay()
	for ctx.Err() == nil {
		err := c.fenceSession(ctx, retry)
		c.fenceUntil.Store(0)
		if ctx.Err() != nil {
			return
		}
		c.b.log.Info("Fenced reads go to etcd until this server registers again as a reader.", "error", err)
		if !retry.wait(ctx) {
			return
		}
	}
}

// fenceSession registers, then keeps the lease alive and acknowledges the
// fenced events the cache applies, until an error or ctx ends. It revokes
// its lease when it ends, so that no write waits for it.
func (c *readCache) fenceSession(ctx context.Context, retry *retryDelay) error {
	b := c.b
	key := b.fenceReadersPrefix() + b.readerID
	sent := c.now()
	callCtx, cancel := b.callCtx(ctx)
	grant, err := b.client.Grant(callCtx, int64((b.cfg.FenceTTL+time.Second-1)/time.Second))
	cancel()
	if err != nil {
		return trace.Wrap(convertErr(err), "granting the fence lease")
	}
	ttl := time.Duration(grant.TTL) * time.Second
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.cfg.RequestTimeout)
		_, _ = b.client.Revoke(rctx, grant.ID)
		cancel()
	}()
	margin := ttl / 3
	c.mu.RLock()
	prefixes, acked := c.fenced, c.applied
	c.mu.RUnlock()
	ack := func() error {
		callCtx, cancel := b.callCtx(ctx)
		defer cancel()
		_, err := b.client.Put(callCtx, key, fenceReader{acked: acked, ttl: ttl, prefixes: prefixes}.encode(), clientv3.WithLease(grant.ID))
		return trace.Wrap(convertErr(err), "acknowledging fenced writes")
	}
	callCtx, cancel = b.callCtx(ctx)
	resp, err := b.client.Put(callCtx, key, fenceReader{acked: acked, ttl: ttl, prefixes: prefixes}.encode(), clientv3.WithLease(grant.ID))
	cancel()
	if err != nil {
		return trace.Wrap(convertErr(err), "registering as a fenced reader")
	}
	c.fenceUntil.Store(sent + int64(ttl-margin))
	c.mu.Lock()
	// Writes before the registration did not wait for this reader: serve
	// only once they are applied.
	c.fenceFrom = resp.Header.Revision
	c.mu.Unlock()
	retry.reset()
	ticker := time.NewTicker(ttl / 6)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.ackWanted:
			c.mu.RLock()
			acked = c.applied
			c.mu.RUnlock()
			if err := ack(); err != nil {
				return trace.Wrap(err)
			}
		case <-ticker.C:
			sent := c.now()
			callCtx, cancel := b.callCtx(ctx)
			ka, err := b.client.KeepAliveOnce(callCtx, grant.ID)
			cancel()
			if err != nil {
				// A revoked lease (a write gave up on this reader) or
				// etcd out of reach: serving ends with the lease's
				// certain life, at the latest.
				return trace.Wrap(convertErr(err), "keeping the fence lease alive")
			}
			c.fenceUntil.Store(sent + int64(time.Duration(ka.TTL)*time.Second-margin))
		}
	}
}

// fenceWait is what a write needs to wait for: the readers that serve a
// prefix the write changed and have not acknowledged its revision.
type fenceWait struct {
	rev     int64
	pending map[string]pendingReader
}

type pendingReader struct {
	lease clientv3.LeaseID
	ttl   time.Duration
}

// readersOp reads the reader keys; writes add it to their transaction.
func (b *Backend) readersOp() clientv3.Op {
	return clientv3.OpGet(b.fenceReadersPrefix(), clientv3.WithPrefix())
}

// newFenceWait picks, from the reader keys a write's transaction read at
// revision rev, the readers it must wait for; changed reports whether the
// write changed a key under a prefix.
func newFenceWait(rev int64, readers []*mvccpb.KeyValue, changed func(prefix string) bool) *fenceWait {
	w := &fenceWait{rev: rev, pending: map[string]pendingReader{}}
	for _, kv := range readers {
		r, ok := decodeFenceReader(kv.Value)
		if !ok {
			// Not written by this code: wait on it as on any reader, for
			// the longest time a reader may serve.
			w.pending[string(kv.Key)] = pendingReader{lease: clientv3.LeaseID(kv.Lease), ttl: DefaultFenceTTL}
			continue
		}
		if r.acked >= rev || !slices.ContainsFunc(r.prefixes, changed) {
			continue
		}
		w.pending[string(kv.Key)] = pendingReader{lease: clientv3.LeaseID(kv.Lease), ttl: r.ttl}
	}
	return w
}

// awaitReaders waits until every pending reader acknowledged the write or
// lost its lease (see above).
func (b *Backend) awaitReaders(ctx context.Context, w *fenceWait) error {
	if len(w.pending) == 0 {
		return nil
	}
	// The write is already in etcd: finish its fence even if the caller
	// went away (a client that hung up mid-rotation), or a reader whose
	// watch lags could serve the old value until its staleness check
	// stops it. The wait is bounded: FenceAckWait, the revocations, one
	// lease TTL.
	ctx = context.WithoutCancel(ctx)
	wctx, cancel := context.WithTimeout(ctx, b.cfg.FenceAckWait)
	wch := b.client.Watch(clientv3.WithRequireLeader(wctx), b.fenceReadersPrefix(), clientv3.WithPrefix(), clientv3.WithRev(w.rev+1))
	for len(w.pending) > 0 {
		wr, ok := <-wch
		if !ok || wr.Err() != nil || wr.Canceled {
			break
		}
		for _, ev := range wr.Events {
			key := string(ev.Kv.Key)
			if _, ok := w.pending[key]; !ok {
				continue
			}
			if ev.Type == clientv3.EventTypeDelete {
				delete(w.pending, key)
				continue
			}
			r, ok := decodeFenceReader(ev.Kv.Value)
			switch {
			case ok && r.acked >= w.rev:
				delete(w.pending, key)
			case ok:
				// Registered again (a new lease): wait for that one.
				w.pending[key] = pendingReader{lease: clientv3.LeaseID(ev.Kv.Lease), ttl: r.ttl}
			}
		}
	}
	cancel()
	if len(w.pending) == 0 {
		return nil
	}
	var longest time.Duration
	for key, p := range w.pending {
		callCtx, cancel := b.callCtx(ctx)
		_, err := b.client.Revoke(callCtx, p.lease)
		cancel()
		if err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return trace.Wrap(convertErr(err), "revoking the lease of a fenced reader that did not acknowledge a write")
		}
		b.log.Warn("A server did not acknowledge a write to a fenced prefix in time; waiting out its lease.", "reader", strings.TrimPrefix(key, b.fenceReadersPrefix()), "wait", p.ttl)
		longest = max(longest, p.ttl)
	}
	t := time.NewTimer(longest)
	defer t.Stop()
	<-t.C
	return nil
}

// keyChanged returns the changed func of a write that changed keys (backend
// keys).
func keyChanged(keys []backend.Key) func(prefix string) bool {
	return func(prefix string) bool {
		return slices.ContainsFunc(keys, func(k backend.Key) bool { return bytes.HasPrefix(k, []byte(prefix)) })
	}
}
