package integration

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// buildBinaries compiles gatehouse and gatectl once into a temporary dir.
func buildBinaries(t testing.TB) (gatehouse, gatectl string) {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir+string(os.PathSeparator), "./cmd/gatehouse", "./cmd/gatectl")
	cmd.Dir = ".." // the module root
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return filepath.Join(dir, "gatehouse"), filepath.Join(dir, "gatectl")
}

// syncBuffer collects a process's output safely while it runs.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// server is a running `gatehouse start`.
type server struct {
	cmd     *exec.Cmd
	out     *syncBuffer // stdout and stderr: banner and logs
	dataDir string
	webAddr string
	done    chan error
}

// startServer runs gatehouse on free loopback ports (port 0; the server
// writes the bound addresses to the data dir) and waits for /readyz.
func startServer(t *testing.T, bin, dataDir string, logs *syncBuffer) *server {
	t.Helper()
	// Stale address files from a previous run must not be mistaken for ours.
	_ = os.Remove(filepath.Join(dataDir, "auth_addr"))
	_ = os.Remove(filepath.Join(dataDir, "web_addr"))
	_ = os.Remove(filepath.Join(dataDir, "ssh_addr"))
	cmd := exec.Command(bin, "start",
		"--data-dir", dataDir,
		"--auth-addr", "127.0.0.1:0",
		"--web-addr", "127.0.0.1:0",
		"--ssh-addr", "127.0.0.1:0",
		"--public-addr", "gatehouse.example.com:443",
		"--cluster-name", "itest",
		"--log-level", "debug",
	)
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

	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case err := <-s.done:
			t.Fatalf("gatehouse exited early (%v):\n%s", err, logs.String())
		default:
		}
		if b, err := os.ReadFile(filepath.Join(dataDir, "web_addr")); err == nil {
			s.webAddr = strings.TrimSpace(string(b))
			if s.getStatus(t, "/readyz") == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("gatehouse did not become ready:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// getStatus GETs path on the web listener, trusting its self-signed
// certificate from the data dir; 0 means no answer.
func (s *server) getStatus(t *testing.T, path string) int {
	t.Helper()
	pemBytes, err := os.ReadFile(filepath.Join(s.dataDir, "web.crt"))
	if err != nil {
		return 0
	}
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pemBytes))
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Get("https://" + s.webAddr + path)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-s.done:
		require.NoError(t, err, "gatehouse should exit 0 on SIGTERM:\n%s", s.out.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("gatehouse did not stop on SIGTERM")
	}
}

// result is one gatectl run.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

func runCmd(t testing.TB, bin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee, "running %s %v", bin, args)
		code = ee.ExitCode()
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// idpMetadata returns minimal valid SAML IdP metadata with a fresh
// self-signed signing certificate.
func idpMetadata(t testing.TB) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "okta-idp-test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert := base64.StdEncoding.EncodeToString(der)
	return `<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="http://www.okta.com/exk1test">
  <md:IDPSSODescriptor WantAuthnRequestsSigned="false" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing">
      <ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#">
        <ds:X509Data><ds:X509Certificate>` + cert + `</ds:X509Certificate></ds:X509Data>
      </ds:KeyInfo>
    </md:KeyDescriptor>
    <md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified</md:NameIDFormat>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://example.okta.com/app/exk1test/sso/saml"/>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://example.okta.com/app/exk1test/sso/saml"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>
`
}

// indent prefixes every line of s, for a YAML block scalar.
func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "\n")
}

// filesContaining lists the files under dir whose bytes contain needle.
func filesContaining(t *testing.T, dir string, needle string) []string {
	t.Helper()
	var hits []string
	require.NoError(t, filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(needle)) {
			hits = append(hits, path)
		}
		return nil
	}))
	return hits
}

// resourceFile writes doc, a resource in YAML, to dir/name.yaml for `gatectl create -f` and
// returns its path.
func resourceFile(t testing.TB, dir, name, doc string) string {
	t.Helper()
	f := filepath.Join(dir, name+".yaml")
	require.NoError(t, os.WriteFile(f, []byte(doc), 0o600))
	return f
}

// gatectlOn returns two ways of running gatectl against the server whose
// data dir is dataDir: gatectl returns the result whatever it is, mustGatectl
// also requires that the command succeeded.
func gatectlOn(t testing.TB, bin, dataDir string) (gatectl, mustGatectl func(args ...string) result) {
	gatectl = func(args ...string) result {
		return runCmd(t, bin, append([]string{"--data-dir", dataDir}, args...)...)
	}
	mustGatectl = func(args ...string) result {
		t.Helper()
		r := gatectl(args...)
		require.Equal(t, 0, r.code, r.String())
		return r
	}
	return gatectl, mustGatectl
}
