package lite

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/backend"
)

// The crash test runs this test binary again as a child (TestCrashChild)
// that writes as fast as it can, and kills it with SIGKILL at random points.
const (
	crashDirEnv   = "GATEHOUSE_LITE_CRASH_DIR"
	crashRoundEnv = "GATEHOUSE_LITE_CRASH_ROUND"
)

// crashPad makes values big enough that the WAL fills and is checkpointed
// into the database file during the test, so kills land in checkpoints too.
var crashPad = strings.Repeat("p", 3000)

func crashValue(n int) []byte { return []byte(strconv.Itoa(n) + "|" + crashPad) }

func parseCrashValue(t *testing.T, key string, v []byte) int {
	t.Helper()
	s, _, ok := strings.Cut(string(v), "|")
	require.True(t, ok, "value of %q is malformed: %.40q", key, v)
	n, err := strconv.Atoi(s)
	require.NoError(t, err, "value of %q", key)
	return n
}

// crashWriters is how many goroutines write at once in the child, so that
// their writes share batches (group commit) when the kill lands.
const crashWriters = 4

// TestCrashChild is the child side of TestCrash; it does nothing unless run
// by it. crashWriters goroutines write at once; after each call returns the
// child prints "ack <key> <value>": from then on the write must survive any
// crash.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("child of TestCrash")
	}
	round := os.Getenv(crashRoundEnv)
	ctx := context.Background()
	var outMu sync.Mutex
	printf := func(format string, args ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Printf(format, args...)
	}
	fail := func(what string, err error) {
		printf("error %s: %v\n", what, err)
		os.Exit(3)
	}
	b, err := New(ctx, Config{Path: filepath.Join(dir, DBFileName)})
	if err != nil {
		fail("open", err)
	}
	printf("ready\n")
	if _, err := b.Create(ctx, backend.Item{Key: crashCounter, Value: crashValue(0)}); err != nil && !trace.IsAlreadyExists(err) {
		fail("create counter", err)
	}
	for w := range crashWriters {
		go func() {
			for i := 0; ; i++ {
				if err := crashWriteOnce(ctx, b, round, w, i, printf); err != nil {
					fail(fmt.Sprintf("writer %d", w), err)
				}
			}
		}()
	}
	// Report how many requests shared each commit, so the test log shows
	// that the kills landed among batches, not lone writes.
	for range time.Tick(50 * time.Millisecond) {
		printf("batched %d %d\n", b.stats.requests.Load(), b.stats.commits.Load())
	}
}

// crashCounter is incremented by every child writer with ConditionalUpdate,
// so that writers conflict inside batches.
var crashCounter = backend.Key("counter")

// crashWriteOnce is one step of a child writer: a Put, a three-key
// AtomicWrite, a Create that every writer races for (one wins, the others
// fail with AlreadyExists, often inside the same batch), and an increment
// of the shared counter.
func crashWriteOnce(ctx context.Context, b *Backend, round string, w, i int, printf func(string, ...any)) error {
	key := fmt.Sprintf("put/%s/%d/%06d", round, w, i)
	if _, err := b.Put(ctx, backend.Item{Key: backend.Key(key), Value: crashValue(i)}); err != nil {
		return trace.Wrap(err, "put")
	}
	printf("ack %s %d\n", key, i)

	group := fmt.Sprintf("atomic/%s/%d/%06d", round, w, i)
	var actions []backend.ConditionalAction
	for _, part := range []string{"a", "b", "c"} {
		actions = append(actions, backend.ConditionalAction{
			Key:       backend.Key(group + "/" + part),
			Condition: backend.NotExists(),
			Action:    backend.Put(backend.Item{Value: crashValue(i)}),
		})
	}
	if _, err := b.AtomicWrite(ctx, actions); err != nil {
		return trace.Wrap(err, "atomic write")
	}
	printf("ack %s %d\n", group, i)

	race := fmt.Sprintf("race/%s/%06d", round, i)
	switch _, err := b.Create(ctx, backend.Item{Key: backend.Key(race), Value: crashValue(w)}); {
	case err == nil:
		printf("ack %s %d\n", race, w)
	case !trace.IsAlreadyExists(err):
		return trace.Wrap(err, "create")
	}

	for {
		cur, err := b.Get(ctx, crashCounter)
		if err != nil {
			return trace.Wrap(err, "get counter")
		}
		n, err := strconv.Atoi(strings.SplitN(string(cur.Value), "|", 2)[0])
		if err != nil {
			return trace.Wrap(err, "parse counter")
		}
		_, err = b.ConditionalUpdate(ctx, backend.Item{Key: crashCounter, Value: crashValue(n + 1), Revision: cur.Revision})
		switch {
		case err == nil:
			printf("ack counter %d\n", n+1)
			return nil
		case !trace.IsCompareFailed(err):
			return trace.Wrap(err, "conditional update")
		}
	}
}

// TestCrash kills a writing child process at random points and checks,
// after each kill, that every acknowledged write is in the reopened
// database, that atomic writes are all-or-none, and that the database passes
// PRAGMA integrity_check. SIGKILL loses the process, not the page cache:
// durability against power loss rests on synchronous=FULL, which
// TestReopen checks is in force.
func TestCrash(t *testing.T) {
	if os.Getenv(crashDirEnv) != "" {
		t.Skip("in the child")
	}
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	t.Parallel()
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	dir := t.TempDir()

	puts := map[string]int{}   // acknowledged put key -> value
	groups := map[string]int{} // acknowledged atomic group -> value
	races := map[string]int{}  // raced-for key -> the writer whose Create was acknowledged
	counters := map[int]bool{} // acknowledged counter values
	counter := 0               // highest acknowledged counter value
	const rounds = 8
	for round := range rounds {
		// Kill anywhere from during the child's open (schema creation, WAL
		// recovery) to well into its write loop.
		delay := time.Duration(20+rng.IntN(1200)) * time.Millisecond
		lines := runAndKill(t, dir, round, delay)
		acks := 0
		batched := "none"
		for _, l := range lines {
			f := strings.Fields(l)
			switch {
			case len(f) == 3 && f[0] == "ack":
				n, err := strconv.Atoi(f[2])
				require.NoError(t, err, "line %q", l)
				switch {
				case f[1] == "counter":
					// Two acknowledged increments to the same value mean
					// one overwrote the other.
					require.False(t, counters[n], "counter value %d acknowledged twice: a lost update", n)
					counters[n] = true
					counter = max(counter, n)
				case strings.HasPrefix(f[1], "race/"):
					_, dup := races[f[1]]
					require.False(t, dup, "two Creates of %q acknowledged", f[1])
					races[f[1]] = n
				case strings.HasPrefix(f[1], "put/"):
					puts[f[1]] = n
				case strings.HasPrefix(f[1], "atomic/"):
					groups[f[1]] = n
				default:
					t.Fatalf("unexpected line %q", l)
				}
				acks++
			case len(f) == 3 && f[0] == "batched":
				batched = f[1] + " requests in " + f[2] + " commits"
			case len(f) > 0 && f[0] == "error":
				t.Fatalf("child failed: %s", l)
			}
		}
		t.Logf("round %d: killed after %v, %d acknowledged writes (last count: %s)", round, delay, acks, batched)
		verifyCrashDB(t, dir, puts, groups, races, counter)
	}
	require.NotEmpty(t, puts, "no round acknowledged a write: the kills came too early")
}

// runAndKill starts the child, SIGKILLs it after delay, and returns every
// line it printed.
func runAndKill(t *testing.T, dir string, round int, delay time.Duration) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashRoundEnv+"="+strconv.Itoa(round))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	timer := time.AfterFunc(delay, func() { _ = cmd.Process.Kill() }) // SIGKILL
	defer timer.Stop()
	var lines []string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	require.NoError(t, sc.Err())
	err = cmd.Wait()
	if !timer.Stop() {
		// The kill fired: the child must have died of it, not exited.
		require.Error(t, err, "child exited before the kill")
	} else {
		t.Fatalf("child exited on its own before the kill: %v; output %q", err, lines)
	}
	return lines
}

func verifyCrashDB(t *testing.T, dir string, puts, groups, races map[string]int, counter int) {
	t.Helper()
	ctx := t.Context()
	b, err := New(ctx, Config{Path: filepath.Join(dir, DBFileName)})
	require.NoError(t, err, "reopen after a crash")
	defer func() { require.NoError(t, b.Close()) }()

	var check string
	require.NoError(t, b.rdb.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&check))
	require.Equal(t, "ok", check)

	stored := map[string]int{}
	start := backend.Key("")
	for {
		res, err := b.GetRange(ctx, start, nil, backend.MaxRangeLimit)
		require.NoError(t, err)
		for _, it := range res.Items {
			stored[string(it.Key)] = parseCrashValue(t, string(it.Key), it.Value)
		}
		if len(res.Items) < backend.MaxRangeLimit {
			break
		}
		start = backend.NextKey(res.Items[len(res.Items)-1].Key)
	}

	for k, v := range puts {
		got, ok := stored[k]
		require.True(t, ok, "acknowledged put %q is lost", k)
		require.Equal(t, v, got, "acknowledged put %q", k)
	}
	for k, w := range races {
		got, ok := stored[k]
		require.True(t, ok, "acknowledged create %q is lost", k)
		require.Equal(t, w, got, "create %q: the acknowledged winner's value", k)
	}
	for g, v := range groups {
		for _, part := range []string{"a", "b", "c"} {
			got, ok := stored[g+"/"+part]
			require.True(t, ok, "acknowledged atomic write %q lost %q", g, part)
			require.Equal(t, v, got)
		}
	}
	// All-or-none, acknowledged or not: every group present is complete.
	parts := map[string]int{}
	for k := range stored {
		if strings.HasPrefix(k, "atomic/") {
			parts[k[:strings.LastIndexByte(k, '/')]]++
		}
	}
	for g, n := range parts {
		require.Equal(t, 3, n, "atomic write %q is partly applied", g)
	}
	if counter > 0 {
		got, ok := stored["counter"]
		require.True(t, ok, "counter lost")
		require.GreaterOrEqual(t, got, counter, "acknowledged counter update lost")
	}
}
