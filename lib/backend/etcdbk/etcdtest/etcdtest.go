// Package etcdtest runs real etcd servers inside the test process, with
// go.etcd.io/etcd/server/v3/embed, so that tests of the etcd backend need
// nothing already running. Members listen on free loopback ports and keep
// their data in t.TempDir(); everything stops at the test's cleanup.
//
// Settings are tuned for fast tests, not for production:
//
//   - UnsafeNoFsync: etcd does not fsync its WAL and database. Tests never
//     crash the machine, and a member that is stopped and restarted inside a
//     test closes its files cleanly first, so every write reaches the page
//     cache and is read back; skipping fsync only gives up durability against
//     power loss, which no test here checks, and makes each write several
//     times faster on a shared CI disk.
//   - short heartbeat and election timeouts, so that a cluster elects a
//     leader within a fraction of a second at start and after a member stops;
//   - a small snapshot count, so that snapshots happen within a test run;
//   - logs only at error level, to stderr.
package etcdtest

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// startTimeout bounds how long a member (or cluster) may take to be ready.
const startTimeout = 60 * time.Second

// Start runs an etcd cluster of members (1 or 3, say) and returns its client
// URLs. The cluster stops at t's cleanup.
func Start(t testing.TB, members int) []string {
	t.Helper()
	return StartCluster(t, members).Endpoints()
}

// Cluster is a running embedded etcd cluster.
type Cluster struct {
	t       testing.TB
	Members []*Member
}

// Member is one embedded etcd server.
type Member struct {
	t         testing.TB
	name      string
	dir       string
	clientURL url.URL
	peerURL   url.URL
	initial   string
	token     string

	tls *TLSFiles

	mu   sync.Mutex
	etcd *embed.Etcd
}

// StartCluster runs a cluster of n members and waits until every member is
// ready (which includes a leader being elected).
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("etcdtest: a cluster needs at least one member, got %d", n)
	}
	dir := t.TempDir()
	c := &Cluster{t: t}
	token := fmt.Sprintf("gatehouse-test-%d", time.Now().UnixNano())
	var initial []string
	for i := range n {
		m := &Member{
			t:         t,
			name:      fmt.Sprintf("m%d", i),
			dir:       filepath.Join(dir, fmt.Sprintf("m%d", i)),
			clientURL: freeURL(t),
			peerURL:   freeURL(t),
			token:     token,
		}
		initial = append(initial, m.name+"="+m.peerURL.String())
		c.Members = append(c.Members, m)
	}
	for _, m := range c.Members {
		m.initial = strings.Join(initial, ",")
	}
	t.Cleanup(c.Stop)

	// Members of a new cluster wait for each other, so they start together.
	errs := make(chan error, n)
	for _, m := range c.Members {
		go func() { errs <- m.start(embed.ClusterStateFlagNew) }()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("etcdtest: %v", err)
		}
	}
	return c
}

// Endpoints returns every member's client URL.
func (c *Cluster) Endpoints() []string {
	out := make([]string, 0, len(c.Members))
	for _, m := range c.Members {
		out = append(out, m.Endpoint())
	}
	return out
}

// Stop stops every member that is still running.
func (c *Cluster) Stop() {
	for _, m := range c.Members {
		m.Stop()
	}
}

// Endpoint is the member's client URL.
func (m *Member) Endpoint() string { return m.clientURL.String() }

// Name is the member's name in the cluster.
func (m *Member) Name() string { return m.name }

// Etcd returns the running server, or nil if the member is stopped.
func (m *Member) Etcd() *embed.Etcd {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.etcd
}

// IsLeader reports whether the running member is the cluster's leader.
func (m *Member) IsLeader() bool {
	e := m.Etcd()
	return e != nil && e.Server.Leader() == e.Server.MemberID()
}

// Stop stops the member (a no-op if it is stopped). Its data stays, so
// Restart brings it back with its state.
func (m *Member) Stop() {
	m.mu.Lock()
	e := m.etcd
	m.etcd = nil
	m.mu.Unlock()
	if e != nil {
		e.Close()
	}
}

// Restart starts a stopped member again on the same ports and data.
func (m *Member) Restart() {
	m.t.Helper()
	if err := m.start(embed.ClusterStateFlagExisting); err != nil {
		m.t.Fatalf("etcdtest: restarting %s: %v", m.name, err)
	}
}

func (m *Member) start(state string) error {
	cfg := embed.NewConfig()
	cfg.Name = m.name
	cfg.Dir = m.dir
	cfg.ListenClientUrls = []url.URL{m.clientURL}
	cfg.AdvertiseClientUrls = []url.URL{m.clientURL}
	cfg.ListenPeerUrls = []url.URL{m.peerURL}
	cfg.AdvertisePeerUrls = []url.URL{m.peerURL}
	cfg.InitialCluster = m.initial
	cfg.InitialClusterToken = m.token
	cfg.ClusterState = state
	cfg.UnsafeNoFsync = true // see the package comment
	cfg.SnapshotCount = 1000
	cfg.SnapshotCatchUpEntries = 500
	cfg.TickMs = 20
	cfg.ElectionMs = 400
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(quietLogger())
	if m.tls != nil {
		cfg.ClientTLSInfo = transport.TLSInfo{
			CertFile:       m.tls.ServerCert,
			KeyFile:        m.tls.ServerKey,
			TrustedCAFile:  m.tls.CA,
			ClientCertAuth: true,
		}
	}
	// Metrics and the HTTP gateway are not needed by the tests.
	cfg.EnableGRPCGateway = false

	var e *embed.Etcd
	var err error
	// A freshly chosen port can be taken by someone else before etcd binds
	// it; that shows as an error here, and the test fails rather than
	// flakes silently.
	if e, err = embed.StartEtcd(cfg); err != nil {
		return fmt.Errorf("starting member %s: %w", m.name, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return fmt.Errorf("member %s failed while starting: %w", m.name, err)
	case <-time.After(startTimeout):
		e.Close()
		return fmt.Errorf("member %s not ready within %v", m.name, startTimeout)
	}
	m.mu.Lock()
	m.etcd = e
	m.mu.Unlock()
	return nil
}

// quietLogger logs etcd's errors to stderr and nothing else.
func quietLogger() *zap.Logger {
	enc := zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig())
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(os.Stderr), zap.ErrorLevel))
}

// freeURL returns an http URL on a loopback port that was free a moment ago.
func freeURL(t testing.TB) url.URL {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("etcdtest: finding a free port: %v", err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return url.URL{Scheme: "http", Host: addr}
}

// Proxy is a TCP proxy in front of an etcd endpoint that a test can cut, to
// drop a client's connections while etcd itself stays up.
type Proxy struct {
	t      testing.TB
	target string
	l      net.Listener

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// NewProxy listens on a loopback port and forwards to target (a URL such as
// one from Start). It closes at t's cleanup.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatalf("etcdtest: proxy target %q: %v", target, err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("etcdtest: proxy listener: %v", err)
	}
	p := &Proxy{t: t, target: u.Host, l: l, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// Endpoint is the proxy's URL, for a client's endpoints.
func (p *Proxy) Endpoint() string { return "http://" + p.l.Addr().String() }

// Cut drops every open connection and refuses new ones until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		_ = c.Close()
	}
}

// Restore accepts connections again.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
}

func (p *Proxy) close() {
	_ = p.l.Close()
	p.Cut()
	p.wg.Wait()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			_ = in.Close()
			continue
		}
		out, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			p.mu.Unlock()
			_ = in.Close()
			continue
		}
		p.conns[in] = struct{}{}
		p.conns[out] = struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			defer p.wg.Done()
			_, _ = io.Copy(dst, src)
			_ = dst.Close()
			_ = src.Close()
			p.mu.Lock()
			delete(p.conns, dst)
			delete(p.conns, src)
			p.mu.Unlock()
		}
		go pipe(out, in)
		go pipe(in, out)
	}
}

// StartTLS runs a single-member cluster whose client port speaks only TLS
// and requires a client certificate signed by a test CA. It returns the
// https endpoint and the PEM files (in t.TempDir()).
func StartTLS(t testing.TB) (string, TLSFiles) {
	t.Helper()
	files := NewTLSFiles(t)
	dir := t.TempDir()
	client := freeURL(t)
	client.Scheme = "https"
	m := &Member{
		t:         t,
		name:      "tls0",
		dir:       filepath.Join(dir, "tls0"),
		clientURL: client,
		peerURL:   freeURL(t),
		token:     fmt.Sprintf("gatehouse-test-tls-%d", time.Now().UnixNano()),
		tls:       &files,
	}
	m.initial = m.name + "=" + m.peerURL.String()
	t.Cleanup(m.Stop)
	if err := m.start(embed.ClusterStateFlagNew); err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	return m.Endpoint(), files
}
