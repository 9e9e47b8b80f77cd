package integration

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/auth/saml/samltest"
)

// TestDeprovisionEndsSSHSessions is issue 5's end-to-end test: Okta is an
// in-process SAML IdP plus SCIM requests, the SSH client is OpenSSH. For a
// user who logs in before provisioning (temporary user adopted by SCIM) and
// for one provisioned before logging in, a SCIM deactivation ends a live
// SSH session within a second with the lock's message; the certificate
// and the web session are refused afterwards; reactivation plus a new login
// restores access.
func TestDeprovisionEndsSSHSessions(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs binaries")
	}
	started := time.Now()
	gatehouseBin, gatectlBin := buildBinaries(t)
	dataDir, work := t.TempDir(), t.TempDir()
	logs := &syncBuffer{}
	srv := startGatehouse(t, gatehouseBin, dataDir, logs, "--storage", "sqlite")
	gatectl, admin := gatectlOn(t, gatectlBin, dataDir)
	type userJSON struct {
		Metadata struct {
			Expires string            `json:"expires"`
			Labels  map[string]string `json:"labels"`
		} `json:"metadata"`
		Spec struct {
			Roles []string `json:"roles"`
		} `json:"spec"`
	}
	getUser := func(name string) *userJSON {
		t.Helper()
		r := gatectl("get", "user/"+name, "--format", "json")
		if r.code != 0 {
			return nil
		}
		var u userJSON
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &u), r.stdout)
		return &u
	}

	idp := samltest.NewIdP(t, samltest.Options{})
	token := ssoSetup(t, srv, admin, idp, work)
	scim := newSCIMClient(t, srv, "okta", token, 4)
	host, port := srv.sshAddr(t)
	login := sshLogin(t)

	deactivate := patchBody(map[string]any{"op": "replace", "value": map[string]any{"active": false}})
	reactivate := patchBody(map[string]any{"op": "replace", "value": map[string]any{"active": true}})

	// deprovision runs a long ssh session with key, deactivates scimID over
	// SCIM, and checks the session ends within a second with the lock's
	// message, and that the certificate and the web session are refused.
	deprovision := func(t *testing.T, p *person, key, name, scimID string) {
		live := startLongSSH(t, host, port, key, login)
		sent := time.Now()
		scim.do(http.MethodPatch, "/Users/"+scimID, deactivate).expect(t, http.StatusOK)
		answered := time.Now()
		select {
		case <-live.done:
		case <-time.After(5 * time.Second):
			t.Fatalf("the SSH session outlived the deactivation by 5s; stderr: %s\nserver logs:\n%s", live.stderr.String(), logs.String())
		}
		fromResponse, fromRequest := live.ended.Sub(answered), live.ended.Sub(sent)
		t.Logf("%s: SCIM deactivation answered in %v; the SSH session ended %v after the response (%v after the request)", name, answered.Sub(sent), fromResponse, fromRequest)
		require.Less(t, fromResponse, time.Second, "the session must end within a second of the deactivation")
		require.Error(t, live.err, "ssh exits non-zero")
		require.Contains(t, live.stderr.String(), `lock targeting user "`+name+`" is in force`, "the client is told why")

		// The same certificate is refused.
		_, stderr, err := runSSH(t, host, port, key, login, "true")
		require.Error(t, err, "the old certificate must be refused")
		t.Logf("old certificate refused: %s", stderr)
		require.Contains(t, stderr, "administratively prohibited")
		// So is the old web session, and it cannot get a new certificate.
		status, body := p.get("/v1/webapi/sessions/current")
		require.Contains(t, []int{http.StatusUnauthorized, http.StatusForbidden}, status, body)
		_, status, body = p.sshCert(work, name+"-refused")
		require.Contains(t, []int{http.StatusUnauthorized, http.StatusForbidden}, status, body)
	}

	// restore reactivates scimID, logs in again and checks a new
	// certificate works.
	restore := func(t *testing.T, p *person, samlUser, password, name, scimID string) {
		r := scim.do(http.MethodPatch, "/Users/"+scimID, reactivate).expect(t, http.StatusOK)
		require.Equal(t, true, r.body["active"])
		p.samlLogin(idp, samlUser, password)
		key, status, body := p.sshCert(work, name+"-again")
		require.Equal(t, http.StatusOK, status, body)
		out, stderr, err := runSSH(t, host, port, key, login, "echo back")
		require.NoError(t, err, stderr)
		require.Equal(t, "back\n", out)
		u := getUser(name)
		require.NotNil(t, u)
		require.Empty(t, u.Metadata.Expires, "still long-lived")
		require.NotEmpty(t, u.Metadata.Labels["gatehouse.dev/scim-id"], "still SCIM-managed")
	}

	t.Run("login first, then adopted by SCIM", func(t *testing.T) {
		const name, pw = "alice@example.com", "alice-password"
		idp.AddUser(t, "alice", name, pw, "admins")
		alice := newPerson(t, srv)
		alice.samlLogin(idp, "alice", pw)
		u := getUser(name)
		require.NotNil(t, u)
		require.NotEmpty(t, u.Metadata.Expires, "a temporary SAML user")

		r := scim.do(http.MethodPost, "/Users", oktaUser(name, "00ualice")).expect(t, http.StatusCreated)
		id, _ := r.body["id"].(string)
		require.NotEmpty(t, id)
		u = getUser(name)
		require.NotNil(t, u)
		require.Empty(t, u.Metadata.Expires, "adopted: the expiry is gone")
		require.NotEmpty(t, u.Metadata.Labels["gatehouse.dev/scim-id"], "SCIM-managed")

		key, status, body := alice.sshCert(work, "alice")
		require.Equal(t, http.StatusOK, status, body)
		deprovision(t, alice, key, name, id)
		require.Nil(t, getUser(name), "deactivation deletes the user")
		restore(t, alice, "alice", pw, name, id)
	})

	t.Run("provisioned first, then logs in", func(t *testing.T) {
		const name, pw = "bob@example.com", "bob-password"
		r := scim.do(http.MethodPost, "/Users", oktaUser(name, "00ubob")).expect(t, http.StatusCreated)
		id, _ := r.body["id"].(string)
		require.NotEmpty(t, id)
		u := getUser(name)
		require.NotNil(t, u)
		require.Equal(t, []string{"dev"}, u.Spec.Roles, "the plugin's default role")

		// The SAML login refreshes the roles from the assertion and keeps
		// the user SCIM-managed and long-lived.
		idp.AddUser(t, "bob", name, pw, "admins")
		bob := newPerson(t, srv)
		bob.samlLogin(idp, "bob", pw)
		u = getUser(name)
		require.NotNil(t, u)
		require.Empty(t, u.Metadata.Expires)
		require.NotEmpty(t, u.Metadata.Labels["gatehouse.dev/scim-id"], "SCIM-managed")
		require.Equal(t, []string{"dev"}, u.Spec.Roles)

		key, status, body := bob.sshCert(work, "bob")
		require.Equal(t, http.StatusOK, status, body)
		deprovision(t, bob, key, name, id)
		restore(t, bob, "bob", pw, name, id)
	})
	t.Logf("whole test: %v", time.Since(started))
}
