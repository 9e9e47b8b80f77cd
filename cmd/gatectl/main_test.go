package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/auth/identityfile"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

func TestParseRef(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		ref      string
		needName bool
		kind     string
		name     string
		wantErr  string
	}{
		{ref: "users", kind: "user"},
		{ref: "user/alice", kind: "user", name: "alice"},
		{ref: "PLUGINS", kind: "plugin"},
		{ref: "saml/okta", kind: "saml", name: "okta"},
		{ref: "saml_connectors", kind: "saml"},
		{ref: "locks/x", kind: "lock", name: "x"},
		{ref: "cert_authority", wantErr: "unknown resource kind"},
		{ref: "plugin_static_credentials/okta", wantErr: "unknown resource kind"},
		{ref: "user/", wantErr: "want KIND/NAME"},
		{ref: "user/a/b", wantErr: "want KIND/NAME"},
		{ref: "user", needName: true, wantErr: "name missing"},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			t.Parallel()
			k, name, err := parseRef(tc.ref, tc.needName)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.kind, k.kind)
			require.Equal(t, tc.name, name)
		})
	}
}

func TestErrorsAreOneLineAndExitOne(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("kind: cert_authority\nversion: v1\nmetadata:\n  name: x\n"), 0o600))
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no credentials", []string{"get", "users"}, "no credentials"},
		{"no server", []string{"--data-dir", dir, "get", "users"}, "auth_addr not found"},
		{"bad format", []string{"--format", "xml", "get", "users"}, "unknown --format"},
		{"bad flag", []string{"get", "--bogus", "users"}, "unknown flag"},
		{"bad kind", []string{"--data-dir", dir, "get", "widgets"}, "unknown resource kind"},
		{"install other type", []string{"plugins", "install", "jira"}, "supported: okta"},
		{"install without connector", []string{"--data-dir", dir, "plugins", "install", "okta"}, "--saml-connector"},
		{"create without file", []string{"--data-dir", dir, "create"}, "-f FILE"},
		{"create refused kind", []string{"--data-dir", dir, "create", "-f", bad}, "unknown resource kind"},
		{"events bad since", []string{"--data-dir", dir, "events", "ls", "--since", "-1h"}, "--since"},
		// Missing or stray arguments name the command and what it wants,
		// not cobra's "accepts 1 arg(s), received 0" or "unknown command".
		{"get without kind", []string{"get"}, "gatectl get needs KIND or KIND/NAME (kinds: user, role, lock, saml, plugin), for example: gatectl get users"},
		{"get two kinds", []string{"get", "users", "roles"}, "gatectl get takes one argument, KIND or KIND/NAME (kinds: user, role, lock, saml, plugin); got 2: users roles"},
		{"rm without ref", []string{"rm"}, "gatectl rm needs KIND/NAME, for example: gatectl rm user/alice"},
		{"rotate-token without name", []string{"plugins", "rotate-token"}, "gatectl plugins rotate-token needs the plugin's NAME"},
		{"status without name", []string{"plugins", "status"}, "gatectl plugins status needs the plugin's NAME"},
		{"sync without name", []string{"plugins", "sync"}, "gatectl plugins sync needs the plugin's NAME"},
		{"usersync-test without name", []string{"plugins", "usersync-test"}, "gatectl plugins usersync-test needs the plugin's NAME"},
		{"usersync-configure without name", []string{"plugins", "usersync-configure"}, "gatectl plugins usersync-configure needs the plugin's NAME"},
		{"usersync-credentials without name", []string{"plugins", "usersync-credentials"}, "gatectl plugins usersync-credentials needs the plugin's NAME"},
		{"create file without -f", []string{"create", "okta-saml.yaml"}, `gatectl create takes no argument, got "okta-saml.yaml": give the file with -f FILE`},
		{"locks ls with a user", []string{"locks", "ls", "alice"}, `gatectl locks ls takes no argument, got "alice": pass a user with --user NAME`},
		{"events ls with a type", []string{"events", "ls", "lock.delete"}, `gatectl events ls takes no argument, got "lock.delete"`},
		{"auth sign with a user", []string{"auth", "sign", "alice"}, `gatectl auth sign takes no argument, got "alice": pass the user with --user NAME`},
		{"version with an argument", []string{"version", "x"}, `gatectl version takes no argument, got "x"`},
		{"unknown subcommand", []string{"plugins", "bogus"}, `unknown command "bogus" for "gatectl plugins"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out, errOut bytes.Buffer
			code := run(context.Background(), tc.args, &out, &errOut)
			require.Equal(t, 1, code)
			require.Contains(t, errOut.String(), tc.want)
			require.True(t, strings.HasPrefix(errOut.String(), "ERROR: "))
			require.Equal(t, 1, strings.Count(errOut.String(), "\n"), "one line: %q", errOut.String())
		})
	}
}

func TestHelpEverywhere(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--help"}, {"create", "--help"}, {"get", "--help"}, {"rm", "--help"},
		{"plugins", "--help"}, {"plugins", "install", "--help"}, {"plugins", "update", "--help"}, {"plugins", "rotate-token", "--help"},
		{"locks", "--help"}, {"locks", "ls", "--help"}, {"locks", "rm", "--help"},
		{"events", "--help"}, {"events", "ls", "--help"},
	} {
		var out, errOut bytes.Buffer
		require.Equal(t, 0, run(context.Background(), args, &out, &errOut), "%v: %s", args, errOut.String())
		require.Contains(t, out.String(), "Usage:", "%v", args)
	}
}

// TestExpiredIdentity: an expired identity is refused before dialing, with
// a message that says so, rather than the broken connection the server's
// handshake leaves a client with.
func TestExpiredIdentity(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	notAfter := time.Now().Add(-time.Minute).Truncate(time.Second)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "alice"}, NotBefore: notAfter.Add(-time.Hour), NotAfter: notAfter,
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	ident := filepath.Join(dir, "alice.identity")
	require.NoError(t, identityfile.Write(ident, &identityfile.Identity{
		Username: "alice", KeyPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), CertPEM: certPEM, CACertsPEM: [][]byte{certPEM},
	}))
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"--auth-server", "127.0.0.1:1", "--identity", ident, "get", "roles"}, &out, &errOut)
	require.Equal(t, 1, code)
	require.Contains(t, errOut.String(), "identity file "+ident+" expired at "+notAfter.UTC().Format(time.RFC3339))
}

// TestPluginRowStatus: a plugin whose status code nobody set shows "-" in
// gatectl get plugins, not "unspecified"; a set code shows by name.
func TestPluginRowStatus(t *testing.T) {
	t.Parallel()
	k, err := lookupKind("plugin")
	require.NoError(t, err)
	for _, tc := range []struct {
		name   string
		status *typesv1.PluginStatus
		want   string
	}{
		{name: "no status", want: "-"},
		{name: "unset code", status: &typesv1.PluginStatus{Okta: &typesv1.OktaPluginStatus{UsersProvisioned: 1}}, want: "-"},
		{name: "running", status: &typesv1.PluginStatus{Code: typesv1.PluginStatusCode_PLUGIN_STATUS_CODE_RUNNING}, want: "running"},
		{name: "error", status: &typesv1.PluginStatus{Code: typesv1.PluginStatusCode_PLUGIN_STATUS_CODE_OTHER_ERROR}, want: "other_error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := &typesv1.Plugin{
				Metadata: &typesv1.Metadata{Name: "okta"},
				Spec:     &typesv1.PluginSpec{Settings: &typesv1.PluginSpec_Okta{Okta: &typesv1.OktaPluginSettings{SamlConnector: "okta", ScimEnabled: true}}},
				Status:   tc.status,
			}
			require.Equal(t, []string{"okta", "okta", "okta", "enabled", "disabled", tc.want}, k.row(p))
		})
	}
}

// TestVersionFlagMatchesCommand: gatectl --version and gatectl version
// print the same line.
func TestVersionFlagMatchesCommand(t *testing.T) {
	t.Parallel()
	var want bytes.Buffer
	require.Equal(t, 0, run(context.Background(), []string{"version"}, &want, io.Discard))
	require.Equal(t, "gatectl "+version+"\n", want.String())
	for _, flag := range []string{"--version", "-v"} {
		var out bytes.Buffer
		require.Equal(t, 0, run(context.Background(), []string{flag}, &out, io.Discard))
		require.Equal(t, want.String(), out.String(), flag)
	}
}
