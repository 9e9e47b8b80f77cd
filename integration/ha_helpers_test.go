package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
)

// Helpers for the HA tests and benchmarks: gatehouse servers on one etcd cluster, Okta set up
// through one of them, and in-process SSH sessions (golang.org/x/crypto/ssh) whose end is timed.

// haEtcdArgs are the gatehouse flags for the etcd storage at endpoints.
func haEtcdArgs(endpoints []string) []string {
	return []string{"--storage", "etcd", "--etcd-endpoints", strings.Join(endpoints, ","), "--etcd-prefix", "/itest/"}
}

// haLaunch starts `gatehouse start` on free loopback ports without waiting for it, so that
// several servers can start at the same moment; haWaitReady waits for each.
func haLaunch(t testing.TB, bin, dataDir string, logs *syncBuffer, extra ...string) *server {
	t.Helper()
	args := append([]string{"start",
		"--data-dir", dataDir,
		"--auth-addr", "127.0.0.1:0",
		"--web-addr", "127.0.0.1:0",
		"--ssh-addr", "127.0.0.1:0",
		"--public-addr", "gatehouse.example.com:443",
		"--cluster-name", "itest",
		"--log-level", "info",
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
	return s
}

// haWaitReady waits until the server's /readyz answers 200.
func haWaitReady(t testing.TB, s *server) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-s.done:
			t.Fatalf("gatehouse exited early (%v):\n%s", err, s.out.String())
		default:
		}
		if b, err := os.ReadFile(filepath.Join(s.dataDir, "web_addr")); err == nil {
			s.webAddr = strings.TrimSpace(string(b))
			if c := newSCIMClient(t, s, "", "", 1); c != nil {
				if resp, err := c.http.Get("https://" + s.webAddr + "/readyz"); err == nil {
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						return
					}
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("gatehouse did not become ready:\n%s", s.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// haLogin is the OS login SSH sessions run as: the user running the tests.
func haLogin(t testing.TB) string {
	t.Helper()
	u, err := user.Current()
	require.NoError(t, err)
	return u.Username
}

// haSetupOkta creates role "dev" (login haLogin), the "okta" SAML connector and installs the okta
// plugin with default role dev, all through admin (one server's gatectl); it returns the SCIM
// token.
func haSetupOkta(t testing.TB, admin func(args ...string) result, work string) string {
	t.Helper()
	role := filepath.Join(work, "dev.yaml")
	require.NoError(t, os.WriteFile(role, []byte("kind: role\nversion: v1\nmetadata:\n  name: dev\nspec:\n  allow:\n    logins: ["+haLogin(t)+"]\n  options:\n    max_session_ttl: 8h\n"), 0o600))
	r := admin("create", "-f", role)
	require.Equal(t, 0, r.code, r.String())
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
      roles: [dev]
  entity_descriptor: |
`+indent(idpMetadata(t), "    ")+"\n"), 0o600))
	r = admin("create", "-f", connector)
	require.Equal(t, 0, r.code, r.String())
	r = admin("plugins", "install", "okta", "--saml-connector", "okta", "--default-roles", "dev", "--format", "json")
	require.Equal(t, 0, r.code, r.String())
	var install struct {
		Token string `json:"token"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &install), r.stdout)
	require.NotEmpty(t, install.Token)
	return install.Token
}

// haSigner issues an SSH certificate for user with gatectl auth sign and returns it as a signer.
func haSigner(t testing.TB, admin func(args ...string) result, work, user string) ssh.Signer {
	t.Helper()
	out := filepath.Join(work, strings.NewReplacer("@", "_", ".", "_").Replace(user))
	r := admin("auth", "sign", "--user", user, "--ttl", "1h", "--out", out)
	require.Equal(t, 0, r.code, r.String())
	keyPEM, err := os.ReadFile(out)
	require.NoError(t, err)
	key, err := ssh.ParsePrivateKey(keyPEM)
	require.NoError(t, err)
	certText, err := os.ReadFile(out + "-cert.pub")
	require.NoError(t, err)
	pub, _, _, _, err := ssh.ParseAuthorizedKey(certText)
	require.NoError(t, err)
	cert, ok := pub.(*ssh.Certificate)
	require.True(t, ok, "gatectl auth sign wrote a certificate")
	signer, err := ssh.NewCertSigner(cert, key)
	require.NoError(t, err)
	return signer
}

// haSSHAddr reads the SSH node's address from a server's data dir.
func haSSHAddr(t testing.TB, s *server) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.dataDir, "ssh_addr"))
	require.NoError(t, err)
	return strings.TrimSpace(string(b))
}

// haSession is a live SSH session running a long command.
type haSession struct {
	client *ssh.Client
	stderr *syncBuffer
	done   chan struct{}
	ended  time.Time
	err    error
}

// haDial opens an SSH connection to addr as login with signer.
func haDial(addr, login string, signer ssh.Signer) (*ssh.Client, error) {
	return ssh.Dial("tcp", addr, &ssh.ClientConfig{
		User:            login,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), // the host key is not what these tests check
		Timeout:         10 * time.Second,
	})
}

// haStartSession runs "echo started; sleep 300" on the node at addr and returns once the
// remote side printed "started"; an error means the node refused (or never ran) the session.
func haStartSession(addr, login string, signer ssh.Signer) (*haSession, error) {
	client, err := haDial(addr, login, signer)
	if err != nil {
		return nil, err
	}
	sess, err := client.NewSession()
	if err != nil {
		client.Close()
		return nil, err
	}
	stdout, err := sess.StdoutPipe()
	if err != nil {
		client.Close()
		return nil, err
	}
	s := &haSession{client: client, stderr: &syncBuffer{}, done: make(chan struct{})}
	sess.Stderr = s.stderr
	if err := sess.Start("echo started; sleep 300"); err != nil {
		client.Close()
		return nil, err
	}
	started := make(chan struct{})
	go func() {
		buf := make([]byte, 64)
		var seen bytes.Buffer
		for {
			n, rerr := stdout.Read(buf)
			seen.Write(buf[:n])
			if bytes.Contains(seen.Bytes(), []byte("started")) {
				close(started)
				_, _ = io.Copy(io.Discard, stdout)
				break
			}
			if rerr != nil {
				break
			}
		}
		s.err = sess.Wait()
		s.ended = time.Now()
		client.Close()
		close(s.done)
	}()
	select {
	case <-started:
		return s, nil
	case <-s.done:
		return nil, fmt.Errorf("session ended before the command started (%w): %s", s.err, s.stderr.String())
	case <-time.After(20 * time.Second):
		client.Close()
		return nil, fmt.Errorf("session did not start within 20s")
	}
}

// haTry sends one SCIM request the way Okta retries: a 503 or 429 is retried after Retry-After,
// a transport error after 200ms, each retry on the next client (the load balancer picks another
// server). It returns the final answer and the number of attempts.
func haTry(ctx context.Context, clients []*scimClient, first int, method, path string, body any) (scimResponse, int, error) {
	var last error
	for attempt := 0; attempt < 20; attempt++ {
		c := clients[(first+attempt)%len(clients)]
		r, err := c.try(method, path, body)
		if err == nil && r.status != http.StatusServiceUnavailable && r.status != http.StatusTooManyRequests {
			return r, attempt + 1, nil
		}
		wait := 200 * time.Millisecond
		if err == nil {
			last = fmt.Errorf("%d %s (Retry-After %q)", r.status, r.raw, r.header.Get("Retry-After"))
			if d, perr := time.ParseDuration(r.header.Get("Retry-After") + "s"); perr == nil {
				wait = d
			}
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			return scimResponse{}, attempt + 1, ctx.Err()
		case <-time.After(wait):
		}
	}
	return scimResponse{}, 20, fmt.Errorf("gave up after 20 attempts: %w", last)
}

// haListSCIMUsers pages through GET /Users and returns userName -> ids seen.
func haListSCIMUsers(t testing.TB, c *scimClient) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for start := 1; ; {
		r := c.do(http.MethodGet, fmt.Sprintf("/Users?startIndex=%d&count=1000", start), nil).expect(t, http.StatusOK)
		res, _ := r.body["Resources"].([]any)
		for _, x := range res {
			u := x.(map[string]any)
			name, _ := u["userName"].(string)
			id, _ := u["id"].(string)
			out[name] = append(out[name], id)
		}
		if len(res) == 0 {
			return out
		}
		start += len(res)
	}
}

// haParallel runs n jobs on conc workers and returns the first error.
func haParallel(conc, n int, job func(i int) error) error {
	var mu sync.Mutex
	var first error
	next := make(chan int)
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := job(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		mu.Lock()
		stop := first != nil
		mu.Unlock()
		if stop {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}
