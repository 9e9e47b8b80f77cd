package sshnode_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"net"
	"os/user"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/lib/auth/certext"
	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/backend/lite"
	"github.com/gatehouse/gatehouse/lib/backend/memory"
	"github.com/gatehouse/gatehouse/lib/services"
	"github.com/gatehouse/gatehouse/lib/srv/lockwatch"
	"github.com/gatehouse/gatehouse/lib/srv/sshnode"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// staticAccess is an AccessChecker over a fixed table: user -> roles, role ->
// logins.
type staticAccess struct {
	mu    sync.Mutex
	users map[string][]string
	roles map[string][]string
	// fail, if set, is returned by every check (a storage failure, say).
	fail error
}

func (a *staticAccess) CheckLogin(_ context.Context, username, login string) ([]string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fail != nil {
		return nil, a.fail
	}
	roles, ok := a.users[username]
	if !ok {
		return nil, trace.NotFound("user %q not found", username)
	}
	for _, r := range roles {
		if slices.Contains(a.roles[r], login) {
			return roles, nil
		}
	}
	return roles, trace.AccessDenied("user %q is not allowed to log in as %q", username, login)
}

// recorder is an Emitter that keeps events.
type recorder struct {
	mu     sync.Mutex
	events []*typesv1.AuditEvent
	// at is the wall time each event was emitted (the benchmark's
	// server-side clock).
	at []time.Time
}

func (r *recorder) Emit(_ context.Context, ev *typesv1.AuditEvent) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
	r.at = append(r.at, time.Now())
	return nil
}

// since returns, for each event of type typ emitted after start, how long
// after start it was emitted.
func (r *recorder) since(typ string, start time.Time) []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []time.Duration
	for i, ev := range r.events {
		if ev.GetType() == typ && r.at[i].After(start) {
			out = append(out, r.at[i].Sub(start))
		}
	}
	return out
}

func (r *recorder) find(typ string) *typesv1.AuditEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range r.events {
		if ev.GetType() == typ {
			return ev
		}
	}
	return nil
}

// node is a running node service with its CA, backend and lock watcher.
type node struct {
	ctx     context.Context
	clock   *clockwork.FakeClock
	bk      backend.Backend
	lw      *lockwatch.Watcher
	srv     *sshnode.Server
	addr    string
	hostKey ssh.PublicKey
	ca      ssh.Signer
	audit   *recorder
	access  *staticAccess
	login   string
	// incarnations are the incarnations of the stored users alice and bob,
	// which certificates carry by default.
	incarnations map[string]string
}

func newSigner(t testing.TB) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	s, err := ssh.NewSignerFromKey(priv)
	require.NoError(t, err)
	return s
}

// currentLogin is the OS login sessions run as: the test's own user (root
// in CI), so that no account has to be created.
func currentLogin(t testing.TB) string {
	t.Helper()
	u, err := user.Current()
	require.NoError(t, err)
	return u.Username
}

func startNode(t testing.TB) *node { return startNodeWith(t, nodeOpts{}) }

type nodeOpts struct {
	// wrap, if set, wraps the backend the lock watcher reads through.
	wrap func(backend.Backend) backend.Backend
	// lite selects the SQLite backend instead of the memory one.
	lite bool
}

func startNodeWith(t testing.TB, o nodeOpts) *node {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	// The fake clock starts at real time: OpenSSH clients compare nothing
	// against it, but it must be plausible in the certificates.
	clock := clockwork.NewFakeClockAt(time.Now())
	var bk backend.Backend
	var err error
	if o.lite {
		bk, err = lite.New(ctx, lite.Config{Path: filepath.Join(t.TempDir(), "gatehouse.db"), Clock: clock})
	} else {
		bk, err = memory.New(ctx, memory.Config{Clock: clock})
	}
	require.NoError(t, err)
	t.Cleanup(func() { bk.Close() })
	quiet := slog.New(slog.DiscardHandler)
	// The users the certificates are issued to, as the user service
	// stores them, before the watcher's first load.
	incarnations := map[string]string{"alice": services.NewIncarnation(), "bob": services.NewIncarnation()}
	for name, inc := range incarnations {
		putUser(t, ctx, bk, name, inc, "access")
	}
	lwBackend := backend.Backend(bk)
	if o.wrap != nil {
		lwBackend = o.wrap(bk)
	}
	lw, err := lockwatch.New(ctx, lockwatch.Config{Backend: lwBackend, Clock: clock, Logger: quiet})
	require.NoError(t, err)
	t.Cleanup(func() { lw.Close() })
	require.NoError(t, lw.WaitInit(ctx))

	login := currentLogin(t)
	ca := newSigner(t)
	host := newSigner(t)
	audit := &recorder{}
	access := &staticAccess{
		users: map[string][]string{"alice": {"access"}, "bob": {"access"}},
		roles: map[string][]string{"access": {login}},
	}
	srv, err := sshnode.New(sshnode.Config{
		NodeName:    "node1",
		HostSigners: []ssh.Signer{host},
		UserCAKeys: func(context.Context) ([]ssh.PublicKey, error) {
			return []ssh.PublicKey{ca.PublicKey()}, nil
		},
		AccessChecker: access,
		LockWatcher:   lw,
		Emitter:       audit,
		Clock:         clock,
		Logger:        quiet,
	})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return &node{
		ctx: ctx, clock: clock, bk: bk, lw: lw, srv: srv, addr: ln.Addr().String(),
		hostKey: host.PublicKey(), ca: ca, audit: audit, access: access, login: login,
		incarnations: incarnations,
	}
}

func putUser(t testing.TB, ctx context.Context, bk backend.Backend, name, incarnation string, roles ...string) {
	t.Helper()
	item, err := services.MarshalUser(&typesv1.User{
		Metadata: &typesv1.Metadata{Name: name},
		Spec:     &typesv1.UserSpec{Roles: roles, Incarnation: incarnation},
	})
	require.NoError(t, err)
	_, err = bk.Put(ctx, item)
	require.NoError(t, err)
}

// putUser stores user name with incarnation and roles.
func (n *node) putUser(t testing.TB, name, incarnation string, roles ...string) {
	t.Helper()
	putUser(t, n.ctx, n.bk, name, incarnation, roles...)
}

func (n *node) deleteUser(t testing.TB, name string) {
	t.Helper()
	require.NoError(t, n.bk.Delete(n.ctx, services.UserKey(name)))
}

type certOpts struct {
	keyID      string
	principals []string
	validAfter time.Time
	ttl        time.Duration
	ca         ssh.Signer
	// priv is the client's key; a new one when nil.
	priv ed25519.PrivateKey
	// incarnation and roles are what the certificate says of its user;
	// by default the stored user's incarnation and the roles staticAccess
	// gives it.
	incarnation string
	roles       []string
	// noCredExt leaves out the incarnation and roles extensions, as in a
	// certificate issued before they existed.
	noCredExt bool
}

// issue signs a new user key into a certificate and returns the client key
// and certificate.
func (n *node) issue(t testing.TB, o certOpts) (ssh.Signer, *ssh.Certificate) {
	t.Helper()
	key := newSigner(t)
	if o.priv != nil {
		var err error
		key, err = ssh.NewSignerFromKey(o.priv)
		require.NoError(t, err)
	}
	if o.ca == nil {
		o.ca = n.ca
	}
	if o.validAfter.IsZero() {
		o.validAfter = n.clock.Now().Add(-time.Minute)
	}
	if o.ttl == 0 {
		o.ttl = time.Hour
	}
	if o.principals == nil {
		o.principals = []string{n.login}
	}
	if o.incarnation == "" {
		o.incarnation = n.incarnations[o.keyID]
	}
	if o.roles == nil {
		n.access.mu.Lock()
		o.roles = n.access.users[o.keyID]
		n.access.mu.Unlock()
	}
	exts := map[string]string{"permit-pty": ""}
	if !o.noCredExt {
		roles, err := certext.EncodeRoles(o.roles)
		require.NoError(t, err)
		exts[certext.SSHExtIncarnation] = o.incarnation
		exts[certext.SSHExtRoles] = roles
	}
	cert := &ssh.Certificate{
		Key:             key.PublicKey(),
		Serial:          1,
		CertType:        ssh.UserCert,
		KeyId:           o.keyID,
		ValidPrincipals: o.principals,
		ValidAfter:      uint64(o.validAfter.Unix()),
		ValidBefore:     uint64(o.validAfter.Add(o.ttl).Unix()),
		Permissions:     ssh.Permissions{Extensions: exts},
	}
	require.NoError(t, cert.SignCert(rand.Reader, o.ca))
	return key, cert
}

// startSleeping dials n as n.login with key and cert and starts a 30 s
// sleep, for a test to end by what it writes; it returns the session and
// its stderr, where the node says why it ended the session.
func startSleeping(t *testing.T, n *node, key ssh.Signer, cert *ssh.Certificate) (*ssh.Session, *syncBuffer) {
	t.Helper()
	client, err := n.dial(key, cert, n.login)
	require.NoError(t, err)
	t.Cleanup(func() { client.Close() })
	sess, err := client.NewSession()
	require.NoError(t, err)
	stderr := &syncBuffer{}
	sess.Stderr = stderr
	require.NoError(t, sess.Start("sleep 30"))
	return sess, stderr
}

func (n *node) dial(key ssh.Signer, cert *ssh.Certificate, login string) (*ssh.Client, error) {
	auth := key
	if cert != nil {
		// Not ssh.NewCertSigner: it refuses some of the bad certificates the
		// tests must show the server refusing.
		auth = rawCertSigner{Signer: key, cert: cert}
	}
	return ssh.Dial("tcp", n.addr, &ssh.ClientConfig{
		User:            login,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(auth)},
		HostKeyCallback: ssh.FixedHostKey(n.hostKey),
		Timeout:         10 * time.Second,
	})
}

func (n *node) putLock(t testing.TB, name string, target *typesv1.LockTarget, msg string) {
	t.Helper()
	item, err := services.MarshalLock(&typesv1.Lock{
		Metadata: &typesv1.Metadata{Name: name},
		Spec:     &typesv1.LockSpec{Target: target, Message: msg},
	})
	require.NoError(t, err)
	_, err = n.bk.Put(n.ctx, item)
	require.NoError(t, err)
}

func (n *node) deleteLock(t testing.TB, name string) {
	t.Helper()
	require.NoError(t, n.bk.Delete(n.ctx, services.LockKey(name)))
}

// syncBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type syncBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// rawCertSigner presents any certificate for a key.
type rawCertSigner struct {
	ssh.Signer
	cert *ssh.Certificate
}

func (s rawCertSigner) PublicKey() ssh.PublicKey { return s.cert }

// flakyBackend lets a test break the lock watcher's event streams and make
// new ones fail.
type flakyBackend struct {
	backend.Backend
	mu       sync.Mutex
	fail     bool
	watchers []backend.Watcher
}

func (f *flakyBackend) NewWatcher(ctx context.Context, w backend.Watch) (backend.Watcher, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return nil, trace.ConnectionProblem(nil, "backend unreachable (test)")
	}
	bw, err := f.Backend.NewWatcher(ctx, w)
	if err == nil {
		f.watchers = append(f.watchers, bw)
	}
	return bw, err
}

func (f *flakyBackend) setFail(fail, breakStreams bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = fail
	if breakStreams {
		for _, w := range f.watchers {
			w.Close()
		}
		f.watchers = nil
	}
}
