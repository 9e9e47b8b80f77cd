package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/auth/saml/samltest"
	"github.com/gatehouse/gatehouse/lib/backend/etcdbk/etcdtest"
	"github.com/gatehouse/gatehouse/lib/okta/oktaapi/oktatest"
)

// TestUserSyncEndToEnd is issue 15's end-to-end test with the real binary
// and the Okta stand-in as the org: switching the plugin from SCIM to user
// sync is explicit; the credential is stored sealed and shown nowhere; the
// first sync creates the users; a run that fails part way (5xx then a
// truncated page) deletes nobody; with the default full-pass interval (an
// hour), an unassigned user's account is deleted and locked, and their
// live SSH session ends, within one sync interval (the 1m minimum) plus a
// second, by an incremental run reading Okta's System Log; "gatectl
// plugins status" shows what happened.
func TestUserSyncEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs binaries")
	}
	gatehouseBin, gatectlBin := buildBinaries(t)
	dataDir, work := t.TempDir(), t.TempDir()
	logs := &syncBuffer{}
	srv := startGatehouse(t, gatehouseBin, dataDir, logs, "--storage", "sqlite")
	gatectl, admin := gatectlOn(t, gatectlBin, dataDir)
	idp := samltest.NewIdP(t, samltest.Options{})
	ssoSetup(t, srv, admin, idp, work) // the okta plugin, SCIM on
	getUser := func(name string) map[string]any {
		t.Helper()
		r := gatectl("get", "user/"+name, "--format", "json")
		if r.code != 0 {
			return nil
		}
		var u map[string]any
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &u), r.stdout)
		return u
	}

	org := oktatest.New()
	t.Cleanup(org.Close)
	org.PageSize = 2
	org.Token = "00-e2e-ssws-token-must-never-leak"
	aliceID := org.AddUser("alice@example.com", true)
	org.AddUser("bob@example.com", true)
	org.AddUser("carol@example.com", true)
	daveID := org.AddUser("dave@example.com", true)

	// Switching from SCIM is explicit.
	configure := []string{"plugins", "usersync-configure", "okta", "--org-url", org.URL(), "--app-id", org.AppID,
		"--credential-kind", "api_token", "--interval", "1m"}
	r := gatectl(configure...)
	require.NotEqual(t, 0, r.code)
	require.Contains(t, r.stderr, "--switch-from-scim")
	tokenFile := filepath.Join(work, "okta-token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(org.Token+"\n"), 0o600))
	admin("plugins", "usersync-credentials", "okta", "--api-token-file", tokenFile)
	require.NoError(t, os.Remove(tokenFile))
	admin(append(configure, "--switch-from-scim")...)
	require.Contains(t, admin("plugins", "usersync-test", "okta").stdout, "OK: Okta answered")

	r = admin("plugins", "sync", "okta", "--full")
	t.Logf("first sync:\n%s", r.stdout)
	for _, n := range []string{"alice", "bob", "carol", "dave"} {
		u := getUser(n + "@example.com")
		require.NotNil(t, u, "%s was not created:\n%s", n, logs.String())
		spec := u["spec"].(map[string]any)
		require.Equal(t, []any{"dev"}, spec["roles"])
	}
	st := admin("plugins", "status", "okta")
	require.Contains(t, st.stdout, "users seen:     4")
	require.Contains(t, st.stdout, "full pass, ok")

	// The credential: sealed on disk, in no output and no log.
	require.Empty(t, filesContaining(t, dataDir, org.Token), "the API token is stored only sealed")
	key, err := os.Stat(filepath.Join(dataDir, "credentials.key"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), key.Mode().Perm())
	for _, out := range []string{admin("get", "plugin/okta", "--format", "json").stdout, st.stdout, logs.String()} {
		require.NotContains(t, out, org.Token)
	}

	// A run that fails part way deletes nobody: dave is unassigned, then
	// the second page answers 503 twice and, on the last retry, a
	// truncated body.
	org.Unassign(daveID)
	org.FailCall(2, 503)
	org.FailCall(3, 503)
	org.TruncateCall(4)
	r = gatectl("plugins", "sync", "okta", "--full")
	require.NotEqual(t, 0, r.code, r.String())
	require.Contains(t, r.stdout, "FAILED")
	require.NotNil(t, getUser("dave@example.com"), "a failed run deleted an account")
	// The next clean full pass deletes and locks him.
	admin("plugins", "sync", "okta", "--full")
	require.Nil(t, getUser("dave@example.com"))
	require.Contains(t, admin("get", "locks", "--format", "json").stdout, "dave@example.com")

	// Unassigning alice ends her live SSH session within one interval
	// plus a second, although the next full pass is an hour away. The
	// last run (just started by sync --full) was a full pass; the next, an
	// incremental run, starts one interval after it: unassigning right
	// after that start is the worst case. The session would last well
	// beyond the interval.
	host, port := srv.sshAddr(t)
	login := sshLogin(t)
	idp.AddUser(t, "alice", "alice@example.com", "alice-password", "admins")
	p := newPerson(t, srv)
	p.samlLogin(idp, "alice", "alice-password")
	sshKey, status, body := p.sshCert(work, "alice")
	require.Equal(t, 200, status, body)
	admin("plugins", "sync", "okta", "--full")
	lastRun := time.Now()
	live := startSSHSleeping(t, host, port, sshKey, login, 3*time.Minute)
	unassigned := time.Now()
	org.Unassign(aliceID)
	select {
	case <-live.done:
	case <-time.After(90 * time.Second):
		t.Fatalf("the SSH session outlived the unassignment by 90s:\n%s", logs.String())
	}
	took := live.ended.Sub(unassigned)
	t.Logf("unassigned in Okta %v after the last run; the SSH session ended %v later", unassigned.Sub(lastRun), took)
	require.Less(t, took, time.Minute+time.Second, "within one sync interval plus a second")
	require.Contains(t, live.stderr.String(), `lock targeting user "alice@example.com" is in force`)
	require.Nil(t, getUser("alice@example.com"))
	st = admin("plugins", "status", "okta")
	t.Logf("status:\n%s", st.stdout)
	require.Contains(t, st.stdout, "locked:         1")
	require.True(t, strings.Contains(st.stdout, "incremental, ok"), "an incremental run, not a full pass, caught it:\n%s", st.stdout)
	require.Contains(t, st.stdout, "full pass every 1h")
}

// TestUserSyncHAFailover runs two servers on one etcd cluster with the same
// credentials key: exactly one runs the sync (the lease holder); when it is
// killed (no clean shutdown, so its lease must expire), the other takes
// over and answers "sync now" requests.
func TestUserSyncHAFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs binaries and an etcd cluster")
	}
	gatehouseBin, gatectlBin := buildBinaries(t)
	cluster := etcdtest.StartCluster(t, 1)
	args := haEtcdArgs(cluster.Endpoints())
	dirA, dirB, work := t.TempDir(), t.TempDir(), t.TempDir()
	logsA, logsB := &syncBuffer{}, &syncBuffer{}
	srvA := haLaunch(t, gatehouseBin, dirA, logsA, args...)
	haWaitReady(t, srvA)
	gatectl := func(dir string) func(args ...string) result {
		return func(args ...string) result {
			t.Helper()
			r := runCmd(t, gatectlBin, append([]string{"--data-dir", dir}, args...)...)
			require.Equal(t, 0, r.code, r.String())
			return r
		}
	}
	adminA, adminB := gatectl(dirA), gatectl(dirB)
	defer func() {
		if t.Failed() {
			t.Logf("server A logs:\n%s\nserver B logs:\n%s", logsA.String(), logsB.String())
		}
	}()

	org := oktatest.New()
	t.Cleanup(org.Close)
	org.AddUser("first@example.com", true)
	haSetupOkta(t, adminA, work)
	tokenFile := filepath.Join(work, "okta-token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(org.Token), 0o600))
	adminA("plugins", "usersync-credentials", "okta", "--api-token-file", tokenFile)
	adminA("plugins", "usersync-configure", "okta", "--org-url", org.URL(), "--app-id", org.AppID,
		"--credential-kind", "api_token", "--switch-from-scim")

	const took = "This server now runs user sync."
	require.Eventually(t, func() bool { return strings.Contains(logsA.String(), took) }, 10*time.Second, 50*time.Millisecond,
		"A takes the lease within a poll interval")

	// Every server needs the same key: copy it before B starts.
	key, err := os.ReadFile(filepath.Join(dirA, "credentials.key"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dirB, "credentials.key"), key, 0o600))
	srvB := haLaunch(t, gatehouseBin, dirB, logsB, args...)
	haWaitReady(t, srvB)

	adminB("plugins", "sync", "okta")
	require.Contains(t, adminB("get", "user/first@example.com").stdout, "first@example.com")
	require.NotContains(t, logsB.String(), took, "exactly one server runs the sync")

	// A dies without giving its lease up; B takes over once it expires.
	killed := time.Now()
	require.NoError(t, srvA.cmd.Process.Kill())
	<-srvA.done
	org.AddUser("second@example.com", true)
	r := adminB("plugins", "sync", "okta")
	t.Logf("B ran the sync %v after A was killed:\n%s", time.Since(killed), r.stdout)
	require.Contains(t, logsB.String(), took)
	require.Contains(t, adminB("get", "user/second@example.com").stdout, "second@example.com")
	require.Less(t, time.Since(killed), 40*time.Second, "the lease (15 s) expired and B took over")
}

// TestUserSyncCannotTakeAccountsOutsideItsReach is an Okta org, driven by
// whoever administers it, trying to take over accounts the plugin does not
// own through user sync: the first administrator by another spelling and
// by a fullwidth look-alike, the reserved operator name, and a local user.
// Each is refused (and counted as not applied) with the victim's record
// unchanged to the revision; removing them from the app then deletes and
// locks nothing of the victims. An ordinary person is still created.
func TestUserSyncCannotTakeAccountsOutsideItsReach(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs binaries")
	}
	gatehouseBin, gatectlBin := buildBinaries(t)
	dataDir, work := t.TempDir(), t.TempDir()
	logs := &syncBuffer{}
	srv := startGatehouse(t, gatehouseBin, dataDir, logs, "--storage", "sqlite")
	gatectl, admin := gatectlOn(t, gatectlBin, dataDir)
	ssoSetup(t, srv, admin, samltest.NewIdP(t, samltest.Options{}), work)
	admin("users", "add", "ops", "--roles", "editor")
	record := func(name string) string {
		t.Helper()
		r := gatectl("get", "user/"+name, "--format", "json")
		require.Equal(t, 0, r.code, "user %s: %s", name, r.String())
		return r.stdout
	}
	// "admin" is the first administrator every new cluster gets.
	victims := map[string]string{"admin": record("admin"), "ops": record("ops")}

	org := oktatest.New()
	t.Cleanup(org.Close)
	var attackers []string
	for _, login := range []string{"ADMIN", "ａｄｍｉｎ", "@admin", "Ops"} {
		attackers = append(attackers, org.AddUser(login, true))
	}
	org.AddUser("eve@example.com", true)
	tokenFile := filepath.Join(work, "okta-token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(org.Token), 0o600))
	admin("plugins", "usersync-credentials", "okta", "--api-token-file", tokenFile)
	admin("plugins", "usersync-configure", "okta", "--org-url", org.URL(), "--app-id", org.AppID,
		"--credential-kind", "api_token", "--switch-from-scim")

	r := gatectl("plugins", "sync", "okta", "--full")
	t.Logf("sync:\n%s", r.String())
	st := admin("plugins", "status", "okta").stdout
	require.Contains(t, st, "not applied:    4", st)
	require.Contains(t, st, "created:        1", st)
	require.Contains(t, record("eve@example.com"), `"eve@example.com"`)
	for name, before := range victims {
		require.Equal(t, before, record(name), "user sync changed %q", name)
	}

	// Unassigning the four from the app touches none of the victims.
	for _, id := range attackers {
		org.Unassign(id)
	}
	admin("plugins", "sync", "okta", "--full")
	for name, before := range victims {
		require.Equal(t, before, record(name), "unassigning a look-alike changed %q", name)
	}
	locks := admin("get", "locks", "--format", "json").stdout
	require.NotContains(t, locks, `"user": "admin"`, locks)
	require.NotContains(t, locks, `"user": "ops"`, locks)
	require.NotContains(t, locks, `"user":"admin"`, locks)
	require.NotContains(t, locks, `"user":"ops"`, locks)
}
