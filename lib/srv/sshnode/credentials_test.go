package sshnode_test

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/services"
	"github.com/gatehouse/gatehouse/lib/srv/sshnode"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// TestCertificateOfAnotherIncarnationRefused: a new login needs a
// certificate issued to the user's current incarnation, with roles the
// user still holds.
func TestCertificateOfAnotherIncarnationRefused(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	tests := []struct {
		name string
		opts certOpts
		want string
	}{
		{"earlier incarnation", certOpts{keyID: "alice", incarnation: services.NewIncarnation()}, `credentials were issued to an earlier incarnation of user "alice"`},
		{"role the user no longer holds", certOpts{keyID: "alice", roles: []string{"access", "dba"}}, `user "alice" no longer holds role "dba"`},
		{"certificate without incarnation and roles", certOpts{keyID: "alice", noCredExt: true}, "the certificate is of an older format that is no longer accepted; get a new one"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key, cert := n.issue(t, tc.opts)
			c, err := n.dial(key, cert, n.login)
			require.NoError(t, err, "authentication succeeds so that the client can be told why it is refused")
			defer c.Close()
			_, err = c.NewSession()
			requireProhibited(t, err, tc.want)
		})
	}
	// The same user with a current certificate is let in.
	key, cert := n.issue(t, certOpts{keyID: "alice"})
	requireRuns(t, n, key, cert)
}

func TestMalformedRolesExtensionRefused(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	key, cert := n.issue(t, certOpts{keyID: "alice"})
	cert.Permissions.Extensions["roles@gatehouse.dev"] = "not json"
	require.NoError(t, cert.SignCert(rand.Reader, n.ca))
	_, err := n.dial(key, cert, n.login)
	require.ErrorContains(t, err, "unable to authenticate")
}

// TestLiveSessionEndsWithTheAccount: a live session ends, with its
// processes, when its user is deleted, created again, or loses a role its
// certificate was issued with; an update that keeps all of them does not
// end it.
func TestLiveSessionEndsWithTheAccount(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(t *testing.T, n *node)
		reason string
	}{
		{"user deleted", func(t *testing.T, n *node) { n.deleteUser(t, "alice") }, `user "alice" no longer exists`},
		{"user created again", func(t *testing.T, n *node) {
			// One write, as a rename onto the name or a reactivation does.
			n.putUser(t, "alice", services.NewIncarnation(), "access")
		}, `credentials were issued to an earlier incarnation of user "alice"`},
		{"role removed", func(t *testing.T, n *node) { n.putUser(t, "alice", n.incarnations["alice"], "auditor") }, `user "alice" no longer holds role "access"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n := startNode(t)
			key, cert := n.issue(t, certOpts{keyID: "alice"})
			sess, stderr := startSleeping(t, n, key, cert)

			// An update that keeps the incarnation and the role (one is
			// added) leaves the session alone: the change after it ends it
			// with its own reason.
			n.putUser(t, "alice", n.incarnations["alice"], "access", "auditor")
			start := time.Now()
			tc.change(t, n)
			waitEnded(t, sess, time.Second)
			t.Logf("change to session end: %v", time.Since(start))
			require.Equal(t, "\r\nsession terminated: "+tc.reason+"\r\n", stderr.String())
			ev := waitEvent(t, n, sshnode.EventSessionTerminated)
			require.Equal(t, "alice", ev.GetUser())
			require.Equal(t, tc.reason, ev.GetFields()["reason"])

			// The same certificate cannot log in again.
			c2, err := n.dial(key, cert, n.login)
			require.NoError(t, err)
			defer c2.Close()
			_, err = c2.NewSession()
			var oce *ssh.OpenChannelError
			require.ErrorAs(t, err, &oce)
			require.Equal(t, ssh.Prohibited, oce.Reason)

			// Bob's session is not affected.
			bobKey, bobCert := n.issue(t, certOpts{keyID: "bob"})
			requireRuns(t, n, bobKey, bobCert)
		})
	}
}

// TestDeprovisioningTellsTheLock: a deprovisioning deletes the user and
// writes a lock in one atomic write (user first); the session is told about
// the lock, not merely that its user is gone.
func TestDeprovisioningTellsTheLock(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	key, cert := n.issue(t, certOpts{keyID: "alice"})
	sess, stderr := startSleeping(t, n, key, cert)

	item, err := services.MarshalLock(&typesv1.Lock{
		Metadata: &typesv1.Metadata{Name: "alice-okta"},
		Spec:     &typesv1.LockSpec{Target: &typesv1.LockTarget{User: "alice"}, Message: lockMsg},
	})
	require.NoError(t, err)
	_, err = n.bk.AtomicWrite(n.ctx, []backend.ConditionalAction{
		{Key: services.UserKey("alice"), Condition: backend.Exists(), Action: backend.Delete()},
		{Key: item.Key, Condition: backend.NotExists(), Action: backend.Put(item)},
	})
	require.NoError(t, err)
	waitEnded(t, sess, time.Second)
	require.Equal(t, "\r\nsession terminated: "+wantLockText+"\r\n", stderr.String())
	ev := waitEvent(t, n, sshnode.EventSessionTerminated)
	require.Equal(t, "alice-okta", ev.GetFields()["lock"])
}
