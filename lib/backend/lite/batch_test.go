package lite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/backend"
)

// blockWriter occupies the writer goroutine with a request that waits, so
// that the requests queued meanwhile form one batch. The returned release
// lets it finish and waits for its (empty) write to complete.
func blockWriter(t *testing.T, b *Backend) (release func()) {
	t.Helper()
	started, unblock := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- b.write(context.Background(), 0, func(ctx context.Context, _ *txn) error {
			close(started)
			<-unblock
			return nil
		})
	}()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("writer did not start the blocking request")
	}
	return func() {
		close(unblock)
		require.NoError(t, <-done)
	}
}

// opResult is what one queued operation returned.
type opResult struct {
	rev string
	err error
}

// queueInOrder starts each op in its own goroutine, one after the other,
// waiting each time until it is on the writer's queue, so that the queue
// (and so the batch) holds them in this order. The writer must be blocked.
// It returns a channel per op for its result.
func queueInOrder(t *testing.T, b *Backend, ops []func() (string, error)) []chan opResult {
	t.Helper()
	results := make([]chan opResult, len(ops))
	for i, op := range ops {
		want := len(b.queue) + 1
		results[i] = make(chan opResult, 1)
		go func() {
			rev, err := op()
			results[i] <- opResult{rev, err}
		}()
		deadline := time.Now().Add(10 * time.Second)
		for len(b.queue) < want {
			require.True(t, time.Now().Before(deadline), "op %d never queued", i)
			time.Sleep(time.Millisecond)
		}
	}
	return results
}

func await(t *testing.T, ch chan opResult) opResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("write did not return")
		return opResult{}
	}
}

// TestBatchIsolation queues writes that succeed and fail, in a known order,
// into one batch, and checks that each gets exactly the result it would get
// alone, that failed ones leave no trace (data, revision or event), that
// successful ones get distinct revisions in queue order, and that watchers
// hold every event, in order, by the time the writes return.
func TestBatchIsolation(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := newTestBackend(t, filepath.Join(t.TempDir(), "gatehouse.db"), nil)
	defer b.Close()
	k := func(s string) backend.Key { return backend.Key(s) }
	v := []byte("v")

	base, err := b.Put(ctx, backend.Item{Key: k("exists"), Value: []byte("0")})
	require.NoError(t, err)
	w, err := b.NewWatcher(ctx, backend.Watch{})
	require.NoError(t, err)
	requireEvent(t, w, backend.OpInit, "")

	lease := func(l *backend.Lease, err error) (string, error) {
		if err != nil {
			return "", err
		}
		return l.Revision, nil
	}
	errBroken := errors.New("request failed half-way")
	ops := []func() (string, error){
		0: func() (string, error) { return lease(b.Create(ctx, backend.Item{Key: k("a"), Value: v})) },
		1: func() (string, error) { return lease(b.Create(ctx, backend.Item{Key: k("a"), Value: v})) },
		2: func() (string, error) {
			return lease(b.ConditionalUpdate(ctx, backend.Item{Key: k("exists"), Value: []byte("1"), Revision: base.Revision}))
		},
		3: func() (string, error) {
			return lease(b.ConditionalUpdate(ctx, backend.Item{Key: k("exists"), Value: []byte("2"), Revision: base.Revision}))
		},
		4: func() (string, error) { return lease(b.Update(ctx, backend.Item{Key: k("missing"), Value: v})) },
		5: func() (string, error) {
			return b.AtomicWrite(ctx, []backend.ConditionalAction{
				{Key: k("b"), Condition: backend.NotExists(), Action: backend.Put(backend.Item{Value: v})},
				{Key: k("a"), Condition: backend.NotExists(), Action: backend.Put(backend.Item{Value: v})},
			})
		},
		6: func() (string, error) { return lease(b.Put(ctx, backend.Item{Key: k("c"), Value: v})) },
		7: func() (string, error) { return "", b.Delete(ctx, k("a")) },
		8: func() (string, error) { return "", b.Delete(ctx, k("a")) },
		// Writes, then fails: its write must be undone, alone.
		9: func() (string, error) {
			return "", b.write(ctx, 1, func(ctx context.Context, t *txn) error {
				if _, err := t.put(ctx, k("e"), v, time.Time{}); err != nil {
					return err
				}
				return errBroken
			})
		},
		10: func() (string, error) {
			return b.AtomicWrite(ctx, []backend.ConditionalAction{
				{Key: k("b"), Condition: backend.NotExists(), Action: backend.Put(backend.Item{Value: v})},
				{Key: k("d"), Condition: backend.Whatever(), Action: backend.Put(backend.Item{Value: v})},
			})
		},
	}

	release := blockWriter(t, b)
	commits := b.stats.commits.Load()
	pending := queueInOrder(t, b, ops)
	release()
	res := make([]opResult, len(ops))
	for i := range pending {
		res[i] = await(t, pending[i])
	}
	require.Equal(t, commits+2, b.stats.commits.Load(), "the blocking write and one batch")

	for i, check := range map[int]func(error) bool{
		1: trace.IsAlreadyExists, 3: trace.IsCompareFailed, 4: trace.IsNotFound,
		5: trace.IsCompareFailed, 8: trace.IsNotFound,
		9: func(err error) bool { return errors.Is(err, errBroken) },
	} {
		require.True(t, check(res[i].err), "op %d: %v", i, res[i].err)
	}
	// The successful writes that make a revision, in queue order; failed
	// requests give their revision back, so these are consecutive.
	prev, err := strconv.ParseInt(base.Revision, 10, 64)
	require.NoError(t, err)
	for _, i := range []int{0, 2, 6, 10} {
		require.NoError(t, res[i].err, "op %d", i)
		rev, err := strconv.ParseInt(res[i].rev, 10, 64)
		require.NoError(t, err)
		require.Equal(t, prev+1, rev, "op %d", i)
		prev = rev
	}
	require.NoError(t, res[7].err)

	want := map[string]string{"exists": res[2].rev, "b": res[10].rev, "c": res[6].rev, "d": res[10].rev}
	got, err := b.GetRange(ctx, nil, nil, 0)
	require.NoError(t, err)
	stored := map[string]string{}
	for _, it := range got.Items {
		stored[string(it.Key)] = it.Revision
	}
	require.Equal(t, want, stored)

	// Every event is already in the watcher's buffer: fanned out before the
	// writes returned. Failed requests produced none.
	var events []string
	for len(w.Events()) > 0 {
		ev := <-w.Events()
		events = append(events, ev.Type.String()+" "+string(ev.Item.Key))
	}
	require.Equal(t, []string{"put a", "put exists", "put c", "delete a", "put b", "put d"}, events)
}

// TestBatchBounds checks that a batch stops at maxBatchRequests requests or
// once it holds maxBatchBytes, and that what is left forms the next batch.
func TestBatchBounds(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", backend.MaxValueSize)
	for _, tc := range []struct {
		name    string
		n       int
		value   string
		batches uint64
	}{
		{"by count", maxBatchRequests + 2, "v", 2},
		{"by bytes", maxBatchBytes/backend.MaxValueSize + 1, big, 2},
		{"all fit", 10, "v", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			b := newTestBackend(t, filepath.Join(t.TempDir(), "gatehouse.db"), nil)
			defer b.Close()
			ops := make([]func() (string, error), tc.n)
			for i := range ops {
				ops[i] = func() (string, error) {
					l, err := b.Put(ctx, backend.Item{Key: backend.Key(fmt.Sprint(i)), Value: []byte(tc.value)})
					if err != nil {
						return "", err
					}
					return l.Revision, nil
				}
			}
			release := blockWriter(t, b)
			commits := b.stats.commits.Load()
			pending := queueInOrder(t, b, ops)
			release()
			prev := int64(0)
			for i := range pending {
				r := await(t, pending[i])
				require.NoError(t, r.err)
				rev, err := strconv.ParseInt(r.rev, 10, 64)
				require.NoError(t, err)
				require.Greater(t, rev, prev, "revisions follow queue order")
				prev = rev
			}
			require.Equal(t, commits+1+tc.batches, b.stats.commits.Load())
		})
	}
}

// TestBatchRunsToTheEnd checks that a write already in a batch is carried
// out, and reported as done, even if its context ends meanwhile.
func TestBatchRunsToTheEnd(t *testing.T) {
	t.Parallel()
	b := newTestBackend(t, filepath.Join(t.TempDir(), "gatehouse.db"), nil)
	defer b.Close()
	ctx, cancel := context.WithCancel(t.Context())
	running, unblock := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- b.write(ctx, 1, func(ctx context.Context, t *txn) error {
			close(running)
			<-unblock
			_, err := t.put(ctx, backend.Key("k"), []byte("v"), time.Time{})
			return err
		})
	}()
	<-running
	cancel()
	close(unblock)
	require.NoError(t, <-done)
	_, err := b.Get(t.Context(), backend.Key("k"))
	require.NoError(t, err)
}

// TestBatchCommitFailure makes COMMIT itself fail (a deferred foreign key
// violated in a scratch table) and checks that every request of the batch
// fails, none of its writes is stored, watchers are closed, and the next
// write works.
func TestBatchCommitFailure(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := newTestBackend(t, filepath.Join(t.TempDir(), "gatehouse.db"), nil)
	defer b.Close()
	// The writer's one connection; it is idle, so these run on it.
	for _, stmt := range []string{
		`PRAGMA foreign_keys = ON`,
		`CREATE TEMP TABLE parent (id INTEGER PRIMARY KEY)`,
		`CREATE TEMP TABLE child (p INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)`,
	} {
		_, err := b.wdb.ExecContext(ctx, stmt)
		require.NoError(t, err, stmt)
	}
	w, err := b.NewWatcher(ctx, backend.Watch{})
	require.NoError(t, err)

	put := func(key string) func() (string, error) {
		return func() (string, error) {
			_, err := b.Put(ctx, backend.Item{Key: backend.Key(key), Value: []byte("v")})
			return "", err
		}
	}
	ops := []func() (string, error){
		put("x"),
		// Succeeds on its own; only COMMIT checks the deferred key.
		func() (string, error) {
			return "", b.write(ctx, 0, func(ctx context.Context, t *txn) error {
				_, err := t.tx.ExecContext(ctx, `INSERT INTO child (p) VALUES (1)`)
				return err
			})
		},
		put("y"),
	}
	release := blockWriter(t, b)
	pending := queueInOrder(t, b, ops)
	release()
	for i := range pending {
		r := await(t, pending[i])
		require.ErrorContains(t, r.err, "commit", "op %d", i)
	}
	select {
	case <-w.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("watchers not closed after a failed commit")
	}
	for _, k := range []string{"x", "y"} {
		_, err := b.Get(ctx, backend.Key(k))
		require.True(t, trace.IsNotFound(err), "%s: %v", k, err)
	}
	_, err = b.Put(ctx, backend.Item{Key: backend.Key("z"), Value: []byte("v")})
	require.NoError(t, err, "the writer recovers")
}
