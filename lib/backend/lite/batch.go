package lite

import (
	"context"
	"database/sql"
	"sync/atomic"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/backend"
)

// Group commit.
//
// With synchronous=FULL every COMMIT waits for an fsync of the WAL, so one
// transaction per write caps throughput at one write per fsync however many
// callers there are. Instead, every write is a request on a queue, and one
// writer goroutine (writeLoop) runs whatever is queued as one batch: one
// BEGIN IMMEDIATE transaction, each request inside its own SAVEPOINT, one
// COMMIT and so one fsync. Writers that arrive while a batch commits form the
// next batch; a lone writer is never held back waiting for company.
//
// Every request still behaves as if it had committed alone: it gets its own
// revision (distinct, increasing in queue order), sees the effects of the
// requests before it in the batch, and a request that fails (a condition
// that does not hold, or any other error) is rolled back to its savepoint
// alone and gets its own error. Nothing is acknowledged before COMMIT
// returns, and if COMMIT fails every request of the batch fails.

const (
	// maxBatchRequests bounds the requests in one transaction, so that the
	// earliest of them does not wait on an unbounded amount of work.
	maxBatchRequests = 128
	// maxBatchBytes stops a batch from taking more requests once their keys
	// and values reach this size, for the same reason. One request may take
	// a batch over it; a request is never split.
	maxBatchBytes = 4 << 20
	// queueSize is the request queue's buffer. When it is full, writers wait
	// to enqueue, and can still give up when their context ends.
	queueSize = 1024
)

// Request states. A request leaves requestQueued exactly once, by a
// compare-and-swap: either the writer takes it into a batch, or its caller
// withdraws it (context ended, backend closed). That settles the race
// between the two without a lock.
const (
	requestQueued int32 = iota
	requestTaken
	requestWithdrawn
)

// request is one write waiting for, or running in, a batch.
type request struct {
	// ctx is the caller's context. It bounds the wait in the queue only; fn
	// runs without its cancellation (see write).
	ctx context.Context
	// size is the bytes of keys and values the request writes, as far as
	// the caller knows it (0 for deletes of unknown extent).
	size int
	// fn does the request's reads and writes inside the batch transaction.
	fn    func(ctx context.Context, t *txn) error
	state atomic.Int32
	// done receives the request's result once. It is buffered so that the
	// writer never blocks on a caller.
	done chan error
}

// take moves the request into a batch; false if its caller withdrew it.
func (r *request) take() bool { return r.state.CompareAndSwap(requestQueued, requestTaken) }

// withdraw takes the request off the queue; false if the writer already
// took it, in which case it runs to the end and done will be sent to.
func (r *request) withdraw() bool {
	return r.state.CompareAndSwap(requestQueued, requestWithdrawn)
}

// writeStats counts what the writer committed; requests/commits is the mean
// batch size. Tests and benchmarks read it.
type writeStats struct {
	commits  atomic.Uint64
	requests atomic.Uint64
}

// write runs fn as one request of a batch transaction and returns once that
// transaction has committed and its events reached the watchers. size is
// the bytes of keys and values fn writes, for the batch bound.
//
// The caller's context bounds only the wait in the queue. Once the writer has
// taken the request, it runs to completion regardless of the context: a
// COMMIT interrupted by a cancellation could land on disk yet be reported as
// failed, and a write must never be acknowledged differently from what is
// stored.
func (b *Backend) write(ctx context.Context, size int, fn func(ctx context.Context, t *txn) error) error {
	if err := ctx.Err(); err != nil {
		return trace.Wrap(err)
	}
	if b.isClosed() {
		return errClosed()
	}
	r := &request{ctx: ctx, size: size, fn: fn, done: make(chan error, 1)}
	select {
	case b.queue <- r:
	case <-ctx.Done():
		return trace.Wrap(ctx.Err())
	case <-b.closed:
		return errClosed()
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		if r.withdraw() {
			return trace.Wrap(ctx.Err())
		}
	case <-b.closed:
		// The writer stops taking requests once closed: withdraw, or the
		// caller would wait forever.
		if r.withdraw() {
			return errClosed()
		}
	}
	// Too late to withdraw: the request is in a batch, and its result is
	// what is stored.
	return <-r.done
}

// writeLoop is the single writer: it runs batch after batch until the
// backend closes. Being the only goroutine that writes, it is the writer
// lock: batches commit, and their events reach watchers, one at a time.
func (b *Backend) writeLoop() {
	defer b.loops.Done()
	for {
		batch := b.nextBatch()
		if batch == nil {
			return
		}
		b.runBatch(batch)
	}
}

// nextBatch waits for one request, then takes every request already queued,
// up to the batch bounds. It never waits for more to arrive: a lone writer
// commits at once, and batches form from the writers that queued while the
// previous batch was committing. It returns nil once the backend is closed.
func (b *Backend) nextBatch() []*request {
	var batch []*request
	size := 0
	add := func(r *request) {
		if r.take() {
			batch = append(batch, r)
			size += r.size
		}
	}
	for len(batch) == 0 {
		select {
		case r := <-b.queue:
			add(r)
		case <-b.closed:
			return nil
		}
	}
	for len(batch) < maxBatchRequests && size < maxBatchBytes {
		select {
		case r := <-b.queue:
			add(r)
		default:
			return batch
		}
	}
	return batch
}

// runBatch commits batch, hands its events to watchers, and only then
// acknowledges each request with its own result. Fanning out first keeps the
// guarantee that a write's event is in every already-registered watcher's
// buffer by the time its caller learns that it succeeded.
func (b *Backend) runBatch(batch []*request) {
	if b.isClosed() {
		ackAll(batch, errClosed())
		return
	}
	results, events, err := b.commitBatch(batch)
	if err != nil {
		ackAll(batch, err)
		return
	}
	// The cache first: a watcher that reads after an event must find at
	// least that event's state.
	b.cache.apply(events)
	b.fanOut(events)
	for i, r := range batch {
		r.done <- results[i]
	}
}

func ackAll(batch []*request, err error) {
	for _, r := range batch {
		r.done <- err
	}
}

// commitBatch runs each request of batch in its own savepoint of one
// transaction, in order, and commits once. It returns each request's own
// result and the events of the requests that succeeded, in request order.
// An error fails the whole batch: nothing was committed, or COMMIT failed
// and what reached the disk is unknown.
func (b *Backend) commitBatch(batch []*request) ([]error, []backend.Event, error) {
	tx, err := b.wdb.BeginTx(context.Background(), nil)
	if err != nil {
		return nil, nil, trace.Wrap(err, "beginning a write transaction")
	}
	st := b.wstmts.in(context.Background(), tx)
	// The revision counter is read inside the transaction, so it is what
	// the last committed batch stored, whatever happened since (a failed
	// COMMIT leaves nothing in memory to trust).
	var lastRev int64
	if err := st.readRevision.QueryRowContext(context.Background()).Scan(&lastRev); err != nil {
		b.rollback(tx)
		return nil, nil, trace.Wrap(err, "reading the revision counter")
	}
	stored := lastRev
	results := make([]error, len(batch))
	var events []backend.Event
	succeeded := 0
	for i, r := range batch {
		// A fresh txn state per request: its own revision, its own clock
		// reading, its own events (kept only if it succeeds).
		t := &txn{tx: tx, st: st, now: unixNanos(b.cfg.Clock.Now()), lastRev: &lastRev}
		before := lastRev
		var batchErr error
		results[i], batchErr = runRequest(r, t)
		if batchErr != nil {
			b.rollback(tx)
			return nil, nil, trace.Wrap(batchErr)
		}
		if results[i] == nil {
			events = append(events, t.event...)
			succeeded++
		} else {
			lastRev = before // its writes were undone, and so is its revision
		}
	}
	if succeeded == 0 {
		// Every request was undone: there is nothing to make durable.
		b.rollback(tx)
		return results, nil, nil
	}
	if lastRev != stored {
		// In the same transaction as the writes: durable with them.
		if _, err := st.setRevision.ExecContext(context.Background(), lastRev); err != nil {
			b.rollback(tx)
			return nil, nil, trace.Wrap(err, "storing the revision counter")
		}
	}
	if err := tx.Commit(); err != nil {
		b.commitFailed(err)
		return nil, nil, trace.Wrap(err, "committing a write transaction")
	}
	b.stats.commits.Add(1)
	b.stats.requests.Add(uint64(len(batch)))
	return results, events, nil
}

// runRequest runs r.fn inside its own savepoint, so that a failed request
// is undone alone while the batch goes on. It returns the request's own
// result, and a batch error if a savepoint statement failed: SQLite rolls
// the whole transaction back on some errors (I/O, disk full), and then the
// requests before this one are gone too.
func runRequest(r *request, t *txn) (result, batchErr error) {
	ctx := context.Background()
	if _, err := t.st.savepoint.ExecContext(ctx); err != nil {
		return nil, trace.Wrap(err, "opening a savepoint")
	}
	result = r.fn(context.WithoutCancel(r.ctx), t)
	if result != nil {
		if _, err := t.st.rollbackTo.ExecContext(ctx); err != nil {
			return nil, trace.Wrap(err, "undoing a failed write (which failed with: %v)", result)
		}
	}
	if _, err := t.st.release.ExecContext(ctx); err != nil {
		return nil, trace.Wrap(err, "releasing a savepoint")
	}
	return trace.Wrap(result), nil
}

// rollback ends a transaction whose changes are not kept.
func (b *Backend) rollback(tx *sql.Tx) {
	if err := tx.Rollback(); err != nil {
		b.log.Warn("Failed to roll back a write transaction.", "error", err)
	}
}

// commitFailed handles a failed COMMIT. Whether the transaction reached the
// disk is unknown (an I/O error during COMMIT), and watchers cannot be told
// which, so close them all: their consumers reload from the database instead
// of missing a change. (When SQLite leaves the transaction open after a
// failed COMMIT, the driver rolls it back, so the next batch can begin;
// TestBatchCommitFailure checks that.)
func (b *Backend) commitFailed(err error) {
	b.log.Error("Commit failed; closing every watcher so that consumers reload.", "error", err)
	b.cache.reset()
	b.closeAllWatchers()
}
