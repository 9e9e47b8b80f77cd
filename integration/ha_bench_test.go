package integration

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/lib/backend/etcdbk/etcdtest"
)

// BenchmarkHADeprovisionLatency measures the cross-server deprovision-to-disconnect latency: two
// gatehouse servers on a three-member etcd embedded in the benchmark process,
// HA_BENCH_SESSIONS (default 100) SCIM users each with a live SSH session on server B's node,
// then, one user at a time, Okta's deactivation (PATCH active:false) sent to server A; the
// latency is from sending the PATCH (and from its answer) to the SSH client seeing its session
// end. It reports p50 and p99. HA_BENCH_SERVER_ARGS adds server flags (for example
// "--config off.yaml" with storage.read_cache_mb: 0, to compare without the read cache).
//
//	go test -run '^$' -bench BenchmarkHADeprovisionLatency -benchtime 1x -timeout 30m ./integration/
func BenchmarkHADeprovisionLatency(b *testing.B) {
	n := envInt(b, "HA_BENCH_SESSIONS", 100)
	gatehouseBin, gatectlBin := buildBinaries(b)
	cluster := etcdtest.StartCluster(b, 3)
	dirA, dirB, work := b.TempDir(), b.TempDir(), b.TempDir()
	args := append(haEtcdArgs(cluster.Endpoints()), "--log-level", "warn")
	args = append(args, strings.Fields(os.Getenv("HA_BENCH_SERVER_ARGS"))...)
	srvA := haLaunch(b, gatehouseBin, dirA, &syncBuffer{}, args...)
	srvB := haLaunch(b, gatehouseBin, dirB, &syncBuffer{}, args...)
	haWaitReady(b, srvA)
	haWaitReady(b, srvB)
	adminA := func(args ...string) result {
		return runCmd(b, gatectlBin, append([]string{"--data-dir", dirA}, args...)...)
	}
	token := haSetupOkta(b, adminA, work)
	scimA := newSCIMClient(b, srvA, "okta", token, 4)
	addrB, login := haSSHAddr(b, srvB), haLogin(b)

	ids := make([]string, n)
	signers := make([]ssh.Signer, n)
	for i := range n {
		name := fmt.Sprintf("dep%04d@example.com", i)
		r := scimA.do(http.MethodPost, "/Users", oktaUser(name, "00udep"+strconv.Itoa(i))).expect(b, http.StatusCreated)
		ids[i] = r.body["id"].(string)
		signers[i] = haSigner(b, adminA, work, name)
	}
	sessions := make([]*haSession, n)
	for i := range n {
		s, err := haStartSession(addrB, login, signers[i])
		require.NoError(b, err)
		sessions[i] = s
	}

	deactivate := patchBody(map[string]any{"op": "replace", "value": map[string]any{"active": false}})
	fromRequest := make([]time.Duration, n)
	fromAnswer := make([]time.Duration, n)
	patch := make([]time.Duration, n)
	b.ResetTimer()
	for i := range n {
		sent := time.Now()
		scimA.do(http.MethodPatch, "/Users/"+ids[i], deactivate).expect(b, http.StatusOK)
		answered := time.Now()
		select {
		case <-sessions[i].done:
		case <-time.After(10 * time.Second):
			b.Fatalf("session %d outlived its deactivation by 10s", i)
		}
		fromRequest[i] = sessions[i].ended.Sub(sent)
		fromAnswer[i] = sessions[i].ended.Sub(answered)
		patch[i] = answered.Sub(sent)
	}
	b.StopTimer()
	b.ReportMetric(ms(percentile(fromRequest, .5)), "disconnect-p50-ms")
	b.ReportMetric(ms(percentile(fromRequest, .99)), "disconnect-p99-ms")
	table := fmt.Sprintf(`
Cross-server deprovision-to-disconnect, 2 servers on a 3-member etcd, %d SSH sessions on B, PATCH active:false to A
| measure | p50 | p99 | max |
| --- | --- | --- | --- |
| PATCH sent on A to SSH session ended on B | %.1f ms | %.1f ms | %.1f ms |
| PATCH answered by A to SSH session ended on B | %.1f ms | %.1f ms | %.1f ms |
| PATCH round trip on A | %.1f ms | %.1f ms | %.1f ms |
| machine load average at the end (2 cores, shared) | %s | | |
`, n,
		ms(percentile(fromRequest, .5)), ms(percentile(fromRequest, .99)), ms(percentile(fromRequest, 1)),
		ms(percentile(fromAnswer, .5)), ms(percentile(fromAnswer, .99)), ms(percentile(fromAnswer, 1)),
		ms(percentile(patch, .5)), ms(percentile(patch, .99)), ms(percentile(patch, 1)),
		loadAvg())
	b.Log(table)
	fmt.Fprintln(os.Stderr, table)
}

// BenchmarkHALookups measures, in one run, what the etcd read cache is for: Okta's lookup
// (`userName eq`, random users, concurrency 16 over HTTPS) per second against
//
//   - one gatehouse on SQLite (the reference),
//   - one gatehouse on etcd,
//   - two gatehouses on the same etcd, the client's workers split between them,
//   - one gatehouse on the same etcd with its read cache off (storage.read_cache_mb: 0),
//
// each store preloaded with HA_BENCH_USERS (default 10,000) users through SCIM, for
// HA_BENCH_LOOKUP_SECONDS (default 15) each. etcd is one member embedded in the benchmark
// process. It reports each rate, etcd's ratio to SQLite, two etcd servers' ratio to one, and
// each server's CPU per lookup. The client shares the machine's cores with every server, so
// on a small machine the two-server ratio is bounded by the CPU left, not by etcd.
// HA_BENCH_PROFILE_DIR=/tmp/prof writes a CPU profile of the SQLite server and of the single
// etcd server during their lookup phases (sqlite-lookups.pprof, etcd-lookups.pprof; see
// phaseProfiler).
//
//	go test -run '^$' -bench BenchmarkHALookups -benchtime 1x -timeout 30m ./integration/
func BenchmarkHALookups(b *testing.B) {
	users := envInt(b, "HA_BENCH_USERS", 10_000)
	dur := time.Duration(envInt(b, "HA_BENCH_LOOKUP_SECONDS", 15)) * time.Second
	profDir := os.Getenv("HA_BENCH_PROFILE_DIR")
	var profArgs []string
	if profDir != "" {
		profArgs = []string{"--diag-addr", "127.0.0.1:0", "--diag-pprof"}
	}
	gatehouseBin, gatectlBin := buildBinaries(b)
	b.ResetTimer()

	// SQLite, then stopped so that it takes no CPU from the etcd runs.
	dirS, work := b.TempDir(), b.TempDir()
	logsS := &syncBuffer{}
	srvS := startGatehouse(b, gatehouseBin, dirS, logsS, append([]string{"--storage", "sqlite", "--log-level", "warn"}, profArgs...)...)
	adminS, _ := gatectlOn(b, gatectlBin, dirS)
	scimS := newSCIMClient(b, srvS, "okta", installOkta(b, adminS, work), 64)
	haPreload(b, scimS, users)
	profS := newPhaseProfiler(b, profDir, logsS)
	profS.start("sqlite-lookups")
	sqlite := haLookups(b, []*scimClient{scimS}, []*server{srvS}, users, dur)
	profS.wait()
	haStop(b, srvS)

	endpoints := etcdtest.Start(b, 1)
	args := append(haEtcdArgs(endpoints), "--log-level", "warn")
	dirA, dirB, dirC := b.TempDir(), b.TempDir(), b.TempDir()
	logsA := &syncBuffer{}
	srvA := haLaunch(b, gatehouseBin, dirA, logsA, append(slices.Clone(args), profArgs...)...)
	haWaitReady(b, srvA)
	srvB := haLaunch(b, gatehouseBin, dirB, &syncBuffer{}, args...)
	haWaitReady(b, srvB)
	adminA := func(args ...string) result {
		return runCmd(b, gatectlBin, append([]string{"--data-dir", dirA}, args...)...)
	}
	token := haSetupOkta(b, adminA, work)
	scimA := newSCIMClient(b, srvA, "okta", token, 64)
	scimB := newSCIMClient(b, srvB, "okta", token, 64)
	haPreload(b, scimA, users)
	profA := newPhaseProfiler(b, profDir, logsA)
	profA.start("etcd-lookups")
	one := haLookups(b, []*scimClient{scimA}, []*server{srvA}, users, dur)
	profA.wait()
	two := haLookups(b, []*scimClient{scimA, scimB}, []*server{srvA, srvB}, users, dur)
	haStop(b, srvA)
	haStop(b, srvB)

	noCache := filepath.Join(work, "no-cache.yaml")
	require.NoError(b, os.WriteFile(noCache, []byte("storage:\n  read_cache_mb: 0\n"), 0o600))
	srvC := haLaunch(b, gatehouseBin, dirC, &syncBuffer{}, append(args, "--config", noCache)...)
	haWaitReady(b, srvC)
	off := haLookups(b, []*scimClient{newSCIMClient(b, srvC, "okta", token, 64)}, []*server{srvC}, users, dur)
	haStop(b, srvC)
	b.StopTimer()

	b.ReportMetric(sqlite.rate, "sqlite-lookups/s")
	b.ReportMetric(one.rate, "etcd-lookups/s")
	b.ReportMetric(two.rate, "etcd-2-servers-lookups/s")
	b.ReportMetric(off.rate, "etcd-no-cache-lookups/s")
	b.ReportMetric(one.rate/sqlite.rate, "etcd/sqlite")
	b.ReportMetric(two.rate/one.rate, "2-servers/1")
	row := func(name string, r haLookupResult) string {
		return fmt.Sprintf("| %s | %.0f | %.2f / %.2f ms | %s |", name, r.rate, ms(percentile(r.lat, .5)), ms(percentile(r.lat, .99)), r.cpu)
	}
	table := fmt.Sprintf(`
Lookups (userName eq, concurrency 16, %s each), %d users, etcd: 1 embedded member
| setup | lookups/s | p50 / p99 | server CPU per lookup |
| --- | --- | --- | --- |
%s
%s
%s
%s
| etcd (1 server) / SQLite | %.2f× | | |
| etcd 2 servers / 1 server | %.2f× | | |
| machine load average at the end (2 cores, shared) | %s | | |
`, dur, users,
		row("SQLite, 1 server", sqlite), row("etcd, 1 server, read cache on", one),
		row("etcd, 2 servers, read cache on", two), row("etcd, 1 server, read cache off", off),
		one.rate/sqlite.rate, two.rate/one.rate, loadAvg())
	b.Log(table)
	fmt.Fprintln(os.Stderr, table)
}

// haPreload creates users userName benchUser(0..users-1) through c, at concurrency 32.
func haPreload(b *testing.B, c *scimClient, users int) {
	b.Helper()
	runParallel(b, 32, users, func(i int) error {
		r, err := c.try(http.MethodPost, "/Users", oktaUser(benchUser(i), "00u"+strconv.Itoa(i)))
		if err != nil {
			return err
		}
		if r.status != http.StatusCreated {
			return fmt.Errorf("create %d: %d %s", i, r.status, r.raw)
		}
		return nil
	})
}

// haLookupResult is one lookup phase: throughput, latencies, and each server's CPU per lookup.
type haLookupResult struct {
	rate float64
	lat  []time.Duration
	cpu  string
}

// haLookups runs Okta's userName lookup of random users for dur at concurrency 16, worker w on
// clients[w % len(clients)], and measures each server's CPU time over the phase.
func haLookups(b *testing.B, clients []*scimClient, servers []*server, users int, dur time.Duration) haLookupResult {
	b.Helper()
	const conc = 16
	cpu0 := make([]time.Duration, len(servers))
	for i, s := range servers {
		cpu0[i] = procCPU(b, s.cmd.Process.Pid)
	}
	start := time.Now()
	// A 429 fails runLookups' check too, so the throttled count adds nothing here.
	var throttled atomic.Int64
	lat := runLookups(b, clients, users, conc, dur, 43, &throttled)
	secs := time.Since(start).Seconds()
	var cpu []string
	n := max(1, len(lat))
	for i, s := range servers {
		used := procCPU(b, s.cmd.Process.Pid) - cpu0[i]
		cpu = append(cpu, fmt.Sprintf("%.3f ms", ms(used)*float64(len(servers))/float64(n)))
	}
	return haLookupResult{rate: float64(len(lat)) / secs, lat: lat, cpu: strings.Join(cpu, " / ")}
}

// haStop stops a server with SIGTERM and waits for it.
func haStop(b *testing.B, s *server) {
	b.Helper()
	require.NoError(b, s.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		b.Fatal("gatehouse did not stop on SIGTERM")
	}
}
