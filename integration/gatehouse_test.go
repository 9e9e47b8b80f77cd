package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestGatehouseEndToEnd is the "done when": the real server and the
// real CLI, from first start to restart, with no plaintext token anywhere.
func TestGatehouseEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs binaries")
	}
	started := time.Now()
	gatehouseBin, gatectlBin := buildBinaries(t)
	t.Logf("built binaries in %s", time.Since(started).Round(time.Millisecond))

	dataDir := t.TempDir()
	work := t.TempDir()
	logs := &syncBuffer{}
	srv := startServer(t, gatehouseBin, dataDir, logs)

	admin, _ := gatectlOn(t, gatectlBin, dataDir)
	ok := func(r result) result {
		t.Helper()
		require.Equal(t, 0, r.code, r.String())
		return r
	}
	var outputs []string // everything gatectl printed, checked for secrets at the end
	record := func(r result) result { outputs = append(outputs, r.stdout, r.stderr); return r }

	// First start: admin identity 0600, health endpoints, address files.
	adminID := filepath.Join(dataDir, "admin.identity")
	info, err := os.Stat(adminID)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	adminIDBytes, err := os.ReadFile(adminID)
	require.NoError(t, err)
	require.Equal(t, 200, srv.getStatus(t, "/healthz"))
	require.Contains(t, logs.String(), "gatectl --data-dir "+dataDir)

	// A SAML connector from YAML.
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
      roles: [editor]
  entity_descriptor: |
`+indent(idpMetadata(t), "    ")+"\n"), 0o600))
	r := record(ok(admin("create", "-f", connector)))
	require.Contains(t, r.stdout, `saml "okta" has been created`)
	r = record(admin("create", "-f", connector))
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "already exists")
	record(ok(admin("create", "--force", "-f", connector)))
	r = record(ok(admin("get", "saml/okta", "--format", "yaml")))
	require.Contains(t, r.stdout, "kind: saml")
	require.Contains(t, r.stdout, "EntityDescriptor")

	// Installing with a connector that does not exist is refused clearly.
	r = record(admin("plugins", "install", "okta", "--saml-connector", "nosuch"))
	require.Equal(t, 1, r.code, r.String())
	require.Contains(t, r.stderr, `SAML connector "nosuch" not found`)
	require.Equal(t, 1, strings.Count(strings.TrimSpace(r.stderr), "\n")+1, "one line: %q", r.stderr)
	// So is a default role that does not exist (a typo the grants reconcile would later hand out).
	r = record(admin("plugins", "install", "okta", "--saml-connector", "okta", "--default-roles", "access,acess"))
	require.Equal(t, 1, r.code, r.String())
	require.Contains(t, r.stderr, `role "acess" does not exist`)
	r = record(ok(admin("get", "plugins", "--format", "json")))
	require.JSONEq(t, "[]", r.stdout, "nothing was created by the refused installs")

	// Install: base URL and token, once.
	r = ok(admin("plugins", "install", "okta", "--saml-connector", "okta", "--default-roles", "access", "--lock-ttl", "720h", "--format", "json"))
	var install struct {
		BaseURL string `json:"base_url"`
		Token   string `json:"token"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &install), r.stdout)
	require.Equal(t, "https://gatehouse.example.com/v1/webapi/scim/okta", install.BaseURL)
	require.GreaterOrEqual(t, len(install.Token), 32)
	token1 := install.Token

	// Listing and reading plugins never shows a secret.
	for _, format := range []string{"text", "yaml", "json"} {
		r = record(ok(admin("get", "plugins", "--format", format)))
		require.Contains(t, r.stdout, "okta")
		r = record(ok(admin("get", "plugin/okta", "--format", format)))
		require.Contains(t, r.stdout, "okta")
	}
	r = ok(admin("get", "plugin/okta", "--format", "json"))
	require.NotContains(t, r.stdout, "hash")
	require.Contains(t, r.stdout, `"saml_connector": "okta"`)

	// Rotate: a new token.
	r = ok(admin("plugins", "rotate-token", "okta", "--format", "json"))
	var rotated struct {
		BaseURL string `json:"base_url"`
		Token   string `json:"token"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rotated), r.stdout)
	require.Equal(t, install.BaseURL, rotated.BaseURL)
	require.NotEqual(t, token1, rotated.Token)
	token2 := rotated.Token
	r = ok(admin("plugins", "rotate-token", "okta"))
	require.Contains(t, r.stdout, "Bearer token:")
	token3 := strings.TrimSpace(strings.SplitN(strings.SplitN(r.stdout, "Bearer token:", 2)[1], "\n", 2)[0])
	require.NotEmpty(t, token3)
	tokens := []string{token1, token2, token3}

	// A missing resource: non-zero exit, "not found".
	r = record(admin("get", "user/nobody"))
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "not found")

	// A user with only the auditor role.
	userFile := filepath.Join(work, "bob.yaml")
	require.NoError(t, os.WriteFile(userFile, []byte(`{"kind": "user", "version": "v1", "metadata": {"name": "bob"}, "spec": {"roles": ["auditor"]}}`), 0o600))
	record(ok(admin("create", "-f", userFile)))
	r = record(ok(admin("get", "users")))
	require.Contains(t, r.stdout, "bob")
	require.Contains(t, r.stdout, "auditor")

	// Events were recorded, without the token.
	r = record(ok(admin("events", "ls", "--format", "json")))
	var events []map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &events), r.stdout)
	require.NotEmpty(t, events)
	types := map[string]bool{}
	for _, e := range events {
		typ, _ := e["type"].(string)
		types[typ] = true
	}
	t.Logf("event types: %v", types)
	require.True(t, hasPrefix(types, "plugin."), "plugin events recorded: %v", types)
	require.True(t, hasPrefix(types, "user."), "user events recorded: %v", types)
	record(ok(admin("events", "ls", "--since", "1h")))

	// Restart on the same data dir; an identity for bob is made meanwhile
	// (the SQLite storage is single-process, so sign runs while stopped).
	srv.stop(t)
	bobID := filepath.Join(work, "bob.identity")
	r = record(runCmd(t, gatehouseBin, "sign", "--data-dir", dataDir, "--cluster-name", "itest", "--user", "bob", "--ttl", "1h", "--out", bobID))
	require.Equal(t, 0, r.code, r.String())
	info, err = os.Stat(bobID)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	srv = startServer(t, gatehouseBin, dataDir, logs)

	// The CAs were kept: the old admin identity is untouched and still works.
	after, err := os.ReadFile(adminID)
	require.NoError(t, err)
	require.Equal(t, adminIDBytes, after, "a valid admin identity is not rewritten on restart")
	r = record(ok(admin("get", "plugin/okta")))
	require.Contains(t, r.stdout, "okta")
	r = record(ok(admin("get", "user/bob", "--format", "json")))
	require.Contains(t, r.stdout, "auditor")
	record(ok(admin("get", "saml/okta")))

	// bob (auditor) reads events, and plugins and users without secrets,
	// but not roles, and changes nothing.
	authAddr, err := os.ReadFile(filepath.Join(dataDir, "auth_addr"))
	require.NoError(t, err)
	bob := func(args ...string) result {
		return runCmd(t, gatectlBin, append([]string{"--auth-server", strings.TrimSpace(string(authAddr)), "--identity", bobID}, args...)...)
	}
	r = record(ok(bob("get", "plugins")))
	require.Contains(t, r.stdout, "okta")
	r = record(bob("get", "roles"))
	require.Equal(t, 1, r.code, r.String())
	require.Contains(t, strings.ToLower(r.stderr), "denied")
	r = record(bob("plugins", "rotate-token", "okta"))
	require.Equal(t, 1, r.code, r.String())
	require.Contains(t, strings.ToLower(r.stderr), "denied")
	r = record(bob("create", "-f", connector, "--force"))
	require.Equal(t, 1, r.code, r.String())
	// Whether a role exists is not told to one who may not write users or plugins.
	for _, args := range [][]string{{"users", "add", "tom", "--roles", "nosuch"}, {"plugins", "update", "okta", "--default-roles", "nosuch"}} {
		r = record(bob(args...))
		require.Equal(t, 1, r.code, r.String())
		require.Contains(t, strings.ToLower(r.stderr), "denied")
		require.NotContains(t, r.stderr, "does not exist")
	}
	r = record(ok(bob("events", "ls", "--format", "json")))
	require.Contains(t, r.stdout, "bob", "the denied calls were recorded")

	// One name, one account: look-alikes of bob are bob, and names of
	// built-in identities are nobody's.
	r = record(admin("users", "add", "ＢＯＢ", "--roles", "access"))
	require.Equal(t, 1, r.code, r.String())
	require.Contains(t, r.stderr, `user "bob" already exists (you typed "ＢＯＢ"`)
	r = record(admin("users", "add", "＠admin", "--roles", "editor"))
	require.Equal(t, 1, r.code, r.String())
	require.Contains(t, r.stderr, "reserved")
	// A typo in a role is refused, not kept for a role created later under that name.
	r = record(admin("users", "add", "tom", "--roles", "access,acess"))
	require.Equal(t, 1, r.code, r.String())
	require.Contains(t, r.stderr, `role "acess" does not exist`)
	require.Equal(t, 1, admin("get", "user/tom").code, "nothing was created")

	// The operator identity: a lock on a user "admin" leaves it alone; an
	// editor's lock on @admin locks it out, and gatehouse recover, with the
	// server stopped, lets it back in.
	lockFile := func(name, user string) string {
		path := filepath.Join(work, name+".json")
		require.NoError(t, os.WriteFile(path, []byte(`{"kind":"lock","version":"v1","metadata":{"name":"`+name+`"},"spec":{"target":{"user":"`+user+`"},"message":"locked by `+name+`"}}`), 0o600))
		return path
	}
	record(ok(admin("create", "-f", lockFile("user-admin", "Admin"))))
	record(ok(admin("get", "plugins")))
	record(ok(admin("create", "-f", lockFile("operator", "@admin"))))
	r = record(admin("get", "plugins"))
	require.Equal(t, 1, r.code, r.String())
	require.Contains(t, r.stderr, "@admin is locked: locked by operator")
	r = record(runCmd(t, gatehouseBin, "recover", "--data-dir", dataDir, "--cluster-name", "itest"))
	require.Equal(t, 1, r.code, r.String())
	require.Contains(t, r.stderr, "server is running on this data dir")
	srv.stop(t)
	// A copy of the admin identity from before the recovery (a leaked one).
	leaked := filepath.Join(work, "leaked-admin.identity")
	leakedBytes, err := os.ReadFile(adminID)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(leaked, leakedBytes, 0o600))
	r = record(runCmd(t, gatehouseBin, "recover", "--data-dir", dataDir, "--cluster-name", "itest"))
	require.Equal(t, 0, r.code, r.String())
	require.Contains(t, r.stdout, "Voided every earlier admin identity of @admin")
	require.Contains(t, r.stdout, `Removed lock "operator" on @admin`)
	require.NotContains(t, r.stdout, "user-admin")
	srv = startServer(t, gatehouseBin, dataDir, logs)
	record(ok(admin("get", "plugins")))
	r = record(ok(admin("get", "locks")))
	require.Contains(t, r.stdout, "user-admin")
	require.NotContains(t, r.stdout, "operator")
	// The recovery voided the leaked copy, though its certificate is valid
	// and no lock on @admin is left.
	authAddr, err = os.ReadFile(filepath.Join(dataDir, "auth_addr"))
	require.NoError(t, err)
	r = record(runCmd(t, gatectlBin, "--auth-server", strings.TrimSpace(string(authAddr)), "--identity", leaked, "get", "plugins"))
	require.Equal(t, 1, r.code, r.String())
	require.Contains(t, r.stderr, "this admin identity was replaced by gatehouse recover; use the new admin.identity")

	srv.stop(t)

	// Nothing plaintext: not in the raw storage files (db, WAL), the
	// server's logs, or anything gatectl printed but install and rotate.
	for _, tok := range tokens {
		require.Empty(t, filesContaining(t, dataDir, tok), "token found in the data dir")
		require.NotContains(t, logs.String(), tok, "token found in the server's output")
		for _, o := range outputs {
			require.NotContains(t, o, tok)
		}
	}
	t.Logf("end to end in %s", time.Since(started).Round(time.Millisecond))
}

func hasPrefix(set map[string]bool, prefix string) bool {
	for k := range set {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}
