// Package backendtest is the compliance suite every backend.Backend
// implementation runs. A backend's own test file needs only:
//
//	func TestCompliance(t *testing.T) {
//		backendtest.RunSuite(t, func(t *testing.T, clock *clockwork.FakeClock) backend.Backend {
//			b, err := mybackend.New(t.Context(), mybackend.Config{Clock: clock, ...})
//			require.NoError(t, err)
//			return b
//		})
//	}
//
// Every sub-test opens its own backend through the constructor, works only
// under its own random key prefix (so one shared engine, such as a real etcd,
// can serve every sub-test), and runs in parallel with the others. The suite
// closes each backend with t.Cleanup.
package backendtest

import (
	"crypto/rand"
	"encoding/hex"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/backend"
)

// Constructor opens a fresh backend for one sub-test. The backend must use
// clock for every expiry decision and for its background purge, so that the
// suite can move time with clock.Advance. The constructor may call t.Fatal;
// it must not close the backend (the suite does, once, in t.Cleanup).
type Constructor func(t *testing.T, clock *clockwork.FakeClock) backend.Backend

// Option tunes the suite for an engine.
type Option func(*config)

type config struct {
	waitTimeout time.Duration
}

// WithWaitTimeout sets how long, in real time, the suite waits for an
// asynchronous effect (a watch event, a purge, a watcher closing) before it
// fails. The default is 5 seconds.
func WithWaitTimeout(d time.Duration) Option {
	return func(c *config) { c.waitTimeout = d }
}

// suiteStart is the fake clock's start: whole seconds, so that engines that
// store expiry at a coarse precision still round-trip every time the suite
// uses.
var suiteStart = time.Date(2030, time.January, 2, 3, 4, 5, 0, time.UTC)

// testCase is one compliance check; it runs against its own fixture.
type testCase struct {
	name string
	run  func(t *testing.T, f *fixture)
}

// group is a named set of compliance checks.
type group struct {
	name  string
	cases []testCase
}

// RunSuite runs every compliance check against backends made by newBackend.
func RunSuite(t *testing.T, newBackend Constructor, opts ...Option) {
	cfg := config{waitTimeout: 5 * time.Second}
	for _, o := range opts {
		o(&cfg)
	}
	groups := []group{
		{"CRUD", crudTests()},
		{"Range", rangeTests()},
		{"Conditional", conditionalTests()},
		{"AtomicWrite", atomicWriteTests()},
		{"BadInput", badInputTests()},
		{"Expiry", expiryTests()},
		{"Watch", watchTests()},
		{"Concurrency", concurrencyTests()},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range g.cases {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.run(t, newFixture(t, newBackend, cfg))
				})
			}
		})
	}
}

// fixture is one sub-test's backend, clock and key prefix.
type fixture struct {
	t      *testing.T
	b      backend.Backend
	clock  *clockwork.FakeClock
	prefix string
	cfg    config

	closeOnce sync.Once
	closeErr  error
}

func newFixture(t *testing.T, newBackend Constructor, cfg config) *fixture {
	clock := clockwork.NewFakeClockAt(suiteStart)
	b := newBackend(t, clock)
	require.NotNil(t, b, "constructor returned a nil backend")
	f := &fixture{t: t, b: b, clock: clock, prefix: "/test-" + randomHex(8) + "/", cfg: cfg}
	t.Cleanup(func() {
		require.NoError(t, f.close(), "closing the backend")
	})
	return f
}

// close closes the backend once; tests that close it themselves use this so
// that the cleanup does not close it a second time.
func (f *fixture) close() error {
	f.closeOnce.Do(func() { f.closeErr = f.b.Close() })
	return f.closeErr
}

func randomHex(n int) string {
	buf := make([]byte, n)
	_, _ = rand.Read(buf) // crypto/rand.Read never fails.
	return hex.EncodeToString(buf)
}

// sub returns a fixture for a nested sub-test: the same backend and clock,
// the nested test's t, and a fresh prefix under the parent's. Nested
// sub-tests run one at a time; the parent closes the backend.
func (f *fixture) sub(t *testing.T) *fixture {
	return &fixture{t: t, b: f.b, clock: f.clock, prefix: f.prefix + randomHex(4) + "/", cfg: f.cfg}
}
