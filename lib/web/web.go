// Package web is Gatehouse's HTTPS listener. It owns the TLS setup (a
// configured certificate, or a self-signed one generated once and kept in the
// data dir), sane server timeouts, the health endpoints and a mux on which
// higher layers mount their handlers: the SCIM plugin at /v1/webapi/scim/,
// SAML at /v1/webapi/saml/, and so on.
//
// The package knows nothing of the auth server or the backend: readiness is a
// function the caller provides, so lib/web stays below the packages that
// mount on it.
package web

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"

	"github.com/gatehouse/gatehouse/lib/defaults"
)

// Default server timeouts. They bound slow clients (ReadHeaderTimeout is the
// Slowloris guard) while leaving room for the largest SCIM request.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 60 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute
	// DefaultReadyTimeout bounds one readiness check.
	DefaultReadyTimeout = 3 * time.Second
	// DefaultMaxHeaderBytes caps request headers.
	DefaultMaxHeaderBytes = 64 << 10
	// DefaultMaxHTTP2RequestsPerSource bounds the HTTP/2 requests one
	// source has in flight at once, as many as the HTTP/1.1 connections
	// the process lets a source hold (cmd/gatehouse/internal/process).
	DefaultMaxHTTP2RequestsPerSource = 256
)

// ReadyFunc reports whether the process can serve: typically a cheap backend
// read. A nil error means ready.
type ReadyFunc func(ctx context.Context) error

// Config configures the web listener.
type Config struct {
	// Addr is the host:port to listen on; port 0 picks a free port (see
	// Server.Addr). Ignored when Listener is set.
	Addr string
	// Listener, if set, is used instead of listening on Addr (tests).
	Listener net.Listener
	// TLS says where the certificate comes from.
	TLS TLSConfig
	// Ready backs /readyz; nil means always ready.
	Ready ReadyFunc
	// Logger receives the listener's logs; nil means slog.Default().
	Logger *slog.Logger
	// Clock dates the self-signed certificate; nil means the real clock.
	Clock clockwork.Clock
	// ReadHeaderTimeout, ReadTimeout, WriteTimeout and IdleTimeout are the
	// http.Server timeouts; zero means the package defaults.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	// ReadyTimeout bounds one call to Ready.
	ReadyTimeout time.Duration
	// Middleware, if set, wraps the whole mux (metrics, request logs).
	Middleware func(http.Handler) http.Handler
	// MaxHTTP2RequestsPerSource bounds the HTTP/2 requests one source (an
	// IPv4 address, an IPv6 /64) has in flight at once; beyond it a request
	// gets 429 before any handler reads its body. An HTTP/1.1 connection
	// carries one request at a time, so bounding connections (the
	// listener's job) bounds those; one HTTP/2 connection carries up to
	// 250 streams, each a handler that may wait for its body until
	// ReadTimeout. Zero means DefaultMaxHTTP2RequestsPerSource.
	MaxHTTP2RequestsPerSource int
	// TrustedProxies are exempt from MaxHTTP2RequestsPerSource: every
	// client behind one shares its address.
	TrustedProxies []netip.Prefix
}

// CheckAndSetDefaults validates the config and fills in defaults.
func (c *Config) CheckAndSetDefaults() error {
	if c.Addr == "" && c.Listener == nil {
		return trace.BadParameter("web: missing listen address")
	}
	if err := c.TLS.check(); err != nil {
		return trace.Wrap(err)
	}
	defaults.Logger(&c.Logger, "web")
	defaults.Clock(&c.Clock)
	defaults.IfZero(&c.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	defaults.IfZero(&c.ReadTimeout, DefaultReadTimeout)
	defaults.IfZero(&c.WriteTimeout, DefaultWriteTimeout)
	defaults.IfZero(&c.IdleTimeout, DefaultIdleTimeout)
	defaults.IfZero(&c.ReadyTimeout, DefaultReadyTimeout)
	defaults.IfZero(&c.MaxHTTP2RequestsPerSource, DefaultMaxHTTP2RequestsPerSource)
	return nil
}

// Server is the HTTPS web listener.
type Server struct {
	cfg      Config
	mux      *http.ServeMux
	srv      *http.Server
	listener net.Listener
	certFile string

	mu      sync.Mutex
	mounted map[string]bool
	// mounts are the mounted handlers, longest prefix first, for route's fast path; replaced
	// whole (under mu) on every Mount.
	mounts  atomic.Pointer[[]mount]
	serveWG sync.WaitGroup
	started bool
}

// New loads or generates the TLS certificate and binds the listener. Serving
// starts with Start; handlers may be mounted before or after.
func New(cfg Config) (*Server, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, trace.Wrap(err)
	}
	cert, certFile, err := cfg.TLS.load(cfg.Clock, cfg.Logger)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	s := &Server{
		cfg:      cfg,
		mux:      http.NewServeMux(),
		mounted:  map[string]bool{},
		certFile: certFile,
	}
	s.mux.HandleFunc("GET /healthz", s.handleHealthz)
	s.mux.HandleFunc("GET /readyz", s.handleReadyz)
	// The root sends people to the web UI (mounted at /web/ by the process).
	s.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/web/", http.StatusFound)
	})
	s.mounts.Store(&[]mount{})
	var handler http.Handler = http.HandlerFunc(s.route)
	handler = withSecurityHeaders(handler)
	if cfg.Middleware != nil {
		handler = cfg.Middleware(handler)
	}
	handler = withRecover(handler, cfg.Logger)
	handler = newStreamLimit(cfg.MaxHTTP2RequestsPerSource, cfg.TrustedProxies).wrap(handler)
	s.srv = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    DefaultMaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug),
		TLSConfig: &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{cert},
		},
	}
	ln := cfg.Listener
	if ln == nil {
		ln, err = net.Listen("tcp", cfg.Addr)
		if err != nil {
			return nil, trace.Wrap(err, "web: listening on %s", cfg.Addr)
		}
	}
	s.listener = ln
	return s, nil
}

// Addr is the address the listener is bound to (with the real port when the
// configured port was 0).
func (s *Server) Addr() net.Addr { return s.listener.Addr() }

// CertFile is the path of the certificate served, for clients that want to
// trust it (empty when the certificate was not loaded from a file).
func (s *Server) CertFile() string { return s.certFile }

// Mount serves h for every path under prefix. The prefix must start and end
// with "/" (for example "/v1/webapi/scim/"); h sees the full request path.
// Mounting the same prefix twice, or over the health endpoints, is refused.
func (s *Server) Mount(prefix string, h http.Handler) error {
	if h == nil {
		return trace.BadParameter("web: nil handler for %q", prefix)
	}
	if !strings.HasPrefix(prefix, "/") || !strings.HasSuffix(prefix, "/") {
		return trace.BadParameter("web: mount prefix %q must start and end with /", prefix)
	}
	if prefix == "/" || strings.HasPrefix("/healthz", prefix) || strings.HasPrefix("/readyz", prefix) {
		return trace.BadParameter("web: mount prefix %q would shadow the health endpoints", prefix)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mounted[prefix] {
		return trace.AlreadyExists("web: %q is already mounted", prefix)
	}
	s.mounted[prefix] = true
	s.mux.Handle(prefix, h)
	mounts := append(slices.Clone(*s.mounts.Load()), mount{prefix: prefix, h: h})
	slices.SortStableFunc(mounts, func(a, b mount) int { return len(b.prefix) - len(a.prefix) })
	s.mounts.Store(&mounts)
	s.cfg.Logger.Debug("Mounted handler.", "prefix", prefix)
	return nil
}

// mount is one mounted handler.
type mount struct {
	prefix string
	h      http.Handler
}

// route serves r with the handler the mux would pick, finding the common case itself: the mux
// costs a request five allocations, for a choice that, for a clean path under a mount, is
// always the longest mounted prefix (unless the path with a slash added is a mount: then the mux
// redirects). That holds because the only other patterns are New's
// ("GET /healthz", "GET /readyz", "GET /{$}"), which Mount keeps every prefix from shadowing,
// and a mount matches every method and host. Everything else (CONNECT, a path the mux would
// redirect, one with escapes that may hide a separator, no mount) goes to the mux, which
// answers 301/404/405 as ever. TestRouteMatchesMux holds the two to the same answers.
func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	if h, pattern := s.fastRoute(r); h != nil {
		r.Pattern = pattern
		h.ServeHTTP(w, r)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// fastRoute returns the mounted handler for r and its pattern, or nil when the mux must decide.
func (s *Server) fastRoute(r *http.Request) (http.Handler, string) {
	p := r.URL.Path
	if r.Method == http.MethodConnect || r.URL.RawPath != "" || !isCleanPath(p) {
		return nil, ""
	}
	mounts := *s.mounts.Load()
	for _, m := range mounts {
		// The mux redirects /x to /x/ when /x/ is mounted, whatever else /x matches.
		if len(m.prefix) == len(p)+1 && strings.HasPrefix(m.prefix, p) {
			return nil, ""
		}
	}
	for _, m := range mounts {
		if strings.HasPrefix(p, m.prefix) {
			return m.h, m.prefix
		}
	}
	return nil, ""
}

// isCleanPath reports whether the mux leaves p as it is rather than redirecting to a cleaned
// form (net/http's cleanPath(p) == p).
func isCleanPath(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		return len(p) == len(np)+1 && strings.HasPrefix(p, np)
	}
	return np == p
}

// Start serves in the background until Shutdown or Close.
func (s *Server) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return
	}
	s.started = true
	s.serveWG.Add(1)
	go func() {
		defer s.serveWG.Done()
		err := s.srv.ServeTLS(s.listener, "", "")
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.cfg.Logger.Error("Web listener stopped.", "error", err)
		}
	}()
	s.cfg.Logger.Info("Web listener started.", "addr", s.Addr().String())
}

// Shutdown stops accepting connections and waits, up to ctx, for requests in
// flight; what is left when ctx ends is closed.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		// Deadline hit: cut what is left rather than hang the process.
		_ = s.srv.Close()
	}
	s.mu.Lock()
	started := s.started
	s.mu.Unlock()
	if !started {
		// Serve never ran, so Shutdown did not close the listener.
		_ = s.listener.Close()
	}
	s.serveWG.Wait()
	return trace.Wrap(err)
}

type statusBody struct {
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

func (s *Server) handleHealthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, statusBody{Status: "ok"})
}

func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.ReadyTimeout)
		defer cancel()
		if err := s.cfg.Ready(ctx); err != nil {
			// The caller is unauthenticated: log the detail, answer generically.
			s.cfg.Logger.Warn("Readiness check failed.", "error", err)
			writeJSON(w, http.StatusServiceUnavailable, statusBody{Status: "unavailable", Error: "not ready"})
			return
		}
	}
	writeJSON(w, http.StatusOK, statusBody{Status: "ok"})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// securityHeaders are set on every answer. The names are canonical (TestSecurityHeaders), so
// withSecurityHeaders may assign them as Header.Set would.
var securityHeaders = [...][2]string{
	{"Strict-Transport-Security", "max-age=31536000"},
	{"X-Content-Type-Options", "nosniff"},
	{"X-Frame-Options", "DENY"},
	{"Referrer-Policy", "no-referrer"},
}

func withSecurityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// What four Header.Set calls do, with the four values in one allocation instead of
		// four. Each value slice is capped at its length, so a handler's Add copies rather
		// than writing over the next header's value.
		values := make([]string, len(securityHeaders))
		for i, kv := range securityHeaders {
			values[i] = kv[1]
			h[kv[0]] = values[i : i+1 : i+1]
		}
		next.ServeHTTP(w, r)
	})
}

// withRecover turns a handler panic into a 500 and a log line, so one bad
// request cannot take the listener down.
func withRecover(next http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
					panic(v)
				}
				log.Error("Handler panicked.", "path", r.URL.Path, "panic", v)
				writeJSON(w, http.StatusInternalServerError, statusBody{Status: "error", Error: "internal error"})
			}
		}()
		next.ServeHTTP(w, r)
	})
}
