// Package etcdbk is the high-availability backend.Backend: every Gatehouse
// server of a cluster keeps its state in one etcd cluster, through
// go.etcd.io/etcd/client/v3.
//
// Keys: every backend key is stored under Config.Prefix (so several Gatehouse
// clusters can share one etcd) and the prefix is stripped on read.
//
// Values: each value is wrapped in a small binary envelope that carries the
// item's expiry (see envelope.go), so that reads and transaction conditions
// apply the backend clock's idea of expiry exactly: an item whose Expires has
// passed on Config.Clock is invisible at once, even though etcd still holds it.
//
// Revisions are etcd's own mod revisions, as decimal strings. Every write is
// one etcd transaction whose compares express the write's conditions
// (ModRevision for a revision, CreateRevision == 0 for "does not exist", and
// a comparison of the envelope against the clock for "exists and is live"),
// so conditional writes and AtomicWrite are all-or-nothing in etcd itself and
// safe between any number of Gatehouse servers.
//
// Expiry: etcd deletes expired keys through leases. Items are grouped into
// windows of Config.LeaseWindow by their expiry, and each window shares one
// lease whose TTL ends at the window's end (see leases.go); no lease is ever
// made per key. On top of that, a purge loop on Config.Clock revokes a
// window's lease as soon as the clock passes the window's end, which deletes
// the window's items at once (every one of them has expired by then). Both
// paths are ordinary etcd deletions, so watchers get a Delete event either way.
//
// Watchers follow one etcd watch each, started just after a consistent read,
// and resume from the last revision they delivered if the connection drops.
// If that revision has been compacted away, they emit a fresh OpInit (their
// consumer must reload) and continue from the current revision. A watcher
// whose stream cannot be confirmed healthy for Config.WatchHealthTimeout
// (etcd without quorum, or out of reach) is closed (see watch.go).
//
// Reads: Get and GetIndirect are answered from a replica of the prefix in
// memory that one etcd watch keeps current, when it is confirmed fresh and
// has reached every revision this backend has seen; otherwise, and for every
// miss, from etcd (see cache.go and docs/design/etcd-cache.md).
// Config.ReadCacheSize bounds it; a negative size turns it off.
package etcdbk

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/defaults"
)

// Name is the name the backend is registered under.
const Name = "etcd"

// Defaults.
const (
	// DefaultPrefix is the key prefix when Config.Prefix is empty.
	DefaultPrefix = "/gatehouse/"
	// DefaultDialTimeout bounds connecting to etcd in New.
	DefaultDialTimeout = 5 * time.Second
	// DefaultRequestTimeout bounds every etcd call.
	DefaultRequestTimeout = 5 * time.Second
	// DefaultLeaseWindow is the width of the expiry windows that share a
	// lease.
	DefaultLeaseWindow = 10 * time.Second
	// DefaultPurgeInterval is how often, in clock time, the purge loop
	// revokes the leases of windows that have ended.
	DefaultPurgeInterval = time.Second
	// DefaultWatchHealthTimeout is how long a watcher's stream may go
	// unconfirmed before the watcher is closed.
	DefaultWatchHealthTimeout = 10 * time.Second
	// maxPrefixSize bounds Config.Prefix, so that the largest key still fits
	// an etcd request comfortably.
	maxPrefixSize = 256
)

// Settings keys read by the registered factory.
const (
	settingEndpoints = "endpoints"
	settingPrefix    = "prefix"
	settingCA        = "ca"
	settingCert      = "cert"
	settingKey       = "key"
	// settingWatchHealthTimeout is Config.WatchHealthTimeout, a Go
	// duration string.
	settingWatchHealthTimeout = "watch_health_timeout"
	// settingReadCacheSize is Config.ReadCacheSize in bytes (an integer;
	// negative turns the cache off), as for the sqlite backend.
	settingReadCacheSize = "read_cache_size"
)

func init() {
	backend.Register(Name, openFromParams)
}

// openFromParams is the registered factory. Params.Settings holds
// "endpoints" (a comma-separated string or a list of strings; required),
// "prefix", the TLS files "ca", "cert", "key", "watch_health_timeout" (a
// Go duration string) and "read_cache_size" (bytes; negative turns the read
// cache off); any other key is refused.
// Params.Clock decides expiry. Params.Path is not used: the state lives in
// etcd.
func openFromParams(ctx context.Context, p backend.Params) (backend.Backend, error) {
	cfg := Config{Clock: p.Clock}
	for k, v := range p.Settings {
		switch k {
		case settingEndpoints:
			eps, err := parseEndpoints(v)
			if err != nil {
				return nil, trace.BadParameter("etcd backend setting %q: %v", k, err)
			}
			cfg.Endpoints = eps
		case settingPrefix, settingCA, settingCert, settingKey:
			s, ok := v.(string)
			if !ok {
				return nil, trace.BadParameter("etcd backend setting %q: want a string, got %T", k, v)
			}
			switch k {
			case settingPrefix:
				cfg.Prefix = s
			case settingCA:
				cfg.CAFile = s
			case settingCert:
				cfg.CertFile = s
			case settingKey:
				cfg.KeyFile = s
			}
		case settingWatchHealthTimeout:
			s, ok := v.(string)
			if !ok {
				return nil, trace.BadParameter("etcd backend setting %q: want a duration string, got %T", k, v)
			}
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 {
				return nil, trace.BadParameter("etcd backend setting %q: want a positive duration such as \"10s\", got %q", k, s)
			}
			cfg.WatchHealthTimeout = d
		case settingReadCacheSize:
			var n int64
			switch x := v.(type) {
			case int:
				n = int64(x)
			case int64:
				n = x
			default:
				return nil, trace.BadParameter("etcd backend setting %q: want an integer number of bytes, got %T", k, v)
			}
			if n == 0 {
				n = -1 // an explicit 0 means off, not the default
			}
			cfg.ReadCacheSize = n
		default:
			return nil, trace.BadParameter("etcd backend does not know setting %q (known: %s, %s, %s, %s, %s, %s, %s)",
				k, settingEndpoints, settingPrefix, settingCA, settingCert, settingKey, settingWatchHealthTimeout, settingReadCacheSize)
		}
	}
	b, err := New(ctx, cfg)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return b, nil
}

func parseEndpoints(v any) ([]string, error) {
	var raw []string
	switch x := v.(type) {
	case string:
		raw = strings.Split(x, ",")
	case []string:
		raw = x
	case []any:
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("want a list of strings, got a %T in it", e)
			}
			raw = append(raw, s)
		}
	default:
		return nil, fmt.Errorf("want a comma-separated string or a list of strings, got %T", v)
	}
	var out []string
	for _, e := range raw {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out, nil
}

// Config configures the etcd backend.
type Config struct {
	// Endpoints are the etcd client URLs (https://host:2379, or host:port).
	Endpoints []string
	// Prefix is prepended to every key; it must end with "/". Clusters that
	// share one etcd must use prefixes that do not start with one another.
	// Defaults to DefaultPrefix.
	Prefix string
	// CAFile verifies the etcd servers' certificates; empty means the system
	// roots (when TLS is used at all).
	CAFile string
	// CertFile and KeyFile are the client certificate and key presented to
	// etcd; both or neither.
	CertFile string
	KeyFile  string
	// DialTimeout bounds connecting to etcd in New.
	DialTimeout time.Duration
	// RequestTimeout bounds every etcd call a backend method makes.
	RequestTimeout time.Duration
	// Clock decides expiry visibility and drives the purge loop; defaults to
	// the real clock.
	Clock clockwork.Clock
	// LeaseWindow is the width of the expiry windows that share one lease.
	// Wider windows mean fewer leases; deletion (and the watchers' Delete
	// event) happens by the end of an item's window at the latest.
	LeaseWindow time.Duration
	// PurgeInterval is how often, in clock time, the purge loop revokes the
	// leases of windows that have ended.
	PurgeInterval time.Duration
	// WatchHealthTimeout is how long a watcher may go without confirmation
	// that its stream is healthy (an answer from etcd on the stream, or a
	// quorum read showing that it missed no revision) before it is closed,
	// so that its consumer knows and reloads. The etcd client retries a
	// broken watch silently and forever, so without this bound a watcher on
	// a cluster without quorum, or out of reach, would look alive but
	// deliver nothing. Measured in real time, as etcd runs on it. Defaults
	// to DefaultWatchHealthTimeout.
	WatchHealthTimeout time.Duration
	// ReadCacheSize bounds the memory, in bytes, of the watch-fed read
	// cache (see cache.go): DefaultReadCacheSize if zero, off if negative.
	ReadCacheSize int64
	// ReadCacheWait bounds how long a read waits for the cache's watch to
	// reach a revision this server has already written or read before it
	// goes to etcd instead. Defaults to DefaultReadCacheWait.
	ReadCacheWait time.Duration
	// ReadCacheStaleness is the longest the read cache serves without a
	// confirmation (a quorum read of etcd's revision, which the watch then
	// reached) that it missed no write: a read served from the cache
	// misses no write acknowledged more than this before it. Real time.
	// Defaults to DefaultReadCacheStaleness.
	ReadCacheStaleness time.Duration
	// FenceTTL is the lease TTL of this server as a fenced reader
	// (fence.go): how long a write that it failed to acknowledge waits
	// after revoking it. etcd may raise it to its minimum TTL. Defaults to
	// DefaultFenceTTL.
	FenceTTL time.Duration
	// FenceAckWait is how long a write to a fenced prefix waits for the
	// fenced readers' acknowledgements before it revokes the late ones.
	// Defaults to DefaultFenceAckWait.
	FenceAckWait time.Duration
	// Logger receives the backend's logs; defaults to slog.Default().
	Logger *slog.Logger

	// dialOptions are extra gRPC options, for tests.
	dialOptions []grpc.DialOption
}

// CheckAndSetDefaults validates the config and fills in defaults.
func (c *Config) CheckAndSetDefaults() error {
	if len(c.Endpoints) == 0 {
		return trace.BadParameter("etcd backend: at least one endpoint is required")
	}
	for _, e := range c.Endpoints {
		if strings.TrimSpace(e) == "" {
			return trace.BadParameter("etcd backend: empty endpoint")
		}
	}
	defaults.IfZero(&c.Prefix, DefaultPrefix)
	if !strings.HasSuffix(c.Prefix, "/") {
		return trace.BadParameter("etcd backend: prefix %q must end with \"/\"", c.Prefix)
	}
	if len(c.Prefix) > maxPrefixSize {
		return trace.BadParameter("etcd backend: prefix is %d bytes, over the limit of %d", len(c.Prefix), maxPrefixSize)
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return trace.BadParameter("etcd backend: a client certificate needs both the cert and the key file")
	}
	if c.useTLS() {
		for _, e := range c.Endpoints {
			if strings.HasPrefix(e, "http://") {
				return trace.BadParameter("etcd backend: endpoint %q is plain http but TLS files are set; use https://", e)
			}
		}
	}
	if c.DialTimeout < 0 || c.RequestTimeout < 0 || c.LeaseWindow < 0 || c.PurgeInterval < 0 || c.WatchHealthTimeout < 0 ||
		c.ReadCacheWait < 0 || c.ReadCacheStaleness < 0 || c.FenceTTL < 0 || c.FenceAckWait < 0 {
		return trace.BadParameter("etcd backend: timeouts and intervals must not be negative")
	}
	defaults.IfZero(&c.DialTimeout, DefaultDialTimeout)
	defaults.IfZero(&c.RequestTimeout, DefaultRequestTimeout)
	defaults.IfZero(&c.FenceTTL, DefaultFenceTTL)
	defaults.IfZero(&c.FenceAckWait, DefaultFenceAckWait)
	defaults.IfZero(&c.LeaseWindow, DefaultLeaseWindow)
	if c.LeaseWindow < time.Second {
		return trace.BadParameter("etcd backend: lease window must be at least a second, got %v", c.LeaseWindow)
	}
	defaults.IfZero(&c.PurgeInterval, DefaultPurgeInterval)
	defaults.IfZero(&c.WatchHealthTimeout, DefaultWatchHealthTimeout)
	if c.WatchHealthTimeout < 100*time.Millisecond {
		return trace.BadParameter("etcd backend: watch health timeout must be at least 100ms, got %v", c.WatchHealthTimeout)
	}
	defaults.IfZero(&c.ReadCacheSize, DefaultReadCacheSize)
	defaults.IfZero(&c.ReadCacheWait, DefaultReadCacheWait)
	defaults.IfZero(&c.ReadCacheStaleness, DefaultReadCacheStaleness)
	if c.ReadCacheStaleness < 100*time.Millisecond {
		return trace.BadParameter("etcd backend: read cache staleness must be at least 100ms, got %v", c.ReadCacheStaleness)
	}
	defaults.Clock(&c.Clock)
	defaults.IfZero(&c.Logger, slog.Default())
	return nil
}

func (c *Config) useTLS() bool {
	if c.CAFile != "" || c.CertFile != "" {
		return true
	}
	for _, e := range c.Endpoints {
		if strings.HasPrefix(e, "https://") {
			return true
		}
	}
	return false
}

// tlsConfig builds the client TLS config from the files; nil without TLS.
func (c *Config) tlsConfig() (*tls.Config, error) {
	if !c.useTLS() {
		return nil, nil
	}
	out := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, trace.ConvertSystemError(err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, trace.BadParameter("etcd backend: no PEM certificate in CA file %q", c.CAFile)
		}
		out.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, trace.BadParameter("etcd backend: loading client certificate %q: %v", c.CertFile, err)
		}
		out.Certificates = []tls.Certificate{cert}
	}
	return out, nil
}

// Backend is the etcd implementation of backend.Backend.
type Backend struct {
	cfg    Config
	log    *slog.Logger
	client *clientv3.Client
	prefix string
	leases *leaseCache
	// cache serves reads from a watch-fed replica (nil when off).
	cache *readCache
	// readerID names this backend's key as a fenced reader (fence.go).
	readerID string
	// fence is the highest etcd revision any call of this backend has
	// seen; the cache serves a read only once it has applied it.
	fence atomic.Int64

	// ctx ends when the backend closes; the purge loop and every watcher
	// run under it.
	ctx    context.Context
	cancel context.CancelFunc
	loops  sync.WaitGroup

	closeOnce sync.Once
	mu        sync.Mutex
	closed    bool
}

var _ backend.Backend = (*Backend)(nil)

// New connects to etcd and checks that it answers within DialTimeout. The
// purge loop runs until Close.
func New(ctx context.Context, cfg Config) (*Backend, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, trace.Wrap(err)
	}
	tlsCfg, err := cfg.tlsConfig()
	if err != nil {
		return nil, trace.Wrap(err)
	}
	dialOpts := append([]grpc.DialOption{
		// Reconnect quickly after an etcd member restarts; gRPC's default
		// backoff grows to two minutes, which would leave watchers silent.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 3 * time.Second},
			MinConnectTimeout: cfg.DialTimeout,
		}),
	}, cfg.dialOptions...)
	client, err := clientv3.New(clientv3.Config{
		Endpoints:   cfg.Endpoints,
		DialTimeout: cfg.DialTimeout,
		TLS:         tlsCfg,
		DialOptions: dialOpts,
		// Keepalives notice a dead connection even when no call is being
		// made, so that watchers resume promptly.
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
		PermitWithoutStream:  true,
		// The backend logs what matters through slog; the client's own
		// retry chatter is not worth a second logging stack.
		Logger: zap.NewNop(),
	})
	if err != nil {
		return nil, trace.Wrap(convertErr(err), "connecting to etcd at %v", cfg.Endpoints)
	}
	// The client connects lazily: make one read so that a wrong endpoint or
	// certificate fails here, not on the first write.
	pingCtx, cancelPing := context.WithTimeout(ctx, cfg.DialTimeout)
	_, err = client.Get(pingCtx, cfg.Prefix, clientv3.WithCountOnly())
	cancelPing()
	if err != nil {
		_ = client.Close()
		return nil, trace.Wrap(convertErr(err), "reaching etcd at %v", cfg.Endpoints)
	}

	loopCtx, cancel := context.WithCancel(context.Background())
	b := &Backend{
		cfg:    cfg,
		log:    cfg.Logger.With("component", "backend:etcd"),
		client: client,
		prefix: cfg.Prefix,
		// Unique per process and backend: a reader key is never shared.
		readerID: rand.Text(),
		ctx:      loopCtx,
		cancel:   cancel,
	}
	b.leases = newLeaseCache(b)
	if b.cache = newReadCache(b, cfg.ReadCacheSize); b.cache != nil {
		b.loops.Add(1)
		go b.cache.run()
	}
	// The ticker is made before New returns so that a fake clock advanced
	// right after New already drives it.
	ticker := cfg.Clock.NewTicker(cfg.PurgeInterval)
	b.loops.Add(1)
	go b.purgeLoop(ticker)
	return b, nil
}

// Clock returns the clock that decides expiry.
func (b *Backend) Clock() clockwork.Clock { return b.cfg.Clock }

// Close stops the purge loop and every watcher and closes the etcd client.
// It revokes no lease: the items this server wrote stay, and expire, as
// written. Closing twice is harmless.
func (b *Backend) Close() error {
	var err error
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed = true
		b.mu.Unlock()
		b.cancel()
		b.loops.Wait()
		if cerr := b.client.Close(); cerr != nil && !errors.Is(cerr, context.Canceled) {
			err = trace.Wrap(cerr)
		}
	})
	return err
}

func errClosed() error {
	return trace.ConnectionProblem(nil, "etcd backend is closed")
}

func (b *Backend) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// observe raises the fence to rev, a revision an etcd answer carried.
func (b *Backend) observe(rev int64) {
	for {
		cur := b.fence.Load()
		if rev <= cur || b.fence.CompareAndSwap(cur, rev) {
			return
		}
	}
}

// callCtx bounds one etcd call by RequestTimeout.
func (b *Backend) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, b.cfg.RequestTimeout)
}

// etcdKey is the stored key of a backend key.
func (b *Backend) etcdKey(k backend.Key) string { return b.prefix + string(k) }

// backendKey strips the prefix from a stored key.
func (b *Backend) backendKey(k []byte) backend.Key {
	return backend.Key(strings.Clone(string(k[len(b.prefix):])))
}

// etcdEnd is the stored exclusive end of a range; nil means the end of this
// backend's prefix.
func (b *Backend) etcdEnd(end backend.Key) string {
	if end == nil {
		return string(backend.RangeEnd(backend.Key(b.prefix)))
	}
	return b.prefix + string(end)
}

// convertErr turns etcd and gRPC errors into trace kinds: an unreachable or
// leaderless etcd is a ConnectionProblem (callers answer 503 and retry), an
// oversized request is LimitExceeded.
func convertErr(err error) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return trace.ConnectionProblem(err, "etcd did not answer in time")
	case errors.Is(err, context.Canceled):
		return trace.Wrap(err)
	case errors.Is(err, rpctypes.ErrRequestTooLarge), errors.Is(err, rpctypes.ErrTooManyOps):
		return trace.LimitExceeded("etcd refused the request: %v", err)
	case errors.Is(err, rpctypes.ErrNoLeader), errors.Is(err, rpctypes.ErrLeaderChanged),
		errors.Is(err, rpctypes.ErrTimeout), errors.Is(err, rpctypes.ErrTimeoutDueToLeaderFail),
		errors.Is(err, rpctypes.ErrTimeoutDueToConnectionLost), errors.Is(err, rpctypes.ErrStopped),
		errors.Is(err, rpctypes.ErrNoSpace), errors.Is(err, rpctypes.ErrTooManyRequests):
		return trace.ConnectionProblem(err, "etcd is unavailable: %v", err)
	}
	if s, ok := status.FromError(err); ok {
		switch s.Code() {
		case codes.Unavailable, codes.DeadlineExceeded:
			return trace.ConnectionProblem(err, "etcd is unavailable: %v", s.Message())
		}
	}
	return trace.Wrap(err)
}
