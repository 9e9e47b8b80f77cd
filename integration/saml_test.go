package integration

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/lib/auth/saml/samltest"
)

// TestSAMLLoginEndToEnd runs samlidp in-process as "Okta", creates the
// connector from its metadata with gatectl, logs in SP-initiated with a
// real HTTP client (cookie jar, redirects, the IdP's POST form), and gets
// an SSH certificate for the web session.
func TestSAMLLoginEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs binaries")
	}
	gatehouseBin, gatectlBin := buildBinaries(t)
	dataDir, work := t.TempDir(), t.TempDir()
	logs := &syncBuffer{}
	srv := startServer(t, gatehouseBin, dataDir, logs)
	_, admin := gatectlOn(t, gatectlBin, dataDir)
	base := "https://" + srv.webAddr

	idp := samltest.NewIdP(t, samltest.Options{})
	idp.AddUser(t, "alice", "alice@example.com", "alice-password", "admins")

	role := filepath.Join(work, "role.yaml")
	require.NoError(t, os.WriteFile(role, []byte("kind: role\nversion: v1\nmetadata:\n  name: dev\nspec:\n  allow:\n    logins: [ubuntu]\n  options:\n    max_session_ttl: 8h\n"), 0o600))
	admin("create", "-f", role)
	connector := filepath.Join(work, "okta.yaml")
	require.NoError(t, os.WriteFile(connector, []byte(`kind: saml
version: v1
metadata:
  name: okta
spec:
  display: Okta
  acs: `+base+`/v1/webapi/saml/acs/okta
  attributes_to_roles:
    - name: `+samltest.GroupsAttribute+`
      value: admins
      roles: [dev]
  entity_descriptor: |
`+indent(idp.MetadataXML(t), "    ")+"\n"), 0o600))
	admin("create", "-f", connector)

	// A browser trusting the self-signed web certificate.
	pemBytes, err := os.ReadFile(filepath.Join(dataDir, "web.crt"))
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pemBytes))
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	browser := &http.Client{Jar: jar, Timeout: 15 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}

	// Register Gatehouse at the IdP from its SP metadata.
	resp, err := browser.Get(base + "/v1/webapi/saml/metadata/okta")
	require.NoError(t, err)
	md, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(md))
	idp.RegisterSP(t, "gatehouse", md)

	// Sign in at the IdP, then start the login at Gatehouse: redirects lead
	// to the IdP, which answers with its auto-submitting form.
	resp, err = browser.PostForm(idp.URL+"/login", url.Values{"user": {"alice"}, "password": {"alice-password"}})
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	resp, err = browser.Get(base + "/v1/webapi/saml/sso?connector_id=okta")
	require.NoError(t, err)
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(page))
	form := samltest.ParseForm(t, string(page))
	require.Equal(t, base+"/v1/webapi/saml/acs/okta", form.Action)
	resp, err = browser.PostForm(form.Action, url.Values{"SAMLResponse": {form.SAMLResponse}, "RelayState": {form.RelayState}})
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "after the ACS: %s\n%s", body, logs.String())

	// The session.
	var sess struct {
		User      string    `json:"user"`
		Roles     []string  `json:"roles"`
		Expires   time.Time `json:"expires"`
		CSRFToken string    `json:"csrf_token"`
	}
	getJSON(t, browser, base+"/v1/webapi/sessions/current", &sess)
	require.Equal(t, "alice@example.com", sess.User)
	require.Equal(t, []string{"dev"}, sess.Roles)
	require.WithinDuration(t, time.Now().Add(8*time.Hour), sess.Expires, time.Minute)
	require.NotEmpty(t, sess.CSRFToken)

	// An SSH certificate for a fresh key.
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	sshPub, err := ssh.NewPublicKey(pub)
	require.NoError(t, err)
	reqBody, _ := json.Marshal(map[string]string{"public_key": string(ssh.MarshalAuthorizedKey(sshPub))})
	post := func(csrf string) (*http.Response, []byte) {
		req, err := http.NewRequest(http.MethodPost, base+"/v1/webapi/sessions/certs", bytes.NewReader(reqBody))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		if csrf != "" {
			req.Header.Set("X-CSRF-Token", csrf)
		}
		resp, err := browser.Do(req)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, b
	}
	resp, body = post("")
	require.Equal(t, http.StatusForbidden, resp.StatusCode, "no CSRF token: %s", body)
	resp, body = post(sess.CSRFToken)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	var certResp struct {
		SSHCert string `json:"ssh_cert"`
	}
	require.NoError(t, json.Unmarshal(body, &certResp))
	parsed, _, _, _, err := ssh.ParseAuthorizedKey([]byte(certResp.SSHCert))
	require.NoError(t, err)
	cert := parsed.(*ssh.Certificate)
	require.Equal(t, "alice@example.com", cert.KeyId)
	require.Equal(t, []string{"ubuntu"}, cert.ValidPrincipals)
	require.LessOrEqual(t, int64(cert.ValidBefore), sess.Expires.Unix())
	require.Less(t, int64(cert.ValidAfter), time.Now().Unix())

	// The temporary user exists with an expiry.
	r := admin("get", "user/alice@example.com", "--format", "json")
	var user struct {
		Metadata struct {
			Expires string `json:"expires"`
		} `json:"metadata"`
		Spec struct {
			Roles     []string `json:"roles"`
			CreatedBy struct {
				Connector struct {
					Type, ID, Identity string
				} `json:"connector"`
			} `json:"created_by"`
		} `json:"spec"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &user), r.stdout)
	require.NotEmpty(t, user.Metadata.Expires, r.stdout)
	require.Equal(t, []string{"dev"}, user.Spec.Roles)
	require.Equal(t, "saml", user.Spec.CreatedBy.Connector.Type, r.stdout)

	// Logout ends the session.
	req, err := http.NewRequest(http.MethodDelete, base+"/v1/webapi/sessions/current", nil)
	require.NoError(t, err)
	req.Header.Set("X-CSRF-Token", sess.CSRFToken)
	resp, err = browser.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	resp, err = browser.Get(base + "/v1/webapi/sessions/current")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}

func getJSON(t *testing.T, c *http.Client, u string, v any) {
	t.Helper()
	resp, err := c.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	require.NoError(t, json.Unmarshal(b, v), string(b))
}
