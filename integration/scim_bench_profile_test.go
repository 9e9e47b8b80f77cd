package integration

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// phaseProfiler grabs a CPU profile of the server from its diagnostics listener at the start of
// a benchmark phase, so that docs/benchmarks.md's "where a SCIM write's CPU goes" can be
// reproduced: SCIM_BENCH_PROFILE_DIR=/tmp/prof (and SCIM_BENCH_PROFILE_SECONDS, default 5) writes
// <phase>.pprof there, to read with `go tool pprof -top`. The phase must last longer than the
// profile (raise SCIM_BENCH_USERS and SCIM_BENCH_DEACTIVATIONS), or the profile also holds
// whatever comes after it; the benchmark waits for each profile before it measures the next
// phase, so its own figures are not skewed by the fetch.
type phaseProfiler struct {
	b    *testing.B
	dir  string
	base string // the pprof handlers' URL
	url  string // the CPU profile's
	secs int
	done chan error
}

// newPhaseProfiler returns a profiler for the server whose startup banner is in logs; a
// profiler that does nothing when dir is empty.
func newPhaseProfiler(b *testing.B, dir string, logs *syncBuffer) *phaseProfiler {
	b.Helper()
	p := &phaseProfiler{b: b, dir: dir}
	if dir == "" {
		return p
	}
	m := regexp.MustCompile(`metrics: +http://(\S+)/metrics`).FindStringSubmatch(logs.String())
	require.NotNil(b, m, "the startup banner names the diagnostics listener")
	p.secs = envInt(b, "SCIM_BENCH_PROFILE_SECONDS", 5)
	p.base = "http://" + m[1] + "/debug/pprof/"
	p.url = fmt.Sprintf("%sprofile?seconds=%d", p.base, p.secs)
	require.NoError(b, os.MkdirAll(dir, 0o755))
	return p
}

// start begins a profile of the next p.secs seconds, written to <dir>/<phase>.pprof.
func (p *phaseProfiler) start(phase string) {
	if p.dir == "" {
		return
	}
	p.done = make(chan error, 1)
	go func() {
		p.done <- p.fetch(filepath.Join(p.dir, strings.ReplaceAll(phase, "/", "_")+".pprof"))
	}()
}

// heap writes a profile of the server's live heap, after a GC, to
// <dir>/<name>.pprof: what the memory after a phase is made of
// (`go tool pprof -sample_index=inuse_space -top`).
func (p *phaseProfiler) heap(name string) {
	if p.dir == "" {
		return
	}
	require.NoError(p.b, p.fetchURL(p.base+"heap?gc=1", filepath.Join(p.dir, name+".pprof")), "heap profile")
}

func (p *phaseProfiler) fetch(path string) error {
	return p.fetchURL(p.url, path)
}

func (p *phaseProfiler) fetchURL(url, path string) error {
	c := &http.Client{Timeout: time.Duration(p.secs+30) * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile: %s", resp.Status)
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// wait waits for the profile that start began.
func (p *phaseProfiler) wait() {
	if p.done == nil {
		return
	}
	require.NoError(p.b, <-p.done, "CPU profile")
	p.done = nil
}
