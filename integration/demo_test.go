package integration

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
)

// demoProc is `okta-standin --start-gatehouse`, started as `make demo`
// starts it, on free ports.
type demoProc struct {
	cmd        *exec.Cmd
	out        *syncBuffer
	done       chan error
	dataDir    string
	standinURL string
	gatehouse  string
}

// buildDemoBinaries compiles gatehouse, gatectl and okta-standin into one
// temporary dir, as `make build` does into ./bin.
func buildDemoBinaries(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir+string(os.PathSeparator), "./cmd/gatehouse", "./cmd/gatectl", "./cmd/okta-standin")
	cmd.Dir = ".."
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return dir
}

func startDemo(t *testing.T, binDir, dataDir, login string) *demoProc {
	t.Helper()
	out := &syncBuffer{}
	cmd := exec.Command(filepath.Join(binDir, "okta-standin"),
		"--data-dir", dataDir,
		"--start-gatehouse", filepath.Join(binDir, "gatehouse"),
		"--web-addr", "127.0.0.1:0", "--auth-addr", "127.0.0.1:0", "--ssh-addr", "127.0.0.1:0",
		"--listen", "127.0.0.1:0",
		"--login", login)
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start())
	d := &demoProc{cmd: cmd, out: out, done: make(chan error, 1), dataDir: dataDir}
	go func() { d.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-d.done
		}
		if t.Failed() {
			t.Logf("okta-standin output:\n%s", out.String())
			if b, err := os.ReadFile(filepath.Join(dataDir, "gatehouse.log")); err == nil {
				t.Logf("gatehouse log:\n%s", b)
			}
		}
	})
	deadline := time.Now().Add(45 * time.Second)
	for !strings.Contains(out.String(), "Ctrl-C stops both") {
		select {
		case err := <-d.done:
			t.Fatalf("okta-standin exited early (%v):\n%s", err, out.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the demo did not start:\n%s", out.String())
		}
	}
	b, err := os.ReadFile(filepath.Join(dataDir, "okta_standin_url"))
	require.NoError(t, err)
	d.standinURL = strings.TrimSpace(string(b))
	b, err = os.ReadFile(filepath.Join(dataDir, "web_addr"))
	require.NoError(t, err)
	_, port, err := net.SplitHostPort(strings.TrimSpace(string(b)))
	require.NoError(t, err)
	d.gatehouse = "https://localhost:" + port
	require.Contains(t, out.String(), "Gatehouse web UI:   "+d.gatehouse, "the instructions name the URL to open")
	require.Contains(t, out.String(), "Okta stand-in:      "+d.standinURL)
	require.Contains(t, out.String(), "SSH access page, "+d.gatehouse+"/web/ssh", "the instructions send Ada to the SSH access page")
	return d
}

// TestDemoLoop is issue #11's `make demo` loop in a real browser against the
// real binaries: assign a person on the Okta stand-in's page (SCIM
// provisions them), sign in with Okta on Gatehouse's login page, get an SSH
// certificate on the SSH access page and open an SSH session, deactivate
// the person on the stand-in's page: the session ends with the lock's
// message, the account is gone and locked, and Ctrl-C stops both programs.
func TestDemoLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries and drives a browser")
	}
	b := newBrowser(t)
	binDir := buildDemoBinaries(t)
	dataDir, work := t.TempDir(), t.TempDir()
	login := sshLogin(t)
	demo := startDemo(t, binDir, dataDir, login)
	gatectl, admin := gatectlOn(t, filepath.Join(binDir, "gatectl"), dataDir)

	// The setup went through the admin API: connector, plugin with SCIM.
	r := admin("get", "plugin/okta", "--format", "json")
	require.Contains(t, r.stdout, `"scim_enabled": true`, r.stdout)

	// 1. Assign Ada on the stand-in: SCIM creates her account.
	b.run("open the stand-in", chromedp.Navigate(demo.standinURL+"/"), chromedp.WaitVisible(css("#assign-ada")))
	b.shot("demo-standin")
	b.run("assign Ada", chromedp.Click(css("#assign-ada")), chromedp.WaitVisible(css("#unassign-ada")))
	require.Equal(t, "Assigned", b.text("#app-ada"))
	require.Contains(t, b.text("#flash"), "Ada Lovelace assigned to Gatehouse and provisioned")
	require.Contains(t, b.text("#scim-log"), "POST /Users")
	b.shot("demo-ada-assigned")
	r = admin("get", "user/ada@example.com", "--format", "json")
	require.Contains(t, r.stdout, `"gatehouse.dev/origin": "okta"`, "a SCIM-managed account")

	// 2. Sign in with Okta on Gatehouse's login page; pick Ada at the IdP.
	b.run("open Gatehouse", chromedp.Navigate(demo.gatehouse+"/web/login"), chromedp.WaitVisible(css(".sso-list a")))
	require.Equal(t, "Sign in with Okta", b.text(".sso-list a"))
	b.shot("demo-gatehouse-login")
	b.run("sign in with Okta", chromedp.Click(css(".sso-list a")), chromedp.WaitVisible(css("#pick-ada")))
	b.shot("demo-idp-picker")
	b.run("pick Ada", chromedp.Click(css("#pick-ada")), chromedp.WaitVisible(css("#user-name")))
	require.Equal(t, "ada@example.com", b.text("#user-name"))
	b.shot("demo-signed-in")
	raw, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`fetch("/v1/webapi/sessions/current").then(r => r.text())`, chromedp.EvalAwaitPromise))
	require.NoError(t, err)
	var sess struct {
		User  string   `json:"user"`
		Roles []string `json:"roles"`
	}
	require.NoError(t, json.Unmarshal([]byte(raw), &sess), raw)
	require.Equal(t, "ada@example.com", sess.User)
	require.Equal(t, []string{"demo"}, sess.Roles, "SCIM's default role; the SAML login did not change it")

	// 3. The SSH access page: a private key pasted by mistake is refused
	// and cleared before anything is sent; Ada's public key gets her a
	// certificate, which opens a live session with OpenSSH using the
	// command the page shows.
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	sshPub, err := ssh.NewPublicKey(pub)
	require.NoError(t, err)
	block, err := ssh.MarshalPrivateKey(priv, "ada")
	require.NoError(t, err)
	privPEM := pem.EncodeToMemory(block)
	b.run("open SSH access", chromedp.Click(css("#nav-ssh")), chromedp.WaitVisible(css("#ssh-form")))
	b.run("paste the private key",
		chromedp.SetValue(css("#ssh-pubkey"), string(privPEM)),
		chromedp.Click(css("#ssh-sign")),
		chromedp.WaitVisible(css("#ssh-error")))
	require.Contains(t, b.text("#ssh-error"), "This is a private key. It was not sent")
	require.Empty(t, b.value("#ssh-pubkey"), "the private key is cleared from the page")
	b.shot("demo-ssh-private-key-refused")
	b.run("paste the public key",
		chromedp.SetValue(css("#ssh-pubkey"), string(ssh.MarshalAuthorizedKey(sshPub))),
		chromedp.Click(css("#ssh-sign")),
		chromedp.WaitVisible(css("#ssh-result")))
	require.Equal(t, login, b.text("#ssh-principals"), "the demo role's login")
	require.Equal(t, "~/.ssh/id_ed25519-cert.pub", b.text("#ssh-cert-path"))
	host, port := (&server{dataDir: dataDir}).sshAddr(t)
	require.Equal(t, "ssh -i ~/.ssh/id_ed25519 -p "+port+" "+login+"@localhost", b.text("#ssh-command"))
	b.docShot("main .page", "ssh-page")
	certText := b.text("#ssh-cert")
	parsed, _, _, _, err := ssh.ParseAuthorizedKey([]byte(certText))
	require.NoError(t, err, "the page shows the certificate in authorized_keys format: %q", certText)
	cert, ok := parsed.(*ssh.Certificate)
	require.True(t, ok)
	require.Equal(t, []string{login}, cert.ValidPrincipals)
	require.Equal(t, ssh.FingerprintSHA256(sshPub), ssh.FingerprintSHA256(cert.Key), "a certificate for the pasted key")
	// Download saves the same certificate as id_ed25519-cert.pub; ssh
	// uses that file.
	downloads := t.TempDir()
	b.run("download the certificate",
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.CallBrowser(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
				Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads,
			})
			return err
		}),
		chromedp.Click(css("#ssh-download")))
	certFile := filepath.Join(downloads, "id_ed25519-cert.pub")
	var downloaded []byte
	for deadline := time.Now().Add(10 * time.Second); ; {
		if downloaded, err = os.ReadFile(certFile); err == nil && len(downloaded) > 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "no %s downloaded: %v", certFile, err)
		time.Sleep(50 * time.Millisecond)
	}
	require.Equal(t, certText+"\n", string(downloaded))
	key := filepath.Join(work, "ada")
	require.NoError(t, os.WriteFile(key, privPEM, 0o600))
	require.NoError(t, os.WriteFile(key+"-cert.pub", downloaded, 0o644))
	live := startLongSSH(t, host, port, key, login)

	// 4. Deactivate Ada on the stand-in: the session ends with the lock's
	// message.
	b.run("back to the stand-in", chromedp.Navigate(demo.standinURL+"/"), chromedp.WaitVisible(css("#deactivate-ada")))
	b.run("deactivate Ada", chromedp.Click(css("#deactivate-ada")), chromedp.WaitVisible(css("#reactivate-ada")))
	require.Equal(t, "Deactivated", b.text("#status-ada"))
	require.Contains(t, b.text("#scim-log"), "PATCH /Users/")
	b.shot("demo-ada-deactivated")
	select {
	case <-live.done:
	case <-time.After(5 * time.Second):
		t.Fatalf("the SSH session outlived the deactivation by 5s; stderr: %s", live.stderr.String())
	}
	require.Error(t, live.err, "ssh exits non-zero")
	require.Contains(t, live.stderr.String(), `lock targeting user "ada@example.com" is in force`, "the session is told why")

	// The account is gone and locked; the web session is over.
	require.NotEqual(t, 0, gatectl("get", "user/ada@example.com").code, "the account is deleted")
	require.Contains(t, admin("get", "locks", "--format", "json").stdout, "ada@example.com")
	b.run("Gatehouse again", chromedp.Navigate(demo.gatehouse+"/web/integrations"), chromedp.WaitVisible(css("#login-form")))
	b.shot("demo-session-gone")

	// Okta no longer lets her in either.
	b.run("sign in again", chromedp.Click(css(".sso-list a")), chromedp.WaitVisible(css("#pick-ada")))
	b.run("pick Ada again", chromedp.Click(css("#pick-ada")), chromedp.WaitVisible(css("#picker-error")))
	require.Contains(t, b.text("#picker-error"), "deactivated in Okta")
	b.shot("demo-idp-refuses")

	// 5. Ctrl-C stops both.
	require.NoError(t, demo.cmd.Process.Signal(syscall.SIGINT))
	select {
	case err := <-demo.done:
		require.NoError(t, err, "okta-standin exits 0 on Ctrl-C:\n%s", demo.out.String())
	case <-time.After(25 * time.Second):
		t.Fatalf("okta-standin did not stop on Ctrl-C")
	}
	require.Contains(t, demo.out.String(), "gatehouse stopped")
	c := &http.Client{Timeout: 2 * time.Second}
	_, err = c.Get(demo.gatehouse + "/readyz")
	require.Error(t, err, "gatehouse no longer answers")
}
