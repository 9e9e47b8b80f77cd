package integration

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/lib/auth/saml/samltest"
)

// sshLogin is the OS login the SSH tests run their commands as: root when
// the tests run as root (CI), else the current user.
func sshLogin(t testing.TB) string {
	t.Helper()
	u, err := user.Current()
	require.NoError(t, err)
	return u.Username
}

// sshAddr reads the SSH node's address from the data dir.
func (s *server) sshAddr(t testing.TB) (host, port string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.dataDir, "ssh_addr"))
	require.NoError(t, err)
	addr := strings.TrimSpace(string(b))
	i := strings.LastIndex(addr, ":")
	require.Positive(t, i, addr)
	return addr[:i], addr[i+1:]
}

// ssoSetup creates role dev (login sshLogin), the "okta" SAML connector
// from idp's metadata (groups=admins → dev), registers Gatehouse at the
// IdP and installs the okta plugin with default role dev; it returns the
// SCIM token.
func ssoSetup(t testing.TB, srv *server, admin func(args ...string) result, idp *samltest.IdP, work string) string {
	t.Helper()
	base := "https://" + srv.webAddr
	role := filepath.Join(work, "dev.yaml")
	require.NoError(t, os.WriteFile(role, []byte("kind: role\nversion: v1\nmetadata:\n  name: dev\nspec:\n  allow:\n    logins: ["+sshLogin(t)+"]\n  options:\n    max_session_ttl: 8h\n"), 0o600))
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
	return registerAndInstallOkta(t, srv, admin, idp)
}

// registerAndInstallOkta registers Gatehouse's SAML service provider (the
// "okta" connector, already created) at idp and installs the okta plugin
// with default role dev; it returns the SCIM token.
func registerAndInstallOkta(t testing.TB, srv *server, admin func(args ...string) result, idp *samltest.IdP) string {
	t.Helper()
	b := newPerson(t, srv)
	resp, err := b.c.Get("https://" + srv.webAddr + "/v1/webapi/saml/metadata/okta")
	require.NoError(t, err)
	md, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(md))
	idp.RegisterSP(t, "gatehouse", md)
	r := admin("plugins", "install", "okta", "--saml-connector", "okta", "--default-roles", "dev", "--format", "json")
	var install struct {
		Token string `json:"token"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &install), r.stdout)
	require.NotEmpty(t, install.Token)
	return install.Token
}

// person is one person's HTTP client: a cookie jar shared by the IdP and
// Gatehouse, trusting Gatehouse's self-signed certificate.
type person struct {
	t    testing.TB
	c    *http.Client
	base string
	csrf string
}

func newPerson(t testing.TB, srv *server) *person {
	t.Helper()
	pemBytes, err := os.ReadFile(filepath.Join(srv.dataDir, "web.crt"))
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pemBytes))
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(tr.CloseIdleConnections)
	return &person{t: t, c: &http.Client{Jar: jar, Timeout: 15 * time.Second, Transport: tr}, base: "https://" + srv.webAddr}
}

// samlLogin signs in at the IdP and runs an SP-initiated login; it keeps
// the session's CSRF token.
func (b *person) samlLogin(idp *samltest.IdP, user, password string) {
	t := b.t
	t.Helper()
	status, body := b.samlAttempt(idp, user, password)
	require.Equal(t, http.StatusOK, status, "after the ACS: %s", body)
	var sess struct {
		CSRFToken string `json:"csrf_token"`
	}
	status, raw := b.get("/v1/webapi/sessions/current")
	require.Equal(t, http.StatusOK, status, raw)
	require.NoError(t, json.Unmarshal([]byte(raw), &sess))
	b.csrf = sess.CSRFToken
}

// samlAttempt signs in at the IdP and runs an SP-initiated login; it
// returns the ACS's answer, whatever it is.
func (b *person) samlAttempt(idp *samltest.IdP, user, password string) (int, string) {
	t := b.t
	t.Helper()
	resp, err := b.c.PostForm(idp.URL+"/login", url.Values{"user": {user}, "password": {password}})
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	resp, err = b.c.Get(b.base + "/v1/webapi/saml/sso?connector_id=okta")
	require.NoError(t, err)
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(page))
	form := samltest.ParseForm(t, string(page))
	resp, err = b.c.PostForm(form.Action, url.Values{"SAMLResponse": {form.SAMLResponse}, "RelayState": {form.RelayState}})
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(body)
}

func (b *person) get(path string) (int, string) {
	b.t.Helper()
	resp, err := b.c.Get(b.base + path)
	require.NoError(b.t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(body)
}

// sshCert asks for a certificate for a new key with the web session and
// writes the key and key-cert.pub into dir; it returns the key's path, or
// "" and the HTTP status and body when refused.
func (b *person) sshCert(dir, name string) (string, int, string) {
	t := b.t
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	sshPub, err := ssh.NewPublicKey(pub)
	require.NoError(t, err)
	body, _ := json.Marshal(map[string]string{"public_key": string(ssh.MarshalAuthorizedKey(sshPub))})
	req, err := http.NewRequest(http.MethodPost, b.base+"/v1/webapi/sessions/certs", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CSRF-Token", b.csrf)
	resp, err := b.c.Do(req)
	require.NoError(t, err)
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", resp.StatusCode, string(raw)
	}
	var out struct {
		SSHCert string `json:"ssh_cert"`
	}
	require.NoError(t, json.Unmarshal(raw, &out))
	block, err := ssh.MarshalPrivateKey(priv, name)
	require.NoError(t, err)
	key := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(key, pem.EncodeToMemory(block), 0o600))
	require.NoError(t, os.WriteFile(key+"-cert.pub", []byte(out.SSHCert), 0o644))
	return key, resp.StatusCode, string(raw)
}

// opensshCmd is /usr/bin/ssh with key (and key-cert.pub) to the node,
// running command as login.
func opensshCmd(host, port, key, login, command string) *exec.Cmd {
	return exec.Command("/usr/bin/ssh",
		"-F", "/dev/null",
		"-i", key,
		"-o", "CertificateFile="+key+"-cert.pub",
		"-o", "IdentitiesOnly=yes",
		"-o", "StrictHostKeyChecking=no",
		"-o", "UserKnownHostsFile=/dev/null",
		"-o", "BatchMode=yes",
		"-p", port,
		login+"@"+host,
		command,
	)
}

// runSSH runs a short command with OpenSSH and returns its output.
func runSSH(t testing.TB, host, port, key, login, command string) (string, string, error) {
	t.Helper()
	cmd := opensshCmd(host, port, key, login, command)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	require.NoError(t, cmd.Start())
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return stdout.String(), stderr.String(), err
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("ssh %s did not finish", command)
		return "", "", nil
	}
}

// liveSSH is a long command running under /usr/bin/ssh.
type liveSSH struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan struct{}
	err    error
	ended  time.Time
}

// startLongSSH starts "echo started; sleep 60" and waits until the remote
// side printed "started" (the session runs).
func startLongSSH(t testing.TB, host, port, key, login string) *liveSSH {
	t.Helper()
	return startSSHSleeping(t, host, port, key, login, 60*time.Second)
}

// startSSHSleeping is startLongSSH with a session of d (whole seconds).
func startSSHSleeping(t testing.TB, host, port, key, login string, d time.Duration) *liveSSH {
	t.Helper()
	cmd := opensshCmd(host, port, key, login, fmt.Sprintf("echo started; sleep %d", int(d.Seconds())))
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	l := &liveSSH{cmd: cmd, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = l.stderr
	require.NoError(t, cmd.Start())
	started := make(chan struct{})
	go func() {
		buf := make([]byte, 64)
		var seen bytes.Buffer
		for {
			n, err := stdout.Read(buf)
			seen.Write(buf[:n])
			if bytes.Contains(seen.Bytes(), []byte("started")) {
				close(started)
				_, _ = io.Copy(io.Discard, stdout)
				break
			}
			if err != nil {
				break
			}
		}
		l.err = cmd.Wait()
		l.ended = time.Now()
		close(l.done)
	}()
	t.Cleanup(func() {
		select {
		case <-l.done:
		default:
			_ = cmd.Process.Kill()
			<-l.done
		}
	})
	select {
	case <-started:
	case <-l.done:
		t.Fatalf("ssh ended before the command started (%v): %s", l.err, l.stderr.String())
	case <-time.After(15 * time.Second):
		t.Fatalf("ssh session did not start: %s", l.stderr.String())
	}
	return l
}
