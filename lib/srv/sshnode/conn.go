package sshnode

import (
	"context"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/gravitational/trace"
	"golang.org/x/crypto/ssh"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gatehouse/gatehouse/lib/auth/certext"
	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/services"
	"github.com/gatehouse/gatehouse/lib/srv/lockwatch"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// refuseTimeout bounds how long a refused connection stays open waiting for
// the client to open a channel and read why it is refused.
const refuseTimeout = 10 * time.Second

// accessUnavailable is what a client is told when its login cannot be
// checked for a reason that is not about it (the detail is logged).
const accessUnavailable = "access is temporarily unavailable"

// oldCertificate is what a client is told when its certificate carries no
// incarnation or roles: it was issued before certificates were bound to
// the account they are issued to.
const oldCertificate = "the certificate is of an older format that is no longer accepted; get a new one"

// conn is one authenticated SSH connection.
type conn struct {
	s           *Server
	sconn       *ssh.ServerConn
	user        string
	login       string
	roles       []string
	subject     lockwatch.Subject
	validBefore uint64
	certSerial  string
	// cred is what the certificate says about its account; oldCert is set
	// when it lacks the incarnation or the roles.
	cred    lockwatch.Credential
	oldCert bool
	log     *slog.Logger
	done    chan struct{}

	mu       sync.Mutex
	sessions map[*session]struct{}
	// denied, once set, is the reason every new channel is refused with.
	denied   string
	termOnce sync.Once
}

func newConn(s *Server, sconn *ssh.ServerConn) *conn {
	ext := sconn.Permissions.Extensions
	vb, err := strconv.ParseUint(ext[extValidBefore], 10, 64)
	if err != nil {
		// Unreachable: authenticate wrote it. Expire at once rather than never.
		vb = 0
	}
	c := &conn{
		s:           s,
		sconn:       sconn,
		user:        ext[extUser],
		login:       sconn.User(),
		validBefore: vb,
		certSerial:  ext[extCertSerial],
		done:        make(chan struct{}),
		sessions:    make(map[*session]struct{}),
	}
	c.cred = lockwatch.Credential{User: c.user, Incarnation: ext[extIncarnation]}
	rolesJSON, hasRoles := ext[extRoles]
	if hasRoles {
		// authenticate checked that it decodes.
		roles, err := certext.DecodeRoles(rolesJSON)
		hasRoles = err == nil
		c.cred.Roles = roles
	}
	c.oldCert = c.cred.Incarnation == "" || !hasRoles
	c.log = s.cfg.Logger.With("user", c.user, "login", c.login, "remote_addr", sconn.RemoteAddr().String())
	return c
}

func (c *conn) event(typ, outcome, msg string) *typesv1.AuditEvent {
	return &typesv1.AuditEvent{
		Id:       uuid.NewString(),
		Type:     typ,
		Time:     timestamppb.New(c.s.cfg.Clock.Now()),
		User:     c.user,
		Outcome:  outcome,
		Resource: "node/" + c.s.cfg.NodeName,
		Message:  msg,
		Fields: map[string]string{
			"login":       c.login,
			"node":        c.s.cfg.NodeName,
			"remote_addr": c.sconn.RemoteAddr().String(),
			"cert_serial": c.certSerial,
		},
	}
}

// serve authorizes the connection, then serves its channels until it ends.
func (c *conn) serve(chans <-chan ssh.NewChannel) {
	go func() {
		_ = c.sconn.Wait()
		close(c.done)
	}()
	defer c.hangup()

	lw := c.s.cfg.LockWatcher
	// A stale lock view refuses everyone: say so at once rather than after
	// a storage read that, in an outage, only times out.
	if lw.Stale() {
		c.refuse(lockwatch.StaleMessage, chans)
		return
	}
	ctx, cancel := context.WithTimeout(c.s.ctx, c.s.cfg.HandshakeTimeout)
	roles, accessErr := c.s.cfg.AccessChecker.CheckLogin(ctx, c.user, c.login)
	cancel()
	if accessErr != nil && !trace.IsAccessDenied(accessErr) && !trace.IsNotFound(accessErr) {
		// Not a decision about this user but a failure (storage out of
		// reach, say): its text is for the log, not for the client.
		c.log.Warn("Cannot check the login; refusing the connection.", "error", accessErr)
		if lw.Stale() {
			accessErr = trace.AccessDenied(lockwatch.StaleMessage)
		} else {
			accessErr = trace.AccessDenied(accessUnavailable)
		}
	}
	c.roles = roles
	c.subject = lockwatch.Subject{User: c.user, Roles: roles, Logins: []string{c.login}, Node: c.s.cfg.NodeName}
	// Subscribe before checking: a lock written in between reaches one or
	// the other.
	sub, err := lw.SubscribeFunc(c.subject, c.onLockEvent)
	var denial error
	var credSub *lockwatch.CredentialSubscription
	switch {
	case err != nil:
		denial = trace.AccessDenied(lockwatch.StaleMessage)
	default:
		if err := lw.CheckLockInForce(ctx, c.subject); err != nil {
			denial = err
		} else if accessErr != nil {
			denial = accessErr
		} else if c.oldCert {
			denial = trace.AccessDenied(oldCertificate)
		} else if credSub, err = lw.WatchCredential(c.cred, c.onCredentialVoided); err != nil {
			// Checked and followed in one step: a change of the user
			// written meanwhile voids the subscription.
			denial = err
			if !trace.IsAccessDenied(err) {
				denial = trace.AccessDenied(lockwatch.StaleMessage)
			}
		}
	}
	if denial != nil {
		if sub != nil {
			sub.Close()
		}
		c.refuse(trace.UserMessage(denial), chans)
		return
	}
	go c.monitor(sub, credSub)
	c.log.Info("SSH connection authorized.", "roles", roles)
	for nch := range chans {
		c.handleChannel(nch)
	}
}

// refuse rejects every channel with msg, which OpenSSH prints as
// "administratively prohibited: <msg>", and closes the connection soon.
func (c *conn) refuse(msg string, chans <-chan ssh.NewChannel) {
	c.mu.Lock()
	c.denied = msg
	c.mu.Unlock()
	c.log.Info("Refusing SSH connection.", "reason", msg)
	// The audit write goes to storage, which may be what is unavailable
	// (etcd without quorum): the client must not wait for it to be refused.
	// The connection's own count in s.wg is held, so Add cannot race Wait.
	ev := c.event(EventSessionRejected, services.OutcomeDenied, msg)
	c.s.wg.Add(1)
	go func() {
		defer c.s.wg.Done()
		c.s.emit(ev)
	}()
	t := time.AfterFunc(refuseTimeout, func() { c.sconn.Close() })
	defer t.Stop()
	for nch := range chans {
		_ = nch.Reject(ssh.Prohibited, msg)
		// The client has its answer; leave it a moment to read it.
		t.Reset(c.s.cfg.TerminateGrace)
	}
}

// monitor ends the connection when a lock that matches it appears, its
// certificate no longer belongs to its user (deleted, created again, a role
// removed), its certificate expires, or the lock view has been stale for
// longer than the live-session bound.
func (c *conn) monitor(sub *lockwatch.Subscription, cred *lockwatch.CredentialSubscription) {
	defer func() { sub.Close() }()
	defer cred.Close()
	clock := c.s.cfg.Clock
	var expiry <-chan time.Time
	if c.validBefore != ssh.CertTimeInfinity {
		at := time.Unix(int64(min(c.validBefore, math.MaxInt64)), 0)
		t := clock.NewTimer(at.Sub(clock.Now()))
		defer t.Stop()
		expiry = t.Chan()
	}
	lw := c.s.cfg.LockWatcher
	for {
		select {
		case ev := <-sub.Events():
			if ev.Type == backend.OpPut && lockwatch.InForce(ev.Lock, clock.Now()) {
				c.terminate(lockwatch.LockMessage(ev.Lock), ev.Lock)
				return
			}
		case <-sub.Done():
			select {
			case <-c.done:
				return
			default:
			}
			// Events may have been lost: subscribe again and re-check.
			c.log.Warn("Lock subscription ended; re-subscribing.", "error", sub.Err())
			next, err := lw.SubscribeFunc(c.subject, c.onLockEvent)
			if err != nil {
				c.terminate("lock watcher is unavailable", nil)
				return
			}
			sub = next
			if l := lw.FindLockInForce(c.subject); l != nil {
				c.terminate(lockwatch.LockMessage(l), l)
				return
			}
		case <-cred.Voided():
			if l := c.lockWithVoid(sub); l != nil {
				c.terminate(lockwatch.LockMessage(l), l)
				return
			}
			c.terminate(cred.Reason(), nil)
			return
		case <-lw.LiveBoundExceeded():
			// Fetched anew at every loop: the watcher replaces it after an
			// outage that ended in time.
			c.terminate(lw.LiveStaleMessage(), nil)
			return
		case <-expiry:
			c.terminate("certificate expired", nil)
			return
		case <-c.done:
			return
		}
	}
}

// onLockEvent runs in the lock watcher's goroutine for every lock event that
// matches the connection: a lock in force kills the connection's processes
// at once and refuses new channels; the monitor then tells the client and
// closes the connection.
func (c *conn) onLockEvent(ev lockwatch.Event) {
	if ev.Type != backend.OpPut || !lockwatch.InForce(ev.Lock, c.s.cfg.Clock.Now()) {
		return
	}
	c.killAll("session terminated: " + lockwatch.LockMessage(ev.Lock))
}

// killAll kills the connection's processes at once and refuses new channels
// with denied (unless they are refused already, whose reason is kept).
func (c *conn) killAll(denied string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.denied == "" {
		c.denied = denied
	}
	for s := range c.sessions {
		s.kill()
	}
}

// lockWait bounds how long a connection whose credential was voided waits
// for a lock that says why (see lockWithVoid). Its processes are dead
// already (onCredentialVoided): only the message and the close wait.
const lockWait = 100 * time.Millisecond

// lockWithVoid returns the lock that comes with the voiding of the
// connection's credential, if any: a deprovisioning deletes the user and
// locks it in one atomic write, whose events the watcher applies one by
// one, and the lock's message ("deactivated in Okta") is what the client
// should be told, not merely that its user is gone.
func (c *conn) lockWithVoid(sub *lockwatch.Subscription) *typesv1.Lock {
	lw := c.s.cfg.LockWatcher
	if l := lw.FindLockInForce(c.subject); l != nil {
		return l
	}
	t := time.NewTimer(lockWait)
	defer t.Stop()
	for {
		select {
		case ev := <-sub.Events():
			if ev.Type == backend.OpPut && lockwatch.InForce(ev.Lock, c.s.cfg.Clock.Now()) {
				return ev.Lock
			}
		case <-sub.Done():
			return lw.FindLockInForce(c.subject)
		case <-t.C:
			return nil
		case <-c.done:
			return nil
		}
	}
}

// onCredentialVoided runs in the lock watcher's goroutine when the
// connection's certificate no longer belongs to its user: like a lock, it
// kills the connection's processes at once and refuses new channels; the
// monitor then tells the client and closes the connection.
func (c *conn) onCredentialVoided(reason string) {
	c.killAll("session terminated: " + reason)
}

// terminate tells every session why, kills its processes, closes it and
// then the connection, and records the termination.
func (c *conn) terminate(reason string, lock *typesv1.Lock) {
	c.termOnce.Do(func() {
		msg := "session terminated: " + reason
		c.mu.Lock()
		c.denied = msg
		sessions := c.sessionsLocked()
		c.mu.Unlock()
		c.log.Warn("Terminating SSH connection.", "reason", reason, "sessions", len(sessions))
		// The connection is closed after the grace period whatever happens:
		// that also unblocks a write to a client that stopped reading.
		closer := time.AfterFunc(c.s.cfg.TerminateGrace, func() { c.sconn.Close() })
		defer closer.Stop()
		// Sequentially, in this goroutine: every extra goroutine hop is
		// scheduling latency between the lock and the client seeing it.
		for _, s := range sessions {
			s.terminate(msg)
		}
		ev := c.event(EventSessionTerminated, services.OutcomeDenied, msg)
		if lock != nil {
			ev.Resource = "lock/" + lock.GetMetadata().GetName()
			ev.Fields["lock"] = lock.GetMetadata().GetName()
			ev.Fields["reason"] = "lock"
		} else {
			ev.Fields["reason"] = reason
		}
		c.s.emit(ev)
		// Let the client read the message and close first; closing under it
		// can reset the TCP connection before it has read everything.
		select {
		case <-c.done:
		case <-time.After(c.s.cfg.TerminateGrace):
		}
		c.sconn.Close()
	})
}

// sessionsLocked returns the connection's sessions, to be signalled once
// c.mu (which the caller holds) is released.
func (c *conn) sessionsLocked() []*session {
	return slices.Collect(maps.Keys(c.sessions))
}

// shutdown kills everything at once (server Close).
func (c *conn) shutdown() {
	c.mu.Lock()
	c.denied = "node is shutting down"
	sessions := c.sessionsLocked()
	c.mu.Unlock()
	for _, s := range sessions {
		s.signal(syscall.SIGKILL)
	}
	c.sconn.Close()
}

// hangup runs when the connection ends: its processes get SIGHUP, as from a
// terminal hangup, and are killed if they outlive it briefly.
func (c *conn) hangup() {
	c.sconn.Close()
	c.mu.Lock()
	if c.denied == "" {
		c.denied = "connection closed"
	}
	sessions := c.sessionsLocked()
	c.mu.Unlock()
	for _, s := range sessions {
		s.signal(syscall.SIGHUP)
		go func() {
			select {
			case <-s.finished:
			case <-time.After(time.Second):
				s.signal(syscall.SIGKILL)
			}
		}()
	}
}

func (c *conn) handleChannel(nch ssh.NewChannel) {
	if nch.ChannelType() != "session" {
		_ = nch.Reject(ssh.UnknownChannelType, "only session channels are supported")
		return
	}
	c.mu.Lock()
	denied, open := c.denied, len(c.sessions)
	c.mu.Unlock()
	if denied != "" {
		_ = nch.Reject(ssh.Prohibited, denied)
		return
	}
	if open >= c.s.cfg.MaxSessions {
		_ = nch.Reject(ssh.ResourceShortage, "too many sessions on this connection")
		return
	}
	ch, reqs, err := nch.Accept()
	if err != nil {
		c.log.Debug("Cannot accept a channel.", "error", err)
		return
	}
	s := newSession(c, ch)
	c.mu.Lock()
	if c.denied != "" {
		denied = c.denied
		c.mu.Unlock()
		_, _ = ch.Stderr().Write([]byte("\r\n" + denied + "\r\n"))
		ch.Close()
		go ssh.DiscardRequests(reqs)
		return
	}
	c.sessions[s] = struct{}{}
	c.mu.Unlock()
	go func() {
		s.serve(reqs)
		c.mu.Lock()
		delete(c.sessions, s)
		c.mu.Unlock()
	}()
}
