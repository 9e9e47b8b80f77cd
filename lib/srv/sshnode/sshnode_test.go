package sshnode_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/srv/lockwatch"
	"github.com/gatehouse/gatehouse/lib/srv/sshnode"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

const lockMsg = "deprovisioned by Okta"

// wantLockText is what clients are told about alice's lock.
var wantLockText = `lock targeting user "alice" is in force: ` + lockMsg

func TestExecAndLockEndsSession(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	key, cert := n.issue(t, certOpts{keyID: "alice"})
	client, err := n.dial(key, cert, n.login)
	require.NoError(t, err)
	defer client.Close()

	// A plain exec runs as the login and reports its output and status.
	sess, err := client.NewSession()
	require.NoError(t, err)
	out, err := sess.Output("echo hi")
	require.NoError(t, err)
	require.Equal(t, "hi\n", string(out))

	sess, err = client.NewSession()
	require.NoError(t, err)
	require.NoError(t, sess.Setenv("LC_GREETING", "hello"))
	// Variables that could make the login's shell run code the user chose
	// are refused, as OpenSSH refuses them by default.
	for _, name := range []string{"LD_PRELOAD", "BASH_ENV", "PATH"} {
		require.Error(t, sess.Setenv(name, "/tmp/x"), name)
	}
	out, err = sess.CombinedOutput(`echo "$LC_GREETING $USER"; echo "preload=$LD_PRELOAD"; echo err >&2; exit 3`)
	var exitErr *ssh.ExitError
	require.ErrorAs(t, err, &exitErr)
	require.Equal(t, 3, exitErr.ExitStatus())
	require.Contains(t, string(out), "hello "+n.login+"\n")
	require.Contains(t, string(out), "preload=\n")
	require.Contains(t, string(out), "err\n")

	// A long session ends within a second of the lock being written, and the
	// client is told why.
	sess, err = client.NewSession()
	require.NoError(t, err)
	var stderr syncBuffer
	sess.Stderr = &stderr
	require.NoError(t, sess.Start("sleep 30"))
	ended := make(chan error, 1)
	go func() { ended <- sess.Wait() }()

	start := time.Now()
	n.putLock(t, "alice-okta", &typesv1.LockTarget{User: "alice"}, lockMsg)
	select {
	case <-ended:
	case <-time.After(time.Second):
		t.Fatal("session still running 1s after the lock was written")
	}
	t.Logf("lock to session end: %v", time.Since(start))
	require.Equal(t, "\r\nsession terminated: "+wantLockText+"\r\n", stderr.String())

	ev := waitEvent(t, n, sshnode.EventSessionTerminated)
	require.Equal(t, "alice", ev.GetUser())
	require.Equal(t, "lock/alice-okta", ev.GetResource())
	require.Equal(t, "alice-okta", ev.GetFields()["lock"])

	// The connection is closed too.
	closed := make(chan error, 1)
	go func() { closed <- client.Wait() }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("connection not closed after termination")
	}

	// A new connection with the same certificate is refused with the lock.
	client2, err := n.dial(key, cert, n.login)
	require.NoError(t, err, "authentication succeeds so that the client can be told why it is refused")
	defer client2.Close()
	_, err = client2.NewSession()
	requireProhibited(t, err, wantLockText)
	require.NotNil(t, waitEvent(t, n, sshnode.EventSessionRejected))

	// Another user is not affected; once the lock is gone alice is back.
	bobKey, bobCert := n.issue(t, certOpts{keyID: "bob"})
	requireRuns(t, n, bobKey, bobCert)
	n.deleteLock(t, "alice-okta")
	require.Eventually(t, func() bool { return n.lw.FindLockInForce(aliceSubject(n)) == nil }, 5*time.Second, 5*time.Millisecond)
	requireRuns(t, n, key, cert)
}

func aliceSubject(n *node) lockwatch.Subject {
	return lockwatch.Subject{User: "alice", Roles: []string{"access"}, Logins: []string{n.login}, Node: "node1"}
}

func TestLocksByRoleLoginAndNode(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	for _, tc := range []struct {
		name   string
		target *typesv1.LockTarget
		want   string
	}{
		{"role", &typesv1.LockTarget{Role: "access"}, `lock targeting role "access" is in force: m`},
		{"login", &typesv1.LockTarget{Login: n.login}, `lock targeting login "` + n.login + `" is in force: m`},
		{"node", &typesv1.LockTarget{Node: "node1"}, `lock targeting node "node1" is in force: m`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, cert := n.issue(t, certOpts{keyID: "alice"})
			sess, stderr := startSleeping(t, n, key, cert)
			n.putLock(t, "l", tc.target, "m")
			waitEnded(t, sess, 2*time.Second)
			require.Contains(t, stderr.String(), "session terminated: "+tc.want)
			n.deleteLock(t, "l")
			require.Eventually(t, func() bool { return n.lw.CheckLockInForce(t.Context(), aliceSubject(n)) == nil }, 5*time.Second, 5*time.Millisecond)
		})
	}
	// A lock on another node or role leaves the session alone.
	key, cert := n.issue(t, certOpts{keyID: "alice"})
	client, err := n.dial(key, cert, n.login)
	require.NoError(t, err)
	defer client.Close()
	sess, err := client.NewSession()
	require.NoError(t, err)
	require.NoError(t, sess.Start("sleep 30"))
	n.putLock(t, "other-node", &typesv1.LockTarget{Node: "node2"}, "")
	n.putLock(t, "other-role", &typesv1.LockTarget{Role: "editor"}, "")
	requireRuns(t, n, key, cert)
	require.NoError(t, sess.Signal(ssh.SIGKILL))
	waitEnded(t, sess, 5*time.Second)
}

func TestRefusedCertificates(t *testing.T) {
	t.Parallel()
	n := startNode(t)

	foreignKey, foreignCert := n.issue(t, certOpts{keyID: "alice", ca: newSigner(t)})
	expiredKey, expiredCert := n.issue(t, certOpts{keyID: "alice", validAfter: n.clock.Now().Add(-2 * time.Hour), ttl: time.Hour})
	futureKey, futureCert := n.issue(t, certOpts{keyID: "alice", validAfter: n.clock.Now().Add(time.Hour)})
	otherPrincipalKey, otherPrincipalCert := n.issue(t, certOpts{keyID: "alice", principals: []string{"someone-else"}})
	noIDKey, noIDCert := n.issue(t, certOpts{})
	for _, tc := range []struct {
		name string
		key  ssh.Signer
		cert *ssh.Certificate
	}{
		{"foreign CA", foreignKey, foreignCert},
		{"expired", expiredKey, expiredCert},
		{"not yet valid", futureKey, futureCert},
		{"login not a principal", otherPrincipalKey, otherPrincipalCert},
		{"no key id", noIDKey, noIDCert},
		{"plain key", newSigner(t), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := n.dial(tc.key, tc.cert, n.login)
			if c != nil {
				c.Close()
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), "unable to authenticate")
		})
	}
}

func TestLoginNotAllowedByRoles(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	// The certificate names the login, but alice's roles do not allow it.
	key, cert := n.issue(t, certOpts{keyID: "alice", principals: []string{n.login, "daemon"}})
	client, err := n.dial(key, cert, "daemon")
	require.NoError(t, err)
	defer client.Close()
	_, err = client.NewSession()
	requireProhibited(t, err, `user "alice" is not allowed to log in as "daemon"`)

	// An unknown user with a valid certificate is refused as well.
	key, cert = n.issue(t, certOpts{keyID: "mallory"})
	client2, err := n.dial(key, cert, n.login)
	require.NoError(t, err)
	defer client2.Close()
	_, err = client2.NewSession()
	requireProhibited(t, err, `user "mallory" not found`)
}

func TestCertificateExpiryEndsSession(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	key, cert := n.issue(t, certOpts{keyID: "alice", ttl: 10 * time.Minute})
	sess, stderr := startSleeping(t, n, key, cert)
	// Let the monitor arm its timer before moving the clock.
	require.Eventually(t, func() bool { return n.audit.find(sshnode.EventSessionStart) != nil }, 5*time.Second, 5*time.Millisecond)
	// Issued a minute ago for ten minutes: eight minutes on, still valid.
	n.clock.Advance(8 * time.Minute)
	requireRuns(t, n, key, cert)
	n.clock.Advance(2 * time.Minute)
	waitEnded(t, sess, 2*time.Second)
	require.Contains(t, stderr.String(), "session terminated: certificate expired")
}

func TestShellWithPTY(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	key, cert := n.issue(t, certOpts{keyID: "alice"})
	client, err := n.dial(key, cert, n.login)
	require.NoError(t, err)
	defer client.Close()
	sess, err := client.NewSession()
	require.NoError(t, err)
	require.NoError(t, sess.RequestPty("xterm", 40, 100, ssh.TerminalModes{}))
	stdin, err := sess.StdinPipe()
	require.NoError(t, err)
	var out syncBuffer
	sess.Stdout = &out
	require.NoError(t, sess.Shell())
	require.NoError(t, sess.WindowChange(50, 120))
	_, err = io.WriteString(stdin, "tty; echo term=$TERM; stty size; exit 7\n")
	require.NoError(t, err)
	err = sess.Wait()
	var exitErr *ssh.ExitError
	require.ErrorAs(t, err, &exitErr, "output: %s", out.String())
	require.Equal(t, 7, exitErr.ExitStatus())
	require.Contains(t, out.String(), "/dev/pts/")
	require.Contains(t, out.String(), "term=xterm")
	require.Contains(t, out.String(), "50 120")
}

func TestWatcherOutageRefusesNewSessions(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	key, cert := n.issue(t, certOpts{keyID: "alice"})
	requireRuns(t, n, key, cert)
	// A closed watcher is the extreme outage: nothing is known any more.
	require.NoError(t, n.lw.Close())
	client, err := n.dial(key, cert, n.login)
	require.NoError(t, err)
	defer client.Close()
	_, err = client.NewSession()
	requireProhibited(t, err, "lock view is stale, refusing new sessions")
}

func requireProhibited(t *testing.T, err error, msg string) {
	t.Helper()
	var oce *ssh.OpenChannelError
	require.True(t, errors.As(err, &oce), "want a refused channel, got %v", err)
	require.Equal(t, ssh.Prohibited, oce.Reason)
	require.Equal(t, msg, oce.Message)
}

// requireRuns checks that a new connection can run a command.
func requireRuns(t *testing.T, n *node, key ssh.Signer, cert *ssh.Certificate) {
	t.Helper()
	c, err := n.dial(key, cert, n.login)
	require.NoError(t, err)
	defer c.Close()
	s, err := c.NewSession()
	require.NoError(t, err)
	out, err := s.Output("echo ok")
	require.NoError(t, err)
	require.Equal(t, "ok", strings.TrimSpace(string(out)))
}

func waitEnded(t *testing.T, sess *ssh.Session, d time.Duration) {
	t.Helper()
	ended := make(chan error, 1)
	go func() { ended <- sess.Wait() }()
	select {
	case <-ended:
	case <-time.After(d):
		t.Fatalf("session still running after %v", d)
	}
}

func waitEvent(t *testing.T, n *node, typ string) *typesv1.AuditEvent {
	t.Helper()
	var ev *typesv1.AuditEvent
	require.Eventually(t, func() bool {
		ev = n.audit.find(typ)
		return ev != nil
	}, 5*time.Second, 5*time.Millisecond, "no %s audit event", typ)
	return ev
}

func TestSessionLimitAndUnsupportedChannels(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	key, cert := n.issue(t, certOpts{keyID: "alice"})
	client, err := n.dial(key, cert, n.login)
	require.NoError(t, err)
	defer client.Close()
	for range 10 {
		_, err := client.NewSession()
		require.NoError(t, err)
	}
	_, err = client.NewSession()
	var oce *ssh.OpenChannelError
	require.ErrorAs(t, err, &oce)
	require.Equal(t, ssh.ResourceShortage, oce.Reason)

	// Port forwarding is not offered.
	_, err = client.Dial("tcp", "127.0.0.1:1")
	require.ErrorAs(t, err, &oce)
	require.Equal(t, ssh.UnknownChannelType, oce.Reason)
}

// TestTerminationKillsProcessGroup checks that children of the session's
// command die with it.
func TestTerminationKillsProcessGroup(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	key, cert := n.issue(t, certOpts{keyID: "alice"})
	client, err := n.dial(key, cert, n.login)
	require.NoError(t, err)
	defer client.Close()
	sess, err := client.NewSession()
	require.NoError(t, err)
	// A marker no other process has: a sleep duration unique to this run.
	marker := fmt.Sprintf("%d.%03d", 40+time.Now().UnixNano()%50, time.Now().UnixNano()%1000)
	stdout, err := sess.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, sess.Start("sleep "+marker+" & sleep "+marker+" & echo started; wait"))
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "started\n", line)
	// The background jobs may not have exec'd yet.
	require.Eventually(t, func() bool { return len(pgrep(t, "sleep "+marker)) == 2 }, 2*time.Second, 10*time.Millisecond)

	n.putLock(t, "l", &typesv1.LockTarget{User: "alice"}, "m")
	waitEnded(t, sess, 2*time.Second)
	require.Eventually(t, func() bool { return len(pgrep(t, "sleep "+marker)) == 0 }, 2*time.Second, 10*time.Millisecond)
}

// pgrep lists the pids whose command line is exactly cmdline.
func pgrep(t *testing.T, cmdline string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	require.NoError(t, err)
	var pids []string
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if strings.TrimRight(strings.ReplaceAll(string(b), "\x00", " "), " ") == cmdline {
			pids = append(pids, e.Name())
		}
	}
	return pids
}

// TestLockWrittenDuringWatcherOutage: while the lock stream is down new
// sessions are refused, and a lock written meanwhile still ends the live
// session once the watcher reconnects and reloads.
func TestLockWrittenDuringWatcherOutage(t *testing.T) {
	t.Parallel()
	flaky := &flakyBackend{}
	n := startNodeWith(t, nodeOpts{wrap: func(b backend.Backend) backend.Backend {
		flaky.Backend = b
		return flaky
	}})
	key, cert := n.issue(t, certOpts{keyID: "alice"})
	sess, stderr := startSleeping(t, n, key, cert)

	flaky.setFail(true, true)
	require.Eventually(t, n.lw.Stale, 5*time.Second, 5*time.Millisecond)
	bobKey, bobCert := n.issue(t, certOpts{keyID: "bob"})
	bob, err := n.dial(bobKey, bobCert, n.login)
	require.NoError(t, err)
	defer bob.Close()
	_, err = bob.NewSession()
	requireProhibited(t, err, "lock view is stale, refusing new sessions")

	n.putLock(t, "alice-okta", &typesv1.LockTarget{User: "alice"}, lockMsg)
	flaky.setFail(false, false)
	ended := make(chan error, 1)
	go func() { ended <- sess.Wait() }()
	require.Eventually(t, func() bool {
		n.clock.Advance(lockwatch.DefaultRetryMax)
		select {
		case err := <-ended:
			ended <- err
			return true
		default:
			return false
		}
	}, 10*time.Second, 10*time.Millisecond)
	require.Contains(t, stderr.String(), "session terminated: "+wantLockText)
	requireRuns(t, n, bobKey, bobCert)
}

// TestStaleViewEndsLiveSessionsAfterBound: a live session keeps the last
// lock view while the watcher is disconnected, but only for the live-session
// bound; then it is ended with a message that says why.
func TestStaleViewEndsLiveSessionsAfterBound(t *testing.T) {
	t.Parallel()
	flaky := &flakyBackend{}
	n := startNodeWith(t, nodeOpts{wrap: func(b backend.Backend) backend.Backend {
		flaky.Backend = b
		return flaky
	}})
	key, cert := n.issue(t, certOpts{keyID: "alice"})
	sess, stderr := startSleeping(t, n, key, cert)
	require.Eventually(t, func() bool { return n.audit.find(sshnode.EventSessionStart) != nil }, 5*time.Second, 5*time.Millisecond)

	flaky.setFail(true, true)
	require.Eventually(t, n.lw.Stale, 5*time.Second, 5*time.Millisecond)
	n.clock.Advance(lockwatch.DefaultLiveSessionStaleness - time.Second)
	ended := make(chan error, 1)
	go func() { ended <- sess.Wait() }()
	select {
	case err := <-ended:
		t.Fatalf("the live session ended within the bound: %v %s", err, stderr.String())
	case <-time.After(200 * time.Millisecond):
	}
	n.clock.Advance(time.Second)
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the live session outlived the live-session bound")
	}
	const want = "session terminated: the lock view has been unavailable for more than 5m0s; reconnect when the cluster is healthy"
	require.Contains(t, stderr.String(), want)
	ev := waitEvent(t, n, sshnode.EventSessionTerminated)
	require.Equal(t, want, ev.GetMessage())
}

// TestStorageFailureIsNotShownToClients: a login check that fails for a
// reason that is not about the user (storage out of reach) refuses with a
// generic message; the internal error is only logged.
func TestStorageFailureIsNotShownToClients(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	n.access.mu.Lock()
	n.access.fail = trace.ConnectionProblem(nil, "etcd did not answer in time")
	n.access.mu.Unlock()
	key, cert := n.issue(t, certOpts{keyID: "alice"})
	client, err := n.dial(key, cert, n.login)
	require.NoError(t, err)
	defer client.Close()
	_, err = client.NewSession()
	requireProhibited(t, err, "access is temporarily unavailable")
	ev := waitEvent(t, n, sshnode.EventSessionRejected)
	require.Equal(t, "access is temporarily unavailable", ev.GetMessage())
}

// TestRunsAsRequestedLogin checks the privilege drop: as root, a session
// for another login runs with that account's uid, gid, environment and login
// shell (nologin refuses, as with OpenSSH).
func TestRunsAsRequestedLogin(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch users")
	}
	n := startNode(t)
	run := func(login, command string) (string, error) {
		n.access.mu.Lock()
		n.access.roles["access"] = append(n.access.roles["access"], login)
		n.access.mu.Unlock()
		key, cert := n.issue(t, certOpts{keyID: "alice", principals: []string{login}})
		client, err := n.dial(key, cert, login)
		require.NoError(t, err)
		defer client.Close()
		sess, err := client.NewSession()
		require.NoError(t, err)
		out, err := sess.CombinedOutput(command)
		return string(out), err
	}

	if u, err := user.Lookup("nobody"); err == nil && loginShellOf(t, "nobody") == "/usr/sbin/nologin" {
		out, err := run(u.Username, "echo should not run")
		require.Error(t, err)
		require.Contains(t, out, "not available")
	}

	other := accountWithShell(t)
	if other == nil {
		t.Skip("no non-root account with a shell to switch to")
	}
	out, err := run(other.Username, `echo "$(id -u) $(id -g) $USER $HOME"`)
	require.NoError(t, err, out)
	require.Equal(t, other.Uid+" "+other.Gid+" "+other.Username+" "+other.HomeDir+"\n", out)
}

// accountWithShell finds a non-root account whose shell is sh or bash.
func accountWithShell(t *testing.T) *user.User {
	t.Helper()
	data, err := os.ReadFile("/etc/passwd")
	require.NoError(t, err)
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Split(line, ":")
		if len(f) == 7 && f[2] != "0" && (f[6] == "/bin/bash" || f[6] == "/bin/sh") {
			if u, err := user.Lookup(f[0]); err == nil {
				return u
			}
		}
	}
	return nil
}

func loginShellOf(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile("/etc/passwd")
	require.NoError(t, err)
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Split(line, ":"); len(f) == 7 && f[0] == name {
			return f[6]
		}
	}
	return ""
}
