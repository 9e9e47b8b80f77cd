package lite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/gravitational/trace"
)

// The write path's hot statements. The writer goroutine runs every write, so
// its CPU bounds how fast batches go once group commit has taken the fsync
// out of the way; parsing each statement's SQL again was about a third of
// that CPU. They are prepared once on the writer's connection.
const (
	// A batch reads the revision counter once, hands out the next values in
	// memory, and stores the last one handed out with its last statement:
	// two statements per batch instead of one per request.
	sqlReadRevision = `SELECT revision FROM meta WHERE id = 1`
	sqlSetRevision  = `UPDATE meta SET revision = ? WHERE id = 1`
	sqlCurrent      = `SELECT revision FROM kv WHERE key = ? AND (expires IS NULL OR expires > ?)`
	sqlUpsert       = `INSERT INTO kv (key, value, expires, revision) VALUES (?, ?, ?, ?)
		 ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires = excluded.expires, revision = excluded.revision`
	sqlDelete = `DELETE FROM kv WHERE key = ?`

	// The conditional writes of an AtomicWrite, each one statement that
	// checks its condition itself (the row count says whether it held)
	// instead of a read of the key followed by the write: most actions of a
	// SCIM write are puts under NotExists or at a revision. An expired row
	// counts as absent, as in sqlCurrent.
	sqlInsertAbsent = `INSERT INTO kv (key, value, expires, revision) VALUES (?, ?, ?, ?)
		 ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires = excluded.expires, revision = excluded.revision
		 WHERE kv.expires IS NOT NULL AND kv.expires <= ?`
	sqlUpdateAtRevision = `UPDATE kv SET value = ?, expires = ?, revision = ?
		 WHERE key = ? AND revision = ? AND (expires IS NULL OR expires > ?)`
	sqlDeleteAtRevision = `DELETE FROM kv WHERE key = ? AND revision = ? AND (expires IS NULL OR expires > ?)`

	// The savepoint every request of a batch runs in. Savepoints nest by
	// name, and each is released before the next request opens its own, so
	// one name serves all.
	sqlSavepoint  = "SAVEPOINT request"
	sqlRollbackTo = "ROLLBACK TO request"
	sqlRelease    = "RELEASE request"
)

// writeStmts holds the prepared hot statements: on the writer's connection
// (Backend.wstmts), or bound to one batch transaction (txn.st).
type writeStmts struct {
	readRevision, setRevision      *sql.Stmt
	current, upsert, delete        *sql.Stmt
	insertAbsent, updateAtRevision *sql.Stmt
	deleteAtRevision               *sql.Stmt
	savepoint, rollbackTo, release *sql.Stmt
}

// all lists the statement fields, so that preparing, binding and closing
// cannot miss one.
func (s *writeStmts) all() []**sql.Stmt {
	return []**sql.Stmt{&s.readRevision, &s.setRevision, &s.current, &s.upsert, &s.delete,
		&s.insertAbsent, &s.updateAtRevision, &s.deleteAtRevision, &s.savepoint, &s.rollbackTo, &s.release}
}

func allSQL() []string {
	return []string{sqlReadRevision, sqlSetRevision, sqlCurrent, sqlUpsert, sqlDelete,
		sqlInsertAbsent, sqlUpdateAtRevision, sqlDeleteAtRevision, sqlSavepoint, sqlRollbackTo, sqlRelease}
}

func prepareWriteStmts(ctx context.Context, db *sql.DB) (*writeStmts, error) {
	s := &writeStmts{}
	for i, p := range s.all() {
		var err error
		if *p, err = db.PrepareContext(ctx, allSQL()[i]); err != nil {
			s.close()
			return nil, trace.Wrap(err, "preparing %q", allSQL()[i])
		}
	}
	return s, nil
}

// in binds every statement to tx. database/sql reuses the statement already
// prepared on the connection; the bound copies close with the transaction.
func (s *writeStmts) in(ctx context.Context, tx *sql.Tx) *writeStmts {
	bound := &writeStmts{}
	src := s.all()
	for i, p := range bound.all() {
		*p = tx.StmtContext(ctx, *src[i])
	}
	return bound
}

func (s *writeStmts) close() error {
	var errs []error
	for _, p := range s.all() {
		if *p != nil {
			errs = append(errs, (*p).Close())
		}
	}
	return errors.Join(errs...)
}
