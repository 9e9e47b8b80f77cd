// Package standin is a small local stand-in for Okta, for `make demo`: a
// SAML identity provider with signed assertions (crewjam/saml's
// IdentityProvider), a SCIM client that provisions Gatehouse with the
// requests Okta sends, and a page with a few people to assign, unassign,
// deactivate, reactivate and put in groups.
//
// It is a client of Gatehouse like Okta is: it sets Gatehouse up through the
// admin API with the operator identity (as gatectl does), then talks to it
// only over HTTPS (SAML in the browser, SCIM with the bearer token). It lives
// under cmd/okta-standin/internal so that nothing in lib/ or plugins/ can
// import it: the demo IdP never runs unless someone starts it.
package standin

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/defaults"
)

// Config configures a Server.
type Config struct {
	// Gatehouse is the server to set up and provision. Required.
	Gatehouse Gatehouse
	// Listener is the stand-in's own HTTP listener (loopback). Required.
	Listener net.Listener
	// Login is the OS login the demo role allows on the SSH node. Required.
	Login string
	// SSHHint is the shell commands the page shows for SSH.
	SSHHint string
	// StateDir keeps the IdP's signing key; default <data dir>/okta-standin.
	StateDir string
	// People default to DemoPeople.
	People []Person
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// CheckAndSetDefaults validates the config.
func (c *Config) CheckAndSetDefaults() error {
	if c.Gatehouse.URL == "" || c.Gatehouse.DataDir == "" {
		return trace.BadParameter("okta-standin: missing Gatehouse URL or data dir")
	}
	if c.Listener == nil {
		return trace.BadParameter("okta-standin: missing Listener")
	}
	if c.Login == "" {
		return trace.BadParameter("okta-standin: missing the OS login for the demo role")
	}
	defaults.IfZero(&c.StateDir, filepath.Join(c.Gatehouse.DataDir, "okta-standin"))
	if c.People == nil {
		c.People = DemoPeople
	}
	defaults.IfZero(&c.Logger, slog.Default())
	return nil
}

// Server is the running stand-in.
type Server struct {
	cfg     Config
	URL     string
	IdP     *IdP
	Dir     *Directory
	Console *Console
	http    *http.Server
}

// New sets Gatehouse up (role, SAML connector, okta plugin, SCIM token),
// registers Gatehouse's SP metadata at the IdP and pushes the groups. Serve
// then runs the page and the IdP.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, trace.Wrap(err)
	}
	base := "http://" + cfg.Listener.Addr().String()
	key, cert, err := LoadOrCreateSigningKey(cfg.StateDir, time.Now())
	if err != nil {
		return nil, trace.Wrap(err)
	}
	httpc, err := cfg.Gatehouse.HTTPClient()
	if err != nil {
		return nil, trace.Wrap(err)
	}
	console := &Console{log: cfg.Logger.With("component", "okta-standin"), gatehouseURL: cfg.Gatehouse.URL, sshHint: cfg.SSHHint}
	// The SCIM client needs the token, which setup makes once the IdP's
	// metadata exists: the directory gets its client just after.
	dir := NewDirectory(nil, cfg.People)
	idp, err := NewIdP(IdPConfig{BaseURL: base, Key: key, Certificate: cert, Directory: dir, RestartURL: cfg.Gatehouse.URL + "/web/login", Logger: cfg.Logger})
	if err != nil {
		return nil, trace.Wrap(err)
	}
	md, err := idp.MetadataXML()
	if err != nil {
		return nil, trace.Wrap(err)
	}
	api, err := cfg.Gatehouse.AdminClient(ctx)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	defer api.Close()
	token, err := Setup(ctx, api, cfg.Gatehouse, SetupConfig{IdPMetadata: md, Login: cfg.Login})
	if err != nil {
		return nil, trace.Wrap(err)
	}
	spMD, err := SPMetadata(ctx, httpc, cfg.Gatehouse)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if _, err := idp.RegisterSP(spMD); err != nil {
		return nil, trace.Wrap(err)
	}
	scim, err := NewSCIMClient(SCIMConfig{BaseURL: cfg.Gatehouse.SCIMBaseURL(), Token: token, HTTPClient: httpc, OnCall: console.record})
	if err != nil {
		return nil, trace.Wrap(err)
	}
	dir.scim = scim
	console.dir = dir
	if err := dir.PushGroups(ctx); err != nil {
		return nil, trace.Wrap(err)
	}
	mux := http.NewServeMux()
	console.register(mux)
	idpHandler := idp.Handler()
	mux.Handle(pathMetadata, idpHandler)
	mux.Handle(pathSSO, idpHandler)
	mux.Handle(pathPick, idpHandler)
	return &Server{
		cfg:     cfg,
		URL:     base,
		IdP:     idp,
		Dir:     dir,
		Console: console,
		http:    &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second},
	}, nil
}

// Serve serves until ctx ends.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(s.cfg.Listener) }()
	select {
	case err := <-errc:
		return trace.Wrap(err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.http.Shutdown(shutdownCtx); err != nil {
		// A browser keeps connections open (preconnected sockets that
		// never send a request); the page has nothing to finish.
		_ = s.http.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return trace.Wrap(err)
	}
	return nil
}

// WriteAddrFile writes the stand-in's URL next to Gatehouse's address
// files, for scripts and tests.
func (s *Server) WriteAddrFile() error {
	return trace.ConvertSystemError(os.WriteFile(filepath.Join(s.cfg.Gatehouse.DataDir, "okta_standin_url"), []byte(s.URL+"\n"), 0o644))
}
