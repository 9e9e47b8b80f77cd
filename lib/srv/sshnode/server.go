// Package sshnode is the Gatehouse SSH node service: an SSH server that
// accepts only OpenSSH user certificates signed by the cluster's user CA,
// checks the requested OS login against the user's roles, refuses users under
// a lock, and runs sessions as the requested OS login.
//
// A certificate is bound to the incarnation of the account it was issued to
// and to the roles it was issued with (lib/auth/certext): a login is refused
// unless the lock view's user view (lockwatch.WatchCredential) shows the
// user with that incarnation and every one of those roles.
//
// Every live connection is watched by a session monitor: when a lock that
// targets its user, one of the user's roles, its login or this node appears,
// or its user is deleted, created again or loses a role of its certificate,
// the client is told why on stderr, the session's processes are killed, the
// connection is closed and an audit event is written. A connection also ends
// when its certificate expires.
package sshnode

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/lib/auth/certext"
	"github.com/gatehouse/gatehouse/lib/defaults"
	"github.com/gatehouse/gatehouse/lib/srv/lockwatch"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// Audit event types this package writes.
const (
	// EventSessionStart is a session (exec or shell) that started.
	EventSessionStart = "ssh.session.start"
	// EventSessionEnd is a session whose process exited.
	EventSessionEnd = "ssh.session.end"
	// EventSessionRejected is a connection refused after authentication: a
	// lock, a login the roles do not allow, or a stale lock view.
	EventSessionRejected = "ssh.session.rejected"
	// EventSessionTerminated is a live connection ended by a lock, by its
	// certificate expiring, or by the lock view staying stale past the
	// live-session bound.
	EventSessionTerminated = "ssh.session.terminated"
)

// Permission extension keys that carry the authenticated identity from the
// handshake to the connection handler.
const (
	extUser        = "gatehouse-user@gatehouse.dev"
	extValidBefore = "gatehouse-valid-before@gatehouse.dev"
	extCertSerial  = "gatehouse-cert-serial@gatehouse.dev"
	// extIncarnation and extRoles carry the certificate's
	// certext.SSHExtIncarnation and certext.SSHExtRoles (the latter only
	// when the certificate has it, already checked to decode).
	extIncarnation = "gatehouse-incarnation@gatehouse.dev"
	extRoles       = "gatehouse-roles@gatehouse.dev"
)

// AccessChecker decides whether a user may log in to this node as an OS
// login. It is implemented on top of lib/auth (users and roles).
type AccessChecker interface {
	// CheckLogin returns the user's current roles if the user exists and its
	// roles allow login (and no role denies it), or an error
	// (trace.AccessDenied, trace.NotFound) whose message the client sees.
	// The roles become lock targets of the session.
	CheckLogin(ctx context.Context, username, login string) (roles []string, err error)
}

// Emitter writes audit events.
type Emitter interface {
	// Emit records one event.
	Emit(ctx context.Context, ev *typesv1.AuditEvent) error
}

// Config configures a Server.
type Config struct {
	// NodeName is this node's name, matched by locks targeting a node;
	// defaults to the host name.
	NodeName string
	// HostSigners are the host keys (later: host certificates from the host
	// CA); at least one is required.
	HostSigners []ssh.Signer
	// UserCAKeys returns the user CA's public keys; certificates signed by any
	// of them are accepted. It is called on every authentication so that CA
	// rotation takes effect at once.
	UserCAKeys func(ctx context.Context) ([]ssh.PublicKey, error)
	// AccessChecker checks the login against the user's roles; required.
	AccessChecker AccessChecker
	// LockWatcher is the process's lock view; required.
	LockWatcher *lockwatch.Watcher
	// Emitter receives audit events; required.
	Emitter Emitter
	// Clock checks certificate validity and expiry; defaults to real time.
	Clock clockwork.Clock
	// Logger defaults to slog.Default.
	Logger *slog.Logger
	// HandshakeTimeout bounds the SSH handshake and authentication.
	HandshakeTimeout time.Duration
	// MaxSessions is the most session channels open at once on one
	// connection; defaults to 10, as OpenSSH's MaxSessions.
	MaxSessions int
	// TerminateGrace is how long a terminated or refused connection is left
	// for the client to close it itself (so that it reads the message)
	// before the server closes it. Nothing runs on it meanwhile.
	TerminateGrace time.Duration
}

// CheckAndSetDefaults validates the config and fills in defaults.
func (c *Config) CheckAndSetDefaults() error {
	switch {
	case len(c.HostSigners) == 0:
		return trace.BadParameter("sshnode: missing HostSigners")
	case c.UserCAKeys == nil:
		return trace.BadParameter("sshnode: missing UserCAKeys")
	case c.AccessChecker == nil:
		return trace.BadParameter("sshnode: missing AccessChecker")
	case c.LockWatcher == nil:
		return trace.BadParameter("sshnode: missing LockWatcher")
	case c.Emitter == nil:
		return trace.BadParameter("sshnode: missing Emitter")
	}
	if c.NodeName == "" {
		h, err := os.Hostname()
		if err != nil {
			return trace.Wrap(err, "sshnode: NodeName not set and no host name")
		}
		c.NodeName = h
	}
	defaults.Clock(&c.Clock)
	defaults.Logger(&c.Logger, "sshnode")
	defaults.IfNotPositive(&c.HandshakeTimeout, 30*time.Second)
	defaults.IfNotPositive(&c.MaxSessions, 10)
	defaults.IfNotPositive(&c.TerminateGrace, 2*time.Second)
	return nil
}

// Server is the SSH node service.
type Server struct {
	cfg    Config
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	closed    bool
	wg        sync.WaitGroup
}

// New creates a server; call Serve to accept connections.
func New(cfg Config) (*Server, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, trace.Wrap(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		cfg:       cfg,
		ctx:       ctx,
		cancel:    cancel,
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[*conn]struct{}),
	}, nil
}

// Serve accepts connections on ln until Close. It closes ln.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return trace.ConnectionProblem(nil, "ssh node service is closed")
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()
	s.cfg.Logger.Info("SSH node service listening.", "addr", ln.Addr().String(), "node", s.cfg.NodeName)
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Temporary errors (too many open files) must not end the service.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.cfg.Logger.Warn("Accept failed.", "error", err)
			select {
			case <-time.After(backoff):
				continue
			case <-s.ctx.Done():
				return nil
			}
		}
		backoff = 0
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handleConn(nc)
		}()
	}
}

// Close stops accepting, kills every session and closes every connection.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for ln := range s.listeners {
		ln.Close()
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	s.cancel()
	for _, c := range conns {
		c.shutdown()
	}
	s.wg.Wait()
	return nil
}

func (s *Server) sshConfig() *ssh.ServerConfig {
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: s.authenticate,
		ServerVersion:     "SSH-2.0-Gatehouse",
	}
	for _, signer := range s.cfg.HostSigners {
		cfg.AddHostKey(signer)
	}
	return cfg
}

// errCertRequired is what a client offering a plain key is told.
var errCertRequired = errors.New("only user certificates issued by the cluster's user CA are accepted")

// authenticate accepts an OpenSSH user certificate signed by the user CA,
// inside its validity window, naming the requested login among its
// principals, with the username as its key id.
func (s *Server) authenticate(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	log := s.cfg.Logger.With("remote_addr", meta.RemoteAddr().String(), "login", meta.User())
	cert, ok := key.(*ssh.Certificate)
	if !ok {
		log.Debug("Refusing a plain public key.")
		return nil, errCertRequired
	}
	if cert.CertType != ssh.UserCert {
		log.Info("Refusing a host certificate offered as a user certificate.")
		return nil, errCertRequired
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.HandshakeTimeout)
	defer cancel()
	cas, err := s.cfg.UserCAKeys(ctx)
	if err != nil {
		log.Error("Cannot read the user CA keys.", "error", err)
		return nil, errors.New("cannot verify certificates right now")
	}
	checker := &ssh.CertChecker{
		IsUserAuthority: func(auth ssh.PublicKey) bool {
			for _, ca := range cas {
				if bytes.Equal(ca.Marshal(), auth.Marshal()) {
					return true
				}
			}
			return false
		},
		Clock: s.cfg.Clock.Now,
	}
	if _, err := checker.Authenticate(meta, key); err != nil {
		log.Info("Refusing a user certificate.", "key_id", cert.KeyId, "error", err)
		return nil, trace.AccessDenied("certificate refused")
	}
	// A certificate without principals must not be valid for every login.
	// CheckCert refuses it today; this keeps it so if that ever changes.
	if len(cert.ValidPrincipals) == 0 {
		log.Info("Refusing a user certificate without principals.", "key_id", cert.KeyId)
		return nil, trace.AccessDenied("certificate refused")
	}
	if cert.KeyId == "" {
		log.Info("Refusing a user certificate without a key id.")
		return nil, trace.AccessDenied("certificate refused")
	}
	perms := &ssh.Permissions{
		Extensions: map[string]string{
			extUser:        cert.KeyId,
			extValidBefore: strconv.FormatUint(cert.ValidBefore, 10),
			extCertSerial:  strconv.FormatUint(cert.Serial, 10),
			extIncarnation: cert.Extensions[certext.SSHExtIncarnation],
		},
	}
	// A certificate without these extensions predates them: it is refused
	// after the handshake, with a message the client sees.
	if roles, ok := cert.Extensions[certext.SSHExtRoles]; ok {
		if _, err := certext.DecodeRoles(roles); err != nil {
			log.Info("Refusing a user certificate with malformed roles.", "key_id", cert.KeyId, "error", err)
			return nil, trace.AccessDenied("certificate refused")
		}
		perms.Extensions[extRoles] = roles
	}
	return perms, nil
}

func (s *Server) handleConn(nc net.Conn) {
	_ = nc.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	sconn, chans, reqs, err := ssh.NewServerConn(nc, s.sshConfig())
	if err != nil {
		s.cfg.Logger.Debug("SSH handshake failed.", "remote_addr", nc.RemoteAddr().String(), "error", err)
		nc.Close()
		return
	}
	_ = nc.SetDeadline(time.Time{})
	// Global requests (port forwarding, keepalives) are refused.
	go ssh.DiscardRequests(reqs)

	c := newConn(s, sconn)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		sconn.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	c.serve(chans)
}

func (s *Server) emit(ev *typesv1.AuditEvent) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.cfg.Emitter.Emit(ctx, ev); err != nil {
		s.cfg.Logger.Error("Cannot write an audit event.", "type", ev.GetType(), "error", err)
	}
}
