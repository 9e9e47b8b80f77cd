// Package process wires a gatehouse server together: backend, auth server,
// the auth gRPC listener (mTLS), the web listener, the optional diagnostics
// listener, the admin identity file and the sidecar address files that
// gatectl reads. It lives under cmd/gatehouse because it imports every layer.
package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"

	"github.com/gatehouse/gatehouse/cmd/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/lib/atomicfile"
	"github.com/gatehouse/gatehouse/lib/auth"
	"github.com/gatehouse/gatehouse/lib/auth/credentialsv1"
	"github.com/gatehouse/gatehouse/lib/auth/credseal"
	"github.com/gatehouse/gatehouse/lib/auth/firstadmin"
	"github.com/gatehouse/gatehouse/lib/auth/scimprov"
	"github.com/gatehouse/gatehouse/lib/auth/usersync"
	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/services"
	// Register the storage engines selectable with --storage.
	_ "github.com/gatehouse/gatehouse/lib/backend/etcdbk"
	_ "github.com/gatehouse/gatehouse/lib/backend/lite"
	_ "github.com/gatehouse/gatehouse/lib/backend/memory"
	"github.com/gatehouse/gatehouse/lib/srv/lockwatch"
	"github.com/gatehouse/gatehouse/lib/srv/sshnode"
	"github.com/gatehouse/gatehouse/lib/web"
)

// Files the server keeps in its data directory besides the backend.
const (
	// AdminIdentityFile is the admin's identity file (mode 0600).
	AdminIdentityFile = "admin.identity"
	// AuthAddrFile holds the auth listener's dialable host:port; gatectl
	// --data-dir reads it.
	AuthAddrFile = "auth_addr"
	// WebAddrFile holds the web listener's dialable host:port.
	WebAddrFile = "web_addr"
	// AdminUser is the identity the admin identity is issued to: the
	// built-in operator identity, which is no user record, so no identity
	// provider, user lock or role edit can take it over or away.
	AdminUser = services.BuiltinAdmin
	// shutdownTimeout bounds a graceful shutdown.
	shutdownTimeout = 15 * time.Second
)

// Mounter attaches a handler set (SCIM, SAML, ...) to the web listener once
// the auth server is up.
type Mounter func(ctx context.Context, a *auth.Server, w *web.Server, log *slog.Logger) error

// Config configures a process.
type Config struct {
	// Settings is the checked server configuration.
	Settings *config.Config
	// Logger receives the process's logs.
	Logger *slog.Logger
	// Stdout receives the human-readable startup banner.
	Stdout io.Writer
	// Clock defaults to the real clock.
	Clock clockwork.Clock
	// Mounters run in order after the web listener is created.
	Mounters []Mounter
	// Registry receives the process's metrics; a new registry (with Go and
	// process collectors) if nil.
	Registry *prometheus.Registry
}

// CheckAndSetDefaults validates the config.
func (c *Config) CheckAndSetDefaults() error {
	if c.Settings == nil {
		return trace.BadParameter("process: missing settings")
	}
	c.Logger, c.Stdout, c.Clock = outputDefaults(c.Logger, c.Stdout, c.Clock)
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
		c.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	return nil
}

// Process is a running gatehouse server.
type Process struct {
	cfg     Config
	set     *config.Config
	log     *slog.Logger
	backend backend.Backend
	auth    *auth.Server
	grpc    *grpc.Server
	authLn  net.Listener
	web     *web.Server
	webLn   net.Listener
	scim    *scimprov.Provisioner
	locks   *lockwatch.Watcher
	ssh     *sshnode.Server
	sshLn   net.Listener
	diag    *http.Server
	diagLn  net.Listener
	// connsRefused counts the connections the listeners' bounds refused.
	connsRefused *prometheus.CounterVec

	// sealer holds the credentials key (data dir, created on first use).
	sealer   *credseal.File
	usersync *usersync.Runner

	// started is set once Start has written every file gatectl reads, so
	// /readyz never says ready before the admin identity exists.
	started atomic.Bool

	wg     sync.WaitGroup
	cancel context.CancelFunc
}

// Start brings every listener up. On error, whatever was started is closed.
func Start(ctx context.Context, cfg Config) (_ *Process, err error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, trace.Wrap(err)
	}
	set := cfg.Settings
	p := &Process{cfg: cfg, set: set, log: cfg.Logger.With("component", "process")}
	bgCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p.cancel = cancel
	defer func() {
		if err != nil {
			sctx, c := context.WithTimeout(context.Background(), shutdownTimeout)
			defer c()
			_ = p.Shutdown(sctx)
		}
	}()

	if err := os.MkdirAll(set.DataDir, 0o700); err != nil {
		return nil, trace.ConvertSystemError(err)
	}
	p.backend, err = backend.New(ctx, set.StorageType, backend.Params{Path: set.StoragePath, Settings: set.StorageSettings(), Clock: cfg.Clock})
	if err != nil {
		return nil, trace.Wrap(err, "opening %s storage at %s", set.StorageType, set.StoragePath)
	}
	// One lock watcher for the process: API calls, web sessions and SSH
	// sessions are all checked against it.
	if err := p.startLockWatcher(bgCtx); err != nil {
		return nil, trace.Wrap(err)
	}
	// The web listener is bound before the auth server is made, so that
	// the URLs the auth server hands out (the SCIM base URL, password
	// links) use its real address when there is no public address.
	p.webLn, err = net.Listen("tcp", set.WebAddr)
	if err != nil {
		return nil, trace.Wrap(err, "web: listening on %s", set.WebAddr)
	}
	// The SSH listener too (served from startSSH), so the web UI can name
	// its address.
	p.sshLn, err = net.Listen("tcp", set.SSHAddr)
	if err != nil {
		return nil, trace.Wrap(err, "ssh listener on %s", set.SSHAddr)
	}
	p.sealer = credseal.NewFile(filepath.Join(set.DataDir, credseal.KeyFile))
	p.auth, err = auth.New(ctx, auth.Config{
		Backend:        p.backend,
		ClusterName:    set.ClusterName,
		Clock:          cfg.Clock,
		Logger:         cfg.Logger,
		AuditRetention: set.AuditRetention,
		PublicAddr:     set.PublicAddr,
		WebAddr:        dialableHost(p.webLn.Addr()),
		Locks:          watcherLocks{w: p.locks},
		// User sync credentials are sealed under the data dir's key.
		CredentialSealer: p.sealer,
	})
	if err != nil {
		return nil, trace.Wrap(err, "starting the auth server")
	}
	initCtx, initCancel := context.WithTimeout(ctx, lockWatchInitTimeout)
	err = p.locks.WaitInit(initCtx)
	initCancel()
	if err != nil {
		return nil, trace.Wrap(err, "loading the locks in force")
	}

	// Auth gRPC listener.
	p.authLn, err = net.Listen("tcp", set.AuthAddr)
	if err != nil {
		return nil, trace.Wrap(err, "auth listener on %s", set.AuthAddr)
	}
	// Every listener is bounded before any of them serves.
	p.limitListeners()
	tlsCfg, err := p.auth.ServerTLSConfig(ctx, p.serverHosts(p.authLn.Addr()))
	if err != nil {
		return nil, trace.Wrap(err)
	}
	p.grpc, err = p.auth.NewGRPCServer(tlsCfg)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		if err := p.grpc.Serve(p.authLn); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			p.log.Error("Auth listener stopped.", "error", err)
		}
	}()

	// Web listener.
	metrics := newWebMetrics(cfg.Registry)
	p.web, err = web.New(web.Config{
		Listener: p.webLn,
		TLS: web.TLSConfig{
			CertFile:      set.WebCertFile,
			KeyFile:       set.WebKeyFile,
			SelfSignedDir: set.DataDir,
			Hosts:         p.webHosts(),
		},
		Ready:      p.ready,
		Logger:     cfg.Logger,
		Clock:      cfg.Clock,
		Middleware: metrics,
		// Their clients share their address: the per-source bounds would
		// throttle them all together.
		TrustedProxies: set.WebTrustedProxies,
	})
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if err := p.mountSCIM(ctx); err != nil {
		return nil, trace.Wrap(err)
	}
	if err := p.startUserSync(); err != nil {
		return nil, trace.Wrap(err, "starting user sync")
	}
	if err := p.mountWebUI(ctx); err != nil {
		return nil, trace.Wrap(err)
	}
	if err := p.mountSSO(ctx); err != nil {
		return nil, trace.Wrap(err)
	}
	for _, m := range cfg.Mounters {
		if err := m(ctx, p.auth, p.web, cfg.Logger); err != nil {
			return nil, trace.Wrap(err)
		}
	}
	p.web.Start()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.endLockedWebSessions(bgCtx)
	}()

	// SSH node service.
	if err := p.startSSH(); err != nil {
		return nil, trace.Wrap(err)
	}

	// Diagnostics listener.
	if set.DiagAddr != "" {
		if err := p.startDiag(); err != nil {
			return nil, trace.Wrap(err)
		}
	}

	// Files gatectl reads. Written after the listeners are up so that a
	// reader never finds an address nobody listens on.
	if err := atomicfile.WriteFile(filepath.Join(set.DataDir, AuthAddrFile), []byte(dialable(p.authLn.Addr())+"\n"), 0o644); err != nil {
		return nil, trace.Wrap(err)
	}
	if err := atomicfile.WriteFile(filepath.Join(set.DataDir, WebAddrFile), []byte(dialable(p.web.Addr())+"\n"), 0o644); err != nil {
		return nil, trace.Wrap(err)
	}
	if err := atomicfile.WriteFile(filepath.Join(set.DataDir, SSHAddrFile), []byte(dialable(p.sshLn.Addr())+"\n"), 0o644); err != nil {
		return nil, trace.Wrap(err)
	}
	if err := p.ensureAdminIdentity(ctx); err != nil {
		if !trace.IsAccessDenied(err) {
			return nil, trace.Wrap(err)
		}
		// An editor locked the operator identity on purpose: the server
		// still serves everyone else, and the operator recovers offline.
		p.log.WarnContext(ctx, "The built-in operator identity is locked, so admin.identity was not renewed. To lift the lock, stop the server and run gatehouse recover.", "identity", AdminUser, "error", err)
	}
	ticker := cfg.Clock.NewTicker(adminCheckInterval)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.refreshAdminIdentity(bgCtx, ticker)
	}()

	first := p.firstSignIn(ctx)

	p.log.Info("Gatehouse started.",
		"cluster", set.ClusterName,
		"auth_addr", p.authLn.Addr().String(),
		"web_addr", p.web.Addr().String(),
		"ssh_addr", p.sshLn.Addr().String(),
		"data_dir", set.DataDir)
	p.printBanner(first)
	p.started.Store(true)
	return p, nil
}

// AuthAddr is the auth listener's bound address.
func (p *Process) AuthAddr() net.Addr { return p.authLn.Addr() }

// WebAddr is the web listener's bound address.
func (p *Process) WebAddr() net.Addr { return p.web.Addr() }

// SSHAddr is the SSH listener's bound address.
func (p *Process) SSHAddr() net.Addr { return p.sshLn.Addr() }

// Auth is the auth server.
func (p *Process) Auth() *auth.Server { return p.auth }

// ready is the /readyz check: startup has finished, and a cheap read proves
// the backend answers.
func (p *Process) ready(ctx context.Context) error {
	if !p.started.Load() {
		return trace.ConnectionProblem(nil, "gatehouse is starting")
	}
	return trace.Wrap(services.CheckBackend(ctx, p.backend))
}

// Shutdown stops accepting work, waits for what is in flight up to ctx and
// closes the backend. It is safe on a partly started process.
func (p *Process) Shutdown(ctx context.Context) error {
	var errs []error
	if p.cancel != nil {
		p.cancel()
	}
	if p.web != nil {
		if err := p.web.Shutdown(ctx); err != nil {
			errs = append(errs, trace.Wrap(err, "web listener"))
		}
	} else if p.webLn != nil {
		_ = p.webLn.Close()
	}
	p.closeUserSync()
	p.closeSCIM()
	if p.ssh != nil {
		// Ends every SSH session; the listener closes with it.
		_ = p.ssh.Close()
	} else if p.sshLn != nil {
		_ = p.sshLn.Close()
	}
	if p.diag != nil {
		if err := p.diag.Shutdown(ctx); err != nil {
			_ = p.diag.Close()
		}
	} else if p.diagLn != nil {
		_ = p.diagLn.Close()
	}
	if p.grpc != nil {
		done := make(chan struct{})
		go func() {
			p.grpc.GracefulStop()
			close(done)
		}()
		select {
		case <-done:
		case <-ctx.Done():
			p.grpc.Stop()
			<-done
		}
	} else if p.authLn != nil {
		_ = p.authLn.Close()
	}
	p.wg.Wait()
	if p.locks != nil {
		_ = p.locks.Close()
	}
	if p.backend != nil {
		if err := p.backend.Close(); err != nil {
			errs = append(errs, trace.Wrap(err, "closing the backend"))
		}
	}
	if p.set != nil && p.authLn != nil {
		// The address is no longer served: do not point gatectl at it.
		_ = os.Remove(filepath.Join(p.set.DataDir, AuthAddrFile))
		_ = os.Remove(filepath.Join(p.set.DataDir, WebAddrFile))
		_ = os.Remove(filepath.Join(p.set.DataDir, SSHAddrFile))
	}
	p.log.Info("Gatehouse stopped.")
	return trace.NewAggregate(errs...)
}

func (p *Process) startDiag() error {
	ln, err := net.Listen("tcp", p.set.DiagAddr)
	if err != nil {
		return trace.Wrap(err, "diagnostics listener on %s", p.set.DiagAddr)
	}
	ln = p.limitListener(ln, diagConnsPerSource, maxDiagConns, nil, "diag")
	p.diagLn = ln
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(p.cfg.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"ok"}`+"\n")
	})
	writeTimeout := web.DefaultWriteTimeout
	if p.set.DiagPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		// A CPU profile or trace streams for ?seconds=N (30 by default).
		writeTimeout = 5 * time.Minute
	}
	p.diag = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: web.DefaultReadHeaderTimeout,
		ReadTimeout:       web.DefaultReadTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       web.DefaultIdleTimeout,
		ErrorLog:          slog.NewLogLogger(p.cfg.Logger.Handler(), slog.LevelDebug),
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		if err := p.diag.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			p.log.Error("Diagnostics listener stopped.", "error", err)
		}
	}()
	return nil
}

// serverHosts are the names the auth server certificate must cover.
func (p *Process) serverHosts(bound net.Addr) []string {
	hosts := []string{hostOf(p.set.AuthAddr), hostOf(bound.String()), hostOf(p.set.PublicAddr)}
	if h, err := os.Hostname(); err == nil {
		hosts = append(hosts, h)
	}
	return nonEmpty(hosts)
}

// webHosts are the names the self-signed web certificate covers.
func (p *Process) webHosts() []string {
	hosts := []string{hostOf(p.set.PublicAddr), hostOf(p.set.WebAddr)}
	if h, err := os.Hostname(); err == nil {
		hosts = append(hosts, h)
	}
	var out []string
	for _, h := range nonEmpty(hosts) {
		if ip := net.ParseIP(h); ip != nil && ip.IsUnspecified() {
			continue
		}
		out = append(out, h)
	}
	return out
}

// firstSignIn returns the banner's lines about the first administrator's
// one-time password link (see lib/auth/firstadmin), or "" when there is
// nothing to say. The link is a credential: it goes to stdout in the
// banner, never to the logs. A failure does not stop the server: the
// operator can still administer it with gatectl.
func (p *Process) firstSignIn(ctx context.Context) string {
	link, err := firstadmin.Ensure(ctx, firstadmin.Config{
		Backend:  p.backend,
		Users:    p.auth.Services().Users,
		Recorder: p.auth.Recorder(),
		Role:     auth.PresetEditorRole,
		Clock:    p.cfg.Clock,
		Logger:   p.cfg.Logger,
	})
	switch {
	case errors.Is(err, firstadmin.ErrElsewhere):
		return "First sign-in: another Gatehouse server sharing this storage printed the one-time link\n" +
			"for the first administrator; use the link it printed.\n\n"
	case err != nil:
		p.log.WarnContext(ctx, "Could not prepare the first administrator's sign-in link; create a local user with gatectl users add instead.", "error", err)
		return ""
	case link == nil:
		return ""
	}
	u := services.PublicOrigin(p.auth.URLAddr()) + credentialsv1.PasswordPath + "?" + url.Values{"token": {link.Token}}.Encode()
	var b strings.Builder
	fmt.Fprintf(&b, "First sign-in: open this one-time link to set the web password of %q (role %s),\n", link.User, auth.PresetEditorRole)
	fmt.Fprintf(&b, "then sign in at %s/web/ as %s. The link works once, until %s;\n", services.PublicOrigin(p.auth.URLAddr()), link.User, link.Expires.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "each start prints a new one (voiding this one) until the password is set.\n\n")
	fmt.Fprintf(&b, "  %s\n\n", u)
	return b.String()
}

func (p *Process) printBanner(firstSignIn string) {
	s := p.set
	var b strings.Builder
	webURL := services.PublicOrigin(dialableHost(p.web.Addr()))
	fmt.Fprintf(&b, "\nGatehouse is running (cluster %q).\n\n", s.ClusterName)
	fmt.Fprintf(&b, "  web (HTTPS):   %s   listening on %s\n", webURL, p.web.Addr())
	if s.WebCertFile == "" {
		fmt.Fprintf(&b, "                 self-signed certificate: %s\n", filepath.Join(s.DataDir, web.SelfSignedCertName))
	}
	if s.PublicAddr != "" {
		fmt.Fprintf(&b, "  public:        %s\n", services.PublicOrigin(s.PublicAddr))
	}
	fmt.Fprintf(&b, "  auth (gRPC):   %s (mTLS)\n", p.authLn.Addr())
	fmt.Fprintf(&b, "  ssh node:      %s (user certificates from the cluster's user CA)\n", p.sshLn.Addr())
	if p.diagLn != nil {
		fmt.Fprintf(&b, "  metrics:       http://%s/metrics\n", dialable(p.diagLn.Addr()))
	}
	fmt.Fprintf(&b, "  data dir:      %s (storage: %s)\n", s.DataDir, s.StorageType)
	fmt.Fprintf(&b, "  admin:         %s (built-in identity %s, editor rights)\n\n", filepath.Join(s.DataDir, AdminIdentityFile), AdminUser)
	fmt.Fprintf(&b, "Administer it with gatectl on this host:\n")
	fmt.Fprintf(&b, "  gatectl --data-dir %s get plugins\n", s.DataDir)
	fmt.Fprintf(&b, "  gatectl --data-dir %s create -f okta-saml.yaml\n", s.DataDir)
	fmt.Fprintf(&b, "  gatectl --data-dir %s plugins install okta --saml-connector okta\n\n", s.DataDir)
	b.WriteString(firstSignIn)
	_, _ = io.WriteString(p.cfg.Stdout, b.String())
}

// dialable turns a bound address into one a local client can dial: an
// unspecified host (":3025", "[::]:3025") becomes 127.0.0.1.
func dialable(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// dialableHost is dialable with "localhost" for loopback, for URLs people open.
func dialableHost(a net.Addr) string {
	d := dialable(a)
	host, port, _ := net.SplitHostPort(d)
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return net.JoinHostPort("localhost", port)
	}
	return d
}

func hostOf(addr string) string {
	if addr == "" {
		return ""
	}
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

func nonEmpty(in []string) []string {
	var out []string
	for _, s := range in {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}
