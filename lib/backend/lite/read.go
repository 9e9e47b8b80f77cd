package lite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/backend"
)

func (b *Backend) checkOpen() error {
	if b.isClosed() {
		return errClosed()
	}
	return nil
}

// notFound is the error of a read that finds no live item: a
// trace.NotFoundError (trace.IsNotFound holds) without the stack trace that
// trace.NotFound captures, which was 6% of a SCIM create's CPU, where a
// missing key (a new user's name, its lock) is the expected answer. A
// caller that passes it on with trace.Wrap adds the trace then.
func notFound(key backend.Key) error {
	return &trace.NotFoundError{Message: fmt.Sprintf("key %q is not found", key)}
}

// Get reads one live item; trace.NotFound if it is missing or expired.
func (b *Backend) Get(ctx context.Context, key backend.Key) (*backend.Item, error) {
	if err := backend.CheckKey(key); err != nil {
		return nil, trace.Wrap(err)
	}
	if err := b.checkOpen(); err != nil {
		return nil, trace.Wrap(err)
	}
	if item, ok := b.cache.get(key); ok {
		return item, nil
	}
	gen := b.cache.generation()
	now := unixNanos(b.cfg.Clock.Now())
	var (
		value   []byte
		expires sql.NullInt64
		rev     int64
	)
	err := b.getStmt.QueryRowContext(ctx, []byte(key), now).Scan(&value, &expires, &rev)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, notFound(key)
	case err != nil:
		return nil, trace.Wrap(b.readErr(ctx, err))
	}
	item := &backend.Item{Key: bytes.Clone(key), Value: value, Revision: formatRevision(rev)}
	if expires.Valid {
		item.Expires = decodeExpires(expires.Int64)
	}
	b.cache.offer(gen, cacheOffer{key: key, value: value, rev: rev, expires: expires.Valid})
	return item, nil
}

// sqlGetIndirect follows an index entry (?1) to the item whose key is the
// prefix ?2 followed by the entry's value, in one statement and so one read
// transaction. || works on text, and a TEXT value never equals a BLOB key,
// hence the CAST; the caller checks that the key found is exactly prefix +
// value, so no byte-conversion corner can return another item.
const sqlGetIndirect = `SELECT i.value, i.expires, i.revision, t.key, t.value, t.expires, t.revision
	FROM kv AS i JOIN kv AS t ON t.key = CAST(?2 || i.value AS BLOB)
	WHERE i.key = ?1 AND (i.expires IS NULL OR i.expires > ?3) AND (t.expires IS NULL OR t.expires > ?3)`

// GetIndirect reads the live item at indexKey, whose value names another
// item under targetPrefix, and returns that item: what Get(indexKey) then
// Get(targetPrefix + value) would, as of one moment and in one SQLite read
// instead of two (each read transaction costs shared-memory locks and a
// statement reset). trace.NotFound if either is missing or expired.
func (b *Backend) GetIndirect(ctx context.Context, indexKey, targetPrefix backend.Key) (*backend.Item, error) {
	if err := backend.CheckKey(indexKey); err != nil {
		return nil, trace.Wrap(err)
	}
	if err := b.checkOpen(); err != nil {
		return nil, trace.Wrap(err)
	}
	if item, ok := b.cache.getIndirect(indexKey, targetPrefix); ok {
		return item, nil
	}
	gen := b.cache.generation()
	now := unixNanos(b.cfg.Clock.Now())
	var (
		ref, key, value     []byte
		refExpires, expires sql.NullInt64
		refRev, rev         int64
	)
	err := b.indirectStmt.QueryRowContext(ctx, []byte(indexKey), []byte(targetPrefix), now).Scan(
		&ref, &refExpires, &refRev, &key, &value, &expires, &rev)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, notFound(indexKey)
	case err != nil:
		return nil, trace.Wrap(b.readErr(ctx, err))
	}
	if len(key) != len(targetPrefix)+len(ref) || !bytes.HasPrefix(key, targetPrefix) || !bytes.Equal(key[len(targetPrefix):], ref) {
		// Not expected; answer the slow way rather than guess.
		idx, err := b.Get(ctx, indexKey)
		if err != nil {
			return nil, trace.Wrap(err)
		}
		return b.Get(ctx, append(bytes.Clone(targetPrefix), idx.Value...))
	}
	item := &backend.Item{Key: key, Value: value, Revision: formatRevision(rev)}
	if expires.Valid {
		item.Expires = decodeExpires(expires.Int64)
	}
	b.cache.offer(gen,
		cacheOffer{key: indexKey, value: ref, rev: refRev, expires: refExpires.Valid},
		cacheOffer{key: key, value: value, rev: rev, expires: expires.Valid})
	return item, nil
}

// GetRange reads live items with start <= key < end in key order.
func (b *Backend) GetRange(ctx context.Context, start, end backend.Key, limit int) (*backend.GetResult, error) {
	limit, err := backend.CheckRange(start, end, limit)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if err := b.checkOpen(); err != nil {
		return nil, trace.Wrap(err)
	}
	if end != nil && bytes.Compare(start, end) >= 0 {
		if err := ctx.Err(); err != nil {
			return nil, trace.Wrap(err)
		}
		return &backend.GetResult{}, nil
	}
	now := unixNanos(b.cfg.Clock.Now())
	hasStart, hasEnd := len(start) > 0, end != nil
	args := make([]any, 0, 4)
	shape := 0
	if hasStart {
		args, shape = append(args, []byte(start)), shape|1
	}
	if hasEnd {
		args, shape = append(args, []byte(end)), shape|2
	}
	args = append(args, now, limit)
	rows, err := b.rangeStmts[shape].QueryContext(ctx, args...)
	if err != nil {
		return nil, trace.Wrap(b.readErr(ctx, err))
	}
	defer rows.Close()
	res := &backend.GetResult{}
	for rows.Next() {
		var (
			item    backend.Item
			key     []byte
			expires sql.NullInt64
			rev     int64
		)
		if err := rows.Scan(&key, &item.Value, &expires, &rev); err != nil {
			return nil, trace.Wrap(err)
		}
		item.Key = key
		item.Revision = formatRevision(rev)
		if expires.Valid {
			item.Expires = decodeExpires(expires.Int64)
		}
		res.Items = append(res.Items, item)
	}
	if err := rows.Err(); err != nil {
		return nil, trace.Wrap(b.readErr(ctx, err))
	}
	return res, nil
}

// rangeSQL is GetRange's query for a range with or without each bound
// (the same conditions rangeWhere builds for the write path). Prepared once
// per shape (Backend.rangeStmts), so a range read does not parse SQL.
func rangeSQL(hasStart, hasEnd bool) string {
	var conds []string
	if hasStart {
		conds = append(conds, "key >= ?")
	}
	if hasEnd {
		conds = append(conds, "key < ?")
	}
	conds = append(conds, "(expires IS NULL OR expires > ?)")
	return `SELECT key, value, expires, revision FROM kv WHERE ` + strings.Join(conds, " AND ") + ` ORDER BY key LIMIT ?`
}

// readErr prefers the context's error (the driver reports an interrupted
// query in its own words) and the closed-backend error.
func (b *Backend) readErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	if b.isClosed() {
		return errClosed()
	}
	return err
}
