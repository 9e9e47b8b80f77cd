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
	if item := b.cache.get(ctx, key, b.fence.Load()); item != nil {
		return item, nil
	}
	return b.getLinearizable(ctx, key)
}

// getLinearizable reads key from etcd and offers what it read to the cache.
func (b *Backend) getLinearizable(ctx context.Context, key backend.Key) (*backend.Item, error) {
	callCtx, cancel := b.callCtx(ctx)
	defer cancel()
	resp, err := b.client.Get(callCtx, b.etcdKey(key))
	if err != nil {
		return nil, trace.Wrap(convertErr(err))
	}
	b.observe(resp.Header.Revision)
	if len(resp.Kvs) == 0 {
		return nil, trace.NotFound("key %q is not found", key)
	}
	item, err := b.decode(resp.Kvs[0])
	if err != nil {
		return nil, trace.Wrap(err)
	}
	b.cache.offer(resp.Kvs[0], item, resp.Header.Revision)
	if backend.Expired(item.Expires, b.cfg.Clock.Now()) {
		return nil, trace.NotFound("key %q is not found", key)
	}
	return &item, nil
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
		b.observe(rev)
		for _, kv := range resp.Kvs {
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
