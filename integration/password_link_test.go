package integration

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestPasswordLinkDiesWithAccount: against a real gatehouse on SQLite, the
// one-time password link of a deleted account does not set the password of
// the account later created under the same name (whoever got the old link
// would take it over), and a locked user's link sets no password. Both
// links are spent by the refusal; the new account's own link works.
func TestPasswordLinkDiesWithAccount(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs binaries")
	}
	gatehouseBin, gatectlBin := buildBinaries(t)
	dataDir, work := t.TempDir(), t.TempDir()
	srv := startGatehouseLogged(t, gatehouseBin, dataDir, "--storage", "sqlite")
	_, admin := gatectlOn(t, gatectlBin, dataDir)
	hc := newSCIMClient(t, srv, "", "", 1).http
	post := func(path string, body any) (int, string) {
		t.Helper()
		b, err := json.Marshal(body)
		require.NoError(t, err)
		resp, err := hc.Post("https://"+srv.webAddr+path, "application/json", bytes.NewReader(b))
		require.NoError(t, err)
		defer resp.Body.Close()
		out, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(out)
	}
	tokenOf := func(link string) string {
		t.Helper()
		u, err := url.Parse(link)
		require.NoError(t, err)
		tok := u.Query().Get("token")
		require.NotEmpty(t, tok, link)
		return tok
	}
	setPassword := func(tok, pw string) (int, string) {
		return post("/v1/webapi/users/password", map[string]string{"token": tok, "password": pw})
	}
	login := func(user, pw string) int {
		code, _ := post("/v1/webapi/sessions", map[string]string{"user": user, "password": pw})
		return code
	}

	const (
		oldHolderPassword = "set through the old account's link"
		ownerPassword     = "set through the new account's link"
	)

	// The link of an account deleted and created again under its name.
	oldLink := tokenOf(addLinkUser(t, gatectlBin, dataDir, "carol", "access"))
	admin("rm", "user/carol")
	newLink := tokenOf(addLinkUser(t, gatectlBin, dataDir, "Carol", "access"))
	code, body := setPassword(oldLink, oldHolderPassword)
	require.Equal(t, http.StatusForbidden, code, body)
	require.Contains(t, body, "earlier account")
	code, body = setPassword(oldLink, oldHolderPassword)
	require.Equal(t, http.StatusForbidden, code, body)
	require.Contains(t, body, "invalid, used or expired", "the refused link is spent")
	require.Equal(t, http.StatusForbidden, login("carol", oldHolderPassword), "the old link set no password")

	// The new account's own link works.
	code, body = setPassword(newLink, ownerPassword)
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, http.StatusOK, login("carol", ownerPassword))

	// A locked user's link sets no password. Locks reach the web listener
	// through the lock watcher: a lock on erin, who has a password, written
	// after dan's, shows when the watcher has seen dan's.
	danLink := tokenOf(addLinkUser(t, gatectlBin, dataDir, "dan", "access"))
	const erinPassword = "erin's own password"
	addLocalUser(t, gatectlBin, dataDir, "erin", erinPassword, "access")
	lock := func(name, user string) {
		t.Helper()
		f := filepath.Join(work, name+".json")
		require.NoError(t, os.WriteFile(f, []byte(`{"kind":"lock","version":"v1","metadata":{"name":"`+name+`"},"spec":{"target":{"user":"`+user+`"},"message":"under investigation"}}`), 0o600))
		admin("create", "-f", f)
	}
	lock("dan-off", "dan")
	lock("erin-off", "erin")
	require.Eventually(t, func() bool { return login("erin", erinPassword) == http.StatusForbidden }, 10*time.Second, 20*time.Millisecond)
	code, body = setPassword(danLink, ownerPassword)
	require.Equal(t, http.StatusForbidden, code, body)
	require.Contains(t, body, "under investigation")
	admin("rm", "lock/dan-off")
	require.Equal(t, http.StatusForbidden, login("dan", ownerPassword), "no password was set while locked")
	code, body = setPassword(danLink, ownerPassword)
	require.Equal(t, http.StatusForbidden, code, body)
	require.Contains(t, body, "invalid, used or expired", "the refused link is spent")
}
