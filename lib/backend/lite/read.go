package lite

import (
	"bytes"
	"context"
	"database/sql"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/backend"
)

func (b *Backend) checkOpen() error {
	if b.isClosed() {
		return errClosed()
	}
	return nil
}

// Get reads one live item; trace.NotFound if it is missing or expired.
func (b *Backend) Get(ctx context.Context, key backend.Key) (*backend.Item, error) {
	if err := backend.CheckKey(key); err != nil {
		return nil, trace.Wrap(err)
	}
	if err := b.checkOpen(); err != nil {
		return nil, trace.Wrap(err)
	}
	now := unixNanos(b.cfg.Clock.Now())
	var (
		value   []byte
		expires sql.NullInt64
		rev     int64
	)
	err := b.getStmt.QueryRowContext(ctx, []byte(key), now).Scan(&value, &expires, &rev)
	switch {
	case err == sql.ErrNoRows:
		return nil, trace.NotFound("key %q is not found", key)
	case err != nil:
		return nil, trace.Wrap(b.readErr(ctx, err))
	}
	item := &backend.Item{Key: bytes.Clone(key), Value: value, Revision: formatRevision(rev)}
	if expires.Valid {
		item.Expires = decodeExpires(expires.Int64)
	}
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
	where, args := rangeWhere(start, end)
	if where == "" {
		where = " WHERE (expires IS NULL OR expires > ?)"
	} else {
		where += " AND (expires IS NULL OR expires > ?)"
	}
	args = append(args, now, limit)
	rows, err := b.rdb.QueryContext(ctx,
		`SELECT key, value, expires, revision FROM kv`+where+` ORDER BY key LIMIT ?`, args...)
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
