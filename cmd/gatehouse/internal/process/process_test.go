package process

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/cmd/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/lib/auth/client"
	"github.com/gatehouse/gatehouse/lib/auth/identityfile"
	pluginv1 "github.com/gatehouse/gatehouse/proto/gatehouse/plugin/v1"
)

func settings(t *testing.T, dataDir string) *config.Config {
	t.Helper()
	loop := "127.0.0.1:0"
	c, err := config.Build(nil, config.Overrides{
		DataDir: &dataDir, AuthAddr: &loop, WebAddr: &loop, DiagAddr: &loop, SSHAddr: &loop,
	})
	require.NoError(t, err)
	return c
}

func start(t *testing.T, set *config.Config, clock clockwork.Clock, out io.Writer) *Process {
	t.Helper()
	p, err := Start(context.Background(), Config{
		Settings: set,
		Logger:   slog.New(slog.DiscardHandler),
		Stdout:   out,
		Clock:    clock,
	})
	require.NoError(t, err)
	return p
}

func stop(t *testing.T, p *Process) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, p.Shutdown(ctx))
}

func TestStartServesAndRestarts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	set := settings(t, dir)
	clock := clockwork.NewFakeClockAt(time.Now())
	var banner bytes.Buffer
	p := start(t, set, clock, &banner)

	// Address files point at the bound listeners.
	authAddr, err := os.ReadFile(filepath.Join(dir, AuthAddrFile))
	require.NoError(t, err)
	require.Equal(t, p.AuthAddr().String(), strings.TrimSpace(string(authAddr)))
	webAddr, err := os.ReadFile(filepath.Join(dir, WebAddrFile))
	require.NoError(t, err)
	require.Equal(t, p.WebAddr().String(), strings.TrimSpace(string(webAddr)))
	require.Contains(t, banner.String(), "gatectl --data-dir "+dir)

	// /readyz over HTTPS with the kept self-signed certificate.
	pemBytes, err := os.ReadFile(filepath.Join(dir, "web.crt"))
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pemBytes))
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := hc.Get("https://" + p.WebAddr().String() + "/readyz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	// /metrics on the diagnostics listener.
	resp, err = http.Get("http://" + p.diagLn.Addr().String() + "/metrics")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Contains(t, string(body), "gatehouse_web_requests_total")
	// Profiles are opt-in (diag.pprof), and off here.
	resp, err = http.Get("http://" + p.diagLn.Addr().String() + "/debug/pprof/")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode)

	// The admin identity works against the auth listener.
	idPath := filepath.Join(dir, AdminIdentityFile)
	id, err := identityfile.Read(idPath)
	require.NoError(t, err)
	c, err := client.New(context.Background(), client.Config{Addr: p.AuthAddr().String(), Identity: id})
	require.NoError(t, err)
	_, err = c.Plugins.ListPlugins(context.Background(), &pluginv1.ListPluginsRequest{})
	require.NoError(t, err)
	require.NoError(t, c.Close())
	first, err := os.ReadFile(idPath)
	require.NoError(t, err)
	stop(t, p)
	_, err = os.Stat(filepath.Join(dir, AuthAddrFile))
	require.True(t, os.IsNotExist(err), "a stopped server leaves no address behind")

	// Restart: same CAs, so the identity is kept as is.
	p = start(t, set, clock, io.Discard)
	again, err := os.ReadFile(idPath)
	require.NoError(t, err)
	require.Equal(t, first, again)

	// Close to expiry, the running server renews it.
	leaf, err := leafOf(id)
	require.NoError(t, err)
	clock.Advance(leaf.NotAfter.Sub(clock.Now()) - time.Minute)
	require.Eventually(t, func() bool {
		now, err := os.ReadFile(idPath)
		return err == nil && !bytes.Equal(now, first)
	}, 10*time.Second, 20*time.Millisecond)
	stop(t, p)
}

func TestStartReplacesForeignIdentity(t *testing.T) {
	t.Parallel()
	// An identity from another cluster (another data dir) is replaced.
	other := t.TempDir()
	p := start(t, settings(t, other), nil, io.Discard)
	stop(t, p)
	foreign, err := os.ReadFile(filepath.Join(other, AdminIdentityFile))
	require.NoError(t, err)

	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, AdminIdentityFile), foreign, 0o600))
	p = start(t, settings(t, dir), nil, io.Discard)
	defer stop(t, p)
	now, err := os.ReadFile(filepath.Join(dir, AdminIdentityFile))
	require.NoError(t, err)
	require.NotEqual(t, foreign, now)
}

func TestStartFailsCleanly(t *testing.T) {
	t.Parallel()
	set := settings(t, t.TempDir())
	set.StorageType = "nosuch"
	_, err := Start(context.Background(), Config{Settings: set, Logger: slog.New(slog.DiscardHandler)})
	require.ErrorContains(t, err, "nosuch")

	// A taken port: the error names the listener, and the storage is
	// released (a second start on the same dir works).
	dir := t.TempDir()
	p := start(t, settings(t, t.TempDir()), nil, io.Discard)
	defer stop(t, p)
	set = settings(t, dir)
	set.AuthAddr = p.AuthAddr().String()
	_, err = Start(context.Background(), Config{Settings: set, Logger: slog.New(slog.DiscardHandler)})
	require.ErrorContains(t, err, "auth listener")
	p2 := start(t, settings(t, dir), nil, io.Discard)
	stop(t, p2)
}

// TestNotReadyUntilStarted: /readyz must not answer ready while Start is
// still writing the files gatectl needs (a client polling readiness would
// otherwise race the admin identity).
func TestNotReadyUntilStarted(t *testing.T) {
	p := &Process{}
	err := p.ready(context.Background())
	require.Error(t, err)
	require.True(t, trace.IsConnectionProblem(err), "%v", err)
}

func TestDiagPprofOptIn(t *testing.T) {
	t.Parallel()
	set := settings(t, t.TempDir())
	set.DiagPprof = true
	p := start(t, set, clockwork.NewRealClock(), io.Discard)
	defer stop(t, p)
	resp, err := http.Get("http://" + p.diagLn.Addr().String() + "/debug/pprof/heap?debug=1")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, string(body), "heap profile")
}

// TestBannerPublicURL: the public URL people are shown leaves out the
// default https port.
func TestBannerPublicURL(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	loop, public := "127.0.0.1:0", "gatehouse.example.com:443"
	set, err := config.Build(nil, config.Overrides{
		DataDir: &dir, AuthAddr: &loop, WebAddr: &loop, SSHAddr: &loop, PublicAddr: &public,
	})
	require.NoError(t, err)
	var banner bytes.Buffer
	p := start(t, set, clockwork.NewFakeClockAt(time.Now()), &banner)
	defer stop(t, p)
	require.Contains(t, banner.String(), "public:        https://gatehouse.example.com\n")
	// Not a bare ":443": a random listener port such as 44307 contains it.
	require.NotContains(t, banner.String(), "gatehouse.example.com:443")
}

// TestFirstSignInBanner: the first start prints a one-time link setting the
// first administrator's password, on stdout only (never in the logs, at any
// level); every start prints a new one while no password is set; none once
// it is set.
func TestFirstSignInBanner(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	set := settings(t, dir)
	var logs bytes.Buffer
	startLogged := func(out io.Writer) *Process {
		t.Helper()
		p, err := Start(context.Background(), Config{
			Settings: set,
			Logger:   slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
			Stdout:   out,
		})
		require.NoError(t, err)
		return p
	}
	linkIn := func(banner string) string {
		t.Helper()
		i := strings.Index(banner, "/web/password?token=")
		require.GreaterOrEqual(t, i, 0, banner)
		start := strings.LastIndex(banner[:i], " ") + 1
		return strings.Fields(banner[start:])[0]
	}

	var banner bytes.Buffer
	p := startLogged(&banner)
	link := linkIn(banner.String())
	require.True(t, strings.HasPrefix(link, "https://"+dialableHost(p.WebAddr())+"/web/password?token="), link)
	require.Contains(t, banner.String(), `First sign-in: open this one-time link to set the web password of "admin"`)
	u, err := url.Parse(link)
	require.NoError(t, err)
	token := u.Query().Get("token")
	require.NotEmpty(t, token)
	stop(t, p)

	banner.Reset()
	p = startLogged(&banner)
	again := linkIn(banner.String())
	require.NotEqual(t, link, again, "each start makes a new link")
	require.NoError(t, p.auth.Services().Users.SetLocalPassword(context.Background(), "admin", "correct horse battery staple"))
	stop(t, p)

	banner.Reset()
	p = startLogged(&banner)
	require.NotContains(t, banner.String(), "First sign-in")
	require.NotContains(t, banner.String(), "token=")
	stop(t, p)

	require.NotContains(t, logs.String(), token, "the link's token is never logged")
	require.NotContains(t, logs.String(), "token=")
	require.Contains(t, logs.String(), "Created the first administrator")
}
