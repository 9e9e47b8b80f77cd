package process

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/gravitational/trace"
	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/lib/auth"
	"github.com/gatehouse/gatehouse/lib/auth/audit"
	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/canonical"
	"github.com/gatehouse/gatehouse/lib/services"
	"github.com/gatehouse/gatehouse/lib/services/websession"
	"github.com/gatehouse/gatehouse/lib/srv/lockwatch"
	"github.com/gatehouse/gatehouse/lib/srv/sshnode"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// Files of the SSH node service in the data directory.
const (
	// SSHAddrFile holds the SSH listener's dialable host:port.
	SSHAddrFile = "ssh_addr"
	// SSHHostKeyFile is the node's ed25519 host key (mode 0600), kept so
	// that clients see the same host key across restarts.
	SSHHostKeyFile = "ssh_host_key"
	// sshHostCertTTL is the lifetime of the host certificate, issued anew
	// by the host CA at every start.
	sshHostCertTTL = 365 * 24 * time.Hour
	// lockWatchInitTimeout bounds the wait for the lock watcher's first
	// load at start.
	lockWatchInitTimeout = 30 * time.Second
)

// watcherLocks lets the auth server's authorizer check API calls against
// the process's lock watcher instead of reading every lock from the
// backend on every call. It keeps the watcher's fail-closed rule: while the
// view is stale, every call is refused.
type watcherLocks struct{ w *lockwatch.Watcher }

func (l watcherLocks) GetLocksInForce(context.Context) ([]*typesv1.Lock, error) {
	if l.w.Stale() {
		return nil, trace.ConnectionProblem(nil, "%s", lockwatch.StaleMessage)
	}
	return l.w.LocksInForce(), nil
}

// startLockWatcher starts the process's one lock watcher. It returns at
// once: until its first load every lock check refuses (fail closed).
func (p *Process) startLockWatcher(ctx context.Context) error {
	lw, err := lockwatch.New(ctx, lockwatch.Config{Backend: p.backend, Logger: p.cfg.Logger, LiveSessionStaleness: p.set.LiveSessionStaleness})
	if err != nil {
		return trace.Wrap(err)
	}
	p.locks = lw
	return nil
}

// sshAccess is the node's AccessChecker: the user's current roles and the
// logins they allow, as lib/auth expands them for certificates.
type sshAccess struct{ a *auth.Server }

func (s sshAccess) CheckLogin(ctx context.Context, username, login string) ([]string, error) {
	roles, err := s.a.CheckSSHLogin(ctx, username, login)
	return roles, trace.Wrap(err)
}

// sshAddrForUsers is the host:port people give ssh, as the web UI's SSH
// access page shows it: the public address's host (it names the machine
// people reach) with the SSH listener's port, or without a public address
// the listener's own address ("localhost" for loopback).
func (p *Process) sshAddrForUsers() string {
	_, port, err := net.SplitHostPort(p.sshLn.Addr().String())
	if host := hostOf(p.set.PublicAddr); host != "" && err == nil {
		return net.JoinHostPort(host, port)
	}
	return dialableHost(p.sshLn.Addr())
}

// startSSH starts the SSH node service on the ssh address with a host key
// kept in the data dir and a host certificate from the host CA; it accepts
// user certificates from the user CA.
func (p *Process) startSSH() error {
	hostKey, err := sshnode.LoadOrCreateHostKey(filepath.Join(p.set.DataDir, SSHHostKeyFile))
	if err != nil {
		return trace.Wrap(err, "SSH host key")
	}
	// The listener is bound in Start, before the web API is mounted, so
	// the web UI can show the SSH address (see sshAddrForUsers).
	ln := p.sshLn
	nodeName, err := os.Hostname()
	if err != nil || nodeName == "" {
		nodeName = p.set.ClusterName
	}
	principals := nonEmpty([]string{nodeName, "localhost", "127.0.0.1", "::1", hostOf(p.set.SSHAddr), hostOf(dialable(ln.Addr())), hostOf(p.set.PublicAddr)})
	cert, err := p.auth.SignSSHHostCert(hostKey.PublicKey(), nodeName, principals, sshHostCertTTL)
	if err != nil {
		return trace.Wrap(err)
	}
	certSigner, err := ssh.NewCertSigner(cert, hostKey)
	if err != nil {
		return trace.Wrap(err)
	}
	userCAs, err := sshnode.ParseAuthorizedKeys(p.auth.UserCASSHPublicKey())
	if err != nil {
		return trace.Wrap(err)
	}
	p.ssh, err = sshnode.New(sshnode.Config{
		NodeName: nodeName,
		// The certificate for clients that trust the host CA, the plain key
		// for the others (they are different key types to SSH).
		HostSigners:   []ssh.Signer{certSigner, hostKey},
		UserCAKeys:    func(context.Context) ([]ssh.PublicKey, error) { return userCAs, nil },
		AccessChecker: sshAccess{a: p.auth},
		LockWatcher:   p.locks,
		Emitter:       p.auth.Services().Events,
		Clock:         p.cfg.Clock,
		Logger:        p.cfg.Logger,
	})
	if err != nil {
		return trace.Wrap(err)
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		if err := p.ssh.Serve(ln); err != nil {
			p.log.Error("SSH listener stopped.", "error", err)
		}
	}()
	return nil
}

// endLockedWebSessions deletes the web sessions of users a new lock
// targets, so that a locked user's session is gone, not merely refused
// (the session middleware also refuses it on its next request through the
// lock watcher). The lock watcher's subscriptions need a subject and this
// needs every lock, so it follows the locks prefix itself: it reconnects
// when its stream breaks and sweeps every session against every lock in
// force whenever it (re)starts.
func (p *Process) endLockedWebSessions(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := p.followLocks(ctx)
		if ctx.Err() != nil {
			return
		}
		p.log.Warn("Lock stream for web sessions broke; reconnecting.", "error", err)
		select {
		case <-ctx.Done():
			return
		case <-p.cfg.Clock.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

func (p *Process) followLocks(ctx context.Context) error {
	// The sessions come through the same watch as the locks, so that, in commit order, every
	// session written before a lock is in the view when the lock is seen.
	w, err := p.backend.NewWatcher(ctx, backend.Watch{Name: "websession-locks", Prefixes: []backend.Key{lockwatch.LocksPrefix, websession.SessionsKeyPrefix()}})
	if err != nil {
		return trace.Wrap(err)
	}
	defer w.Close()
	view := newSessionView()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.Done():
			return trace.ConnectionProblem(nil, "lock stream closed")
		case ev := <-w.Events():
			batch := takeQueued(ev, w.Events(), maxLockEventsPerSweep)
			for _, ev := range batch {
				view.apply(ev)
			}
			if batch[0].Type != backend.OpInit && len(view.users) == 0 {
				// No session to end (mayEnd is false whatever the locks): the locks are not
				// even decoded. OpInit is only ever a watcher's first event.
				continue
			}
			locks, init, err := p.locksIn(ctx, batch)
			if err != nil {
				return trace.Wrap(err)
			}
			if init || view.mayEnd(locks) {
				p.deleteWebSessions(ctx, locks)
			}
			if init {
				// After the sweep, which may end some: from here on the watch keeps the view
				// current (an event it also holds is applied again, to the same end).
				if err := p.loadSessionView(ctx, view); err != nil {
					return trace.Wrap(err)
				}
			}
		}
	}
}

// loadSessionView fills view with the stored sessions.
func (p *Process) loadSessionView(ctx context.Context, view *sessionView) error {
	mgr, err := websession.New(websession.Config{Backend: p.backend, Clock: p.cfg.Clock})
	if err != nil {
		return trace.Wrap(err)
	}
	users, err := mgr.SessionUsers(ctx)
	if err != nil {
		return trace.Wrap(err)
	}
	view.reset(users)
	return nil
}

// sessionView is which users hold web sessions, from the sessions watch: a lock that targets
// users alone, none of whom holds a session, ends none, and its sweep (a range read of every
// session, on every deactivation) is skipped. It only ever says "none" for sessions it has seen
// gone or never seen written before the lock in commit order; an entry it holds too long (an
// unreadable value, an expiry not yet reported) only costs a sweep.
type sessionView struct {
	// users is each session's user by the session's key; held counts them by canonical name.
	users map[string]string
	held  map[string]int
}

func newSessionView() *sessionView {
	return &sessionView{users: map[string]string{}, held: map[string]int{}}
}

// reset replaces the view's sessions with users (user by session key).
func (v *sessionView) reset(users map[string]string) {
	v.users, v.held = map[string]string{}, map[string]int{}
	for k, u := range users {
		v.add(k, u)
	}
}

func (v *sessionView) add(key, user string) {
	v.remove(key)
	v.users[key] = user
	v.held[canonical.Username(user)]++
}

func (v *sessionView) remove(key string) {
	u, ok := v.users[key]
	if !ok {
		return
	}
	delete(v.users, key)
	c := canonical.Username(u)
	if v.held[c]--; v.held[c] <= 0 {
		delete(v.held, c)
	}
}

// apply follows a session's put or delete; other events are left alone.
func (v *sessionView) apply(ev backend.Event) {
	if !bytes.HasPrefix(ev.Item.Key, websession.SessionsKeyPrefix()) {
		return
	}
	key := string(ev.Item.Key)
	switch ev.Type {
	case backend.OpPut:
		if user, ok := websession.SessionUser(ev.Item.Value); ok {
			v.add(key, user)
		} else {
			// EachSession skips it too: it ends nothing.
			v.remove(key)
		}
	case backend.OpDelete:
		v.remove(key)
	}
}

// mayEnd reports whether deleteWebSessions could end a session in the view for locks: false
// only when every lock targets a user alone (whose match depends on the session's user alone,
// services.LockTargetMatches) and none of those users holds a session.
func (v *sessionView) mayEnd(locks []*typesv1.Lock) bool {
	for _, l := range locks {
		t := l.GetSpec().GetTarget()
		if t.GetRole() != "" || t.GetLogin() != "" || t.GetNode() != "" {
			return len(v.users) > 0
		}
		if u := t.GetUser(); u != "" && v.held[canonical.Username(u)] > 0 {
			return true
		}
	}
	return false
}

// maxLockEventsPerSweep bounds how many queued lock events one sweep of the
// web sessions takes, so that a long burst still ends sessions as it goes.
const maxLockEventsPerSweep = 256

// takeQueued returns first and the events already queued behind it, up to
// max in all. It never waits: a lone lock is enforced at once, and a burst
// of deactivations (each writes a lock) costs one sweep of the web sessions
// instead of one per lock.
func takeQueued(first backend.Event, queue <-chan backend.Event, max int) []backend.Event {
	batch := []backend.Event{first}
	for len(batch) < max {
		select {
		case ev := <-queue:
			batch = append(batch, ev)
		default:
			return batch
		}
	}
	return batch
}

// locksIn returns the locks in force that events bring, in their order: on
// OpInit (the stream's start) every lock in force, on OpPut the lock put if
// it is in force. Deletes lift locks and end nothing. init says whether
// OpInit was among the events. Events of other keys (sessions) are skipped.
func (p *Process) locksIn(ctx context.Context, events []backend.Event) (locks []*typesv1.Lock, init bool, err error) {
	for _, ev := range events {
		switch {
		case ev.Type == backend.OpInit:
			all, err := p.auth.Services().Locks.GetLocksInForce(ctx)
			if err != nil {
				return nil, false, trace.Wrap(err)
			}
			locks = append(locks, all...)
			init = true
		case ev.Type == backend.OpPut && bytes.HasPrefix(ev.Item.Key, lockwatch.LocksPrefix):
			l, err := services.UnmarshalLock(ev.Item)
			if err != nil || !services.IsLockInForce(l, p.cfg.Clock.Now()) {
				continue
			}
			locks = append(locks, l)
		}
	}
	return locks, init, nil
}

// deleteWebSessions deletes every web session whose user locks target.
func (p *Process) deleteWebSessions(ctx context.Context, locks []*typesv1.Lock) {
	if len(locks) == 0 {
		return
	}
	mgr, err := websession.New(websession.Config{Backend: p.backend, Clock: p.cfg.Clock})
	if err != nil {
		p.log.Warn("Cannot list web sessions to end locked ones.", "error", err)
		return
	}
	roles := map[string][]string{}
	err = mgr.EachSession(ctx, func(s *websession.Session, end func() error) {
		r, ok := roles[s.User]
		if !ok {
			if u, err := p.auth.Services().Users.GetUser(ctx, s.User, false); err == nil {
				r = u.GetSpec().GetRoles()
			}
			roles[s.User] = r
		}
		l := services.FindLock(locks, services.LockSubject{User: s.User, Roles: r}, p.cfg.Clock.Now())
		if l == nil {
			return
		}
		if err := end(); err != nil && !trace.IsNotFound(err) {
			p.log.Warn("Cannot end a locked user's web session.", "user", s.User, "error", err)
			return
		}
		p.log.Info("Ended a web session under a lock.", "user", s.User, "lock", l.GetMetadata().GetName())
		p.auth.Recorder().Record(ctx, auditSessionEnded(s.User, l))
	})
	if err != nil {
		p.log.Warn("Cannot list web sessions to end locked ones.", "error", err)
	}
}

// EventWebSessionTerminated is a web session ended because a lock targets
// its user.
const EventWebSessionTerminated = "web.session.terminated"

func auditSessionEnded(user string, l *typesv1.Lock) audit.Event {
	return audit.Event{
		Type:     EventWebSessionTerminated,
		User:     user,
		Resource: services.KindLock + "/" + l.GetMetadata().GetName(),
		Message:  lockwatch.LockMessage(l),
	}
}
