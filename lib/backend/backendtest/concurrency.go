package backendtest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/backend"
)

func concurrencyTests() []testCase {
	return []testCase{
		{"NoLostUpdates", testNoLostUpdates},
		{"CreateHasOneWinner", testCreateHasOneWinner},
		{"AtomicTransfersKeepTheSum", testAtomicTransfers},
	}
}

// runWorkers runs n workers at once and returns their errors joined.
func runWorkers(n int, work func(worker int) error) error {
	var wg sync.WaitGroup
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = work(i)
		})
	}
	close(start)
	wg.Wait()
	return errors.Join(errs...)
}

// casLoop reads key and writes update(value) with ConditionalUpdate until no
// other writer got in between.
func casLoop(ctx context.Context, b backend.Backend, key backend.Key, update func(int) int) error {
	for attempt := 0; ; attempt++ {
		if attempt > 10000 {
			return fmt.Errorf("no progress on %q after %d attempts", key, attempt)
		}
		cur, err := b.Get(ctx, key)
		if err != nil {
			return trace.Wrap(err)
		}
		n, err := strconv.Atoi(string(cur.Value))
		if err != nil {
			return trace.Wrap(err)
		}
		_, err = b.ConditionalUpdate(ctx, backend.Item{Key: key, Value: []byte(strconv.Itoa(update(n))), Revision: cur.Revision})
		switch {
		case err == nil:
			return nil
		case trace.IsCompareFailed(err):
			continue
		default:
			return trace.Wrap(err)
		}
	}
}

func testNoLostUpdates(t *testing.T, f *fixture) {
	const workers, increments = 16, 50
	key := f.key("counter")
	f.put(key, "0")
	err := runWorkers(workers, func(int) error {
		for range increments {
			if err := casLoop(t.Context(), f.b, key, func(n int) int { return n + 1 }); err != nil {
				return err
			}
		}
		return nil
	})
	require.NoError(t, err)
	f.requireValue(key, strconv.Itoa(workers*increments), "")
}

func testCreateHasOneWinner(t *testing.T, f *fixture) {
	const workers = 16
	key := f.key("contended")
	var mu sync.Mutex
	var winners []string
	err := runWorkers(workers, func(worker int) error {
		value := strconv.Itoa(worker)
		_, err := f.b.Create(t.Context(), item(key, value))
		switch {
		case err == nil:
			mu.Lock()
			winners = append(winners, value)
			mu.Unlock()
			return nil
		case trace.IsAlreadyExists(err):
			return nil
		default:
			return err
		}
	})
	require.NoError(t, err)
	require.Len(t, winners, 1, "exactly one Create of the same key succeeds")
	f.requireValue(key, winners[0], "")
}

// testAtomicTransfers moves units between two accounts with AtomicWrite
// guarded by both revisions; the total never changes and every transfer
// lands.
func testAtomicTransfers(t *testing.T, f *fixture) {
	const workers, transfers, initial = 8, 25, 1000
	from, to := f.key("account", "a"), f.key("account", "b")
	f.put(from, strconv.Itoa(initial))
	f.put(to, "0")
	ctx := t.Context()
	read := func(k backend.Key) (int, string, error) {
		i, err := f.b.Get(ctx, k)
		if err != nil {
			return 0, "", err
		}
		n, err := strconv.Atoi(string(i.Value))
		return n, i.Revision, err
	}
	err := runWorkers(workers, func(int) error {
		for range transfers {
			for attempt := 0; ; attempt++ {
				if attempt > 10000 {
					return errors.New("transfer made no progress")
				}
				a, aRev, err := read(from)
				if err != nil {
					return err
				}
				b, bRev, err := read(to)
				if err != nil {
					return err
				}
				_, err = f.b.AtomicWrite(ctx, []backend.ConditionalAction{
					{Key: from, Condition: backend.Revision(aRev), Action: backend.Put(item(from, strconv.Itoa(a-1)))},
					{Key: to, Condition: backend.Revision(bRev), Action: backend.Put(item(to, strconv.Itoa(b+1)))},
				})
				if err == nil {
					break
				}
				if !trace.IsCompareFailed(err) {
					return err
				}
			}
		}
		return nil
	})
	require.NoError(t, err)
	f.requireValue(from, strconv.Itoa(initial-workers*transfers), "")
	f.requireValue(to, strconv.Itoa(workers*transfers), "")
}
