package etcdbk

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/gravitational/trace"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gatehouse/gatehouse/lib/backend"
)

// maxTxnAttempts bounds how often apply retries a transaction whose
// "does not exist" conditions met expired items that changed again under it.
// Every retry follows a concurrent write to one of the write's keys.
const maxTxnAttempts = 50

// parseRevision reads a revision string; ok is false for anything that is not
// a revision this backend could have returned, which then simply does not
// match.
func parseRevision(rev string) (int64, bool) {
	n, err := strconv.ParseInt(rev, 10, 64)
	if err != nil || n <= 0 {
		return 0, false
	}
	return n, true
}

func formatRevision(rev int64) string { return strconv.FormatInt(rev, 10) }

// errConditionFailed is what apply returns when a condition does not hold;
// callers turn it into AlreadyExists, NotFound or CompareFailed.
var errConditionFailed = errors.New("condition does not hold")

// apply runs actions (already validated) as one etcd transaction and returns
// its revision. The compares are:
//
//   - Whatever: none;
//   - Exists: the envelope is greater than liveThreshold(now) (false for a
//     missing key and for an expired item);
//   - Revision: ModRevision equals it, and the envelope check of Exists;
//   - NotExists: CreateRevision == 0. That is also false for an item that
//     etcd still holds but that has expired on the clock, so when the
//     transaction fails, its else branch reads every conditioned key at the
//     transaction's own revision and apply decides with the clock: if every
//     condition holds after all, the expired items are pinned by their mod
//     revision (an expired version stays expired) and the transaction is
//     tried again.
//
// A condition that does not hold returns errConditionFailed (wrapped with
// the key); nothing is written.
func (b *Backend) apply(ctx context.Context, actions []backend.ConditionalAction) (int64, error) {
	if b.isClosed() {
		return 0, errClosed()
	}
	revs := make([]int64, len(actions))
	for i, a := range actions {
		if a.Condition.Kind == backend.ConditionRevision {
			rev, ok := parseRevision(a.Condition.Revision)
			if !ok {
				return 0, trace.Wrap(errConditionFailed, "key %q", a.Key)
			}
			revs[i] = rev
		}
	}
	// expiredAt[i] is the mod revision of the expired item that a
	// NotExists condition found at actions[i].Key, or 0.
	expiredAt := make([]int64, len(actions))
	leaseRetries := 0
	for attempt := 0; attempt < maxTxnAttempts; attempt++ {
		now := b.cfg.Clock.Now()
		live := liveThreshold(now)
		var cmps []clientv3.Cmp
		var ops, reads []clientv3.Op
		var readIdx []int
		// opKeys[j] is the key ops[j] writes.
		var opKeys []backend.Key
		var leases []clientv3.LeaseID
		for i, a := range actions {
			k := b.etcdKey(a.Key)
			switch a.Condition.Kind {
			case backend.ConditionExists:
				cmps = append(cmps, clientv3.Compare(clientv3.Value(k), ">", live))
			case backend.ConditionRevision:
				cmps = append(cmps,
					clientv3.Compare(clientv3.ModRevision(k), "=", revs[i]),
					clientv3.Compare(clientv3.Value(k), ">", live))
			case backend.ConditionNotExists:
				if expiredAt[i] != 0 {
					cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", expiredAt[i]))
				} else {
					cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(k), "=", 0))
				}
			}
			if a.Condition.Kind != backend.ConditionWhatever {
				reads = append(reads, clientv3.OpGet(k))
				readIdx = append(readIdx, i)
			}
			switch a.Action.Kind {
			case backend.ActionPut:
				lease, err := b.leases.leaseFor(ctx, a.Action.Item.Expires)
				if err != nil {
					return 0, trace.Wrap(err)
				}
				env := encodeEnvelope(a.Action.Item.Value, a.Action.Item.Expires)
				if lease == clientv3.NoLease {
					ops = append(ops, clientv3.OpPut(k, string(env)))
				} else {
					ops = append(ops, clientv3.OpPut(k, string(env), clientv3.WithLease(lease)))
					leases = append(leases, lease)
				}
				opKeys = append(opKeys, a.Key)
			case backend.ActionDelete:
				ops = append(ops, clientv3.OpDelete(k))
				opKeys = append(opKeys, a.Key)
			}
		}
		// The fenced readers, as of the write (see fence.go).
		then := append(ops, b.readersOp())

		callCtx, cancel := b.callCtx(ctx)
		resp, err := b.client.Txn(callCtx).If(cmps...).Then(then...).Else(reads...).Commit()
		cancel()
		if err != nil {
			if errors.Is(err, rpctypes.ErrLeaseNotFound) && leaseRetries < 2 {
				// A window's lease ended under us (see leases.go): drop
				// the cache entries and take fresh leases.
				leaseRetries++
				for _, id := range leases {
					b.leases.forget(id)
				}
				continue
			}
			return 0, trace.Wrap(convertErr(err))
		}
		// Succeeded or not, a later read must see at least this state:
		// the write, or the write that made a condition fail.
		b.observe(resp.Header.Revision)
		if resp.Succeeded {
			rev := resp.Header.Revision
			var changed []backend.Key
			for j, r := range resp.Responses[:len(ops)] {
				if d := r.GetResponseDeleteRange(); d != nil && d.Deleted == 0 {
					continue // deleting a missing key changes nothing
				}
				changed = append(changed, opKeys[j])
			}
			readers := resp.Responses[len(ops)].GetResponseRange().GetKvs()
			if err := b.awaitReaders(ctx, newFenceWait(rev, readers, keyChanged(changed))); err != nil {
				return 0, trace.Wrap(err, "the write was made, but not every server acknowledged it")
			}
			return rev, nil
		}

		// Decide with the clock, on the state the compares saw.
		retry := false
		for j, r := range resp.Responses {
			i := readIdx[j]
			a := actions[i]
			var kv *mvccpb.KeyValue
			if rr := r.GetResponseRange(); rr != nil && len(rr.Kvs) > 0 {
				kv = rr.Kvs[0]
			}
			isLive := kv != nil && bytes.Compare(kv.Value, []byte(live)) > 0
			switch a.Condition.Kind {
			case backend.ConditionExists:
				if !isLive {
					return 0, trace.Wrap(errConditionFailed, "key %q", a.Key)
				}
			case backend.ConditionRevision:
				if !isLive || kv.ModRevision != revs[i] {
					return 0, trace.Wrap(errConditionFailed, "key %q", a.Key)
				}
			case backend.ConditionNotExists:
				switch {
				case isLive:
					return 0, trace.Wrap(errConditionFailed, "key %q", a.Key)
				case kv == nil:
					if expiredAt[i] != 0 {
						retry = true
					}
					expiredAt[i] = 0
				default:
					if expiredAt[i] != kv.ModRevision {
						retry = true
					}
					expiredAt[i] = kv.ModRevision
				}
			}
		}
		if !retry {
			// Every condition held on the snapshot yet the compares
			// failed: cannot happen with a consistent etcd; refuse
			// rather than loop.
			return 0, trace.Wrap(errConditionFailed, "conditions changed during the write")
		}
	}
	return 0, trace.CompareFailed("etcd backend: the keys kept changing; gave up after %d attempts", maxTxnAttempts)
}

// write runs one single-key action and maps a failed condition to the error
// the method documents.
func (b *Backend) write(ctx context.Context, key backend.Key, cond backend.Condition, act backend.Action, failed func() error) (*backend.Lease, error) {
	rev, err := b.apply(ctx, []backend.ConditionalAction{{Key: key, Condition: cond, Action: act}})
	if errors.Is(err, errConditionFailed) {
		return nil, failed()
	}
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &backend.Lease{Key: bytes.Clone(key), Revision: formatRevision(rev)}, nil
}

// Create writes a new item; trace.AlreadyExists if the key exists.
func (b *Backend) Create(ctx context.Context, i backend.Item) (*backend.Lease, error) {
	if err := backend.CheckItem(i); err != nil {
		return nil, trace.Wrap(err)
	}
	lease, err := b.write(ctx, i.Key, backend.NotExists(), backend.Put(i), func() error {
		return trace.AlreadyExists("key %q already exists", i.Key)
	})
	return lease, trace.Wrap(err)
}

// Put writes an item whether or not it exists.
func (b *Backend) Put(ctx context.Context, i backend.Item) (*backend.Lease, error) {
	if err := backend.CheckItem(i); err != nil {
		return nil, trace.Wrap(err)
	}
	lease, err := b.write(ctx, i.Key, backend.Whatever(), backend.Put(i), func() error {
		return trace.CompareFailed("unconditional put failed") // unreachable: no condition
	})
	return lease, trace.Wrap(err)
}

// Update overwrites an existing item; trace.NotFound if it is missing or
// expired.
func (b *Backend) Update(ctx context.Context, i backend.Item) (*backend.Lease, error) {
	if err := backend.CheckItem(i); err != nil {
		return nil, trace.Wrap(err)
	}
	lease, err := b.write(ctx, i.Key, backend.Exists(), backend.Put(i), func() error {
		return trace.NotFound("key %q is not found", i.Key)
	})
	return lease, trace.Wrap(err)
}

// ConditionalUpdate overwrites the item only if it exists at i.Revision.
func (b *Backend) ConditionalUpdate(ctx context.Context, i backend.Item) (*backend.Lease, error) {
	if err := backend.CheckItem(i); err != nil {
		return nil, trace.Wrap(err)
	}
	lease, err := b.write(ctx, i.Key, backend.Revision(i.Revision), backend.Put(i), func() error {
		return backend.CompareFailed("")
	})
	return lease, trace.Wrap(err)
}

// Delete removes one item; trace.NotFound if it is missing or expired.
func (b *Backend) Delete(ctx context.Context, key backend.Key) error {
	if err := backend.CheckKey(key); err != nil {
		return trace.Wrap(err)
	}
	_, err := b.write(ctx, key, backend.Exists(), backend.Delete(), func() error {
		return trace.NotFound("key %q is not found", key)
	})
	return trace.Wrap(err)
}

// ConditionalDelete removes the item only if it exists at revision.
func (b *Backend) ConditionalDelete(ctx context.Context, key backend.Key, revision string) error {
	if err := backend.CheckKey(key); err != nil {
		return trace.Wrap(err)
	}
	_, err := b.write(ctx, key, backend.Revision(revision), backend.Delete(), func() error {
		return backend.CompareFailed("")
	})
	return trace.Wrap(err)
}

// DeleteRange removes every item with start <= key < end, expired or not, in
// one etcd operation.
func (b *Backend) DeleteRange(ctx context.Context, start, end backend.Key) error {
	if _, err := backend.CheckRange(start, end, 0); err != nil {
		return trace.Wrap(err)
	}
	if b.isClosed() {
		return errClosed()
	}
	if end != nil && bytes.Compare(start, end) >= 0 {
		return nil
	}
	// Which fenced prefixes the range overlaps is known only from the
	// readers: read them first, then count what the delete removes under
	// each of their prefixes in the transaction that deletes (a reader
	// that registered in between is waited for whatever was deleted).
	callCtx, cancel := b.callCtx(ctx)
	before, err := b.client.Get(callCtx, b.fenceReadersPrefix(), clientv3.WithPrefix())
	cancel()
	if err != nil {
		return trace.Wrap(convertErr(err))
	}
	var counted []string
	var ops []clientv3.Op
	for _, kv := range before.Kvs {
		r, _ := decodeFenceReader(kv.Value)
		for _, p := range r.prefixes {
			if slices.Contains(counted, p) {
				continue
			}
			lo, hi, ok := overlap(start, end, backend.Key(p))
			if !ok {
				continue
			}
			counted = append(counted, p)
			ops = append(ops, clientv3.OpGet(b.etcdKey(lo), clientv3.WithRange(b.etcdEnd(hi)), clientv3.WithCountOnly()))
		}
	}
	ops = append(ops, clientv3.OpDelete(b.etcdKey(start), clientv3.WithRange(b.etcdEnd(end))), b.readersOp())
	callCtx, cancel = b.callCtx(ctx)
	resp, err := b.client.Txn(callCtx).Then(ops...).Commit()
	cancel()
	if err != nil {
		return trace.Wrap(convertErr(err))
	}
	b.observe(resp.Header.Revision)
	n := len(counted)
	deleted := resp.Responses[n].GetResponseDeleteRange().GetDeleted()
	changed := func(prefix string) bool {
		if deleted == 0 {
			return false
		}
		if i := slices.Index(counted, prefix); i >= 0 {
			return resp.Responses[i].GetResponseRange().GetCount() > 0
		}
		_, _, ok := overlap(start, end, backend.Key(prefix))
		return ok
	}
	err = b.awaitReaders(ctx, newFenceWait(resp.Header.Revision, resp.Responses[n+1].GetResponseRange().GetKvs(), changed))
	return trace.Wrap(err)
}

// overlap returns the part of [start, end) (end nil: no end) under prefix,
// and false when they do not overlap.
func overlap(start, end, prefix backend.Key) (lo, hi backend.Key, ok bool) {
	pend := backend.RangeEnd(prefix)
	lo, hi = start, end
	if bytes.Compare(prefix, lo) > 0 {
		lo = prefix
	}
	if hi == nil || (pend != nil && bytes.Compare(pend, hi) < 0) {
		hi = pend
	}
	if hi != nil && bytes.Compare(lo, hi) >= 0 {
		return nil, nil, false
	}
	return lo, hi, true
}

// AtomicWrite applies every action if every condition holds, or none, in one
// etcd transaction; every written item gets the transaction's revision.
func (b *Backend) AtomicWrite(ctx context.Context, actions []backend.ConditionalAction) (string, error) {
	if err := backend.CheckAtomicWrite(actions); err != nil {
		return "", trace.Wrap(err)
	}
	rev, err := b.apply(ctx, actions)
	if errors.Is(err, errConditionFailed) {
		return "", backend.CompareFailed("%v: %s", err, backend.ErrIncorrectRevision)
	}
	if err != nil {
		return "", trace.Wrap(err)
	}
	return formatRevision(rev), nil
}

// KeepAlive moves the expiry of an item written at lease.Revision: it reads
// the item, then rewrites its value with the new expiry in a transaction that
// compares the mod revision, so a concurrent write makes it fail rather than
// be undone.
func (b *Backend) KeepAlive(ctx context.Context, lease backend.Lease, expires time.Time) error {
	if err := backend.CheckKey(lease.Key); err != nil {
		return trace.Wrap(err)
	}
	for attempt := 0; attempt < maxTxnAttempts; attempt++ {
		cur, err := b.Get(ctx, lease.Key)
		if err != nil {
			return trace.Wrap(err)
		}
		if cur.Revision != lease.Revision {
			return backend.CompareFailed("")
		}
		_, err = b.apply(ctx, []backend.ConditionalAction{{
			Key:       lease.Key,
			Condition: backend.Revision(lease.Revision),
			Action:    backend.Put(backend.Item{Value: cur.Value, Expires: expires}),
		}})
		if errors.Is(err, errConditionFailed) {
			// Changed or expired since the read: the next read says which.
			continue
		}
		return trace.Wrap(err)
	}
	return backend.CompareFailed("")
}
