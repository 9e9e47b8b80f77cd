package integration

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/backend/etcdbk/etcdtest"
)

// BenchmarkSCIMLoad is `make bench`'s SCIM load test: a real gatehouse on SQLite, over HTTPS,
// preloaded with SCIM_BENCH_USERS (default 100,000) users through the SCIM API itself. It reports
// creates/s (the preload), userName-filter lookups/s with p50/p99 at concurrency 16,
// deactivations/s, and the server's resident memory. Run it once: -benchtime 1x.
//
//	go test -run '^$' -bench BenchmarkSCIMLoad -benchtime 1x -timeout 30m ./integration/
func BenchmarkSCIMLoad(b *testing.B) {
	scimLoad(b, "SQLite", envInt(b, "SCIM_BENCH_USERS", 100_000), "--storage", "sqlite")
}

// loadResult is what one scimLoad run measured.
type loadResult struct {
	users                            int
	createRate, lookupRate, deacRate float64
	createP99, lookupP99             time.Duration
	cpuCreate, cpuLookup, cpuDeac    time.Duration // server CPU per operation
	rssLoadedMiB, rssEndMiB          float64       // server RSS after the preload, at the end
	dataDirMB                        float64
}

// BenchmarkSCIMLoadEtcd is BenchmarkSCIMLoad on etcd: the same harness against a gatehouse whose
// storage is a single-member etcd embedded in the benchmark process (so the machine's cores are
// shared by etcd, gatehouse and the client), preloaded with SCIM_BENCH_ETCD_USERS (default
// 10,000) users.
//
//	go test -run '^$' -bench BenchmarkSCIMLoadEtcd -benchtime 1x -timeout 30m ./integration/
func BenchmarkSCIMLoadEtcd(b *testing.B) {
	endpoints := etcdtest.Start(b, 1)
	scimLoad(b, "etcd (1 member, embedded)", envInt(b, "SCIM_BENCH_ETCD_USERS", 10_000), haEtcdArgs(endpoints)...)
}

// scimLoad runs the SCIM load on a gatehouse started with storageArgs.
func scimLoad(b *testing.B, storage string, users int, storageArgs ...string) loadResult {
	createConc := envInt(b, "SCIM_BENCH_CREATE_CONCURRENCY", 32)
	lookupDur := time.Duration(envInt(b, "SCIM_BENCH_LOOKUP_SECONDS", 20)) * time.Second
	deactivations := min(users, envInt(b, "SCIM_BENCH_DEACTIVATIONS", 5_000))
	const lookupConc = 16

	gatehouseBin, gatectlBin := buildBinaries(b)
	dataDir, work := b.TempDir(), b.TempDir()
	logs := &syncBuffer{}
	args := append(slices.Clone(storageArgs), "--log-level", "warn")
	// Extra server flags, e.g. SCIM_BENCH_SERVER_ARGS="--diag-addr 127.0.0.1:3000" for /metrics.
	args = append(args, strings.Fields(os.Getenv("SCIM_BENCH_SERVER_ARGS"))...)
	profDir := os.Getenv("SCIM_BENCH_PROFILE_DIR")
	if profDir != "" {
		args = append(args, "--diag-addr", "127.0.0.1:0", "--diag-pprof")
	}
	srv := startGatehouse(b, gatehouseBin, dataDir, logs, args...)
	prof := newPhaseProfiler(b, profDir, logs)
	admin, _ := gatectlOn(b, gatectlBin, dataDir)
	token := installOkta(b, admin, work)
	c := newSCIMClient(b, srv, "okta", token, 64)
	pid := srv.cmd.Process.Pid
	rssStart := procStatusKB(b, pid, "VmRSS")

	var throttled atomic.Int64
	b.ResetTimer()
	cpu0 := procCPU(b, pid)
	io0 := readProcIO(b, pid)

	// Preload through POST /Users: creates per second.
	ids := make([]string, users)
	prof.start("create")
	start := time.Now()
	createLat := runParallel(b, createConc, users, func(i int) error {
		r, err := c.try(http.MethodPost, "/Users", oktaUser(benchUser(i), "00u"+strconv.Itoa(i)))
		if err != nil {
			return err
		}
		if r.status == http.StatusTooManyRequests {
			throttled.Add(1)
		}
		if r.status != http.StatusCreated {
			return fmt.Errorf("create %d: %d %s", i, r.status, r.raw)
		}
		ids[i], _ = r.body["id"].(string)
		return nil
	})
	createSecs := time.Since(start).Seconds()
	prof.wait()
	cpu1 := procCPU(b, pid)
	io1 := readProcIO(b, pid)
	rssLoaded := procStatusKB(b, pid, "VmRSS")
	prof.heap("heap-after-preload")

	// Lookups: Okta's lookup-before-create filter on random users, concurrency 16, fixed duration.
	prof.start("lookup")
	start = time.Now()
	lookups := runLookups(b, []*scimClient{c}, users, lookupConc, lookupDur, 42, &throttled)
	lookupSecs := time.Since(start).Seconds()
	prof.wait()
	cpu2 := procCPU(b, pid)
	io2 := readProcIO(b, pid)
	rssLookups := procStatusKB(b, pid, "VmRSS")

	// Deactivations: Okta's PATCH active:false, concurrency 16.
	start = time.Now()
	deactivate := patchBody(map[string]any{"op": "replace", "value": map[string]any{"active": false}})
	prof.start("deactivate")
	deactLat := runParallel(b, lookupConc, deactivations, func(i int) error {
		r, err := c.try(http.MethodPatch, "/Users/"+ids[i], deactivate)
		if err != nil {
			return err
		}
		if r.status == http.StatusTooManyRequests {
			throttled.Add(1)
		}
		if r.status != http.StatusOK || r.body["active"] != false {
			return fmt.Errorf("deactivate %d: %d %s", i, r.status, r.raw)
		}
		return nil
	})
	deactSecs := time.Since(start).Seconds()
	prof.wait()
	cpu3 := procCPU(b, pid)
	io3 := readProcIO(b, pid)
	b.StopTimer()

	rssEnd := procStatusKB(b, pid, "VmRSS")
	hwm := procStatusKB(b, pid, "VmHWM")
	dbSize := dirSizeMB(dataDir)
	require.NoError(b, srv.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-srv.done:
		require.NoError(b, err, "gatehouse should exit 0 on SIGTERM")
	case <-time.After(30 * time.Second):
		b.Fatal("gatehouse did not stop on SIGTERM")
	}
	require.Zero(b, throttled.Load(), "the default rate limit must never throttle the benchmark")
	if keep := os.Getenv("SCIM_BENCH_KEEP_DATA_DIR"); keep != "" {
		// For a look at what is stored per user (sqlite3 keep/backend/gatehouse.db).
		out, err := exec.Command("cp", "-r", dataDir, keep).CombinedOutput()
		require.NoError(b, err, "copying the data dir: %s", out)
	}

	createRate := float64(users) / createSecs
	lookupRate := float64(len(lookups)) / lookupSecs
	deactRate := float64(deactivations) / deactSecs
	b.ReportMetric(createRate, "creates/s")
	b.ReportMetric(lookupRate, "lookups/s")
	b.ReportMetric(ms(percentile(lookups, 0.99)), "lookup-p99-ms")
	b.ReportMetric(deactRate, "deactivations/s")
	b.ReportMetric(float64(rssEnd)/1024, "rss-MiB")
	table := fmt.Sprintf(`
SCIM load on %s over HTTPS, %d users
| measure | value |
| --- | --- |
| creates/s (POST /Users, concurrency %d) | %.0f (p50 %.1f ms, p99 %.1f ms; server CPU %.3f ms/create) |
| filter lookups/s (userName eq, concurrency %d, %s) | %.0f (%d lookups; server CPU %.3f ms/lookup) |
| lookup latency p50 / p99 / max | %.2f / %.2f / %.2f ms |
| deactivations/s (PATCH active:false, concurrency %d, %d users) | %.0f (p50 %.1f ms, p99 %.1f ms; server CPU %.3f ms/deactivation) |
| server writes per create / deactivation (write syscalls, KB; WAL and TLS) | %.1f, %.1f KB / %.1f, %.1f KB |
| machine load average at the end (2 cores, shared) | %s |
| server RSS: start / after preload / after lookups / end / peak (VmHWM) | %d / %d / %d / %d / %d MiB |
| data dir size | %.0f MB (%.2f KB per user) |
`, storage, users, createConc, createRate, ms(percentile(createLat, .5)), ms(percentile(createLat, .99)), ms(cpu1-cpu0)/float64(users),
		lookupConc, lookupDur, lookupRate, len(lookups), ms(cpu2-cpu1)/float64(max(1, len(lookups))),
		ms(percentile(lookups, .5)), ms(percentile(lookups, .99)), ms(percentile(lookups, 1)),
		lookupConc, deactivations, deactRate, ms(percentile(deactLat, .5)), ms(percentile(deactLat, .99)), ms(cpu3-cpu2)/float64(max(1, deactivations)),
		io1.perOp(io0, users).syscw, io1.perOp(io0, users).wchar/1000, io3.perOp(io2, deactivations).syscw, io3.perOp(io2, deactivations).wchar/1000,
		loadAvg(),
		rssStart/1024, rssLoaded/1024, rssLookups/1024, rssEnd/1024, hwm/1024, dbSize, dbSize*1000/float64(users))
	b.Log(table)
	fmt.Fprintln(os.Stderr, table)
	return loadResult{
		users:      users,
		createRate: createRate, lookupRate: lookupRate, deacRate: deactRate,
		createP99: percentile(createLat, .99), lookupP99: percentile(lookups, .99),
		cpuCreate:    (cpu1 - cpu0) / time.Duration(users),
		cpuLookup:    (cpu2 - cpu1) / time.Duration(max(1, len(lookups))),
		cpuDeac:      (cpu3 - cpu2) / time.Duration(max(1, deactivations)),
		rssLoadedMiB: float64(rssLoaded) / 1024, rssEndMiB: float64(rssEnd) / 1024,
		dataDirMB: dbSize,
	}
}

// runLookups is the load's lookup phase: Okta's userName filter on random users from conc
// workers for dur, worker w on clients[w % len(clients)] with random seed (w, seed), each answer
// checked to hold the one user. It returns each lookup's latency; answers of 429 (which also
// fail the check) are counted in throttled.
func runLookups(b *testing.B, clients []*scimClient, users, conc int, dur time.Duration, seed uint64, throttled *atomic.Int64) []time.Duration {
	b.Helper()
	var (
		lookups []time.Duration
		mu      sync.Mutex
		wg      sync.WaitGroup
		failed  atomic.Value
	)
	deadline := time.Now().Add(dur)
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := clients[w%len(clients)]
			rng := rand.New(rand.NewPCG(uint64(w), seed))
			var local []time.Duration
			for time.Now().Before(deadline) {
				i := rng.IntN(users)
				q := "/Users?" + filterQuery(`userName eq "`+benchUser(i)+`"`) + "&startIndex=1&count=100"
				t0 := time.Now()
				r, err := c.try(http.MethodGet, q, nil)
				local = append(local, time.Since(t0))
				if err == nil && r.status == http.StatusTooManyRequests {
					throttled.Add(1)
				}
				if err == nil && (r.status != http.StatusOK || r.body["totalResults"] != 1.0) {
					err = fmt.Errorf("lookup %d: %d %s", i, r.status, r.raw)
				}
				if err != nil {
					failed.Store(err)
					return
				}
			}
			mu.Lock()
			lookups = append(lookups, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	return lookups
}

func benchUser(i int) string { return fmt.Sprintf("user%06d@example.com", i) }

// runParallel runs n jobs on conc workers, failing the benchmark on the first error, and returns
// each job's latency.
func runParallel(b *testing.B, conc, n int, job func(i int) error) []time.Duration {
	b.Helper()
	var next atomic.Int64
	lat := make([]time.Duration, n)
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || firstErr.Load() != nil {
					return
				}
				t0 := time.Now()
				if err := job(i); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		b.Fatal(err)
	}
	return lat
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(p*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// procStatusKB reads a kB field (VmRSS, VmHWM) of /proc/<pid>/status.
func procStatusKB(b *testing.B, pid int, field string) int {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(b, err)
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			require.NoError(b, err)
			return n
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

func dirSizeMB(dir string) float64 {
	var total int64
	_ = filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			total += info.Size()
		}
		return nil
	})
	return float64(total) / 1e6
}

// procCPU returns the user+system CPU time the process has used (/proc/<pid>/stat, clock ticks
// of 10 ms on Linux).
func procCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	require.NoError(b, err)
	// Fields after the ")" that ends the command name; utime and stime are fields 14 and 15.
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	utime, err := strconv.ParseInt(fields[11], 10, 64)
	require.NoError(b, err)
	stime, err := strconv.ParseInt(fields[12], 10, 64)
	require.NoError(b, err)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// procIO is the part of /proc/<pid>/io the benchmark reports: write
// syscalls and the bytes they wrote, to files and sockets alike. Unlike CPU
// time it hardly moves with the machine's load, so it shows a change in how
// many pages a write dirties (each WAL frame is two write syscalls) even on a
// busy machine.
type procIO struct{ syscw, wchar float64 }

func readProcIO(b *testing.B, pid int) procIO {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	require.NoError(b, err)
	var io procIO
	for _, line := range strings.Split(string(data), "\n") {
		name, value, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		n, err := strconv.ParseFloat(value, 64)
		require.NoError(b, err)
		switch name {
		case "syscw":
			io.syscw = n
		case "wchar":
			io.wchar = n
		}
	}
	return io
}

// perOp is the difference from an earlier reading, per operation.
func (io procIO) perOp(earlier procIO, ops int) procIO {
	n := float64(max(1, ops))
	return procIO{syscw: (io.syscw - earlier.syscw) / n, wchar: (io.wchar - earlier.wchar) / n}
}

func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(data))[:3], " ")
}

func envInt(b *testing.B, name string, def int) int {
	b.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	require.NoError(b, err, name)
	return n
}
