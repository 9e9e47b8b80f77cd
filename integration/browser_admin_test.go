package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// docsDir holds the screenshots docs/ui.md and docs/okta.md show.
const docsDir = "../lib/web/ui/docs"

// docShot saves a screenshot of one element as NN-name.png and, with
// GATEHOUSE_UPDATE_DOCS=1, as docsDir/name.png.
func (b *browser) docShot(sel, name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	// No transient toast (or its fade-out) over the picture.
	_, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("toast").hidden = true`))
	require.NoError(b.t, err)
	b.run("scroll to "+sel, chromedp.ScrollIntoView(css(sel)))
	png, err := chromedp.Run(ctx, chromedp.Screenshot(css(sel)))
	require.NoError(b.t, err, "screenshot of %s", sel)
	_, err = chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("toast").hidden = false`))
	require.NoError(b.t, err)
	b.step++
	path := filepath.Join(b.dir, filepathSafe(b.step, name))
	require.NoError(b.t, os.WriteFile(path, png, 0o644))
	b.t.Logf("screenshot: %s", path)
	if os.Getenv(updateDocsEnv) == "1" {
		require.NoError(b.t, os.MkdirAll(docsDir, 0o755))
		require.NoError(b.t, os.WriteFile(filepath.Join(docsDir, name+".png"), png, 0o644))
	}
}

// count evaluates a CSS selector's match count.
func (b *browser) count(sel string) int {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%q).length`, sel)))
	require.NoError(b.t, err)
	return n
}

// waitJS waits until a JavaScript expression is true.
func (b *browser) waitJS(what, expr string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr)); err != nil {
		b.shot("failed-" + strings.ReplaceAll(what, " ", "-"))
		b.t.Fatalf("browser: waiting for %s: %v", what, err)
	}
}

// apiStatus sends a web API request from the page, with the session's
// cookie and CSRF token and a JSON body as the UI would, and returns the
// HTTP status.
func (b *browser) apiStatus(method, path, body string) int {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	js := fmt.Sprintf(`fetch("/v1/webapi/sessions/current").then(r => r.json()).then(s =>
		fetch(%q, {method: %q, headers: {"X-CSRF-Token": s.csrf_token, "Content-Type": "application/json"}, body: %q || undefined})).then(r => r.status)`, path, method, body)
	code, err := chromedp.Run(ctx, chromedp.Evaluate[int](js, chromedp.EvalAwaitPromise))
	require.NoError(b.t, err)
	return code
}

// TestBrowserAdminPages drives the Users, Locks and Okta settings pages in
// headless Chromium against a real gatehouse whose users come from real
// SCIM requests: search and paging on Users; lifting the lock a real SCIM
// deactivation wrote, with its confirmation, its result and its audit
// event; saving provisioning settings (one refused in the browser, one by
// the server, one saved); and the auditor's read-only view, whose writes
// the server refuses.
func TestBrowserAdminPages(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries and drives a browser")
	}
	b := newBrowser(t)
	gatehouseBin, gatectlBin := buildBinaries(t)
	dataDir := t.TempDir()
	srv := startGatehouseLogged(t, gatehouseBin, dataDir)
	base := "https://" + srv.webAddr
	_, admin := gatectlOn(t, gatectlBin, dataDir)
	token := installOkta(t, admin, t.TempDir())

	const password = "correct-horse-battery-staple"
	addLocalUser(t, gatectlBin, dataDir, "alice", password, "editor")
	addLocalUser(t, gatectlBin, dataDir, "audrey", password, "auditor")
	addLocalUser(t, gatectlBin, dataDir, "bob", password, "access")

	// Okta provisions 30 people and Jane; then deactivates Jane, which
	// deletes her account and locks her name.
	scim := newSCIMClient(t, srv, "okta", token, 1)
	for i := 1; i <= 30; i++ {
		scim.do(http.MethodPost, "/Users", oktaUser(fmt.Sprintf("pat%02d@example.com", i), fmt.Sprintf("00upat%02d", i))).expect(t, http.StatusCreated)
	}
	r := scim.do(http.MethodPost, "/Users", oktaUser("jane@example.com", "00u1jane")).expect(t, http.StatusCreated)
	janeID, _ := r.body["id"].(string)
	require.NotEmpty(t, janeID)
	scim.do(http.MethodPatch, "/Users/"+janeID, patchBody(map[string]any{"op": "replace", "value": map[string]any{"active": false}})).expect(t, http.StatusOK)
	// And an administrator's own lock on one of them.
	lockFile := filepath.Join(t.TempDir(), "lock.yaml")
	require.NoError(t, os.WriteFile(lockFile, []byte(`kind: lock
version: v1
metadata:
  name: laptop-lost
spec:
  target:
    user: pat30@example.com
  message: Laptop reported lost; call the service desk.
`), 0o600))
	admin("create", "-f", lockFile)

	b.run("sign in as alice",
		chromedp.Navigate(base+"/web/login"),
		chromedp.WaitVisible(css("#login-form")),
		chromedp.SendKeys(css("#login-user"), "alice"),
		chromedp.SendKeys(css("#login-password"), password),
		chromedp.Click(css("#login-submit")),
		chromedp.WaitVisible(css("#integration-okta")))

	// Users: the first page of 25, then the second; origin, state, roles
	// and the SCIM record shown.
	b.run("open Users", chromedp.Click(css("#nav-users")), chromedp.WaitVisible(css("#users-table")))
	require.Equal(t, 25, b.count("#users-table tbody tr"))
	require.Equal(t, "Page 1", b.text("#users-page"))
	pat01 := b.text(`#users-table tr[data-user="pat01@example.com"]`)
	require.Contains(t, pat01, "SCIM (okta)")
	require.Contains(t, pat01, "Active")
	require.Contains(t, pat01, "access")
	require.Contains(t, b.text(`#users-table tr[data-user="alice"]`), "Local")
	require.Zero(t, b.count(`#users-table tr[data-user="jane@example.com"]`), "a deactivated account is deleted")
	b.run("next page", chromedp.Click(css("#users-next")), chromedp.WaitVisible(css(`#users-table tr[data-user="pat30@example.com"]`)))
	require.Equal(t, "Page 2", b.text("#users-page"))
	require.Contains(t, b.text(`#users-table tr[data-user="pat30@example.com"]`), "Locked")
	require.Contains(t, b.text(`#users-table tr[data-user="pat30@example.com"]`), "laptop-lost")
	b.docShot("main .page", "users-page")
	b.run("previous page", chromedp.Click(css("#users-prev")), chromedp.WaitVisible(css(`#users-table tr[data-user="alice"]`)))

	// Search: a prefix, in any case.
	b.run("search",
		chromedp.SetValue(css("#users-search"), "PAT1"),
		chromedp.Click(css("#users-search-submit")),
		chromedp.WaitNotPresent(css(`#users-table tr[data-user="alice"]`)))
	require.Equal(t, 10, b.count("#users-table tbody tr"))
	require.Equal(t, 1, b.count(`#users-table tr[data-user="pat10@example.com"]`))
	b.run("search nothing",
		chromedp.SetValue(css("#users-search"), "zed"),
		chromedp.Click(css("#users-search-submit")),
		chromedp.WaitVisible(css("#users-empty")))
	b.run("search pat",
		chromedp.SetValue(css("#users-search"), "pat"),
		chromedp.Click(css("#users-search-submit")),
		chromedp.WaitVisible(css(`#users-table tr[data-user="pat01@example.com"]`)))

	// Locks: the SCIM lock and the administrator's, then lifting the SCIM
	// lock with its confirmation.
	b.run("open Locks", chromedp.Click(css("#nav-locks")), chromedp.WaitVisible(css("#locks-table")))
	require.Equal(t, 2, b.count("#locks-table tbody tr"))
	require.NotContains(t, b.text("#locks-body"), "null")
	scimRow := b.text(`#locks-table tr[data-lock^="scim-okta-"]`)
	require.Contains(t, scimRow, "user jane@example.com")
	require.Contains(t, scimRow, "SCIM deactivation")
	require.Contains(t, b.text(`#locks-table tr[data-lock="laptop-lost"]`), "Laptop reported lost")
	b.docShot("main .page", "locks-page")
	b.run("lift the SCIM lock",
		chromedp.Click(css(`#locks-table tr[data-lock^="scim-okta-"] button.lift`)),
		chromedp.WaitVisible(css("#confirm-dialog")))
	dialog := b.text("#confirm-dialog")
	require.Contains(t, dialog, "does not bring the account back")
	require.Contains(t, dialog, "re-assign or reactivate them in Okta")
	require.Contains(t, dialog, "stay void")
	b.shot("lift-confirm")
	b.run("cancel", chromedp.Click(css("#dlg-cancel")), chromedp.WaitNotPresent(css("#confirm-dialog")))
	require.Equal(t, 2, b.count("#locks-table tbody tr"), "cancel lifts nothing")
	b.run("lift again",
		chromedp.Click(css(`#locks-table tr[data-lock^="scim-okta-"] button.lift`)),
		chromedp.WaitVisible(css("#confirm-dialog")),
		chromedp.Click(css("#dlg-confirm")),
		chromedp.WaitVisible(css("#lift-result")))
	require.Contains(t, b.text("#lift-result"), "stays deleted")
	b.run("lock gone", chromedp.WaitNotPresent(css(`#locks-table tr[data-lock^="scim-okta-"]`)))
	b.shot("lock-lifted")

	// The audit log names who lifted it.
	ev := admin("events", "ls", "--type", "lock.delete", "--format", "json")
	var events []struct {
		User     string `json:"user"`
		Resource string `json:"resource"`
		Outcome  string `json:"outcome"`
	}
	require.NoError(t, json.Unmarshal([]byte(ev.stdout), &events), ev.stdout)
	require.Len(t, events, 1, ev.stdout)
	require.Equal(t, "alice", events[0].User)
	require.True(t, strings.HasPrefix(events[0].Resource, "lock/scim-okta-"), events[0].Resource)
	require.Equal(t, "success", events[0].Outcome)

	// Okta settings: a lock TTL the browser refuses, one the server
	// refuses, then a valid save.
	b.run("open Okta", chromedp.Navigate(base+"/web/integrations/okta"), chromedp.WaitVisible(css("#settings-form")))
	require.Equal(t, "access", b.value("#settings-default-roles"))
	b.run("bad TTL",
		chromedp.SetValue(css("#settings-lock-ttl"), "thirty days"),
		chromedp.Click(css("#settings-save")),
		chromedp.WaitVisible(css("#settings-error")))
	require.Contains(t, b.text("#settings-error"), "is not a duration")
	b.run("short TTL",
		chromedp.SetValue(css("#settings-lock-ttl"), "1m"),
		chromedp.Click(css("#settings-save")),
		chromedp.WaitVisible(css("#settings-error")))
	b.waitJS("the server's answer", `document.getElementById("settings-error").textContent.includes("shorter than the longest session")`)
	b.shot("settings-refused")
	b.run("good settings",
		chromedp.SetValue(css("#settings-default-roles"), "access, auditor"),
		chromedp.SetValue(css("#settings-grantable-roles"), "access, auditor"),
		chromedp.SetValue(css("#settings-lock-ttl"), "720h"),
		chromedp.Click(css("#settings-save")),
		chromedp.WaitVisible(css("#settings-saved")))
	b.run("reload", chromedp.Reload(), chromedp.WaitVisible(css("#settings-form")))
	require.Equal(t, "720h", b.value("#settings-lock-ttl"))
	require.Equal(t, "access, auditor", b.value("#settings-default-roles"))
	b.docShot("#settings-tile", "okta-settings")

	// The auditor: every page renders, nothing can be changed, and the
	// server refuses the writes the page does not offer.
	b.run("sign out", chromedp.Click(css("#sign-out")), chromedp.WaitVisible(css("#login-form")))
	b.run("sign in as audrey",
		chromedp.SendKeys(css("#login-user"), "audrey"),
		chromedp.SendKeys(css("#login-password"), password),
		chromedp.Click(css("#login-submit")),
		chromedp.WaitVisible(css("#integration-okta")))
	b.run("auditor's Users", chromedp.Click(css("#nav-users")), chromedp.WaitVisible(css("#users-table")))
	require.Equal(t, 25, b.count("#users-table tbody tr"))
	b.run("auditor's Locks", chromedp.Click(css("#nav-locks")), chromedp.WaitVisible(css("#locks-table")))
	require.Contains(t, b.text("#locks-read-only"), "Read-only")
	require.Zero(t, b.count("button.lift"))
	b.shot("auditor-locks")
	require.Equal(t, http.StatusForbidden, b.apiStatus(http.MethodDelete, "/v1/webapi/admin/locks/laptop-lost", ""))
	b.run("auditor's Okta", chromedp.Navigate(base+"/web/integrations/okta"), chromedp.WaitVisible(css("#settings-view")))
	require.Contains(t, b.text("#read-only"), "Read-only")
	require.Zero(t, b.count("#settings-form, #scim-regenerate, #scim-disable"))
	require.Equal(t, "720h", b.text("#settings-lock-ttl-view"))
	b.shot("auditor-okta")
	require.Equal(t, http.StatusForbidden, b.apiStatus(http.MethodPut, "/v1/webapi/plugins/okta/settings", `{"default_roles":["editor"],"grantable_roles":[],"lock_ttl":""}`))
	require.Equal(t, http.StatusForbidden, b.apiStatus(http.MethodPut, "/v1/webapi/plugins/okta/scim", `{"enabled":false}`))
	// The lock stays: the refused lift changed nothing.
	b.run("locks again", chromedp.Navigate(base+"/web/locks"), chromedp.WaitVisible(css(`#locks-table tr[data-lock="laptop-lost"]`)))

	// Without the read verbs: the permission page, on both.
	b.run("sign out audrey", chromedp.Click(css("#sign-out")), chromedp.WaitVisible(css("#login-form")))
	b.run("sign in as bob",
		chromedp.SendKeys(css("#login-user"), "bob"),
		chromedp.SendKeys(css("#login-password"), password),
		chromedp.Click(css("#login-submit")),
		chromedp.WaitVisible(css("#forbidden")))
	for _, page := range []string{"/web/users", "/web/locks"} {
		b.run("bob opens "+page, chromedp.Navigate(base+page), chromedp.WaitVisible(css("#forbidden")))
		require.Contains(t, b.text("#forbidden"), "You lack permission")
	}
	b.shot("no-permission-users")

	// The SSH access page is for every signed-in user: bob reaches it from
	// the top bar; text that is no public key is refused in the browser,
	// and a key the server cannot parse shows the server's reason.
	b.run("bob opens SSH access", chromedp.Click(css("#nav-ssh")), chromedp.WaitVisible(css("#ssh-form")))
	b.run("not a key",
		chromedp.SetValue(css("#ssh-pubkey"), "my password is hunter2"),
		chromedp.Click(css("#ssh-sign")),
		chromedp.WaitVisible(css("#ssh-error")))
	require.Contains(t, b.text("#ssh-error"), "does not look like an SSH public key")
	b.run("a broken key",
		chromedp.SetValue(css("#ssh-pubkey"), "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBROKEN bob@laptop"),
		chromedp.Click(css("#ssh-sign")))
	b.waitJS("the server's answer", `document.getElementById("ssh-error").textContent.includes("not an SSH public key in authorized_keys format")`)
	require.Contains(t, b.text("#ssh-error"), "The server refused the key")
	require.Zero(t, b.count("#ssh-result:not([hidden])"), "no certificate shown")
	b.shot("ssh-bad-key")
}

// value reads a form field's value.
func (b *browser) value(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Value(css(sel)))
	require.NoError(b.t, err, "reading %s", sel)
	return v
}
