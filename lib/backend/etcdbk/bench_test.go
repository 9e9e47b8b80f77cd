package etcdbk

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/backend/etcdbk/etcdtest"
)

// The benchmarks share one embedded single-member etcd holding
// ETCD_BENCH_KEYS (default 10,000) items of 256 bytes, and two backends on
// it: one with the read cache off ("etcd": every Get is a quorum read) and
// one with it on ("cached"). Each iteration does a fixed batch and reports
// ops/s, so that -benchtime 1x gives real numbers:
//
//	go test -run '^$' -bench . -benchtime 1x ./lib/backend/etcdbk/

const benchValueSize = 256

type benchEnv struct {
	keys         int
	off, cached  *Backend
	cacheHeapMiB float64
}

var (
	benchOnce sync.Once
	bench     *benchEnv
	benchErr  error
)

// benchTB starts the shared etcd outside any one benchmark's lifetime: its
// cleanups run when the test binary ends (TestMain), not after the first
// benchmark.
type benchTB struct {
	testing.TB
	mu       sync.Mutex
	cleanups []func()
	dirs     []string
}

func (t *benchTB) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}

func (t *benchTB) TempDir() string {
	dir, err := os.MkdirTemp("", "etcdbk-bench-")
	if err != nil {
		t.Fatal(err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.dirs = append(t.dirs, dir)
	return dir
}

func (t *benchTB) Helper() {}

func (t *benchTB) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
	for _, d := range t.dirs {
		_ = os.RemoveAll(d)
	}
}

var benchCleanup *benchTB

func TestMain(m *testing.M) {
	code := m.Run()
	if bench != nil {
		_ = bench.off.Close()
		_ = bench.cached.Close()
	}
	if benchCleanup != nil {
		benchCleanup.close()
	}
	os.Exit(code)
}

func benchKey(i int) backend.Key { return backend.Key(fmt.Sprintf("bench/%06d", i)) }

func heapMiB() float64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapAlloc) / (1 << 20)
}

// loaded returns the shared etcd and backends, loading them on first use.
func loaded(b *testing.B) *benchEnv {
	b.Helper()
	benchOnce.Do(func() {
		keys := 10_000
		if v := os.Getenv("ETCD_BENCH_KEYS"); v != "" {
			if keys, benchErr = strconv.Atoi(v); benchErr != nil {
				return
			}
		}
		benchCleanup = &benchTB{TB: b}
		endpoints := etcdtest.Start(benchCleanup, 1)
		env := &benchEnv{keys: keys}
		prefix := randomPrefix()
		ctx := context.Background()
		if env.off, benchErr = New(ctx, Config{Endpoints: endpoints, Prefix: prefix, ReadCacheSize: -1}); benchErr != nil {
			return
		}
		// Preload with 16 writers.
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		value := make([]byte, benchValueSize)
		for w := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < keys; i += 16 {
					if _, err := env.off.Put(ctx, backend.Item{Key: benchKey(i), Value: value}); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		if benchErr = <-errs; benchErr != nil {
			return
		}
		before := heapMiB()
		if env.cached, benchErr = New(ctx, Config{Endpoints: endpoints, Prefix: prefix}); benchErr != nil {
			return
		}
		deadline := time.Now().Add(time.Minute)
		for !env.cached.CacheStats().Serving || env.cached.CacheStats().Entries < int64(keys) {
			if time.Now().After(deadline) {
				benchErr = fmt.Errorf("the read cache did not load %d keys within a minute: %+v", keys, env.cached.CacheStats())
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		env.cacheHeapMiB = heapMiB() - before
		bench = env
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return bench
}

func reportOps(b *testing.B, perIter int) {
	b.ReportMetric(float64(b.N*perIter)/b.Elapsed().Seconds(), "ops/s")
}

func benchCases(env *benchEnv) []struct {
	name string
	b    *Backend
} {
	return []struct {
		name string
		b    *Backend
	}{{"etcd", env.off}, {"cached", env.cached}}
}

// BenchmarkGet reads random keys from one goroutine.
func BenchmarkGet(b *testing.B) {
	env := loaded(b)
	for _, tc := range benchCases(env) {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(7, 8))
			const batch = 2000
			b.ResetTimer()
			for range b.N {
				for range batch {
					if _, err := tc.b.Get(ctx, benchKey(rng.IntN(env.keys))); err != nil {
						b.Fatal(err)
					}
				}
			}
			reportOps(b, batch)
			if tc.b.cache != nil {
				st := tc.b.CacheStats()
				b.ReportMetric(env.cacheHeapMiB, "cache-heap-MiB")
				b.ReportMetric(float64(st.Bytes)/float64(st.Entries), "cache-B/entry")
			}
		})
	}
}

// BenchmarkGetParallel reads random keys from 8 goroutines at once.
func BenchmarkGetParallel(b *testing.B) {
	env := loaded(b)
	for _, tc := range benchCases(env) {
		b.Run(tc.name, func(b *testing.B) {
			const workers, perWorker = 8, 1000
			b.ResetTimer()
			for range b.N {
				var wg sync.WaitGroup
				for w := range workers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						rng := rand.New(rand.NewPCG(uint64(w), 9))
						for range perWorker {
							if _, err := tc.b.Get(context.Background(), benchKey(rng.IntN(env.keys))); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
			}
			reportOps(b, workers*perWorker)
		})
	}
}

// BenchmarkPutThenGet writes a key and reads it back: with the cache, the
// read waits for the watch to deliver the write (read your own writes).
// ops/s counts pairs.
func BenchmarkPutThenGet(b *testing.B) {
	env := loaded(b)
	for _, tc := range benchCases(env) {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(3, 4))
			value := make([]byte, benchValueSize)
			const batch = 200
			waits := tc.b.CacheStats().Waits
			b.ResetTimer()
			for range b.N {
				for range batch {
					k := benchKey(rng.IntN(env.keys))
					lease, err := tc.b.Put(ctx, backend.Item{Key: k, Value: value})
					if err != nil {
						b.Fatal(err)
					}
					got, err := tc.b.Get(ctx, k)
					if err != nil {
						b.Fatal(err)
					}
					if got.Revision != lease.Revision {
						b.Fatalf("read %s after writing %s", got.Revision, lease.Revision)
					}
				}
			}
			reportOps(b, batch)
			if tc.b.cache != nil {
				b.ReportMetric(float64(tc.b.CacheStats().Waits-waits)/float64(b.N*batch), "waits/get")
			}
		})
	}
}
