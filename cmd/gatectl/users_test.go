package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/cmd/internal/errline"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/lib/auth"
	"github.com/gatehouse/gatehouse/lib/auth/authtest"
	"github.com/gatehouse/gatehouse/lib/auth/identityfile"
	"github.com/gatehouse/gatehouse/lib/services"
)

// gatectlAgainst runs gatectl in-process against a real auth server as its
// admin, with stdin.
func gatectlAgainst(t *testing.T, s *authtest.Server, idFile, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	a := newApp(&out)
	root := a.rootCommand()
	root.SetArgs(append([]string{"--auth-server", s.Addr, "--identity", idFile}, args...))
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetIn(strings.NewReader(stdin))
	if err := root.ExecuteContext(context.Background()); err != nil {
		return out.String(), userMessage(err), 1
	}
	return out.String(), "", 0
}

func adminServer(t *testing.T) (*authtest.Server, string) {
	t.Helper()
	s := authtest.NewServer(t, authtest.Options{PublicAddr: "gatehouse.example.com"})
	id, err := s.Auth.GenerateUserIdentity(context.Background(), services.BuiltinAdmin, 0)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "admin.identity")
	require.NoError(t, identityfile.Write(path, id))
	return s, path
}

func TestUsersAdd(t *testing.T) {
	t.Parallel()
	s, idFile := adminServer(t)
	ctx := context.Background()

	out, errMsg, code := gatectlAgainst(t, s, idFile, "", "users", "add", "alice", "--roles", "editor,access", "--logins", "alice,ops")
	require.Equal(t, 0, code, errMsg)
	require.Contains(t, out, `User "alice" created with roles editor, access.`)
	i := strings.Index(out, "https://")
	require.GreaterOrEqual(t, i, 0, out)
	link, err := url.Parse(strings.Fields(out[i:])[0])
	require.NoError(t, err)
	require.Equal(t, "gatehouse.example.com", link.Host)
	require.Equal(t, "/web/password", link.Path)
	require.NotEmpty(t, link.Query().Get("token"))
	u, err := s.Auth.Services().Users.GetUser(ctx, "alice", false)
	require.NoError(t, err)
	require.Equal(t, []string{"editor", "access"}, u.GetSpec().GetRoles())
	require.Equal(t, []string{"alice", "ops"}, services.TraitValues(u, auth.LoginsTrait))
	require.Equal(t, services.BuiltinAdmin, u.GetSpec().GetCreatedBy().GetUser().GetName())

	// A name is stored in canonical form, and gatectl says so.
	out, errMsg, code = gatectlAgainst(t, s, idFile, "", "users", "add", "Frank", "--roles", "access")
	require.Equal(t, 0, code, errMsg)
	require.Contains(t, out, `User "frank" created with roles access (you typed "Frank"; Gatehouse stores usernames in canonical form).`)
	_, err = s.Auth.Services().Users.GetUser(ctx, "frank", false)
	require.NoError(t, err)

	// --password-stdin sets the password and makes no link.
	out, errMsg, code = gatectlAgainst(t, s, idFile, "correct horse battery\n", "--format", "json", "users", "add", "bob", "--roles", "access", "--password-stdin")
	require.Equal(t, 0, code, errMsg)
	var res userAddOutput
	require.NoError(t, json.Unmarshal([]byte(out), &res), out)
	require.True(t, res.PasswordSet)
	require.Empty(t, res.PasswordURL)
	u, err = s.Auth.Services().Users.GetUser(ctx, "bob", true)
	require.NoError(t, err)
	require.NoError(t, bcrypt.CompareHashAndPassword(u.GetSpec().GetLocalAuth().GetPasswordHash(), []byte("correct horse battery")))

	for _, tc := range []struct {
		name, stdin string
		args        []string
		want        string
	}{
		{"exists", "", []string{"users", "add", "alice", "--roles", "access"}, `user "alice" already exists`},
		{"look-alike exists", "", []string{"users", "add", "ＡＬＩＣＥ", "--roles", "access"}, `user "alice" already exists (you typed "ＡＬＩＣＥ"`},
		{"reserved", "", []string{"users", "add", "@admin", "--roles", "access"}, `username "@admin" is reserved`},
		{"no roles", "", []string{"users", "add", "carol"}, "--roles"},
		{"no name", "", []string{"users", "add", "--roles", "access"}, "exactly one NAME"},
		{"empty stdin", "", []string{"users", "add", "carol", "--roles", "access", "--password-stdin"}, "no password on stdin"},
		{"weak password", "short\n", []string{"users", "add", "dave", "--roles", "access", "--password-stdin"}, "at least 12 characters; no user was created"},
		{"long password", strings.Repeat("x", 73) + "\n", []string{"users", "add", "dave", "--roles", "access", "--password-stdin"}, "at most 72 bytes; no user was created"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errMsg, code := gatectlAgainst(t, s, idFile, tc.stdin, tc.args...)
			require.Equal(t, 1, code)
			require.Contains(t, errMsg, tc.want)
		})
	}
	// A refused password leaves no user behind, without the password asked
	// for, to delete by hand.
	_, err = s.Auth.Services().Users.GetUser(ctx, "dave", false)
	require.True(t, trace.IsNotFound(err), "%v", err)
}

func TestAuthSign(t *testing.T) {
	t.Parallel()
	s, idFile := adminServer(t)
	dir := t.TempDir()
	_, errMsg, code := gatectlAgainst(t, s, idFile, "", "users", "add", "erin", "--roles", "access", "--logins", "erin,deploy")
	require.Equal(t, 0, code, errMsg)

	key := filepath.Join(dir, "erin")
	out, errMsg, code := gatectlAgainst(t, s, idFile, "", "auth", "sign", "--user", "erin", "--ttl", "1h", "--out", key)
	require.Equal(t, 0, code, errMsg)
	require.Contains(t, out, "ssh -i "+key)
	st, err := os.Stat(key)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	keyPEM, err := os.ReadFile(key)
	require.NoError(t, err)
	signer, err := ssh.ParsePrivateKey(keyPEM)
	require.NoError(t, err)
	certText, err := os.ReadFile(key + "-cert.pub")
	require.NoError(t, err)
	parsed, _, _, _, err := ssh.ParseAuthorizedKey(certText)
	require.NoError(t, err)
	cert := parsed.(*ssh.Certificate)
	require.Equal(t, signer.PublicKey().Marshal(), cert.Key.Marshal(), "the certificate is for the key written")
	require.Equal(t, "erin", cert.KeyId)
	require.Equal(t, []string{"deploy", "erin"}, cert.ValidPrincipals)
	require.Equal(t, s.Clock.Now().Add(time.Hour).Unix(), int64(cert.ValidBefore))

	idPath := filepath.Join(dir, "erin.identity")
	_, errMsg, code = gatectlAgainst(t, s, idFile, "", "auth", "sign", "--user", "erin", "--out", idPath, "--format", "identity")
	require.Equal(t, 0, code, errMsg)
	st, err = os.Stat(idPath)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	id, err := identityfile.Read(idPath)
	require.NoError(t, err)
	require.Equal(t, "erin", id.Username)
	// The new identity acts as erin, who may not administer anything.
	_, errMsg, code = gatectlAgainst(t, s, idPath, "", "get", "users")
	require.Equal(t, 1, code)
	require.Contains(t, errMsg, "access denied")

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no user", []string{"auth", "sign", "--out", key}, "--user"},
		{"no out", []string{"auth", "sign", "--user", "erin"}, "--out"},
		{"bad format", []string{"auth", "sign", "--user", "erin", "--out", key, "--format", "pem"}, "openssh or identity"},
		{"negative ttl", []string{"auth", "sign", "--user", "erin", "--out", key, "--ttl", "-1h"}, "negative"},
		{"unknown user", []string{"auth", "sign", "--user", "ghost", "--out", key}, "does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errMsg, code := gatectlAgainst(t, s, idFile, "", tc.args...)
			require.Equal(t, 1, code)
			require.Contains(t, errMsg, tc.want)
		})
	}
}

func TestUsersAndAuthHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"users", "--help"}, {"users", "add", "--help"}, {"auth", "--help"}, {"auth", "sign", "--help"}} {
		var out, errOut bytes.Buffer
		require.Equal(t, 0, run(context.Background(), args, &out, &errOut), "%v: %s", args, errOut.String())
		require.Contains(t, out.String(), "Usage:", "%v", args)
	}
}

// TestAuthSignPrintsTheNodesPort: the ssh command auth sign prints works as
// printed on a server whose SSH node is not on the default port, because
// with --data-dir it takes the port the server wrote to ssh_addr.
func TestAuthSignPrintsTheNodesPort(t *testing.T) {
	t.Parallel()
	s, idFile := adminServer(t)
	_, errMsg, code := gatectlAgainst(t, s, idFile, "", "users", "add", "erin", "--roles", "access", "--logins", "erin")
	require.Equal(t, 0, code, errMsg)

	dataDir := t.TempDir()
	idPEM, err := os.ReadFile(idFile)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dataDir, adminIdentityFile), idPEM, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dataDir, authAddrFile), []byte(s.Addr+"\n"), 0o644))
	key := filepath.Join(t.TempDir(), "erin")
	for _, tc := range []struct {
		name     string
		sshAddr  string // "" writes no ssh_addr file
		wantPort string
	}{
		{name: "node on another port", sshAddr: "127.0.0.1:5122\n", wantPort: "5122"},
		{name: "IPv6 node", sshAddr: "[::1]:6022\n", wantPort: "6022"},
		{name: "no ssh_addr file", wantPort: "3022"},
		{name: "unreadable ssh_addr", sshAddr: "not an address\n", wantPort: "3022"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sshAddr := filepath.Join(dataDir, sshAddrFile)
			require.NoError(t, os.RemoveAll(sshAddr))
			if tc.sshAddr != "" {
				require.NoError(t, os.WriteFile(sshAddr, []byte(tc.sshAddr), 0o644))
			}
			var out, errOut bytes.Buffer
			code := run(context.Background(), []string{"--data-dir", dataDir, "auth", "sign", "--user", "erin", "--out", key}, &out, &errOut)
			require.Equal(t, 0, code, errOut.String())
			require.Contains(t, out.String(), "Use: ssh -i "+key+" -p "+tc.wantPort+" LOGIN@NODE\n")
		})
	}
}

// TestUnreachableAuthServerIsNamed: gRPC connects lazily, so an auth server
// that is down shows as the first call's error; the message names the
// address it came from and where that address is set.
func TestUnreachableAuthServerIsNamed(t *testing.T) {
	t.Parallel()
	_, idFile := adminServer(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"--auth-server", addr, "--identity", idFile, "get", "roles"}, &out, &errOut)
	require.Equal(t, 1, code)
	require.True(t, strings.HasPrefix(errOut.String(), "ERROR: auth server at "+addr+": "), errOut.String())
	require.Contains(t, errOut.String(), "(is gatehouse running there? the address comes from --auth-server or <data-dir>/auth_addr)")
}

// TestOneLineKeepsTheWrapSeparator: trace puts a wrap's message on its own
// line above the cause; one line keeps them apart with ": ".
func TestOneLineKeepsTheWrapSeparator(t *testing.T) {
	t.Parallel()
	err := trace.Wrap(trace.BadParameter("the password must be at least 12 characters"), "user %q was created but its password was not set", "dave")
	require.Equal(t, `user "dave" was created but its password was not set: the password must be at least 12 characters`, errline.Join(userMessage(err)))
	require.Equal(t, "plain message", errline.Join("  plain   message \n"))
}
