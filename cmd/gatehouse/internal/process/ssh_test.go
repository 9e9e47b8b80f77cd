package process

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/cmd/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/lib/auth"
	"github.com/gatehouse/gatehouse/lib/auth/client"
	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/services"
	"github.com/gatehouse/gatehouse/lib/services/websession"
	pluginv1 "github.com/gatehouse/gatehouse/proto/gatehouse/plugin/v1"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// TestSSHNodeAndLocksWired checks what `gatehouse start` wires around the
// lock watcher: the SSH node (address file, kept host key, a host
// certificate from the host CA, user certificates from the user CA, logins
// from the roles, a lock refusing new sessions), web sessions deleted when
// their user is locked, and API calls refused through the watcher.
func TestSSHNodeAndLocksWired(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := start(t, settings(t, dir), nil, io.Discard)
	defer stop(t, p)
	ctx := context.Background()

	addr, err := os.ReadFile(filepath.Join(dir, SSHAddrFile))
	require.NoError(t, err)
	require.Equal(t, p.SSHAddr().String(), strings.TrimSpace(string(addr)))
	st, err := os.Stat(filepath.Join(dir, SSHHostKeyFile))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	// dana may log in as the OS user running the test, through the
	// {{internal.logins}} template and her logins trait.
	me, err := user.Current()
	require.NoError(t, err)
	svc := p.Auth().Services()
	_, err = svc.Roles.UpsertRole(ctx, &typesv1.Role{
		Metadata: &typesv1.Metadata{Name: "ops"},
		Spec:     &typesv1.RoleSpec{Allow: &typesv1.RoleConditions{Logins: []string{auth.LoginsTraitTemplate}}},
	})
	require.NoError(t, err)
	_, err = svc.Users.UpsertUser(ctx, &typesv1.User{
		Metadata: &typesv1.Metadata{Name: "dana"},
		Spec: &typesv1.UserSpec{
			Roles:  []string{"ops", auth.PresetEditorRole},
			Traits: services.NewTraits(map[string][]string{auth.LoginsTrait: {me.Username}}),
		},
	})
	require.NoError(t, err)
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	signer, err := ssh.NewSignerFromKey(priv)
	require.NoError(t, err)
	certText, err := p.Auth().SignSSHUserCert(ctx, auth.SSHCertRequest{Username: "dana", PublicKey: signer.PublicKey(), TTL: time.Hour})
	require.NoError(t, err)
	parsed, _, _, _, err := ssh.ParseAuthorizedKey(certText)
	require.NoError(t, err)
	certSigner, err := ssh.NewCertSigner(parsed.(*ssh.Certificate), signer)
	require.NoError(t, err)
	hostCA, _, _, _, err := ssh.ParseAuthorizedKey(p.Auth().HostCASSHPublicKey())
	require.NoError(t, err)
	hostChecker := &ssh.CertChecker{IsHostAuthority: func(k ssh.PublicKey, _ string) bool { return bytes.Equal(k.Marshal(), hostCA.Marshal()) }}
	run := func(login string, s ssh.Signer) (string, error) {
		c, err := ssh.Dial("tcp", p.SSHAddr().String(), &ssh.ClientConfig{
			User:              login,
			Auth:              []ssh.AuthMethod{ssh.PublicKeys(s)},
			HostKeyCallback:   hostChecker.CheckHostKey,
			HostKeyAlgorithms: []string{ssh.CertAlgoED25519v01},
			Timeout:           5 * time.Second,
		})
		if err != nil {
			return "", err
		}
		defer c.Close()
		sess, err := c.NewSession()
		if err != nil {
			return "", err
		}
		defer sess.Close()
		var stderr bytes.Buffer
		sess.Stderr = &stderr
		out, err := sess.Output("echo hello")
		return string(out) + stderr.String(), err
	}
	out, err := run(me.Username, certSigner)
	require.NoError(t, err, out)
	require.Equal(t, "hello\n", out)
	// A plain key is refused, and so is a login the roles do not allow.
	_, err = run(me.Username, signer)
	require.Error(t, err)
	_, err = run("not-a-login", certSigner)
	require.Error(t, err)

	// An API client and a web session for dana.
	id, err := p.Auth().GenerateUserIdentity(ctx, "dana", time.Hour)
	require.NoError(t, err)
	c, err := client.New(ctx, client.Config{Addr: p.AuthAddr().String(), Identity: id})
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Plugins.ListPlugins(ctx, &pluginv1.ListPluginsRequest{})
	require.NoError(t, err)
	mgr, err := websession.New(websession.Config{Backend: p.backend})
	require.NoError(t, err)
	dana, err := svc.Users.GetUser(ctx, "dana", false)
	require.NoError(t, err)
	sess, err := mgr.CreateSession(ctx, dana, websession.MethodPassword, "", time.Hour)
	require.NoError(t, err)
	bystander, err := svc.Users.CreateUser(ctx, &typesv1.User{Metadata: &typesv1.Metadata{Name: "bystander"}, Spec: &typesv1.UserSpec{Roles: []string{"access"}}})
	require.NoError(t, err)
	other, err := mgr.CreateSession(ctx, bystander, websession.MethodPassword, "", time.Hour)
	require.NoError(t, err)

	_, err = svc.Locks.CreateLock(ctx, &typesv1.Lock{
		Metadata: &typesv1.Metadata{Name: "dana-off"},
		Spec:     &typesv1.LockSpec{Target: &typesv1.LockTarget{User: "dana"}, Message: "offboarded"},
	})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, err := mgr.GetSession(ctx, sess.ID)
		return trace.IsNotFound(err)
	}, 5*time.Second, 10*time.Millisecond, "the locked user's web session is deleted")
	_, err = mgr.GetSession(ctx, other.ID)
	require.NoError(t, err, "other users' sessions stay")
	require.Eventually(t, func() bool {
		_, err := c.Plugins.ListPlugins(ctx, &pluginv1.ListPluginsRequest{})
		return trace.IsAccessDenied(err)
	}, 5*time.Second, 10*time.Millisecond, "API calls are refused")
	out, err = run(me.Username, certSigner)
	require.Error(t, err)
	require.ErrorContains(t, err, "administratively prohibited", out)
	require.ErrorContains(t, err, `offboarded`, out)
}

// TestSSHAddrForUsers: the address the web UI puts in its ssh command is
// the public address's host with the SSH listener's port, or without a
// public address the listener's own (loopback as "localhost").
func TestSSHAddrForUsers(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	_, port, err := net.SplitHostPort(ln.Addr().String())
	require.NoError(t, err)
	for _, tc := range []struct{ publicAddr, want string }{
		{"", "localhost:" + port},
		{"gatehouse.example.com", "gatehouse.example.com:" + port},
		{"gatehouse.example.com:443", "gatehouse.example.com:" + port},
		{"[2001:db8::1]:443", "[2001:db8::1]:" + port},
	} {
		p := &Process{set: &config.Config{PublicAddr: tc.publicAddr}, sshLn: ln}
		require.Equal(t, tc.want, p.sshAddrForUsers(), "public address %q", tc.publicAddr)
	}
}

// TestTakeQueued: one sweep of the web sessions takes the lock events
// already queued, never waits for more, and stops at its bound, leaving the
// rest queued for the next sweep.
func TestTakeQueued(t *testing.T) {
	t.Parallel()
	ev := func(name string) backend.Event {
		return backend.Event{Type: backend.OpPut, Item: backend.Item{Key: backend.NewKey("locks", name)}}
	}
	names := func(evs []backend.Event) []string {
		var out []string
		for _, e := range evs {
			out = append(out, string(e.Item.Key))
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		queued int
		max    int
		want   int
		left   int
	}{
		{name: "nothing queued", queued: 0, max: 4, want: 1},
		{name: "all queued fit", queued: 2, max: 4, want: 3},
		{name: "bound reached", queued: 6, max: 4, want: 4, left: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			queue := make(chan backend.Event, tc.queued)
			var want []string
			want = append(want, string(ev("first").Item.Key))
			for i := range tc.queued {
				e := ev(fmt.Sprintf("l%d", i))
				queue <- e
				if len(want) < tc.max {
					want = append(want, string(e.Item.Key))
				}
			}
			got := takeQueued(ev("first"), queue, tc.max)
			require.Equal(t, want, names(got), "in queue order")
			require.Len(t, got, tc.want)
			require.Len(t, queue, tc.left)
		})
	}
}

func sessionEvent(t *testing.T, op backend.OpType, id, user string) backend.Event {
	t.Helper()
	ev := backend.Event{Type: op, Item: backend.Item{Key: websession.SessionKey(id)}}
	if op == backend.OpPut {
		ev.Item.Value = []byte(fmt.Sprintf(`{"user":%q,"incarnation":"i"}`, user))
	}
	return ev
}

func userLock(user string) *typesv1.Lock {
	return &typesv1.Lock{Spec: &typesv1.LockSpec{Target: &typesv1.LockTarget{User: user}}}
}

// TestSessionViewFollowsSessions: the view holds the users of the sessions its events wrote and
// not of those they deleted, and a lock of a user alone may end sessions only if one of the
// view's sessions is that user's (canonically); any other lock, if the view holds any session.
func TestSessionViewFollowsSessions(t *testing.T) {
	t.Parallel()
	v := newSessionView()
	require.False(t, v.mayEnd([]*typesv1.Lock{userLock("dana")}))

	v.apply(sessionEvent(t, backend.OpPut, "s1", "Dana"))
	v.apply(sessionEvent(t, backend.OpPut, "s2", "erin"))
	v.apply(backend.Event{Type: backend.OpPut, Item: backend.Item{Key: backend.NewKey("locks", "x"), Value: []byte(`{"user":"frank"}`)}})
	require.True(t, v.mayEnd([]*typesv1.Lock{userLock("dana")}), "canonical names match")
	require.True(t, v.mayEnd([]*typesv1.Lock{userLock("zoe"), userLock("erin")}))
	require.False(t, v.mayEnd([]*typesv1.Lock{userLock("frank")}), "a lock's key is not a session")
	require.False(t, v.mayEnd(nil))
	require.False(t, v.mayEnd([]*typesv1.Lock{{Spec: &typesv1.LockSpec{Target: &typesv1.LockTarget{}}}}), "an empty target matches nobody")
	for _, target := range []*typesv1.LockTarget{{Role: "r"}, {Login: "root"}, {Node: "n"}, {User: "zoe", Role: "r"}} {
		require.True(t, v.mayEnd([]*typesv1.Lock{{Spec: &typesv1.LockSpec{Target: target}}}), "%v", target)
	}

	// Written again (same key), then deleted: counted once, then gone.
	v.apply(sessionEvent(t, backend.OpPut, "s1", "dana"))
	v.apply(sessionEvent(t, backend.OpDelete, "s1", ""))
	require.False(t, v.mayEnd([]*typesv1.Lock{userLock("dana")}))
	// A session rewritten unreadable ends nothing in a sweep: it leaves the view.
	v.apply(backend.Event{Type: backend.OpPut, Item: backend.Item{Key: websession.SessionKey("s2"), Value: []byte("{")}})
	require.False(t, v.mayEnd([]*typesv1.Lock{userLock("erin")}))
	require.False(t, v.mayEnd([]*typesv1.Lock{{Spec: &typesv1.LockSpec{Target: &typesv1.LockTarget{Role: "r"}}}}), "no session at all")

	v.reset(map[string]string{string(websession.SessionKey("s3")): "gil"})
	require.True(t, v.mayEnd([]*typesv1.Lock{userLock("GIL")}))
	require.False(t, v.mayEnd([]*typesv1.Lock{userLock("erin")}))
}

// TestSessionViewNeverSkipsASweepThatEnds holds mayEnd to the sweep it gates: whenever it says
// no, the sweep (services.FindLock against every session, whatever the user's roles) would end
// nothing.
func TestSessionViewNeverSkipsASweepThatEnds(t *testing.T) {
	t.Parallel()
	users := []string{"ann", "ANN", "bob", "@admin", "carl"}
	targets := []*typesv1.LockTarget{
		{User: "ann"}, {User: "Ann"}, {User: "bob"}, {User: "dave"}, {Role: "access"}, {Login: "root"}, {Node: "n1"},
		{User: "bob", Role: "access"}, {}, nil,
	}
	now := time.Now()
	for mask := range 1 << len(users) {
		v := newSessionView()
		var held []string
		for i, u := range users {
			if mask&(1<<i) != 0 {
				v.apply(sessionEvent(t, backend.OpPut, fmt.Sprint("s", i), u))
				held = append(held, u)
			}
		}
		for a := range targets {
			for b := a; b < len(targets); b++ {
				locks := []*typesv1.Lock{{Spec: &typesv1.LockSpec{Target: targets[a]}}, {Spec: &typesv1.LockSpec{Target: targets[b]}}}
				if v.mayEnd(locks) {
					continue
				}
				for _, u := range held {
					for _, roles := range [][]string{nil, {"access"}} {
						require.Nil(t, services.FindLock(locks, services.LockSubject{User: u, Roles: roles, Logins: []string{"root"}, Node: "n1"}, now),
							"sessions %v, locks %v %v", held, targets[a], targets[b])
					}
				}
			}
		}
	}
}

// TestLockEndsWebSessionFromBeforeStart: a session stored before the process started is in the
// view its lock follower loads at the start, so a later lock of its user ends it at once, and a
// lock of a user without a session leaves the others alone.
func TestLockEndsWebSessionFromBeforeStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	p := start(t, settings(t, dir), nil, io.Discard)
	svc := p.Auth().Services()
	for _, name := range []string{"hana", "ivan"} {
		_, err := svc.Users.CreateUser(ctx, &typesv1.User{Metadata: &typesv1.Metadata{Name: name}, Spec: &typesv1.UserSpec{Roles: []string{"access"}}})
		require.NoError(t, err)
	}
	mgr, err := websession.New(websession.Config{Backend: p.backend})
	require.NoError(t, err)
	hana, err := svc.Users.GetUser(ctx, "hana", false)
	require.NoError(t, err)
	sess, err := mgr.CreateSession(ctx, hana, websession.MethodPassword, "", time.Hour)
	require.NoError(t, err)
	stop(t, p)

	p = start(t, settings(t, dir), nil, io.Discard)
	defer stop(t, p)
	svc = p.Auth().Services()
	mgr, err = websession.New(websession.Config{Backend: p.backend})
	require.NoError(t, err)
	_, err = svc.Locks.CreateLock(ctx, &typesv1.Lock{
		Metadata: &typesv1.Metadata{Name: "ivan-off"},
		Spec:     &typesv1.LockSpec{Target: &typesv1.LockTarget{User: "ivan"}, Message: "offboarded"},
	})
	require.NoError(t, err)
	_, err = svc.Locks.CreateLock(ctx, &typesv1.Lock{
		Metadata: &typesv1.Metadata{Name: "hana-off"},
		Spec:     &typesv1.LockSpec{Target: &typesv1.LockTarget{User: "HANA"}, Message: "offboarded"},
	})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, err := mgr.GetSession(ctx, sess.ID)
		return trace.IsNotFound(err)
	}, 5*time.Second, 10*time.Millisecond, "the locked user's web session is deleted")
}
