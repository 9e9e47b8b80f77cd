package web

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"
)

func newTestServer(t *testing.T, dir string, ready ReadyFunc) *Server {
	t.Helper()
	s, err := New(Config{
		Addr:   "127.0.0.1:0",
		TLS:    TLSConfig{SelfSignedDir: dir},
		Ready:  ready,
		Logger: discardLogger(),
	})
	require.NoError(t, err)
	s.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	return s
}

// client trusts exactly the server's self-signed certificate.
func client(t *testing.T, s *Server) *http.Client {
	t.Helper()
	pemBytes, err := os.ReadFile(s.CertFile())
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pemBytes))
	return &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
}

func get(t *testing.T, c *http.Client, s *Server, path string) (int, map[string]string) {
	t.Helper()
	resp, err := c.Get("https://" + s.Addr().String() + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	out := map[string]string{}
	if resp.Header.Get("Content-Type") == "application/json" {
		require.NoError(t, json.Unmarshal(body, &out))
	} else {
		out["body"] = string(body)
	}
	return resp.StatusCode, out
}

func TestHealthAndReady(t *testing.T) {
	t.Parallel()
	var readyErr error
	s := newTestServer(t, t.TempDir(), func(context.Context) error { return readyErr })
	c := client(t, s)

	code, body := get(t, c, s, "/healthz")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ok", body["status"])

	code, body = get(t, c, s, "/readyz")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ok", body["status"])

	readyErr = errors.New("sqlite: database is locked at /secret/path")
	code, body = get(t, c, s, "/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, "unavailable", body["status"])
	require.NotContains(t, body["error"], "/secret/path", "internal detail must not reach an unauthenticated caller")
}

func TestMount(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, t.TempDir(), nil)
	c := client(t, s)
	require.NoError(t, s.Mount("/v1/webapi/scim/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "scim:"+r.URL.Path)
	})))

	code, body := get(t, c, s, "/v1/webapi/scim/okta/Users")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "scim:/v1/webapi/scim/okta/Users", body["body"])

	code, _ = get(t, c, s, "/v1/webapi/other")
	require.Equal(t, http.StatusNotFound, code)

	for _, tc := range []struct {
		name, prefix string
	}{
		{"duplicate", "/v1/webapi/scim/"},
		{"root", "/"},
		{"no leading slash", "v1/x/"},
		{"no trailing slash", "/v1/x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Error(t, s.Mount(tc.prefix, http.NotFoundHandler()))
		})
	}
	require.Error(t, s.Mount("/v1/nil/", nil))
}

func TestPanicIsContained(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, t.TempDir(), nil)
	c := client(t, s)
	require.NoError(t, s.Mount("/boom/", http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("bad") })))
	code, body := get(t, c, s, "/boom/x")
	require.Equal(t, http.StatusInternalServerError, code)
	require.Equal(t, "internal error", body["error"])
	code, _ = get(t, c, s, "/healthz")
	require.Equal(t, http.StatusOK, code)
}

func TestSelfSignedCertificateIsKeptAcrossRestarts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	clock := clockwork.NewFakeClockAt(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	tc := TLSConfig{SelfSignedDir: dir, Hosts: []string{"gatehouse.example.com"}}

	first, _, err := tc.load(clock, discardLogger())
	require.NoError(t, err)
	info, err := os.Stat(filepath.Join(dir, SelfSignedKeyName))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	second, _, err := tc.load(clock, discardLogger())
	require.NoError(t, err)
	require.Equal(t, first.Certificate[0], second.Certificate[0], "a restart reuses the kept certificate")

	// A new host name is not covered: regenerate.
	tc2 := tc
	tc2.Hosts = append(tc2.Hosts, "other.example.com")
	third, _, err := tc2.load(clock, discardLogger())
	require.NoError(t, err)
	require.NotEqual(t, first.Certificate[0], third.Certificate[0])

	// Near expiry: regenerate.
	clock.Advance(selfSignedValidity - selfSignedRenewBefore + time.Hour)
	fourth, _, err := tc2.load(clock, discardLogger())
	require.NoError(t, err)
	require.NotEqual(t, third.Certificate[0], fourth.Certificate[0])
	leaf, err := x509.ParseCertificate(fourth.Certificate[0])
	require.NoError(t, err)
	require.NoError(t, leaf.VerifyHostname("other.example.com"))
	require.NoError(t, leaf.VerifyHostname("127.0.0.1"))
}

func TestConfiguredCertificate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certPEM, keyPEM, err := GenerateSelfSigned([]string{"localhost", "127.0.0.1"}, time.Now(), time.Hour)
	require.NoError(t, err)
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	require.NoError(t, os.WriteFile(certFile, certPEM, 0o600))
	require.NoError(t, os.WriteFile(keyFile, keyPEM, 0o600))

	_, err = New(Config{Addr: "127.0.0.1:0", TLS: TLSConfig{CertFile: certFile}})
	require.Error(t, err, "cert without key is refused")
	_, err = New(Config{Addr: "127.0.0.1:0", TLS: TLSConfig{CertFile: certFile, KeyFile: filepath.Join(dir, "missing")}})
	require.Error(t, err)

	s, err := New(Config{Addr: "127.0.0.1:0", TLS: TLSConfig{CertFile: certFile, KeyFile: keyFile, SelfSignedDir: dir}})
	require.NoError(t, err)
	s.Start()
	defer s.Shutdown(context.Background())
	code, _ := get(t, client(t, s), s, "/healthz")
	require.Equal(t, http.StatusOK, code)
	_, err = os.Stat(filepath.Join(dir, SelfSignedCertName))
	require.True(t, os.IsNotExist(err), "no self-signed certificate when one is configured")
}

func TestShutdownWithoutStart(t *testing.T) {
	t.Parallel()
	s, err := New(Config{Addr: "127.0.0.1:0", TLS: TLSConfig{SelfSignedDir: t.TempDir()}})
	require.NoError(t, err)
	require.NoError(t, s.Shutdown(context.Background()))
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
