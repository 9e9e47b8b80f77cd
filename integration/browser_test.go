package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// chromiumPath is where Debian's chromium package (installed by .ci/run)
// puts the browser.
const chromiumPath = "/usr/bin/chromium"

// Environment variables of the browser test.
const (
	// screenshotsEnv names the directory for the step screenshots
	// (default: a t.TempDir()).
	screenshotsEnv = "GATEHOUSE_SCREENSHOTS_DIR"
	// updateDocsEnv=1 rewrites the SCIM tile screenshot in docs/okta.md.
	updateDocsEnv = "GATEHOUSE_UPDATE_DOCS"
)

// docsScreenshot is the SCIM tile screenshot docs/okta.md shows.
const docsScreenshot = "../lib/web/ui/docs/scim-tile.png"

// browser is a headless Chromium driven over the DevTools protocol.
type browser struct {
	t    *testing.T
	ctx  context.Context
	dir  string
	step int
}

// newBrowser starts a fresh headless Chromium: its own profile directory,
// no network of its own (no updates, sync or field trials), and trust in
// any certificate, because the server's is self-signed.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	exe := chromiumPath
	if _, err := os.Stat(exe); err != nil {
		if p, lerr := exec.LookPath("chromium"); lerr == nil {
			exe = p
		} else if os.Getenv("CI") != "" {
			t.Fatalf("chromium is not installed (.ci/run installs Debian's chromium package): %v", err)
		} else {
			t.Skipf("chromium is not installed; apt-get install -y chromium (CI installs it)")
		}
	}
	dir := os.Getenv(screenshotsEnv)
	if dir == "" {
		dir = t.TempDir()
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	// Start the browser now, so that a start failure is reported as such.
	require.NoError(t, chromedp.Do(ctx))
	return &browser{t: t, ctx: ctx, dir: dir}
}

// css is a CSS selector.
func css(sel string) chromedp.CSS { return chromedp.CSS(sel) }

// run runs actions with a bound on the whole step.
func (b *browser) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.shot("failed-" + strings.ReplaceAll(what, " ", "-"))
		b.t.Fatalf("browser: %s: %v", what, err)
	}
}

// shot saves a full-page screenshot as NN-name.png.
func (b *browser) shot(name string) string {
	b.t.Helper()
	b.step++
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	path := filepath.Join(b.dir, filepathSafe(b.step, name))
	require.NoError(b.t, os.WriteFile(path, png, 0o644))
	b.t.Logf("screenshot: %s", path)
	return path
}

func filepathSafe(step int, name string) string {
	return fmt.Sprintf("%02d-%s.png", step, name)
}

// text reads an element's text.
func (b *browser) text(sel string) string {
	b.t.Helper()
	b.run("wait for "+sel, chromedp.WaitVisible(css(sel)))
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(css(sel)))
	require.NoError(b.t, err, "reading %s", sel)
	return strings.TrimSpace(s)
}

// TestBrowserOktaSetup is the web UI issue's "done when": a real headless
// Chromium against a real gatehouse signs in as a local admin, creates the
// Okta SAML connector from metadata, enables SCIM, uses the token shown
// once for a real SCIM request, regenerates it (the old one is refused),
// and disables SCIM (SCIM is refused).
func TestBrowserOktaSetup(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries and drives a browser")
	}
	b := newBrowser(t)
	gatehouseBin, gatectlBin := buildBinaries(t)
	dataDir := t.TempDir()
	srv := startGatehouseLogged(t, gatehouseBin, dataDir)
	base := "https://" + srv.webAddr

	// A local admin and a user without plugin rights, with passwords.
	const adminPassword = "correct-horse-battery-staple"
	addLocalUser(t, gatectlBin, dataDir, "alice", adminPassword, "editor")
	bobLink := addLinkUser(t, gatectlBin, dataDir, "bob", "access")

	// Sign-in page.
	b.run("open the UI", chromedp.Navigate(base+"/"), chromedp.WaitVisible(css("#login-form")))
	b.shot("sign-in")
	b.run("sign in",
		chromedp.SendKeys(css("#login-user"), "alice"),
		chromedp.SendKeys(css("#login-password"), adminPassword),
		chromedp.Click(css("#login-submit")),
		chromedp.WaitVisible(css("#integration-okta")))
	require.Equal(t, "Not configured", b.text("#integration-okta-state"))
	b.shot("integrations-not-configured")

	// Integrations → Okta → SSO tile: create the connector from metadata.
	b.run("open Okta", chromedp.Click(css("#integration-okta")), chromedp.WaitVisible(css("#saml-form")))
	require.Contains(t, b.text("#saml-acs-preview"), "/v1/webapi/saml/acs/okta")
	b.shot("okta-not-configured")
	b.run("create the SAML connector",
		chromedp.SetValue(css("#saml-metadata"), idpMetadata(t)),
		chromedp.SendKeys(css("#saml-value"), "gatehouse-admins"),
		chromedp.SendKeys(css("#saml-roles"), "editor"),
		chromedp.Click(css("#saml-submit")),
		chromedp.WaitVisible(css("#sso-connector")))
	require.Equal(t, "http://www.okta.com/exk1test", b.text("#sso-idp-entity"))
	require.Equal(t, "SSO only", b.text("#okta-state"))
	b.shot("sso-created")

	// SCIM tile: Enable shows the token once with Okta's values.
	b.run("enable SCIM", chromedp.Click(css("#scim-enable")), chromedp.WaitVisible(css("#scim-token")))
	token := b.text("#scim-token")
	require.Len(t, token, 43, "a 32-byte base64url token")
	require.Contains(t, b.text("#scim-base-url"), "/v1/webapi/scim/okta")
	settings := b.text("#okta-settings")
	for _, want := range []string{"userName", "HTTP Header", "Create Users", "Update User Attributes", "Deactivate Users", "Sync Password"} {
		require.Contains(t, settings, want)
	}
	b.shot("scim-token-shown-once")
	b.tileShot("#scim-tile")

	// Not on until saved.
	scim := newSCIMClient(t, srv, "okta", token, 1)
	require.NotEqual(t, http.StatusOK, scim.do(http.MethodGet, "/Users?startIndex=1&count=2", nil).status, "SCIM is off until saved")
	b.run("save SCIM", chromedp.Click(css("#scim-save")), chromedp.WaitVisible(css("#scim-regenerate")))
	require.Equal(t, "SSO + SCIM", b.text("#okta-state"))
	b.run("token hidden", chromedp.WaitNotPresent(css("#scim-token")))
	b.shot("scim-enabled")

	// A real SCIM request with the token read from the page.
	r := scim.do(http.MethodGet, "/Users?startIndex=1&count=2", nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	r = scim.do(http.MethodPost, "/Users", oktaUser("jane@example.com", "00u1jane"))
	require.Equal(t, http.StatusCreated, r.status, "%s", r.raw)

	// Status tile shows the request and the provisioned user (the
	// provisioner batches status writes: reload until it is there).
	deadline := time.Now().Add(20 * time.Second)
	for {
		b.run("reload", chromedp.Reload(), chromedp.WaitVisible(css("#status-provisioned")))
		if b.text("#status-provisioned") != "0" && b.text("#status-last-request") != "Never" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status tile never showed the SCIM request: provisioned %q, last request %q", b.text("#status-provisioned"), b.text("#status-last-request"))
		}
		time.Sleep(500 * time.Millisecond)
	}
	b.run("events", chromedp.WaitVisible(css("#events-table")))
	b.shot("status-after-provisioning")

	// Regenerate (confirmed): a new token; the old one is refused.
	b.run("regenerate",
		chromedp.Click(css("#scim-regenerate")),
		chromedp.WaitVisible(css("#confirm-dialog")))
	b.shot("regenerate-confirm")
	b.run("confirm regenerate", chromedp.Click(css("#dlg-confirm")), chromedp.WaitVisible(css("#scim-token")))
	newToken := b.text("#scim-token")
	require.NotEqual(t, token, newToken)
	b.shot("scim-token-regenerated")
	require.Equal(t, http.StatusUnauthorized, scim.do(http.MethodGet, "/Users?startIndex=1&count=2", nil).status, "the old token is refused")
	scim2 := newSCIMClient(t, srv, "okta", newToken, 1)
	require.Equal(t, http.StatusOK, scim2.do(http.MethodGet, "/Users?startIndex=1&count=2", nil).status)

	// Disable (confirmed): SCIM is refused.
	b.run("token done", chromedp.Click(css("#token-done")), chromedp.WaitNotPresent(css("#scim-token")))
	b.run("disable", chromedp.Click(css("#scim-disable")), chromedp.WaitVisible(css("#confirm-dialog")))
	b.run("confirm disable", chromedp.Click(css("#dlg-confirm")), chromedp.WaitVisible(css("#scim-enable")))
	require.Equal(t, "SSO only", b.text("#okta-state"))
	b.shot("scim-disabled")
	r = scim2.do(http.MethodGet, "/Users?startIndex=1&count=2", nil)
	require.NotEqual(t, http.StatusOK, r.status, "SCIM is refused once disabled: %s", r.raw)

	// A narrow window still works.
	b.run("narrow", chromedp.EmulateViewport(390, 844), chromedp.Reload(), chromedp.WaitVisible(css("#scim-enable")))
	b.shot("okta-narrow")
	b.run("wide", chromedp.EmulateViewport(1280, 1000))

	// A user whose roles lack the plugin verbs, who sets a password with
	// the one-time link gatectl printed, sees the permission state.
	b.run("sign out", chromedp.Click(css("#sign-out")), chromedp.WaitVisible(css("#login-form")))
	b.run("open bob's link", chromedp.Navigate(base+bobLink), chromedp.WaitVisible(css("#password-form")))
	b.run("set bob's password",
		chromedp.SendKeys(css("#new-password"), adminPassword),
		chromedp.SendKeys(css("#confirm-password"), adminPassword),
		chromedp.Click(css("#password-submit")),
		chromedp.WaitVisible(css("#password-done")))
	b.shot("password-set")
	b.run("go to sign-in", chromedp.Navigate(base+"/web/login"), chromedp.WaitVisible(css("#login-form")))
	b.run("sign in as bob",
		chromedp.SendKeys(css("#login-user"), "bob"),
		chromedp.SendKeys(css("#login-password"), adminPassword),
		chromedp.Click(css("#login-submit")),
		chromedp.WaitVisible(css("#forbidden")))
	b.run("bob opens Okta", chromedp.Navigate(base+"/web/integrations/okta"), chromedp.WaitVisible(css("#forbidden")))
	require.Contains(t, b.text("#forbidden"), "You lack permission")
	b.shot("no-permission")
}

// tileShot saves a screenshot of one element; with GATEHOUSE_UPDATE_DOCS=1
// it also replaces docs/okta.md's image.
func (b *browser) tileShot(sel string) {
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
	path := filepath.Join(b.dir, filepathSafe(b.step, "scim-tile"))
	require.NoError(b.t, os.WriteFile(path, png, 0o644))
	b.t.Logf("screenshot: %s", path)
	if os.Getenv(updateDocsEnv) == "1" {
		require.NoError(b.t, os.MkdirAll(filepath.Dir(docsScreenshot), 0o755))
		require.NoError(b.t, os.WriteFile(docsScreenshot, png, 0o644))
	}
}

// addLocalUser creates a local user with roles and a password through
// gatectl, the way an administrator does.
func addLocalUser(t *testing.T, gatectl, dataDir, name, password string, roles string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, gatectl, "--data-dir", dataDir, "users", "add", name, "--roles", roles, "--password-stdin")
	cmd.Stdin = strings.NewReader(password + "\n")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "gatectl users add %s --roles %s --password-stdin: %s", name, roles, out)
}

// addLinkUser creates a local user with gatectl and returns the path and
// query of its one-time password link.
func addLinkUser(t *testing.T, gatectl, dataDir, name, roles string) string {
	t.Helper()
	r := runCmd(t, gatectl, "--data-dir", dataDir, "users", "add", name, "--roles", roles, "--format", "json")
	require.Equal(t, 0, r.code, r.String())
	var out struct {
		PasswordURL string `json:"password_url"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &out), r.stdout)
	u, err := url.Parse(out.PasswordURL)
	require.NoError(t, err)
	require.Equal(t, "/web/password", u.Path, "the link opens the UI's password page")
	return u.RequestURI()
}
