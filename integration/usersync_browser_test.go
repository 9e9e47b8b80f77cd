package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/okta/oktaapi/oktatest"
)

// TestBrowserUserSyncCard drives the Okta page's User sync card in a real
// headless Chromium against a real gatehouse and the Okta stand-in: store
// an API token (never shown back), switch from SCIM explicitly, test the
// connection, run a sync and see its counts.
func TestBrowserUserSyncCard(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries and drives a browser")
	}
	b := newBrowser(t)
	gatehouseBin, gatectlBin := buildBinaries(t)
	dataDir, work := t.TempDir(), t.TempDir()
	srv := startGatehouseLogged(t, gatehouseBin, dataDir)
	_, admin := gatectlOn(t, gatectlBin, dataDir)
	const adminPassword = "correct-horse-battery-staple"
	addLocalUser(t, gatectlBin, dataDir, "alice", adminPassword, "editor")
	connector := filepath.Join(work, "okta.yaml")
	require.NoError(t, os.WriteFile(connector, []byte("kind: saml\nversion: v1\nmetadata:\n  name: okta\nspec:\n  acs: https://"+srv.webAddr+
		"/v1/webapi/saml/acs/okta\n  entity_descriptor: |\n"+indent(idpMetadata(t), "    ")+"\n"), 0o600))
	admin("create", "-f", connector)
	admin("plugins", "install", "okta", "--saml-connector", "okta") // SCIM on

	org := oktatest.New()
	t.Cleanup(org.Close)
	org.Token = "00-browser-ssws-token-never-shown"
	org.AddUser("ann@example.com", true)
	org.AddUser("ben@example.com", true)

	base := "https://" + srv.webAddr
	b.run("sign in",
		chromedp.Navigate(base+"/"), chromedp.WaitVisible(css("#login-form")),
		chromedp.SendKeys(css("#login-user"), "alice"),
		chromedp.SendKeys(css("#login-password"), adminPassword),
		chromedp.Click(css("#login-submit")),
		chromedp.WaitVisible(css("#integration-okta")))
	b.run("open Okta", chromedp.Click(css("#integration-okta")), chromedp.WaitVisible(css("#usersync-form")))
	require.Equal(t, "Off", b.text("#usersync-badge"))
	require.Equal(t, "None stored", b.text("#usersync-credential"))

	b.run("store the API token",
		chromedp.SetValue(css("#usersync-org-url"), org.URL()),
		chromedp.SetValue(css("#usersync-app-id"), org.AppID),
		chromedp.SetValue(css("#usersync-kind"), "api_token"),
		chromedp.SendKeys(css("#usersync-api-token"), org.Token),
		chromedp.Click(css("#usersync-store-credential")),
		chromedp.WaitVisible(css("#usersync-form")))
	require.Eventually(t, func() bool { return b.tryText("#usersync-credential") == "api_token" }, 10*time.Second, 100*time.Millisecond)

	// Turning it on while SCIM is on needs the explicit switch.
	b.run("save without the switch",
		chromedp.SetValue(css("#usersync-org-url"), org.URL()),
		chromedp.SetValue(css("#usersync-app-id"), org.AppID),
		chromedp.SetValue(css("#usersync-kind"), "api_token"),
		chromedp.Click(css("#usersync-save")),
		chromedp.WaitVisible(css("#usersync-result .note-err")))
	require.Contains(t, b.text("#usersync-result"), "SCIM or user sync")
	b.run("save with the switch",
		chromedp.Click(css("#usersync-switch")),
		chromedp.Click(css("#usersync-save")))
	require.Eventually(t, func() bool { return b.tryText("#usersync-badge") == "On" }, 10*time.Second, 100*time.Millisecond)
	require.Equal(t, "SSO + user sync", b.text("#okta-state"), "the page is redrawn: SCIM is off, user sync on")

	b.run("test the connection", chromedp.Click(css("#usersync-test")), chromedp.WaitVisible(css("#usersync-result .note")))
	require.Contains(t, b.text("#usersync-result"), "Okta answered")

	b.run("sync now", chromedp.Click(css("#usersync-sync-now")))
	require.Eventually(t, func() bool { return strings.Contains(b.tryText("#usersync-result"), "Sync done") }, 30*time.Second, 200*time.Millisecond)
	require.Equal(t, "OK", b.text("#usersync-outcome"))
	require.Equal(t, "2", b.text("#usersync-users-seen"))
	b.shot("usersync-card")
	require.Contains(t, admin("get", "user/ann@example.com").stdout, "ann@example.com")

	// The token is nowhere on the page.
	ctx := b.ctx
	html, err := chromedp.Run(ctx, chromedp.OuterHTML(css("html")))
	require.NoError(t, err)
	require.NotContains(t, html, org.Token)
}

// tryText reads an element's text, or "" if it is not there (yet, or any
// more: the card redraws itself), for polling.
func (b *browser) tryText(sel string) string {
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(css(sel), chromedp.NodeVisible))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(s)
}
