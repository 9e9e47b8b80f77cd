package etcdbk

import (
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/backend/backendtest"
	"github.com/gatehouse/gatehouse/lib/backend/etcdbk/etcdtest"
)

// randomPrefix returns a fresh backend prefix, so that backends sharing one
// etcd never see each other's keys.
func randomPrefix() string {
	buf := make([]byte, 6)
	_, _ = rand.Read(buf)
	return "/gatehouse-test-" + hex.EncodeToString(buf) + "/"
}

// TestCompliance runs the whole compliance suite against one shared
// single-member embedded etcd. The suite already keeps each sub-test under
// its own random key prefix; each sub-test's backend also gets its own
// Config.Prefix, because each has its own fake clock, and a backend's purge
// loop must only ever revoke leases of its own items.
func TestCompliance(t *testing.T) {
	t.Parallel()
	endpoints := etcdtest.Start(t, 1)
	backendtest.RunSuite(t, func(t *testing.T, clock *clockwork.FakeClock) backend.Backend {
		b, err := New(t.Context(), Config{
			Endpoints: endpoints,
			Prefix:    randomPrefix(),
			Clock:     clock,
		})
		require.NoError(t, err)
		return b
	}, backendtest.WithWaitTimeout(10*time.Second))
}

func TestConfig(t *testing.T) {
	t.Parallel()
	cfg := Config{Endpoints: []string{"127.0.0.1:2379"}}
	require.NoError(t, cfg.CheckAndSetDefaults())
	require.Equal(t, DefaultPrefix, cfg.Prefix)
	require.Equal(t, DefaultDialTimeout, cfg.DialTimeout)
	require.Equal(t, DefaultRequestTimeout, cfg.RequestTimeout)
	require.Equal(t, DefaultLeaseWindow, cfg.LeaseWindow)
	require.Equal(t, DefaultPurgeInterval, cfg.PurgeInterval)
	require.NotNil(t, cfg.Clock)
	require.NotNil(t, cfg.Logger)

	for name, bad := range map[string]Config{
		"no endpoints":        {},
		"empty endpoint":      {Endpoints: []string{" "}},
		"prefix without /":    {Endpoints: []string{"a:1"}, Prefix: "/gatehouse"},
		"long prefix":         {Endpoints: []string{"a:1"}, Prefix: "/" + string(make([]byte, maxPrefixSize)) + "/"},
		"cert without key":    {Endpoints: []string{"a:1"}, CertFile: "c.pem"},
		"key without cert":    {Endpoints: []string{"a:1"}, KeyFile: "k.pem"},
		"TLS on http":         {Endpoints: []string{"http://a:1"}, CAFile: "ca.pem"},
		"negative timeout":    {Endpoints: []string{"a:1"}, RequestTimeout: -time.Second},
		"sub-second window":   {Endpoints: []string{"a:1"}, LeaseWindow: time.Millisecond},
		"negative purge time": {Endpoints: []string{"a:1"}, PurgeInterval: -time.Second},
	} {
		t.Run(name, func(t *testing.T) {
			require.True(t, trace.IsBadParameter(bad.CheckAndSetDefaults()), "%+v", bad)
		})
	}
}

func TestRegistered(t *testing.T) {
	t.Parallel()
	require.Contains(t, backend.Names(), Name)
	endpoints := etcdtest.Start(t, 1)
	ctx := t.Context()

	clock := clockwork.NewFakeClock()
	prefix := randomPrefix()
	b, err := backend.New(ctx, Name, backend.Params{
		Clock:    clock,
		Path:     "/ignored/data/dir",
		Settings: map[string]any{"endpoints": endpoints[0] + " , ", "prefix": prefix},
	})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	require.Same(t, clock, b.Clock())
	require.Equal(t, DefaultWatchHealthTimeout, b.(*Backend).cfg.WatchHealthTimeout)
	_, err = b.Put(ctx, backend.Item{Key: backend.Key("a"), Value: []byte("v")})
	require.NoError(t, err)

	// The prefix is really where the keys go: a second backend on it sees
	// them, a backend on another prefix does not.
	same, err := backend.New(ctx, Name, backend.Params{Settings: map[string]any{"endpoints": []any{endpoints[0]}, "prefix": prefix, "watch_health_timeout": "3s"}})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, same.Close()) })
	require.Equal(t, 3*time.Second, same.(*Backend).cfg.WatchHealthTimeout)
	got, err := same.Get(ctx, backend.Key("a"))
	require.NoError(t, err)
	require.Equal(t, "v", string(got.Value))
	other, err := backend.New(ctx, Name, backend.Params{Settings: map[string]any{"endpoints": endpoints, "prefix": randomPrefix()}})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, other.Close()) })
	_, err = other.Get(ctx, backend.Key("a"))
	require.True(t, trace.IsNotFound(err), "%v", err)

	for name, settings := range map[string]map[string]any{
		"unknown setting":   {"endpoints": endpoints[0], "path": "/x"},
		"no endpoints":      {"prefix": "/p/"},
		"endpoints not str": {"endpoints": 5},
		"endpoint list bad": {"endpoints": []any{endpoints[0], 5}},
		"prefix not str":    {"endpoints": endpoints[0], "prefix": 5},
		"cert without key":  {"endpoints": endpoints[0], "cert": "c.pem"},
		"bad watch timeout": {"endpoints": endpoints[0], "watch_health_timeout": "soon"},
		"watch timeout int": {"endpoints": endpoints[0], "watch_health_timeout": 5},
	} {
		_, err := backend.New(ctx, Name, backend.Params{Settings: settings})
		require.True(t, trace.IsBadParameter(err), "%s: %v", name, err)
	}
}

// TestUnreachable: New fails within the dial timeout, as a connection
// problem, when nothing answers at the endpoint.
func TestUnreachable(t *testing.T) {
	t.Parallel()
	proxy := etcdtest.NewProxy(t, "http://127.0.0.1:1")
	proxy.Cut()
	start := time.Now()
	_, err := New(t.Context(), Config{Endpoints: []string{proxy.Endpoint()}, DialTimeout: 500 * time.Millisecond})
	require.Error(t, err)
	require.True(t, trace.IsConnectionProblem(err), "%T: %v", trace.Unwrap(err), err)
	require.Less(t, time.Since(start), 5*time.Second)
}

// TestClosed: after Close every call fails cleanly and Close is idempotent.
func TestClosed(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	endpoints := etcdtest.Start(t, 1)
	b, err := New(ctx, Config{Endpoints: endpoints, Prefix: randomPrefix(), Clock: clockwork.NewFakeClock()})
	require.NoError(t, err)
	require.NoError(t, b.Close())
	require.NoError(t, b.Close())

	key := backend.Key("a")
	calls := map[string]func() error{
		"Put":         func() error { _, err := b.Put(ctx, backend.Item{Key: key}); return err },
		"Get":         func() error { _, err := b.Get(ctx, key); return err },
		"Range":       func() error { _, err := b.GetRange(ctx, key, nil, 0); return err },
		"Delete":      func() error { return b.Delete(ctx, key) },
		"DeleteRange": func() error { return b.DeleteRange(ctx, key, nil) },
		"KeepAlive":   func() error { return b.KeepAlive(ctx, backend.Lease{Key: key, Revision: "1"}, time.Now()) },
		"Atomic": func() error {
			_, err := b.AtomicWrite(ctx, []backend.ConditionalAction{{Key: key, Condition: backend.Whatever(), Action: backend.Delete()}})
			return err
		},
		"Watch": func() error { _, err := b.NewWatcher(ctx, backend.Watch{}); return err },
	}
	for name, call := range calls {
		require.True(t, trace.IsConnectionProblem(call()), "%s after Close", name)
	}
}

// TestTLS: the backend reaches a TLS-only etcd that requires client
// certificates with the CA, cert and key files, and is refused without a
// certificate, with one from another CA, or when it does not trust the
// server's CA.
func TestTLS(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	endpoint, files := etcdtest.StartTLS(t)

	b, err := backend.New(ctx, Name, backend.Params{Settings: map[string]any{
		"endpoints": endpoint, "prefix": randomPrefix(),
		"ca": files.CA, "cert": files.ClientCert, "key": files.ClientKey,
	}})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	_, err = b.Put(ctx, backend.Item{Key: backend.Key("a"), Value: []byte("v")})
	require.NoError(t, err)
	got, err := b.Get(ctx, backend.Key("a"))
	require.NoError(t, err)
	require.Equal(t, "v", string(got.Value))

	for name, cfg := range map[string]Config{
		"no client certificate":       {CAFile: files.CA},
		"certificate from another CA": {CAFile: files.CA, CertFile: files.StrangerCert, KeyFile: files.StrangerKey},
		"server CA not trusted":       {CAFile: files.OtherCA, CertFile: files.ClientCert, KeyFile: files.ClientKey},
		"system roots only":           {CertFile: files.ClientCert, KeyFile: files.ClientKey},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg.Endpoints = []string{endpoint}
			cfg.DialTimeout = time.Second
			_, err := New(t.Context(), cfg)
			require.Error(t, err)
		})
	}
	_, err = New(ctx, Config{Endpoints: []string{endpoint}, CAFile: "/nonexistent/ca.pem"})
	require.Error(t, err)
}
