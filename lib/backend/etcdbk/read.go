package etcdbk

import (
	"bytes"
	"context"

	"github.com/gravitational/trace"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gatehouse/gatehouse/lib/backend"
)

// decode turns a stored key-value into an item. A value that gatehouse did
// not write is an error: Get returns it, GetRange and watchers skip (and log)
// the key.
func (b *Backend) decode(kv *mvccpb.KeyValue) (backend.Item, error) {
	value, expires, err := decodeEnvelope(kv.Value)
	if err != nil {
		return backend.Item{}, trace.Wrap(err, "key %q", kv.Key)
	}
	return backend.Item{
		Key:      b.backendKey(kv.Key),
		Value:    value,
		Expires:  expires,
		Revision: formatRevision(kv.ModRevision),
	}, nil
}

// Get reads one item; trace.NotFound if missing or expired.
//
// With the read cache off, or when the cache does not hold the key, the read
// is linearizable: it sees every write acknowledged before it started, on
// any server; NotFound is always such an answer. An item from the cache (see
// cache.go) reflects every write this backend acknowledged and every state
// it already read, and every other server's write acknowledged more than
// Config.ReadCacheStaleness before the read (in practice, all but those of
// the last few milliseconds).
func (b *Backend) Get(ctx context.Context, key backend.Key) (*backend.Item, error) {
	if err := backend.CheckKey(key); err != nil {
		return nil, trace.Wrap(err)
	}
	if b.isClosed() {
		return nil, errClosed()
	}
	if item, ok := b.cache.get(ctx, key, b.fence.Load()); ok {
		if item == nil {
			// A fenced key the cache knows does not exist (fence.go).
			return nil, trace.NotFound("key %q is not found", key)
		}
		return item, nil
	}
	item, _, err := b.getFromEtcd(ctx, key, 0)
	return item, trace.Wrap(err)
}

// GetIndirect reads the live item at indexKey, whose value names another
// item under targetPrefix, and returns that item: what Get(indexKey) then
// Get(targetPrefix + value) would return, but as of one revision (from the
// read cache under one lock, or from etcd with the second read pinned at the
// first's revision), so an index entry and its target swapped in one atomic
// write are never seen half-swapped. trace.NotFound if either is missing or
// expired.
func (b *Backend) GetIndirect(ctx context.Context, indexKey, targetPrefix backend.Key) (*backend.Item, error) {
	if err := backend.CheckKey(indexKey); err != nil {
		return nil, trace.Wrap(err)
	}
	if b.isClosed() {
		return nil, errClosed()
	}
	if item := b.cache.getIndirect(ctx, indexKey, targetPrefix, b.fence.Load()); item != nil {
		return item, nil
	}
	idx, rev, err := b.getFromEtcd(ctx, indexKey, 0)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	target := append(bytes.Clone(targetPrefix), idx.Value...)
	if backend.CheckKey(target) != nil {
		// An entry naming no possible key names nothing.
		return nil, trace.NotFound("key %q is not found", indexKey)
	}
	item, _, err := b.getFromEtcd(ctx, target, rev)
	return item, trace.Wrap(err)
}

// getFromEtcd reads key from etcd, as of revision rev (0: the current
// one), and offers what it read to the cache. It returns the revision whose
// state the read shows, also with NotFound.
func (b *Backend) getFromEtcd(ctx context.Context, key backend.Key, rev int64) (*backend.Item, int64, error) {
	callCtx, cancel := b.callCtx(ctx)
	defer cancel()
	var opts []clientv3.OpOption
	if rev != 0 {
		opts = append(opts, clientv3.WithRev(rev))
	}
	resp, err := b.client.Get(callCtx, b.etcdKey(key), opts...)
	if err != nil {
		return nil, 0, trace.Wrap(convertErr(err))
	}
	if rev == 0 {
		// A pinned read shows the state as of rev, whatever revision
		// etcd is at now (the header's).
		rev = resp.Header.Revision
	}
	if len(resp.Kvs) == 0 {
		// The key may have been deleted at any revision up to rev.
		b.observe(rev)
		return nil, rev, trace.NotFound("key %q is not found", key)
	}
	// Later reads from the cache must not return an older version of
	// this item (or of anything written with it); unrelated writes since
	// need not hold them up.
	b.observe(resp.Kvs[0].ModRevision)
	item, err := b.decode(resp.Kvs[0])
	if err != nil {
		return nil, rev, trace.Wrap(err)
	}
	b.cache.offer(resp.Kvs[0], item, rev)
	if backend.Expired(item.Expires, b.cfg.Clock.Now()) {
		return nil, rev, trace.NotFound("key %q is not found", key)
	}
	return &item, rev, nil
}

// GetRange reads live items with start <= key < end in key order, at most
// limit of them. Expired items that etcd still holds are skipped, fetching
// further pages at the same revision until limit live items are found, so the
// result is one consistent snapshot.
func (b *Backend) GetRange(ctx context.Context, start, end backend.Key, limit int) (*backend.GetResult, error) {
	limit, err := backend.CheckRange(start, end, limit)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if b.isClosed() {
		return nil, errClosed()
	}
	res := &backend.GetResult{}
	if end != nil && bytes.Compare(start, end) >= 0 {
		return res, nil
	}
	if cached, ok := b.cache.getRange(ctx, start, end, limit, b.fence.Load()); ok {
		return cached, nil
	}
	now := b.cfg.Clock.Now()
	from, to := b.etcdKey(start), b.etcdEnd(end)
	var rev int64
	for {
		opts := []clientv3.OpOption{
			clientv3.WithRange(to),
			clientv3.WithLimit(int64(limit - len(res.Items))),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend),
		}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		callCtx, cancel := b.callCtx(ctx)
		resp, err := b.client.Get(callCtx, from, opts...)
		cancel()
		if err != nil {
			return nil, trace.Wrap(convertErr(err))
		}
		rev = resp.Header.Revision
		for _, kv := range resp.Kvs {
			// What the range returned, not etcd's current revision: a
			// later read from the cache must not return an older version
			// of these items, but need not wait for unrelated writes.
			b.observe(kv.ModRevision)
			item, err := b.decode(kv)
			if err != nil {
				b.log.Warn("Skipping a value that gatehouse did not write.", "error", err)
				continue
			}
			if !backend.Expired(item.Expires, now) {
				res.Items = append(res.Items, item)
			}
		}
		if len(res.Items) >= limit || !resp.More || len(resp.Kvs) == 0 {
			return res, nil
		}
		from = string(backend.NextKey(backend.Key(resp.Kvs[len(resp.Kvs)-1].Key)))
	}
}
