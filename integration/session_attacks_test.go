package integration

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/gatehouse/gatehouse/lib/auth/certext"
	"github.com/gatehouse/gatehouse/lib/auth/client"
	"github.com/gatehouse/gatehouse/lib/auth/identityfile"
	credentialspb "github.com/gatehouse/gatehouse/proto/gatehouse/credentials/v1"
	lockpb "github.com/gatehouse/gatehouse/proto/gatehouse/lock/v1"
	rolepb "github.com/gatehouse/gatehouse/proto/gatehouse/role/v1"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// Cookie and header names of web sessions, as a browser sees them.
const (
	atkSessionCookie = "__Host-gatehouse_session"
	atkCSRFCookie    = "__Host-gatehouse_csrf"
	atkCSRFHeader    = "X-CSRF-Token"
)

// atkResp is one answer of the web listener.
type atkResp struct {
	status int
	header http.Header
	body   string
}

// atkWeb is a stranger's HTTP client for the web listener: no cookie jar
// and no redirects followed, so every cookie and Location is the test's to
// send and read.
type atkWeb struct {
	t    *testing.T
	c    *http.Client
	base string
	// logins numbers the client addresses of mustLogin, so that the
	// expected failures of one check never spend another's budget.
	logins int
}

func newAtkWeb(t *testing.T, srv *server) *atkWeb {
	t.Helper()
	pemBytes, err := os.ReadFile(filepath.Join(srv.dataDir, "web.crt"))
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pemBytes))
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(tr.CloseIdleConnections)
	return &atkWeb{t: t, base: "https://" + srv.webAddr, c: &http.Client{
		Timeout:       15 * time.Second,
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// with returns the client reporting to t.
func (w *atkWeb) with(t *testing.T) *atkWeb {
	c := *w
	c.t = t
	return &c
}

// do sends one request; hdr may set "Cookie" like any other header.
func (w *atkWeb) do(method, path string, hdr map[string]string, body string) atkResp {
	w.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, w.base+path, rd)
	require.NoError(w.t, err)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := w.c.Do(req)
	require.NoError(w.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(w.t, err)
	return atkResp{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// atkSession is a signed-in browser's cookies.
type atkSession struct {
	id, csrf string
}

func (s atkSession) cookie() string {
	return atkSessionCookie + "=" + s.id + "; " + atkCSRFCookie + "=" + s.csrf
}

// login signs user in with a password from the client address from (sent as
// X-Forwarded-For; the server trusts the loopback proxy) and returns the
// answer and, on success, the session.
func (w *atkWeb) login(user, password, from string) (atkResp, atkSession) {
	w.t.Helper()
	body, err := json.Marshal(map[string]string{"user": user, "password": password})
	require.NoError(w.t, err)
	r := w.do(http.MethodPost, "/v1/webapi/sessions", map[string]string{"Content-Type": "application/json", "X-Forwarded-For": from}, string(body))
	var s atkSession
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		switch c.Name {
		case atkSessionCookie:
			s.id = c.Value
		case atkCSRFCookie:
			s.csrf = c.Value
		}
	}
	return r, s
}

func (w *atkWeb) mustLogin(user, password string) atkSession {
	w.t.Helper()
	w.logins++
	r, s := w.login(user, password, fmt.Sprintf("192.0.2.%d", w.logins%250+1))
	require.Equal(w.t, http.StatusOK, r.status, r.body)
	require.NotEmpty(w.t, s.id)
	require.NotEmpty(w.t, s.csrf)
	return s
}

// current reads the session's info with its cookies.
func (w *atkWeb) current(s atkSession) atkResp {
	w.t.Helper()
	return w.do(http.MethodGet, "/v1/webapi/sessions/current", map[string]string{"Cookie": s.cookie()}, "")
}

// requireSecurityHeaders checks the headers every answer carries, error
// answers included, and a Content-Security-Policy on every HTML page.
func requireSecurityHeaders(t *testing.T, what string, r atkResp) {
	t.Helper()
	require.Equal(t, "max-age=31536000", r.header.Get("Strict-Transport-Security"), what)
	require.Equal(t, "nosniff", r.header.Get("X-Content-Type-Options"), what)
	require.Equal(t, "DENY", r.header.Get("X-Frame-Options"), what)
	require.Equal(t, "no-referrer", r.header.Get("Referrer-Policy"), what)
	if strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
		csp := r.header.Get("Content-Security-Policy")
		require.Contains(t, csp, "default-src 'none'", "%s: an HTML page needs a CSP", what)
		require.Contains(t, csp, "frame-ancestors 'none'", what)
	}
}

// atkSSH runs /usr/bin/ssh with key to the node as login, with extra
// options, and returns its output.
func atkSSH(t *testing.T, host, port, key, login string, extra []string, env []string, command string) (string, string, error) {
	t.Helper()
	args := append([]string{
		"-F", "/dev/null", "-i", key, "-o", "CertificateFile=" + key + "-cert.pub",
		"-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "BatchMode=yes", "-p", port,
	}, extra...)
	args = append(args, login+"@"+host)
	if command != "" {
		args = append(args, command)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/usr/bin/ssh", args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	require.NoError(t, ctx.Err(), "ssh %v did not finish", extra)
	return stdout.String(), stderr.String(), err
}

// TestSessionAttacks is an attacker's and a stranger's review of the web
// sessions, the gRPC API and the SSH node of a real gatehouse on SQLite:
// each request tries to break one rule and must fail for the right reason,
// with nothing written and no secret in the log.
func TestSessionAttacks(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs binaries")
	}
	gatehouseBin, gatectlBin := buildBinaries(t)
	dataDir, work := t.TempDir(), t.TempDir()
	// The loopback is a trusted proxy, so that X-Forwarded-For can play the
	// client addresses of the brute-force checks.
	srv, logs := startGatehouseWithLogs(t, gatehouseBin, dataDir, "--storage", "sqlite", "--trusted-proxies", "127.0.0.1")
	gatectl, admin := gatectlOn(t, gatectlBin, dataDir)
	apply := func(name, doc string) {
		t.Helper()
		admin("create", "--force", "-f", resourceFile(t, work, name, doc))
	}
	lock := func(name, user, message string) {
		t.Helper()
		apply("lock-"+name, `{"kind":"lock","version":"v1","metadata":{"name":"`+name+`"},"spec":{"target":{"user":"`+user+`"},"message":"`+message+`"}}`)
	}
	web := newAtkWeb(t, srv)
	login := sshLogin(t)
	// secrets are what must never appear in the server's log.
	var secrets []string
	addUser := func(t *testing.T, name, password, roles string) {
		t.Helper()
		addLocalUser(t, gatectlBin, dataDir, name, password, roles)
		secrets = append(secrets, password)
	}
	signIn := func(t *testing.T, name, password string) atkSession {
		t.Helper()
		s := web.with(t).mustLogin(name, password)
		secrets = append(secrets, s.id, s.csrf)
		return s
	}
	apply("role-ssh", "kind: role\nversion: v1\nmetadata:\n  name: ssh\nspec:\n  allow:\n    logins: ["+login+"]\n  options:\n    max_session_ttl: 8h\n")
	apply("role-reader", "kind: role\nversion: v1\nmetadata:\n  name: reader\nspec:\n  allow:\n    rules:\n      - resources: [role, lock]\n        verbs: [list, read, create]\n")

	adminID, err := identityfile.Read(filepath.Join(dataDir, "admin.identity"))
	require.NoError(t, err)
	authAddrBytes, err := os.ReadFile(filepath.Join(dataDir, "auth_addr"))
	require.NoError(t, err)
	authAddr := strings.TrimSpace(string(authAddrBytes))
	adminClient, err := client.New(context.Background(), client.Config{Addr: authAddr, Identity: adminID})
	require.NoError(t, err)
	t.Cleanup(func() { _ = adminClient.Close() })

	t.Run("session cookies are Secure, HttpOnly, SameSite, host-only and Path=/", func(t *testing.T) {
		web := web.with(t)
		addUser(t, "carla", "carla's long password", "access")
		r, s := web.login("carla", "carla's long password", "192.0.2.1")
		require.Equal(t, http.StatusOK, r.status, r.body)
		secrets = append(secrets, s.id, s.csrf)
		require.Equal(t, "no-store", r.header.Get("Cache-Control"))
		raw := map[string]string{}
		for _, line := range r.header.Values("Set-Cookie") {
			raw[strings.SplitN(line, "=", 2)[0]] = line
		}
		attrs := func(line string) map[string]string {
			out := map[string]string{}
			for _, a := range strings.Split(line, ";")[1:] {
				k, v, _ := strings.Cut(strings.TrimSpace(a), "=")
				out[strings.ToLower(k)] = v
			}
			return out
		}
		sess := attrs(raw[atkSessionCookie])
		require.Contains(t, sess, "secure", raw[atkSessionCookie])
		require.Contains(t, sess, "httponly", "scripts must not read the session: %s", raw[atkSessionCookie])
		require.Equal(t, "Lax", sess["samesite"], raw[atkSessionCookie])
		require.Equal(t, "/", sess["path"])
		require.NotContains(t, sess, "domain", "host-only")
		require.NotEmpty(t, sess["max-age"])
		csrf := attrs(raw[atkCSRFCookie])
		require.Contains(t, csrf, "secure", raw[atkCSRFCookie])
		require.NotContains(t, csrf, "httponly", "the UI's script echoes it: %s", raw[atkCSRFCookie])
		require.Equal(t, "Strict", csrf["samesite"], raw[atkCSRFCookie])
		require.Equal(t, "/", csrf["path"])
		require.NotContains(t, csrf, "domain")
		require.NotEqual(t, s.id, s.csrf)
		require.NotContains(t, r.body, s.id, "the session ID is only in the HttpOnly cookie")
	})

	t.Run("cross-site writes are refused and write nothing", func(t *testing.T) {
		web := web.with(t)
		addUser(t, "edna", "edna's long password!", "editor")
		s := signIn(t, "edna", "edna's long password!")
		lock("keep-me", "somebody-else", "stays")
		lockExists := func() bool {
			r := gatectl("get", "lock/keep-me")
			if r.code != 0 {
				require.Contains(t, r.stderr, "not found", r.String())
			}
			return r.code == 0
		}
		evil := "https://evil.example.com"
		for _, tc := range []struct {
			name string
			hdr  map[string]string
			want string
		}{
			{"another origin, no token", map[string]string{"Origin": evil}, "missing or wrong X-CSRF-Token header"},
			{"a wrong token", map[string]string{"Origin": evil, atkCSRFHeader: "x" + s.csrf}, "missing or wrong X-CSRF-Token header"},
			{"the session ID as token", map[string]string{atkCSRFHeader: s.id}, "missing or wrong X-CSRF-Token header"},
			{"a truncated token", map[string]string{atkCSRFHeader: s.csrf[:len(s.csrf)-1]}, "missing or wrong X-CSRF-Token header"},
		} {
			hdr := map[string]string{"Cookie": s.cookie()}
			for k, v := range tc.hdr {
				hdr[k] = v
			}
			r := web.do(http.MethodDelete, "/v1/webapi/admin/locks/keep-me", hdr, "")
			require.Equal(t, http.StatusForbidden, r.status, "%s: %s", tc.name, r.body)
			require.Contains(t, r.body, tc.want, tc.name)
			require.True(t, lockExists(), "%s lifted the lock", tc.name)
		}
		// What an HTML form can send: no custom header, a form content type.
		settings := `{"default_roles":["editor"]}`
		for _, ct := range []string{"application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x"} {
			r := web.do(http.MethodPut, "/v1/webapi/plugins/okta/settings", map[string]string{"Cookie": s.cookie(), "Origin": evil, "Content-Type": ct}, settings)
			require.Equal(t, http.StatusForbidden, r.status, "%s without a token: %s", ct, r.body)
			// Even with the token (which a form cannot send), the body must be JSON.
			r = web.do(http.MethodPut, "/v1/webapi/plugins/okta/settings", map[string]string{"Cookie": s.cookie(), atkCSRFHeader: s.csrf, "Content-Type": ct}, settings)
			require.Equal(t, http.StatusBadRequest, r.status, "%s with the token: %s", ct, r.body)
			require.Contains(t, r.body, "must be application/json")
		}
		// No CORS: a preflight from another origin is granted nothing.
		r := web.do(http.MethodOptions, "/v1/webapi/admin/locks/keep-me", map[string]string{
			"Origin": evil, "Access-Control-Request-Method": "DELETE", "Access-Control-Request-Headers": atkCSRFHeader,
		}, "")
		require.Empty(t, r.header.Get("Access-Control-Allow-Origin"), "preflight: %d %s", r.status, r.body)
		require.Empty(t, r.header.Get("Access-Control-Allow-Credentials"))
		// Login CSRF: a cross-site form cannot sign a browser in.
		r = web.do(http.MethodPost, "/v1/webapi/sessions", map[string]string{"Origin": evil, "Content-Type": "text/plain"}, `{"user":"edna","password":"edna's long password!"}`)
		require.Equal(t, http.StatusUnsupportedMediaType, r.status, r.body)
		require.Empty(t, r.header.Values("Set-Cookie"))
		// Logout is a write too.
		r = web.do(http.MethodDelete, "/v1/webapi/sessions/current", map[string]string{"Cookie": s.cookie(), "Origin": evil}, "")
		require.Equal(t, http.StatusForbidden, r.status, r.body)
		require.Equal(t, http.StatusOK, web.current(s).status, "a refused logout ends nothing")

		// The same call with the session's token works: the refusals above
		// were the CSRF defence, not a lack of rights.
		r = web.do(http.MethodDelete, "/v1/webapi/admin/locks/keep-me", map[string]string{"Cookie": s.cookie(), atkCSRFHeader: s.csrf}, "")
		require.Equal(t, http.StatusOK, r.status, r.body)
		require.False(t, lockExists())
	})

	t.Run("a web session acts with the account's current roles", func(t *testing.T) {
		web := web.with(t)
		addUser(t, "rex", "rex's long password!!", "editor")
		s := signIn(t, "rex", "rex's long password!!")
		lock("rex-probe", "somebody-else", "stays")
		apply("rex", "kind: user\nversion: v1\nmetadata:\n  name: rex\nspec:\n  roles: [access]\n")
		r := web.do(http.MethodDelete, "/v1/webapi/admin/locks/rex-probe", map[string]string{"Cookie": s.cookie(), atkCSRFHeader: s.csrf}, "")
		require.Equal(t, http.StatusForbidden, r.status, "editor was taken away after the login: %s", r.body)
		require.Contains(t, r.body, `no role of [access] allows \"delete\" on \"lock\"`)
		admin("get", "lock/rex-probe")
	})

	t.Run("a session cookie after logout is dead", func(t *testing.T) {
		web := web.with(t)
		addUser(t, "lou", "lou's long password!!", "access")
		s := signIn(t, "lou", "lou's long password!!")
		require.Equal(t, http.StatusOK, web.current(s).status)
		r := web.do(http.MethodDelete, "/v1/webapi/sessions/current", map[string]string{"Cookie": s.cookie(), atkCSRFHeader: s.csrf}, "")
		require.Equal(t, http.StatusOK, r.status, r.body)
		cleared := map[string]bool{}
		for _, c := range (&http.Response{Header: r.header}).Cookies() {
			cleared[c.Name] = c.MaxAge < 0
		}
		require.True(t, cleared[atkSessionCookie] && cleared[atkCSRFCookie], "logout clears both cookies: %v", r.header.Values("Set-Cookie"))
		// A copy of the cookie kept by an attacker (or a browser that ignored the clear).
		r = web.current(s)
		require.Equal(t, http.StatusUnauthorized, r.status, r.body)
		require.Contains(t, r.body, "the session has ended")
		r = web.do(http.MethodPost, "/v1/webapi/sessions/certs", map[string]string{"Cookie": s.cookie(), atkCSRFHeader: s.csrf, "Content-Type": "application/json"}, `{"public_key":"x"}`)
		require.Equal(t, http.StatusUnauthorized, r.status, r.body)
	})

	t.Run("forged and truncated cookies are refused without harm", func(t *testing.T) {
		web := web.with(t)
		addUser(t, "fay", "fay's long password!!", "access")
		s := signIn(t, "fay", "fay's long password!!")
		forged := map[string]string{
			"truncated":          atkSessionCookie + "=" + s.id[:len(s.id)-1],
			"one byte more":      atkSessionCookie + "=" + s.id + "A",
			"flipped":            atkSessionCookie + "=" + strings.ToUpper(s.id[:1]) + strings.ToLower(s.id[1:]),
			"random":             atkSessionCookie + "=" + strings.Repeat("A", len(s.id)),
			"overlong":           atkSessionCookie + "=" + strings.Repeat("B", 4096),
			"empty":              atkSessionCookie + "=",
			"the CSRF token":     atkSessionCookie + "=" + s.csrf,
			"without the prefix": "gatehouse_session=" + s.id,
			"quoted":             atkSessionCookie + `="` + s.id + `x"`,
			"binary":             atkSessionCookie + "=%00%ff%fe",
		}
		for name, c := range forged {
			r := web.do(http.MethodGet, "/v1/webapi/sessions/current", map[string]string{"Cookie": c}, "")
			require.Equal(t, http.StatusUnauthorized, r.status, "%s: %s", name, r.body)
			require.Contains(t, r.body, `"error"`, name)
			require.Equal(t, "application/json", r.header.Get("Content-Type"), name)
			r = web.do(http.MethodGet, "/v1/webapi/admin/users", map[string]string{"Cookie": c}, "")
			require.Equal(t, http.StatusUnauthorized, r.status, "%s: %s", name, r.body)
		}
		require.Equal(t, http.StatusOK, web.current(s).status, "forgeries do not end the real session")
	})

	t.Run("a deleted account's session dies, also once the name is created again", func(t *testing.T) {
		web := web.with(t)
		addUser(t, "dora", "dora's long password!", "access")
		s := signIn(t, "dora", "dora's long password!")
		admin("rm", "user/dora")
		// The user's deletion ends its sessions at once (the session
		// view); a request that comes first is refused for the deletion.
		r := web.current(s)
		require.Equal(t, http.StatusUnauthorized, r.status, r.body)
		require.Regexp(t, `the session has ended|user \\"dora\\" no longer exists`, r.body)

		// The name created again before the old session's next request.
		addUser(t, "dora", "dora's long password!", "access")
		s = signIn(t, "dora", "dora's long password!")
		admin("rm", "user/dora")
		addUser(t, "dora", "dora's long password!", "access")
		r = web.current(s)
		require.Equal(t, http.StatusUnauthorized, r.status, r.body)
		require.Regexp(t, `the session has ended|earlier incarnation`, r.body)
		require.Equal(t, http.StatusUnauthorized, web.current(s).status, "and it stays dead")
		signIn(t, "dora", "dora's long password!")
	})

	t.Run("a locked account's session dies and stays dead after the unlock", func(t *testing.T) {
		web := web.with(t)
		addUser(t, "lena", "lena's long password!", "access")
		s := signIn(t, "lena", "lena's long password!")
		lock("lena-off", "lena", "under investigation")
		// The lock ends the session: the request refused with the lock's
		// message, or the session already deleted by the lock sweep.
		require.Eventually(t, func() bool { return web.current(s).status != http.StatusOK }, 10*time.Second, 20*time.Millisecond)
		r := web.current(s)
		require.Contains(t, []int{http.StatusUnauthorized, http.StatusForbidden}, r.status, r.body)
		lr, _ := web.login("lena", "lena's long password!", "192.0.2.1")
		require.Equal(t, http.StatusForbidden, lr.status, lr.body)
		require.Contains(t, lr.body, "under investigation")
		require.Empty(t, lr.header.Values("Set-Cookie"))
		admin("rm", "lock/lena-off")
		// Each refused try spends one of lena's five failures: poll slowly.
		require.Eventually(t, func() bool {
			lr, _ := web.login("lena", "lena's long password!", "192.0.2.251")
			return lr.status == http.StatusOK
		}, 10*time.Second, 500*time.Millisecond)
		r = web.current(s)
		require.Equal(t, http.StatusUnauthorized, r.status, "lifting the lock does not revive the session: %s", r.body)
	})

	t.Run("a password change ends the account's web sessions", func(t *testing.T) {
		web := web.with(t)
		const first, second, third = "pat's first password", "pat's second password", "pat's third password"
		addUser(t, "pat", first, "access")
		secrets = append(secrets, second, third)
		stolen := signIn(t, "pat", first)
		other := signIn(t, "carla", "carla's long password")

		// An administrator resets the password over the API.
		_, err := adminClient.Credentials.SetPassword(context.Background(), &credentialspb.SetPasswordRequest{User: "pat", Password: second})
		require.NoError(t, err)
		r := web.current(stolen)
		require.Equal(t, http.StatusUnauthorized, r.status, "the session opened with the old password must end: %s", r.body)
		require.Equal(t, http.StatusOK, web.current(other).status, "another user's session is left alone")
		lr, _ := web.login("pat", first, "192.0.2.1")
		require.Equal(t, http.StatusForbidden, lr.status, lr.body)

		// The person sets a new one through a reset link.
		stolen = signIn(t, "pat", second)
		link, err := adminClient.Credentials.CreatePasswordToken(context.Background(), &credentialspb.CreatePasswordTokenRequest{User: "pat"})
		require.NoError(t, err)
		secrets = append(secrets, link.GetToken())
		body, err := json.Marshal(map[string]string{"token": link.GetToken(), "password": third})
		require.NoError(t, err)
		r = web.do(http.MethodPost, "/v1/webapi/users/password", map[string]string{"Content-Type": "application/json"}, string(body))
		require.Equal(t, http.StatusOK, r.status, r.body)
		r = web.current(stolen)
		require.Equal(t, http.StatusUnauthorized, r.status, "the session opened with the old password must end: %s", r.body)
		signIn(t, "pat", third)
	})

	t.Run("no open redirect from a login", func(t *testing.T) {
		web := web.with(t)
		apply("connector", `kind: saml
version: v1
metadata:
  name: okta
spec:
  display: Okta
  acs: https://gatehouse.example.com/v1/webapi/saml/acs/okta
  entity_descriptor: |
`+indent(idpMetadata(t), "    ")+"\n")
		sso := func(redirect string) atkResp {
			return web.do(http.MethodGet, "/v1/webapi/saml/sso?connector_id=okta&redirect_url="+url.QueryEscape(redirect), map[string]string{"Accept": "application/json"}, "")
		}
		r := sso("/web/users?page=2")
		require.Equal(t, http.StatusFound, r.status, r.body)
		require.True(t, strings.HasPrefix(r.header.Get("Location"), "https://example.okta.com/"), r.header.Get("Location"))
		for _, evil := range []string{
			"https://evil.example.com/", "//evil.example.com/", "///evil.example.com/", `/\evil.example.com`, `\\evil.example.com`,
			"/\t/evil.example.com", "https:evil.example.com", "javascript:alert(1)", "evil.example.com", " //evil.example.com",
			"/\r\nSet-Cookie: x=y", "HTTPS://evil.example.com",
		} {
			r := sso(evil)
			require.Equal(t, http.StatusBadRequest, r.status, "%q: %s", evil, r.body)
			require.Contains(t, r.body, "redirect_url must be a path on this server", evil)
			require.Empty(t, r.header.Get("Location"), evil)
			require.Empty(t, r.header.Values("Set-Cookie"), "%q started a login", evil)
		}
		r = web.do(http.MethodGet, "/", nil, "")
		require.Equal(t, "/web/", r.header.Get("Location"))
		r = web.do(http.MethodGet, "//evil.example.com/", nil, "")
		require.False(t, strings.HasPrefix(r.header.Get("Location"), "//"), "%d %s", r.status, r.header.Get("Location"))
	})

	t.Run("error answers carry the security headers", func(t *testing.T) {
		web := web.with(t)
		for _, tc := range []struct {
			name, method, path string
			hdr                map[string]string
			body               string
			status             int
		}{
			{"unknown path", http.MethodGet, "/nope", nil, "", http.StatusNotFound},
			{"unknown API path", http.MethodGet, "/v1/webapi/nope", nil, "", http.StatusNotFound},
			{"no session", http.MethodGet, "/v1/webapi/sessions/current", nil, "", http.StatusUnauthorized},
			{"UI method", http.MethodPost, "/web/", nil, "", http.StatusMethodNotAllowed},
			{"UI asset", http.MethodGet, "/web/assets/nope.js", nil, "", http.StatusNotFound},
			{"login as a form", http.MethodPost, "/v1/webapi/sessions", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, "user=a&password=b", http.StatusUnsupportedMediaType},
			{"login page error (HTML)", http.MethodGet, "/v1/webapi/saml/sso", nil, "", http.StatusBadRequest},
			{"ACS error (HTML)", http.MethodPost, "/v1/webapi/saml/acs/nosuch", map[string]string{"Content-Type": "application/x-www-form-urlencoded", "X-Forwarded-For": "198.51.100.9"}, "SAMLResponse=x", http.StatusNotFound},
			{"SCIM without a token", http.MethodGet, "/v1/webapi/scim/okta/Users", nil, "", http.StatusUnauthorized},
		} {
			r := web.do(tc.method, tc.path, tc.hdr, tc.body)
			require.Equal(t, tc.status, r.status, "%s: %s", tc.name, r.body)
			requireSecurityHeaders(t, tc.name, r)
		}
	})

	t.Run("password guessing is limited per account and per address", func(t *testing.T) {
		web := web.with(t)
		addUser(t, "vic", "vic's long password!!", "access")
		addUser(t, "wally", "wally's long password", "access")
		// One guess at vic from each of five addresses, then the right
		// password from a sixth: the account's budget is spent.
		for i := 1; i <= 5; i++ {
			r, _ := web.login("vic", fmt.Sprintf("guess %d", i), fmt.Sprintf("203.0.113.%d", i))
			require.Equal(t, http.StatusForbidden, r.status, r.body)
			require.Contains(t, r.body, "wrong username or password")
		}
		r, _ := web.login("vic", "vic's long password!!", "203.0.113.6")
		require.Equal(t, http.StatusTooManyRequests, r.status, r.body)
		require.NotEmpty(t, r.header.Get("Retry-After"))
		require.Empty(t, r.header.Values("Set-Cookie"))
		requireSecurityHeaders(t, "429", r)
		r, _ = web.login("wally", "wally's long password", "203.0.113.6")
		require.Equal(t, http.StatusOK, r.status, "the sixth address is not throttled: %s", r.body)

		// Five guesses from one address at five names, then a sixth name
		// from it: the address's budget is spent; the account is not.
		for i := 1; i <= 5; i++ {
			r, _ := web.login(fmt.Sprintf("nobody%d", i), "guess", "198.51.100.1")
			require.Equal(t, http.StatusForbidden, r.status, r.body)
		}
		r, _ = web.login("wally", "wally's long password", "198.51.100.1")
		require.Equal(t, http.StatusTooManyRequests, r.status, r.body)
		r, _ = web.login("wally", "wally's long password", "198.51.100.2")
		require.Equal(t, http.StatusOK, r.status, r.body)
		// An IPv6 attacker does not get a budget per address of its /64.
		for i := 1; i <= 5; i++ {
			r, _ := web.login("nobody", "guess", fmt.Sprintf("2001:db8:1:2::%x", i))
			require.Equal(t, http.StatusForbidden, r.status, r.body)
		}
		r, _ = web.login("wally", "wally's long password", "2001:db8:1:2::ffff")
		require.Equal(t, http.StatusTooManyRequests, r.status, r.body)
	})

	// --- gRPC ---

	grpcAs := func(t *testing.T, name, ttl string) string {
		t.Helper()
		ident := filepath.Join(work, name+".identity")
		args := []string{"auth", "sign", "--user", name, "--format", "identity", "--out", ident}
		if ttl != "" {
			args = append(args, "--ttl", ttl)
		}
		admin(args...)
		return ident
	}
	lockCount := func(t *testing.T) int {
		t.Helper()
		resp, err := adminClient.Locks.ListLocks(context.Background(), &lockpb.ListLocksRequest{})
		require.NoError(t, err)
		return len(resp.GetLocks())
	}
	newLock := func(name string) *lockpb.CreateLockRequest {
		return &lockpb.CreateLockRequest{Lock: &typesv1.Lock{Kind: "lock", Version: "v1", Metadata: &typesv1.Metadata{Name: name}, Spec: &typesv1.LockSpec{Target: &typesv1.LockTarget{User: "admin"}, Message: "by an intruder"}}}
	}

	t.Run("gRPC: a certificate from another CA, or none, is refused at the handshake", func(t *testing.T) {
		inc, err := func() (string, error) {
			c, err := adminID.TLSCertificate()
			if err != nil {
				return "", err
			}
			leaf, err := x509.ParseCertificate(c.Certificate[0])
			if err != nil {
				return "", err
			}
			return certext.IncarnationFromX509(leaf)
		}()
		require.NoError(t, err)
		// A CA of the attacker's own, and a certificate from it for the
		// operator, with the operator's incarnation.
		caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "itest"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
		caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
		require.NoError(t, err)
		caCert, err := x509.ParseCertificate(caDER)
		require.NoError(t, err)
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		ext, err := certext.IncarnationExtension(inc)
		require.NoError(t, err)
		der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "@admin", Organization: []string{"editor"}},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, ExtraExtensions: []pkix.Extension{ext}}, caCert, &key.PublicKey, caKey)
		require.NoError(t, err)
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		require.NoError(t, err)
		forged := &identityfile.Identity{
			Username:   "@admin",
			KeyPEM:     pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
			CertPEM:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
			CACertsPEM: adminID.CACertsPEM,
		}
		before := lockCount(t)
		c, err := client.New(context.Background(), client.Config{Addr: authAddr, Identity: forged})
		require.NoError(t, err)
		defer c.Close()
		// Refused by the TLS handshake (Unavailable: the server's alert, or
		// the connection it closed), never by a handler after it.
		_, err = c.Roles.ListRoles(context.Background(), &rolepb.ListRolesRequest{})
		require.True(t, trace.IsConnectionProblem(err), "got %v", err)
		_, err = c.Locks.CreateLock(context.Background(), newLock("forged"))
		require.True(t, trace.IsConnectionProblem(err), "got %v", err)
		require.Equal(t, before, lockCount(t), "nothing written")

		// No client certificate at all.
		pool, err := adminID.CAPool()
		require.NoError(t, err)
		conn, err := grpc.NewClient(authAddr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool, ServerName: "localhost"})))
		require.NoError(t, err)
		defer conn.Close()
		_, err = rolepb.NewRoleServiceClient(conn).ListRoles(context.Background(), &rolepb.ListRolesRequest{})
		require.Equal(t, codes.Unavailable, status.Code(err), "got %v", err)
		_, err = lockpb.NewLockServiceClient(conn).CreateLock(context.Background(), newLock("anonymous"))
		require.Equal(t, codes.Unavailable, status.Code(err), "got %v", err)
		require.Equal(t, before, lockCount(t), "nothing written")
		require.NotContains(t, logs.String(), "panic")
	})

	t.Run("gRPC: an expired certificate is refused", func(t *testing.T) {
		addUser(t, "gus", "gus's long password!!", "reader")
		ident := grpcAs(t, "gus", "1s")
		id, err := identityfile.Read(ident)
		require.NoError(t, err)
		c, err := id.TLSCertificate()
		require.NoError(t, err)
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		require.NoError(t, err)
		time.Sleep(time.Until(leaf.NotAfter.Add(1100 * time.Millisecond)))
		// The server refuses it in the handshake, before any handler.
		before := lockCount(t)
		c2, err := client.New(context.Background(), client.Config{Addr: authAddr, Identity: id})
		require.NoError(t, err)
		defer c2.Close()
		_, err = c2.Roles.ListRoles(context.Background(), &rolepb.ListRolesRequest{})
		require.True(t, trace.IsConnectionProblem(err), "got %v", err)
		_, err = c2.Locks.CreateLock(context.Background(), newLock("expired"))
		require.True(t, trace.IsConnectionProblem(err), "got %v", err)
		require.Equal(t, before, lockCount(t), "nothing written")
		// gatectl says why rather than showing the broken connection.
		r := gatectl("--identity", ident, "get", "roles")
		require.Equal(t, 1, r.code, r.String())
		require.Contains(t, r.stderr, "identity file "+ident+" expired at", r.String())
	})

	t.Run("gRPC: a certificate of a deleted, re-created, locked or stripped account is refused", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			change func(name string)
			want   string
		}{
			{"deleted", func(n string) { admin("rm", "user/"+n) }, `user "gina-deleted" no longer exists`},
			{"re-created", func(n string) {
				admin("rm", "user/"+n)
				addUser(t, n, "another long password", "reader")
			}, "earlier incarnation"},
			{"locked", func(n string) { lock(n, n, "laptop stolen") }, "laptop stolen"},
			// Current roles decide, not the ones written in the certificate.
			{"stripped", func(n string) {
				apply(n, "kind: user\nversion: v1\nmetadata:\n  name: "+n+"\nspec:\n  roles: [access]\n")
			}, "access denied"},
		} {
			name := "gina-" + tc.name
			addUser(t, name, "gina's long password!", "reader")
			ident := grpcAs(t, name, "")
			r := gatectl("--identity", ident, "get", "roles")
			require.Equal(t, 0, r.code, "%s before: %s", tc.name, r.String())
			tc.change(name)
			before := lockCount(t)
			require.Eventually(t, func() bool { return gatectl("--identity", ident, "get", "roles").code != 0 }, 10*time.Second, 50*time.Millisecond, tc.name)
			r = gatectl("--identity", ident, "get", "roles")
			require.Contains(t, r.stderr, tc.want, "%s: %s", tc.name, r.String())
			r = gatectl("--identity", ident, "create", "-f", resourceFile(t, work, "intruder-"+name,
				`{"kind":"lock","version":"v1","metadata":{"name":"intruder-`+name+`"},"spec":{"target":{"user":"admin"},"message":"x"}}`))
			require.NotEqual(t, 0, r.code, "%s wrote a lock: %s", tc.name, r.String())
			require.Equal(t, before, lockCount(t), "%s: nothing written", tc.name)
		}
	})

	// --- SSH ---

	host, port := srv.sshAddr(t)
	addUser(t, "sam", "sam's long password!!", "ssh")
	samKey := filepath.Join(work, "sam")
	admin("auth", "sign", "--user", "sam", "--out", samKey)

	t.Run("SSH: a certificate for another principal is refused", func(t *testing.T) {
		other := "nobody"
		if login == other {
			other = "daemon"
		}
		_, stderr, err := atkSSH(t, host, port, samKey, other, nil, nil, "id")
		require.Error(t, err)
		require.Contains(t, stderr, "Permission denied (publickey)")
		out, stderr, err := atkSSH(t, host, port, samKey, login, nil, nil, "echo ok")
		require.NoError(t, err, stderr)
		require.Equal(t, "ok\n", out)
	})

	t.Run("SSH: forwarding, jumping to another host, subsystems and agent forwarding are refused", func(t *testing.T) {
		webHost, webPort, ok := strings.Cut(srv.webAddr, ":")
		require.True(t, ok)
		// The node is not a jump host: stdio forwarding (ssh -W, what -J
		// and -L use) to another host is refused.
		_, stderr, err := atkSSH(t, host, port, samKey, login, []string{"-W", webHost + ":" + webPort}, nil, "")
		require.Error(t, err)
		require.Contains(t, stderr, "only session channels are supported")
		// Remote forwarding.
		_, stderr, err = atkSSH(t, host, port, samKey, login, []string{"-o", "ExitOnForwardFailure=yes", "-R", "0:127.0.0.1:9"}, nil, "sleep 5")
		require.Error(t, err)
		require.Contains(t, stderr, "remote port forwarding failed")
		// Subsystems (sftp).
		_, stderr, err = atkSSH(t, host, port, samKey, login, []string{"-s"}, nil, "sftp")
		require.Error(t, err)
		require.Contains(t, stderr, "subsystem request failed")
		// Agent forwarding: with a real agent to forward, the client asks
		// (-v shows it) and the session gets no agent socket.
		agentSock := filepath.Join(work, "agent.sock")
		agent := exec.Command("/usr/bin/ssh-agent", "-D", "-a", agentSock)
		require.NoError(t, agent.Start())
		t.Cleanup(func() { _ = agent.Process.Kill(); _ = agent.Wait() })
		require.Eventually(t, func() bool { _, err := os.Stat(agentSock); return err == nil }, 5*time.Second, 20*time.Millisecond)
		out, stderr, err := atkSSH(t, host, port, samKey, login, []string{"-A", "-v"}, []string{"SSH_AUTH_SOCK=" + agentSock}, `echo "agent=[$SSH_AUTH_SOCK]"`)
		require.NoError(t, err, stderr)
		require.Contains(t, stderr, "Requesting authentication agent forwarding")
		require.Equal(t, "agent=[]\n", out)
	})

	t.Run("SSH: a live session of a user then locked ends, and the certificate stays refused", func(t *testing.T) {
		live := startLongSSH(t, host, port, samKey, login)
		lock("sam-off", "sam", "sam is off duty")
		acked := time.Now()
		select {
		case <-live.done:
		case <-time.After(5 * time.Second):
			t.Fatalf("the SSH session outlived the lock by 5s: %s", live.stderr.String())
		}
		t.Logf("the SSH session ended %v after gatectl's write was acknowledged", live.ended.Sub(acked))
		require.Less(t, live.ended.Sub(acked), time.Second, "the usual bound of deprovisioning")
		require.Error(t, live.err)
		require.Contains(t, live.stderr.String(), "sam is off duty")
		_, stderr, err := atkSSH(t, host, port, samKey, login, nil, nil, "true")
		require.Error(t, err)
		require.Contains(t, stderr, "administratively prohibited")
		require.Contains(t, stderr, "sam is off duty")
		r := gatectl("auth", "sign", "--user", "sam", "--out", filepath.Join(work, "sam-again"))
		require.NotEqual(t, 0, r.code, "a locked user gets no new certificate: %s", r.String())
		require.Contains(t, r.stderr, "sam is off duty")
	})

	t.Run("no secret reaches the log", func(t *testing.T) {
		out := logs.String()
		for _, s := range secrets {
			require.NotContains(t, out, s)
		}
	})
}
