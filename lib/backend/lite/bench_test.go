package lite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/backend"
)

// The benchmarks share one database of benchKeys items, loaded once per
// `go test -bench` run. Each benchmark iteration performs a fixed batch of
// operations and reports throughput as ops/s, so that `make bench`
// (-benchtime 1x) gives real numbers.
const (
	benchKeys      = 100_000
	benchValueSize = 256
	benchPageSize  = 100
)

var (
	benchOnce    sync.Once
	benchBackend *Backend
	benchDir     string
	benchErr     error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if benchBackend != nil {
		benchBackend.Close()
	}
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

func benchKey(i int) backend.Key { return backend.Key(fmt.Sprintf("bench/%06d", i)) }

func benchValue(rng *rand.Rand) []byte {
	v := make([]byte, benchValueSize)
	for i := range v {
		v[i] = byte('a' + rng.IntN(26))
	}
	return v
}

// loadedBackend returns the shared database, preloading it on first use in
// one transaction through the write path (one revision, no events).
func loadedBackend(b *testing.B) *Backend {
	b.Helper()
	benchOnce.Do(func() {
		benchDir, benchErr = os.MkdirTemp("", "lite-bench-")
		if benchErr != nil {
			return
		}
		benchBackend, benchErr = New(context.Background(), Config{Path: filepath.Join(benchDir, DBFileName)})
		if benchErr != nil {
			return
		}
		rng := rand.New(rand.NewPCG(1, 2))
		benchErr = benchBackend.write(context.Background(), 0, func(ctx context.Context, t *txn) error {
			rev, err := t.revision(ctx)
			if err != nil {
				return trace.Wrap(err)
			}
			stmt, err := t.tx.PrepareContext(ctx, `INSERT INTO kv (key, value, expires, revision) VALUES (?, ?, NULL, ?)`)
			if err != nil {
				return trace.Wrap(err)
			}
			defer stmt.Close()
			for i := range benchKeys {
				if _, err := stmt.ExecContext(ctx, []byte(benchKey(i)), benchValue(rng), rev); err != nil {
					return trace.Wrap(err)
				}
			}
			return nil
		})
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchBackend
}

func reportOps(b *testing.B, perIter int) {
	b.ReportMetric(float64(b.N*perIter)/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkPut overwrites random existing keys; every Put is a durable
// (fsynced) transaction.
func BenchmarkPut(b *testing.B) {
	be := loadedBackend(b)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	const batch = 2000
	b.ResetTimer()
	for range b.N {
		for range batch {
			if _, err := be.Put(ctx, backend.Item{Key: benchKey(rng.IntN(benchKeys)), Value: benchValue(rng)}); err != nil {
				b.Fatal(err)
			}
		}
	}
	reportOps(b, batch)
}

// BenchmarkConditionalUpdate updates random keys at their known revision.
func BenchmarkConditionalUpdate(b *testing.B) {
	be := loadedBackend(b)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(5, 6))
	const batch = 2000
	keys := make([]backend.Key, batch)
	revs := make(map[string]string, batch)
	for i := range keys {
		keys[i] = benchKey(rng.IntN(benchKeys))
		it, err := be.Get(ctx, keys[i])
		if err != nil {
			b.Fatal(err)
		}
		revs[string(keys[i])] = it.Revision
	}
	b.ResetTimer()
	for range b.N {
		for _, k := range keys {
			lease, err := be.ConditionalUpdate(ctx, backend.Item{Key: k, Value: benchValue(rng), Revision: revs[string(k)]})
			if err != nil {
				b.Fatal(err)
			}
			revs[string(k)] = lease.Revision
		}
	}
	reportOps(b, batch)
}

// BenchmarkGet reads random keys from one goroutine: "sqlite" with the read
// cache off, "cached" once every key is in the read cache.
func BenchmarkGet(b *testing.B) {
	for _, cached := range []bool{false, true} {
		b.Run(cacheCase(cached), func(b *testing.B) {
			be := cacheMode(b, cached)
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(7, 8))
			const batch = 20000
			b.ResetTimer()
			for range b.N {
				for range batch {
					if _, err := be.Get(ctx, benchKey(rng.IntN(benchKeys))); err != nil {
						b.Fatal(err)
					}
				}
			}
			reportOps(b, batch)
		})
	}
}

// BenchmarkGetParallel reads random keys from 8 goroutines at once, through
// the read pool (or the cache). (RunParallel would do one operation under
// -benchtime 1x.)
func BenchmarkGetParallel(b *testing.B) {
	for _, cached := range []bool{false, true} {
		b.Run(cacheCase(cached), func(b *testing.B) {
			be := cacheMode(b, cached)
			const workers, perWorker = 8, 5000
			works := make([]func(context.Context, *rand.Rand) error, workers)
			for w := range works {
				works[w] = func(ctx context.Context, rng *rand.Rand) error {
					_, err := be.Get(ctx, benchKey(rng.IntN(benchKeys)))
					return err
				}
			}
			b.ResetTimer()
			for range b.N {
				runBenchWorkers(b, works, perWorker)
			}
			reportOps(b, workers*perWorker)
		})
	}
}

func cacheCase(cached bool) string {
	if cached {
		return "cached"
	}
	return "sqlite"
}

// cacheMode returns the shared database with its read cache off for the
// benchmark (uncached), or with every key read into it first (cached).
func cacheMode(b *testing.B, cached bool) *Backend {
	be := loadedBackend(b)
	if !cached {
		saved := be.cache
		be.cache = nil
		b.Cleanup(func() { be.cache = saved })
		return be
	}
	for i := range benchKeys {
		if _, err := be.Get(context.Background(), benchKey(i)); err != nil {
			b.Fatal(err)
		}
	}
	return be
}

// BenchmarkGetRange pages through the whole keyspace, 100 items a page;
// ops/s counts pages.
func BenchmarkGetRange(b *testing.B) {
	be := loadedBackend(b)
	ctx := context.Background()
	const pages = benchKeys / benchPageSize
	start, end := backend.Key("bench/"), backend.RangeEnd(backend.Key("bench/"))
	b.ResetTimer()
	for range b.N {
		next := start
		for range pages {
			res, err := be.GetRange(ctx, next, end, benchPageSize)
			if err != nil {
				b.Fatal(err)
			}
			if len(res.Items) != benchPageSize {
				b.Fatalf("page of %d items, want %d", len(res.Items), benchPageSize)
			}
			next = backend.NextKey(res.Items[len(res.Items)-1].Key)
		}
	}
	reportOps(b, pages)
	b.ReportMetric(float64(b.N*pages*benchPageSize)/b.Elapsed().Seconds(), "items/s")
}

// benchWriters is how many goroutines the concurrent write benchmarks run:
// the SCIM endpoint's target concurrency.
const benchWriters = 16

// BenchmarkConcurrentWriters runs benchWriters goroutines writing at once, so
// that writers queue behind each other's commits. Each goroutine works on its
// own keys, so no write fails on a conflict.
//   - put: Put of a random existing key.
//   - conditional-update: ConditionalUpdate at the revision it last wrote.
//   - atomic-create: an AtomicWrite that creates 5 new keys (NotExists), the
//     shape of one SCIM create.
func BenchmarkConcurrentWriters(b *testing.B) {
	const perWorker = 250
	for _, bc := range []struct {
		name string
		// work returns one goroutine's loop body; it is made before the
		// timer starts, so any setup reads are not counted.
		work func(be *Backend, w int) (func(ctx context.Context, rng *rand.Rand) error, error)
	}{
		{"put", func(be *Backend, w int) (func(context.Context, *rand.Rand) error, error) {
			return func(ctx context.Context, rng *rand.Rand) error {
				// Worker w owns the keys congruent to w modulo benchWriters.
				k := benchKey(rng.IntN(benchKeys/benchWriters)*benchWriters + w)
				_, err := be.Put(ctx, backend.Item{Key: k, Value: benchValue(rng)})
				return err
			}, nil
		}},
		{"conditional-update", func(be *Backend, w int) (func(context.Context, *rand.Rand) error, error) {
			k := benchKey(benchKeys - 1 - w)
			it, err := be.Get(context.Background(), k)
			if err != nil {
				return nil, err
			}
			rev := it.Revision
			return func(ctx context.Context, rng *rand.Rand) error {
				lease, err := be.ConditionalUpdate(ctx, backend.Item{Key: k, Value: benchValue(rng), Revision: rev})
				if err != nil {
					return err
				}
				rev = lease.Revision
				return nil
			}, nil
		}},
		{"atomic-create", func(be *Backend, w int) (func(context.Context, *rand.Rand) error, error) {
			return func(ctx context.Context, rng *rand.Rand) error {
				id := fmt.Sprintf("scim/%d/%d", w, benchSeq.Add(1))
				actions := make([]backend.ConditionalAction, 5)
				for i := range actions {
					actions[i] = backend.ConditionalAction{
						Key:       backend.NewKey(id, strconv.Itoa(i)),
						Condition: backend.NotExists(),
						Action:    backend.Put(backend.Item{Value: benchValue(rng)}),
					}
				}
				_, err := be.AtomicWrite(ctx, actions)
				return err
			}, nil
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.StopTimer()
			be := loadedBackend(b)
			reqs, commits := be.stats.requests.Load(), be.stats.commits.Load()
			for range b.N {
				works := make([]func(context.Context, *rand.Rand) error, benchWriters)
				for w := range works {
					var err error
					if works[w], err = bc.work(be, w); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				runBenchWorkers(b, works, perWorker)
				b.StopTimer()
			}
			reportOps(b, benchWriters*perWorker)
			// The mean batch size: how many writes shared each fsync.
			if n := be.stats.commits.Load() - commits; n > 0 {
				b.ReportMetric(float64(be.stats.requests.Load()-reqs)/float64(n), "writes/commit")
			}
		})
	}
}

// benchSeq makes the atomic-create keys unique across iterations.
var benchSeq atomic.Int64

// runBenchWorkers runs each work perWorker times, all workers at once.
func runBenchWorkers(b *testing.B, works []func(context.Context, *rand.Rand) error, perWorker int) {
	var wg sync.WaitGroup
	errs := make(chan error, len(works))
	for w, work := range works {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(11, uint64(w)))
			for range perWorker {
				if err := work(context.Background(), rng); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}
