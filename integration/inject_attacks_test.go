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
	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/lib/auth/saml/samltest"
)

// rawControls are the characters that must never reach a terminal, a log or
// a page as they are: escape sequences (ANSI colours, screen clearing, OSC 52
// which writes the clipboard), C1 controls (U+009B is a one-character CSI),
// bidirectional overrides, NUL, CR and backspace (which overwrite what was
// printed), DEL.
var rawControls = []string{"\x1b", "\x07", "\u009b", "\u202e", "\x00", "\r", "\b", "\x7f"}

// requireNoRawControls fails when out holds one of rawControls.
func requireNoRawControls(t *testing.T, out, what string) {
	t.Helper()
	for _, c := range rawControls {
		require.NotContains(t, out, c, "%s holds %q raw:\n%s", what, c, out)
	}
}

// TestInjectAttacks is an attacker's review of what an identity provider,
// a holder of the SCIM token or a person editing their own Okta profile can
// make Gatehouse show to people: the web UI (stored XSS), gatectl in an
// operator's terminal and a live SSH session (escape sequences), the server
// log (forged lines, unbounded values), and certificates (odd principals).
// See docs/security.md, "Text from outside".
func TestInjectAttacks(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries, runs a server, OpenSSH and a browser")
	}
	gatehouseBin, gatectlBin := buildBinaries(t)
	dataDir, work := t.TempDir(), t.TempDir()
	// JSON logs: the text handler quotes a value with a control character
	// itself, the JSON handler did not escape C1 controls or bidi overrides.
	srv, logs := startGatehouseWithLogs(t, gatehouseBin, dataDir, "--log-format", "json")
	gatectl, admin := gatectlOn(t, gatectlBin, dataDir)
	idp := samltest.NewIdP(t, samltest.Options{})
	token := ssoSetup(t, srv, admin, idp, work)
	scim := newSCIMClient(t, srv, "okta", token, 1)
	login := sshLogin(t)
	const password = "correct-horse-battery-staple"
	addLocalUser(t, gatectlBin, dataDir, "alice", password, "editor")

	t.Run("SCIM refuses control characters and bidi overrides in every field", func(t *testing.T) {
		payloads := map[string]string{
			"OSC 52 (clipboard write)": "\x1b]52;c;Y3VybCBldmlsfHNo\x07",
			"CSI (clear screen)":       "\x1b[2J\x1b[H",
			"C1 CSI":                   "\u009b2J",
			"RLO (bidi override)":      "gnp\u202eexe",
			"NUL":                      "a\x00b",
			"CR (overwrite)":           "ok\roverwritten",
			"backspace":                "abc\b\b\bxyz",
			"DEL":                      "x\x7f",
		}
		fields := []struct {
			name string
			set  func(u map[string]any, v string)
		}{
			{"userName", func(u map[string]any, v string) { u["userName"] = "mal" + v + "@example.com" }},
			{"externalId", func(u map[string]any, v string) { u["externalId"] = "00u" + v }},
			{"displayName", func(u map[string]any, v string) { u["displayName"] = "Mal " + v }},
			{"name.givenName", func(u map[string]any, v string) { u["name"] = map[string]any{"givenName": v, "familyName": "Doe"} }},
			{"emails.value", func(u map[string]any, v string) {
				u["emails"] = []any{map[string]any{"primary": true, "value": "mal" + v + "@example.com"}}
			}},
			{"department", func(u map[string]any, v string) {
				u["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"] = map[string]any{"department": v}
			}},
			{"nickName", func(u map[string]any, v string) { u["nickName"] = v }},
			{"an attribute name", func(u map[string]any, v string) { u["x"+v] = "value" }},
		}
		for _, f := range fields {
			for pname, p := range payloads {
				u := oktaUser("mallory@example.com", "00umallory")
				f.set(u, p)
				r := scim.do(http.MethodPost, "/Users", u).expect(t, http.StatusBadRequest)
				require.Equal(t, "invalidValue", r.body["scimType"], "%s in %s", pname, f.name)
				detail, _ := r.body["detail"].(string)
				require.Contains(t, detail, f.name, "%s in %s", pname, f.name)
				require.Contains(t, detail, "control character", "%s in %s", pname, f.name)
				requireNoRawControls(t, string(r.raw), "the refusal")
			}
		}
		// A multi-line postal address is free text: accepted.
		u := oktaUser("mallory@example.com", "00umallory")
		u["addresses"] = []any{map[string]any{"type": "work", "formatted": "100 Universal City Plaza\nHollywood, CA 91608"}}
		r := scim.do(http.MethodPost, "/Users", u).expect(t, http.StatusCreated)
		id, _ := r.body["id"].(string)
		// PUT and PATCH too; nothing is written.
		u["displayName"] = "Mal \x1b]0;pwned\x07"
		scim.do(http.MethodPut, "/Users/"+id, u).expect(t, http.StatusBadRequest)
		scim.do(http.MethodPatch, "/Users/"+id, patchBody(map[string]any{"op": "replace", "path": "title", "value": "\u009b31mCEO"})).expect(t, http.StatusBadRequest)
		scim.do(http.MethodPatch, "/Users/"+id, patchBody(map[string]any{"op": "replace", "value": map[string]any{"externalId": "00u\x1b[8m"}})).expect(t, http.StatusBadRequest)
		got := scim.do(http.MethodGet, "/Users/"+id, nil).expect(t, http.StatusOK)
		requireNoRawControls(t, string(got.raw), "the stored user")
		// Groups: the name becomes the members' "groups" trait and an audit
		// resource.
		for _, body := range []map[string]any{
			{"displayName": "Eng\u202e"},
			{"displayName": "Eng\nlevel=ERROR msg=forged"},
			{"displayName": "Eng", "externalId": "00g\x1b[5m"},
			{"displayName": "Eng", "members": []any{map[string]any{"value": id + "\x00"}}},
		} {
			r := scim.do(http.MethodPost, "/Groups", body).expect(t, http.StatusBadRequest)
			require.Equal(t, "invalidValue", r.body["scimType"])
		}
		users := admin("get", "users", "--format", "json")
		requireNoRawControls(t, users.stdout, "gatectl get users")
		require.NotContains(t, users.stdout, "mal\\u001b")
	})

	t.Run("stored XSS: HTML from Okta is shown as text in the browser", func(t *testing.T) {
		const (
			xssName    = `"'><b>mal<i>@example.com`
			xssExtID   = `<img src=x onerror="window.__xss='externalId'">`
			xssDisplay = `<script>window.__xss='displayName'</script>`
			xssGroup   = `<img src=x onerror="window.__xss='group'">`
			xssGone    = `<img src=x onerror="window.__xss='lock'">`
		)
		u := oktaUser(xssName, xssExtID)
		u["displayName"] = xssDisplay
		u["name"] = map[string]any{"givenName": `<svg onload="window.__xss='given'">`, "familyName": "</td><td>"}
		r := scim.do(http.MethodPost, "/Users", u).expect(t, http.StatusCreated)
		userID, _ := r.body["id"].(string)
		scim.do(http.MethodPost, "/Groups", map[string]any{"displayName": xssGroup, "members": []any{map[string]any{"value": userID}}}).expect(t, http.StatusCreated)
		// A second one, deactivated: its lock's message carries its externalId.
		r = scim.do(http.MethodPost, "/Users", oktaUser("gone@example.com", xssGone)).expect(t, http.StatusCreated)
		goneID, _ := r.body["id"].(string)
		scim.do(http.MethodPatch, "/Users/"+goneID, patchBody(map[string]any{"op": "replace", "value": map[string]any{"active": false}})).expect(t, http.StatusOK)

		b := newBrowser(t)
		base := "https://" + srv.webAddr
		b.run("sign in as alice",
			chromedp.Navigate(base+"/web/login"),
			chromedp.WaitVisible(css("#login-form")),
			chromedp.SendKeys(css("#login-user"), "alice"),
			chromedp.SendKeys(css("#login-password"), password),
			chromedp.Click(css("#login-submit")),
			chromedp.WaitVisible(css("#integration-okta")))
		// Nothing ran, no element came from the data, and the text is there.
		noScript := func(page string) {
			t.Helper()
			ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
			defer cancel()
			ran, err := chromedp.Run(ctx, chromedp.Evaluate[string](`String(window.__xss)`))
			require.NoError(t, err)
			require.Equal(t, "undefined", ran, "%s ran script from Okta data", page)
			require.Zero(t, b.count(`[onerror], [onload], #main script, #main svg, #main b, #main i, img[src="x"]`), "%s made elements from Okta data", page)
		}
		b.run("open Users", chromedp.Click(css("#nav-users")), chromedp.WaitVisible(css("#users-table")))
		b.waitJS("the SCIM user's row", `document.getElementById("users-table").textContent.includes(`+jsString(xssName)+`)`)
		noScript("Users")
		b.run("open Locks", chromedp.Click(css("#nav-locks")), chromedp.WaitVisible(css("#locks-table")))
		// The lock's message quotes the externalId (%q escapes only quotes).
		b.waitJS("the SCIM lock's message", `document.getElementById("locks-table").textContent.includes(`+jsString(`externalId "<img src=x onerror=\"window.__xss='lock'\">"`)+`)`)
		noScript("Locks")
		b.run("open the Okta integration", chromedp.Navigate(base+"/web/integrations/okta"), chromedp.WaitVisible(css("#events-table")))
		b.waitJS("the group's audit event", `document.getElementById("events-table").textContent.includes(`+jsString("scim_group/"+xssGroup)+`)`)
		noScript("Okta integration")
		b.shot("inject-xss-events")
	})

	t.Run("a SAML NameID with controls reaches gatectl and the log escaped", func(t *testing.T) {
		// XML carries no C0 control, but C1 controls and bidi overrides
		// travel in a signed assertion.
		nameID := "eve\u009b2J\u202e@example.com"
		idp.AddUser(t, "eve", nameID, password, "admins")
		status, _ := newPerson(t, srv).samlAttempt(idp, "eve", password)
		require.NotEqual(t, http.StatusOK, status, "no account is named with a control character")
		// HTML in a NameID: the login error page (html/template, under a CSP
		// that runs nothing) shows it as text.
		idp.AddUser(t, "xss", `<script>alert(1)</script>@example.com`, password, "admins")
		status, page := newPerson(t, srv).samlAttempt(idp, "xss", password)
		require.NotEqual(t, http.StatusOK, status)
		require.NotContains(t, page, "<script>")
		require.Contains(t, page, "&lt;script&gt;alert(1)&lt;/script&gt;@example.com")
		var found bool
		for _, format := range []string{"text", "yaml", "json"} {
			r := admin("--format", format, "events", "ls", "--type", "saml.login")
			requireNoRawControls(t, r.stdout+r.stderr, "gatectl events ls --format "+format)
			// The event names the canonical form; the NameID as sent is a field.
			found = found || strings.Contains(r.stdout, `eve\u009b2j\u202e@example.com`)
			if format == "json" {
				var events []map[string]any
				require.NoError(t, json.Unmarshal([]byte(r.stdout), &events), r.stdout)
				var users []any
				for _, e := range events {
					users = append(users, e["user"])
				}
				require.Contains(t, users, strings.ToLower(nameID), "the JSON still says what was sent")
			}
		}
		require.True(t, found, "the refused login is in the audit log, escaped")

		// A user's traits (an operator may write any) are printed escaped
		// in every format.
		admin("create", "-f", resourceFile(t, work, "odd-traits", "kind: user\nversion: v1\nmetadata:\n  name: trudy\nspec:\n  roles: [dev]\n  traits:\n    display: [\"bye\\e]52;c;Y3VybCBldmlsfHNo\\a \\u009b2J \\u202e\"]\n"))
		for _, format := range []string{"text", "yaml", "json"} {
			r := admin("--format", format, "get", "user/trudy")
			requireNoRawControls(t, r.stdout, "gatectl get user --format "+format)
		}
		require.Contains(t, admin("--format", "yaml", "get", "user/trudy").stdout, "Y3VybCBldmlsfHNo")
	})

	t.Run("odd logins never become principals", func(t *testing.T) {
		odd := []string{"alice,root", "*", "a b", "-oProxyCommand=sh", "..", "root\u202e", strings.Repeat("a", 65)}
		quoted := make([]string, 0, len(odd)+1)
		for _, l := range append(odd, login) {
			b, _ := json.Marshal(l)
			quoted = append(quoted, string(b))
		}
		admin("create", "-f", resourceFile(t, work, "odd-logins", fmt.Sprintf(`{"kind":"user","version":"v1","metadata":{"name":"oscar"},"spec":{"roles":["access"],"traits":{"logins":[%s]}}}`, strings.Join(quoted, ","))))
		key := filepath.Join(work, "oscar")
		admin("auth", "sign", "--user", "oscar", "--out", key)
		raw, err := os.ReadFile(key + "-cert.pub")
		require.NoError(t, err)
		pub, _, _, _, err := ssh.ParseAuthorizedKey(raw)
		require.NoError(t, err)
		require.Equal(t, []string{login}, pub.(*ssh.Certificate).ValidPrincipals)
		host, port := srv.sshAddr(t)
		out, stderr, err := runSSH(t, host, port, key, login, "echo ok")
		require.NoError(t, err, stderr)
		require.Equal(t, "ok\n", out)
	})

	t.Run("a lock message cannot carry escape sequences into a live SSH session", func(t *testing.T) {
		host, port := srv.sshAddr(t)
		addLocalUser(t, gatectlBin, dataDir, "sam", "sam's long password!!", "dev")
		key := filepath.Join(work, "sam")
		admin("auth", "sign", "--user", "sam", "--out", key)
		live := startLongSSH(t, host, port, key, login)

		// An escape sequence in a lock message is refused where it is written.
		r := gatectl("create", "-f", resourceFile(t, work, "evil-lock", "kind: lock\nversion: v1\nmetadata:\n  name: evil\nspec:\n  target:\n    user: sam\n  message: \"bye\\e]52;c;Y3VybCBldmlsfHNo\\a\"\n"))
		require.NotEqual(t, 0, r.code, r.String())
		require.Contains(t, r.stderr, "control character U+001B")
		requireNoRawControls(t, r.stderr, "gatectl's refusal")
		select {
		case <-live.done:
			t.Fatalf("the refused lock ended the session: %s", live.stderr.String())
		case <-time.After(200 * time.Millisecond):
		}

		// Lines are fine in a lock; the session is shown one line.
		admin("create", "-f", resourceFile(t, work, "lock", "kind: lock\nversion: v1\nmetadata:\n  name: sam-off\nspec:\n  target:\n    user: sam\n  message: \"Laptop lost.\\nCall <b>the desk</b> \\\"now\\\".\"\n"))
		select {
		case <-live.done:
		case <-time.After(5 * time.Second):
			t.Fatalf("the SSH session outlived the lock by 5s: %s", live.stderr.String())
		}
		require.Contains(t, live.stderr.String(), `Laptop lost. Call <b>the desk</b> "now".`)
		// The node ends its own lines with CRLF (a PTY's line discipline).
		requireNoRawControls(t, strings.ReplaceAll(live.stderr.String(), "\r\n", "\n"), "the locked session's message")
	})

	t.Run("the server log holds no raw control character, and no forged line", func(t *testing.T) {
		// Any SSH client, before it is authenticated, names the login it
		// wants, and a refused certificate is logged with it.
		host, port := srv.sshAddr(t)
		key := filepath.Join(work, "oscar")
		raw, err := os.ReadFile(key + "-cert.pub")
		require.NoError(t, err)
		pub, _, _, _, err := ssh.ParseAuthorizedKey(raw)
		require.NoError(t, err)
		pemKey, err := os.ReadFile(key)
		require.NoError(t, err)
		signer, err := ssh.ParsePrivateKey(pemKey)
		require.NoError(t, err)
		certSigner, err := ssh.NewCertSigner(pub.(*ssh.Certificate), signer)
		require.NoError(t, err)
		for _, user := range []string{"alice,root", "root\u009b2J\u202e\x1b]52;c;eA==\x07\nforged", strings.Repeat("ü", 20000)} {
			_, err := ssh.Dial("tcp", host+":"+port, &ssh.ClientConfig{
				User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(certSigner)},
				HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second,
			})
			require.Error(t, err, "login %.20q", user)
		}
		require.Eventually(t, func() bool { return strings.Contains(logs.String(), "alice,root") }, 5*time.Second, 20*time.Millisecond)

		out := logs.String()
		requireNoRawControls(t, out, "the server log")
		for _, line := range strings.Split(out, "\n") {
			require.Less(t, len(line), 16<<10, "a log line is bounded")
			if strings.HasPrefix(line, "{") {
				require.True(t, json.Valid([]byte(line)), "a log line that is not one JSON object: %q", line)
			}
		}
	})
}

// jsString is s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
