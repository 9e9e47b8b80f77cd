package integration

import (
	"net/url"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// TestBrowserFirstSignIn is issue #11's "first sign-in in one step" in a
// real headless Chromium: a newcomer starts a fresh gatehouse, opens the
// one-time link its banner printed, sets the first administrator's
// password and is in the web UI as an editor.
func TestBrowserFirstSignIn(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries and drives a browser")
	}
	b := newBrowser(t)
	gatehouseBin, _ := buildBinaries(t)
	logs := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gatehouse output:\n%s", logs.String())
		}
	})
	// No --public-addr, as after "make run": the link is on the web
	// listener's own address.
	startGatehouse(t, gatehouseBin, t.TempDir(), logs, "--public-addr", "")
	links := firstSignInLink.FindAllString(logs.String(), -1)
	require.Len(t, links, 1, "the banner prints one link:\n%s", logs.String())
	link := links[0]
	u, err := url.Parse(link)
	require.NoError(t, err)
	origin := "https://" + u.Host

	const password = "newcomer's first password"
	b.run("open the banner's link", chromedp.Navigate(link), chromedp.WaitVisible(css("#password-form")))
	b.shot("first-sign-in-link")
	b.run("set the password",
		chromedp.SendKeys(css("#new-password"), password),
		chromedp.SendKeys(css("#confirm-password"), password),
		chromedp.Click(css("#password-submit")),
		chromedp.WaitVisible(css("#password-done")))
	b.shot("first-sign-in-password-set")
	b.run("go to sign-in", chromedp.Navigate(origin+"/web/login"), chromedp.WaitVisible(css("#login-form")))
	b.run("sign in as admin",
		chromedp.SendKeys(css("#login-user"), "admin"),
		chromedp.SendKeys(css("#login-password"), password),
		chromedp.Click(css("#login-submit")),
		chromedp.WaitVisible(css("#integration-okta")))
	require.Equal(t, "Not configured", b.text("#integration-okta-state"))
	b.shot("first-sign-in-signed-in")

	// The link worked once: opened again, it sets nothing.
	b.run("sign out", chromedp.Click(css("#sign-out")), chromedp.WaitVisible(css("#login-form")))
	b.run("reopen the link", chromedp.Navigate(link), chromedp.WaitVisible(css("#password-form")))
	b.run("try the link again",
		chromedp.SendKeys(css("#new-password"), "someone else's password"),
		chromedp.SendKeys(css("#confirm-password"), "someone else's password"),
		chromedp.Click(css("#password-submit")),
		chromedp.WaitVisible(css("#password-error")))
	require.Contains(t, b.text("#password-error"), "invalid, used or expired")
	b.shot("first-sign-in-link-spent")
}
