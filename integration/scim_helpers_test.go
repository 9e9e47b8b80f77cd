package integration

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// startGatehouseLogged is startGatehouse with its own log buffer, printed
// if the test fails.
func startGatehouseLogged(t testing.TB, bin, dataDir string, extra ...string) *server {
	t.Helper()
	srv, _ := startGatehouseWithLogs(t, bin, dataDir, extra...)
	return srv
}

// startGatehouseWithLogs is startGatehouseLogged that also returns the log
// buffer, for tests that check what reaches the log.
func startGatehouseWithLogs(t testing.TB, bin, dataDir string, extra ...string) (*server, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	srv := startGatehouse(t, bin, dataDir, logs, extra...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gatehouse logs:\n%s", logs.String())
		}
	})
	return srv, logs
}

// startGatehouse is startServer with extra flags (later flags win: "--log-level", "info").
func startGatehouse(t testing.TB, bin, dataDir string, logs *syncBuffer, extra ...string) *server {
	t.Helper()
	_ = os.Remove(filepath.Join(dataDir, "auth_addr"))
	_ = os.Remove(filepath.Join(dataDir, "web_addr"))
	_ = os.Remove(filepath.Join(dataDir, "ssh_addr"))
	args := append([]string{"start",
		"--data-dir", dataDir,
		"--auth-addr", "127.0.0.1:0",
		"--web-addr", "127.0.0.1:0",
		"--ssh-addr", "127.0.0.1:0",
		"--public-addr", "gatehouse.example.com:443",
		"--cluster-name", "itest",
		"--log-level", "debug",
	}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logs, logs
	require.NoError(t, cmd.Start())
	s := &server{cmd: cmd, out: logs, dataDir: dataDir, done: make(chan error, 1)}
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-s.done
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-s.done:
			t.Fatalf("gatehouse exited early (%v):\n%s", err, logs.String())
		default:
		}
		if b, err := os.ReadFile(filepath.Join(dataDir, "web_addr")); err == nil {
			s.webAddr = strings.TrimSpace(string(b))
			if c := newSCIMClient(t, s, "", "", 1); c != nil {
				if resp, err := c.http.Get("https://" + s.webAddr + "/readyz"); err == nil {
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						return s
					}
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("gatehouse did not become ready:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// scimClient talks SCIM to a running server over HTTPS, trusting its self-signed certificate.
type scimClient struct {
	t     testing.TB
	base  string
	token string
	http  *http.Client
}

// newSCIMClient returns a client for plugin's SCIM base URL; nil while the certificate is not
// written yet. conns sizes the connection pool.
func newSCIMClient(t testing.TB, s *server, plugin, token string, conns int) *scimClient {
	t.Helper()
	pemBytes, err := os.ReadFile(filepath.Join(s.dataDir, "web.crt"))
	if err != nil {
		return nil
	}
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pemBytes))
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool},
		MaxIdleConns:        conns * 2,
		MaxIdleConnsPerHost: conns * 2,
		MaxConnsPerHost:     conns * 2,
		IdleConnTimeout:     time.Minute,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &scimClient{
		t:     t,
		base:  "https://" + s.webAddr + "/v1/webapi/scim/" + plugin,
		token: token,
		http:  &http.Client{Timeout: 60 * time.Second, Transport: tr},
	}
}

// scimResponse is one answer.
type scimResponse struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

// do sends a request the way Okta does (User-Agent, Accept, Content-Type with charset, bearer
// token); headers are name, value pairs that override ("" removes).
func (c *scimClient) do(method, path string, body any, headers ...string) scimResponse {
	c.t.Helper()
	r, err := c.try(method, path, body, headers...)
	require.NoError(c.t, err)
	return r
}

func (c *scimClient) try(method, path string, body any, headers ...string) (scimResponse, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			return scimResponse{}, err
		}
		rd = bytes.NewReader(enc)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return scimResponse{}, err
	}
	req.Header.Set("User-Agent", "Okta SCIM Client 1.0.0")
	req.Header.Set("Accept", "application/scim+json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/scim+json; charset=utf-8")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return scimResponse{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return scimResponse{}, err
	}
	out := scimResponse{status: resp.StatusCode, header: resp.Header, raw: raw}
	if len(raw) > 0 {
		_ = json.Unmarshal(raw, &out.body)
	}
	return out, nil
}

// expect checks the status (with the body in the failure message) and returns the response.
func (r scimResponse) expect(t testing.TB, status int) scimResponse {
	t.Helper()
	require.Equal(t, status, r.status, "body: %s", r.raw)
	if len(r.raw) > 0 {
		require.Equal(t, "application/scim+json", r.header.Get("Content-Type"))
	}
	return r
}

// oktaOnSQLite is a real gatehouse on SQLite with the okta plugin installed (installOkta), for
// the tests that speak SCIM to the real binary.
type oktaOnSQLite struct {
	srv     *server
	work    string
	gatectl func(args ...string) result // whatever the exit code
	admin   func(args ...string) result // must succeed
	token   string
	scim    *scimClient
}

// startOktaOnSQLite builds the binaries and starts an oktaOnSQLite; it skips in -short mode.
func startOktaOnSQLite(t *testing.T) *oktaOnSQLite {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs binaries")
	}
	gatehouseBin, gatectlBin := buildBinaries(t)
	dataDir, work := t.TempDir(), t.TempDir()
	o := &oktaOnSQLite{srv: startGatehouse(t, gatehouseBin, dataDir, &syncBuffer{}, "--storage", "sqlite"), work: work}
	o.gatectl, o.admin = gatectlOn(t, gatectlBin, dataDir)
	o.token = installOkta(t, o.admin, work)
	o.scim = newSCIMClient(t, o.srv, "okta", o.token, 2)
	return o
}

// installOkta creates the "okta" SAML connector (groups=admins → auditor) and installs the okta
// plugin with default role access; it returns the bearer token.
func installOkta(t testing.TB, admin func(args ...string) result, work string) string {
	t.Helper()
	connector := filepath.Join(work, "okta-saml.yaml")
	require.NoError(t, os.WriteFile(connector, []byte(`kind: saml
version: v1
metadata:
  name: okta
spec:
  display: Okta
  acs: https://gatehouse.example.com/v1/webapi/saml/acs/okta
  attributes_to_roles:
    - name: groups
      value: admins
      roles: [auditor]
  entity_descriptor: |
`+indent(idpMetadata(t), "    ")+"\n"), 0o600))
	r := admin("create", "-f", connector)
	require.Equal(t, 0, r.code, r.String())
	r = admin("plugins", "install", "okta", "--saml-connector", "okta", "--default-roles", "access", "--format", "json")
	require.Equal(t, 0, r.code, r.String())
	var install struct {
		Token string `json:"token"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &install), r.stdout)
	require.NotEmpty(t, install.Token)
	return install.Token
}
