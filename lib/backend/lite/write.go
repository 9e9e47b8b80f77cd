package lite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/backend"
)

// txn is one write request's view of the batch transaction it runs in (see
// batch.go). Its events are handed to watchers only after the batch commits,
// and only if the request succeeded.
type txn struct {
	tx    *sql.Tx
	st    *writeStmts // the hot statements, bound to tx
	now   int64       // the clock's now in unix nanoseconds, fixed for the request
	rev   int64       // the request's revision; 0 until allocated
	event []backend.Event
	// lastRev is the batch's revision counter: the last revision handed
	// out in the batch (batch.go stores it in meta before COMMIT).
	lastRev *int64
}

// revision returns the request's revision, taking the next value of the
// batch's counter the first time it is called. A failed request gives its
// value back (commitBatch), so the revisions of a batch's successful
// requests stay consecutive.
func (t *txn) revision(context.Context) (int64, error) {
	if t.rev != 0 {
		return t.rev, nil
	}
	*t.lastRev++
	t.rev = *t.lastRev
	return t.rev, nil
}

// current returns the revision of the live (present, unexpired) item at key.
func (t *txn) current(ctx context.Context, key backend.Key) (rev int64, ok bool, err error) {
	err = t.st.current.QueryRowContext(ctx, []byte(key), t.now).Scan(&rev)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, false, nil
	case err != nil:
		return 0, false, trace.Wrap(err)
	}
	return rev, true, nil
}

// holds reports whether cond holds for key.
func (t *txn) holds(ctx context.Context, key backend.Key, cond backend.Condition) (bool, error) {
	if cond.Kind == backend.ConditionWhatever {
		return true, nil
	}
	rev, ok, err := t.current(ctx, key)
	if err != nil {
		return false, trace.Wrap(err)
	}
	switch cond.Kind {
	case backend.ConditionExists:
		return ok, nil
	case backend.ConditionNotExists:
		return !ok, nil
	case backend.ConditionRevision:
		// Revisions are opaque strings: compare them as text, so that a
		// foreign revision such as "007" never matches 7.
		return ok && formatRevision(rev) == cond.Revision, nil
	default:
		return false, trace.BadParameter("unknown condition kind %d", cond.Kind)
	}
}

// must returns nil if cond holds for key, and otherwise the error a
// single-key write documents for it: trace.AlreadyExists when the key must
// not exist, trace.NotFound when it must, CompareFailed for a revision.
func (t *txn) must(ctx context.Context, key backend.Key, cond backend.Condition) error {
	ok, err := t.holds(ctx, key, cond)
	switch {
	case err != nil:
		return trace.Wrap(err)
	case ok:
		return nil
	case cond.Kind == backend.ConditionNotExists:
		return trace.AlreadyExists("key %q already exists", key)
	case cond.Kind == backend.ConditionExists:
		return trace.NotFound("key %q is not found", key)
	default:
		return backend.CompareFailed("")
	}
}

// put writes key with the transaction's revision.
func (t *txn) put(ctx context.Context, key backend.Key, value []byte, expires time.Time) (int64, error) {
	rev, err := t.revision(ctx)
	if err != nil {
		return 0, trace.Wrap(err)
	}
	exp := encodeExpires(expires)
	_, err = t.st.upsert.ExecContext(ctx, []byte(key), encodeValue(value), exp, rev)
	if err != nil {
		return 0, trace.Wrap(err)
	}
	t.written(key, value, exp, rev)
	return rev, nil
}

// written reports a put of key at rev to watchers (after the commit).
func (t *txn) written(key backend.Key, value []byte, exp any, rev int64) {
	t.event = append(t.event, backend.Event{Type: backend.OpPut, Item: backend.Item{
		Key:      bytes.Clone(key),
		Value:    bytes.Clone(value),
		Expires:  decodeExpires(exp),
		Revision: formatRevision(rev),
	}})
}

// del removes key (live or expired) and reports whether a row was removed.
func (t *txn) del(ctx context.Context, key backend.Key) (bool, error) {
	res, err := t.st.delete.ExecContext(ctx, []byte(key))
	removed, err := affectedOne(res, err)
	if removed {
		t.deleted(key)
	}
	return removed, trace.Wrap(err)
}

// deleteReturning runs query, a DELETE ... RETURNING key, reports each
// removed key to watchers in key order (RETURNING's order is unspecified),
// and returns how many rows it removed.
func (t *txn) deleteReturning(ctx context.Context, query string, args ...any) (int, error) {
	rows, err := t.tx.QueryContext(ctx, query, args...)
	if err != nil {
		return 0, trace.Wrap(err)
	}
	var keys []backend.Key
	for rows.Next() {
		var k []byte
		if err := rows.Scan(&k); err != nil {
			rows.Close()
			return 0, trace.Wrap(err)
		}
		keys = append(keys, k)
	}
	if err := rows.Close(); err != nil {
		return 0, trace.Wrap(err)
	}
	if err := rows.Err(); err != nil {
		return 0, trace.Wrap(err)
	}
	slices.SortFunc(keys, func(a, b backend.Key) int { return bytes.Compare(a, b) })
	for _, k := range keys {
		t.deleted(k)
	}
	return len(keys), nil
}

func (t *txn) deleted(key backend.Key) {
	t.event = append(t.event, backend.Event{Type: backend.OpDelete, Item: backend.Item{Key: bytes.Clone(key)}})
}

// apply runs actions in t. If a condition fails it returns a CompareFailed
// error and the request's savepoint is rolled back (batch.go), with
// whatever actions before it wrote. Each action's condition is checked just
// before its write, often by the write itself (applyFused): the keys of an
// AtomicWrite are distinct (backend.CheckAtomicWrite), so no action's write
// can change what another's condition sees, and every condition still sees
// the state before the AtomicWrite.
func (t *txn) apply(ctx context.Context, actions []backend.ConditionalAction) error {
	for i, a := range actions {
		done, ok, err := t.applyFused(ctx, a)
		if err != nil {
			return trace.Wrap(err)
		}
		if !done {
			if ok, err = t.holds(ctx, a.Key, a.Condition); err != nil {
				return trace.Wrap(err)
			}
		}
		if !ok {
			return backend.CompareFailed("condition of action %d on key %q does not hold: %s", i, a.Key, backend.ErrIncorrectRevision)
		}
		if done {
			continue
		}
		switch a.Action.Kind {
		case backend.ActionNop:
		case backend.ActionPut:
			if _, err := t.put(ctx, a.Key, a.Action.Item.Value, a.Action.Item.Expires); err != nil {
				return trace.Wrap(err)
			}
		case backend.ActionDelete:
			if _, err := t.del(ctx, a.Key); err != nil {
				return trace.Wrap(err)
			}
		default:
			return trace.BadParameter("unknown action kind %d", a.Action.Kind)
		}
	}
	return nil
}

// applyFused runs a put under NotExists or at a revision, or a delete at a
// revision, as one statement that checks the condition itself. done is
// false for any other action, which the caller runs as a read and a write;
// ok reports whether the condition held (nothing was written if not).
func (t *txn) applyFused(ctx context.Context, a backend.ConditionalAction) (done, ok bool, err error) {
	var rev int64
	switch a.Condition.Kind {
	case backend.ConditionNotExists:
		if a.Action.Kind != backend.ActionPut {
			return false, false, nil
		}
	case backend.ConditionRevision:
		if a.Action.Kind != backend.ActionPut && a.Action.Kind != backend.ActionDelete {
			return false, false, nil
		}
		// Revisions are opaque strings compared as text (holds): one this
		// backend did not write, such as "007" or "x", matches no row.
		r, perr := strconv.ParseInt(a.Condition.Revision, 10, 64)
		if perr != nil || formatRevision(r) != a.Condition.Revision {
			return true, false, nil
		}
		rev = r
	default:
		return false, false, nil
	}
	if a.Action.Kind == backend.ActionDelete {
		res, err := t.st.deleteAtRevision.ExecContext(ctx, []byte(a.Key), rev, t.now)
		if ok, err = affectedOne(res, err); ok {
			t.deleted(a.Key)
		}
		return true, ok, trace.Wrap(err)
	}
	newRev, err := t.revision(ctx)
	if err != nil {
		return true, false, trace.Wrap(err)
	}
	item := a.Action.Item
	exp := encodeExpires(item.Expires)
	var res sql.Result
	if a.Condition.Kind == backend.ConditionNotExists {
		res, err = t.st.insertAbsent.ExecContext(ctx, []byte(a.Key), encodeValue(item.Value), exp, newRev, t.now)
	} else {
		res, err = t.st.updateAtRevision.ExecContext(ctx, encodeValue(item.Value), exp, newRev, []byte(a.Key), rev, t.now)
	}
	if ok, err = affectedOne(res, err); ok {
		t.written(a.Key, item.Value, exp, newRev)
	}
	return true, ok, trace.Wrap(err)
}

// affectedOne reports whether a statement's result changed a row.
func affectedOne(res sql.Result, err error) (bool, error) {
	if err != nil {
		return false, trace.Wrap(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, trace.Wrap(err)
	}
	return n > 0, nil
}

// Create writes a new item; trace.AlreadyExists if a live item has the key.
func (b *Backend) Create(ctx context.Context, i backend.Item) (*backend.Lease, error) {
	return b.putItem(ctx, i, backend.NotExists())
}

// Put writes an item whether or not it exists.
func (b *Backend) Put(ctx context.Context, i backend.Item) (*backend.Lease, error) {
	return b.putItem(ctx, i, backend.Whatever())
}

// Update overwrites a live item; trace.NotFound if there is none.
func (b *Backend) Update(ctx context.Context, i backend.Item) (*backend.Lease, error) {
	return b.putItem(ctx, i, backend.Exists())
}

// ConditionalUpdate overwrites the item only if it is live at i.Revision.
func (b *Backend) ConditionalUpdate(ctx context.Context, i backend.Item) (*backend.Lease, error) {
	return b.putItem(ctx, i, backend.Revision(i.Revision))
}

// Delete removes a live item; trace.NotFound if there is none. An expired
// row is left for the purge loop, which reports it.
func (b *Backend) Delete(ctx context.Context, key backend.Key) error {
	return b.deleteKey(ctx, key, backend.Exists())
}

// ConditionalDelete removes the item only if it is live at revision.
func (b *Backend) ConditionalDelete(ctx context.Context, key backend.Key, revision string) error {
	return b.deleteKey(ctx, key, backend.Revision(revision))
}

// putItem writes i in one request if cond holds for its key; otherwise it
// fails with the error of the single-key method (see must).
func (b *Backend) putItem(ctx context.Context, i backend.Item, cond backend.Condition) (*backend.Lease, error) {
	if err := backend.CheckItem(i); err != nil {
		return nil, trace.Wrap(err)
	}
	var rev int64
	err := b.write(ctx, itemSize(i), func(ctx context.Context, t *txn) error {
		if err := t.must(ctx, i.Key, cond); err != nil {
			return trace.Wrap(err)
		}
		var err error
		rev, err = t.put(ctx, i.Key, i.Value, i.Expires)
		return trace.Wrap(err)
	})
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return newLease(i.Key, rev), nil
}

// deleteKey removes key in one request if cond holds for it; otherwise it
// fails with the error of the single-key method (see must).
func (b *Backend) deleteKey(ctx context.Context, key backend.Key, cond backend.Condition) error {
	if err := backend.CheckKey(key); err != nil {
		return trace.Wrap(err)
	}
	return trace.Wrap(b.write(ctx, len(key), func(ctx context.Context, t *txn) error {
		if err := t.must(ctx, key, cond); err != nil {
			return trace.Wrap(err)
		}
		_, err := t.del(ctx, key)
		return trace.Wrap(err)
	}))
}

// DeleteRange removes every item with start <= key < end (nil end: to the
// end of the keyspace), expired ones included; watchers get a Delete for
// each removed key, in key order.
func (b *Backend) DeleteRange(ctx context.Context, start, end backend.Key) error {
	if _, err := backend.CheckRange(start, end, 0); err != nil {
		return trace.Wrap(err)
	}
	if end != nil && bytes.Compare(start, end) >= 0 {
		return trace.Wrap(b.checkOpen())
	}
	where, args := rangeWhere(start, end)
	return trace.Wrap(b.write(ctx, 0, func(ctx context.Context, t *txn) error {
		_, err := t.deleteReturning(ctx, `DELETE FROM kv`+where+` RETURNING key`, args...)
		return trace.Wrap(err)
	}))
}

// AtomicWrite applies every action if every condition holds, or none.
func (b *Backend) AtomicWrite(ctx context.Context, actions []backend.ConditionalAction) (string, error) {
	if err := backend.CheckAtomicWrite(actions); err != nil {
		return "", trace.Wrap(err)
	}
	var rev int64
	err := b.write(ctx, actionsSize(actions), func(ctx context.Context, t *txn) error {
		if err := t.apply(ctx, actions); err != nil {
			return trace.Wrap(err)
		}
		var err error
		rev, err = t.revision(ctx)
		return trace.Wrap(err)
	})
	if err != nil {
		return "", trace.Wrap(err)
	}
	return formatRevision(rev), nil
}

// KeepAlive moves the expiry of a live item written at lease.Revision and
// gives it a new revision.
func (b *Backend) KeepAlive(ctx context.Context, lease backend.Lease, expires time.Time) error {
	if err := backend.CheckKey(lease.Key); err != nil {
		return trace.Wrap(err)
	}
	return trace.Wrap(b.write(ctx, len(lease.Key), func(ctx context.Context, t *txn) error {
		cur, exists, err := t.current(ctx, lease.Key)
		if err != nil {
			return trace.Wrap(err)
		}
		if !exists {
			return trace.NotFound("key %q is not found", lease.Key)
		}
		if formatRevision(cur) != lease.Revision {
			return backend.CompareFailed("")
		}
		rev, err := t.revision(ctx)
		if err != nil {
			return trace.Wrap(err)
		}
		exp := encodeExpires(expires)
		var value []byte
		err = t.tx.QueryRowContext(ctx,
			`UPDATE kv SET expires = ?, revision = ? WHERE key = ? RETURNING value`,
			exp, rev, []byte(lease.Key)).Scan(&value)
		if err != nil {
			return trace.Wrap(err)
		}
		t.written(lease.Key, value, exp, rev)
		return nil
	}))
}

// purgeExpired deletes expired rows in batches and reports each to watchers.
func (b *Backend) purgeExpired(ctx context.Context) error {
	for {
		var n int
		err := b.write(ctx, 0, func(ctx context.Context, t *txn) error {
			var err error
			n, err = t.deleteReturning(ctx,
				`DELETE FROM kv WHERE key IN (
					SELECT key FROM kv WHERE expires IS NOT NULL AND expires <= ? LIMIT ?
				) RETURNING key`, t.now, purgeBatch)
			return trace.Wrap(err)
		})
		if err != nil {
			return trace.Wrap(err)
		}
		if n < purgeBatch {
			return nil
		}
	}
}

// rangeWhere builds the WHERE clause for start <= key < end. An empty start
// needs no lower bound (and an empty blob would bind as NULL).
func rangeWhere(start, end backend.Key) (string, []any) {
	var conds []string
	var args []any
	if len(start) > 0 {
		conds = append(conds, "key >= ?")
		args = append(args, []byte(start))
	}
	if end != nil {
		conds = append(conds, "key < ?")
		args = append(args, []byte(end))
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// itemSize is the bytes a write of i adds to a batch.
func itemSize(i backend.Item) int { return len(i.Key) + len(i.Value) }

// actionsSize is the bytes an AtomicWrite adds to a batch.
func actionsSize(actions []backend.ConditionalAction) int {
	n := 0
	for _, a := range actions {
		n += len(a.Key) + len(a.Action.Item.Value)
	}
	return n
}

func newLease(key backend.Key, rev int64) *backend.Lease {
	return &backend.Lease{Key: bytes.Clone(key), Revision: formatRevision(rev)}
}

func formatRevision(rev int64) string { return strconv.FormatInt(rev, 10) }

var (
	minNanoTime = time.Unix(0, math.MinInt64)
	maxNanoTime = time.Unix(0, math.MaxInt64)
)

// unixNanos converts t to unix nanoseconds, clamped to the int64 range
// (years 1677 to 2262). Clamping keeps the meaning of an expiry: a time
// before the range is long past, one after it is centuries away.
func unixNanos(t time.Time) int64 {
	switch {
	case t.Before(minNanoTime):
		return math.MinInt64
	case t.After(maxNanoTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// encodeExpires returns the stored form of an expiry: NULL for never.
func encodeExpires(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return unixNanos(t)
}

func decodeExpires(v any) time.Time {
	n, ok := v.(int64)
	if !ok {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// encodeValue stores an empty value as NULL: the driver binds an empty blob
// as NULL anyway, and reads give back an empty value either way.
func encodeValue(v []byte) any {
	if len(v) == 0 {
		return nil
	}
	return v
}
