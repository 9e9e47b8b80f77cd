package process

import (
	"context"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/services/scimstore"
	"github.com/gatehouse/gatehouse/lib/services/websession"
	"github.com/gatehouse/gatehouse/lib/web"
	"github.com/gatehouse/gatehouse/lib/web/sso"
	"github.com/gatehouse/gatehouse/lib/web/ui"
	"github.com/gatehouse/gatehouse/lib/web/webapi"
)

// mountWebUI serves the embedded web UI at /web/ and its API under
// /v1/webapi/plugins/ and /v1/webapi/admin/ (behind the web session
// middleware) and
// /v1/webapi/auth/ (the sign-in page's connector list).
func (p *Process) mountWebUI(ctx context.Context) error {
	svc := p.auth.Services()
	mgr, err := websession.New(websession.Config{Backend: p.backend, Clock: p.cfg.Clock})
	if err != nil {
		return trace.Wrap(err)
	}
	sessions, err := web.NewSessionAuth(web.SessionAuthConfig{
		Sessions: mgr,
		Users:    svc.Users,
		Locks:    p.locks, // the process's lock watcher, fail closed
		Clock:    p.cfg.Clock,
		Logger:   p.cfg.Logger,
		OnDenied: sso.OnDenied(p.auth.Recorder()),
	})
	if err != nil {
		return trace.Wrap(err)
	}
	apis, err := p.auth.NewAPIs()
	if err != nil {
		return trace.Wrap(err)
	}
	scimRecords, err := scimstore.New(p.backend)
	if err != nil {
		return trace.Wrap(err)
	}
	api, err := webapi.New(webapi.Config{
		RequireSession: sessions.RequireSession,
		Plugins:        apis.Plugins,
		SAML:           apis.SAML,
		Events:         apis.Events,
		Authorizer:     p.auth.Authorizer(),
		Recorder:       p.auth.Recorder(),
		Users:          svc.Users,
		LockView:       p.locks, // the process's lock watcher: no lock read per request
		SCIM:           scimRecords,
		Locks:          apis.Locks,
		PublicAddr:     p.set.PublicAddr,
		// Without a public address, URLs use the listener's own address
		// (as the startup banner shows it), never a request's Host.
		WebAddr: dialableHost(p.web.Addr()),
		Clock:   p.cfg.Clock,
		Logger:  p.cfg.Logger,
	})
	if err != nil {
		return trace.Wrap(err)
	}
	for _, prefix := range []string{webapi.PluginsPrefix, webapi.AdminPrefix} {
		if err := p.web.Mount(prefix, api); err != nil {
			return trace.Wrap(err)
		}
	}
	public, err := webapi.NewPublicHandler(svc.SAMLConnectors, p.cfg.Logger)
	if err != nil {
		return trace.Wrap(err)
	}
	if err := p.web.Mount(webapi.PublicPrefix, public); err != nil {
		return trace.Wrap(err)
	}
	uiHandler, err := ui.NewHandler()
	if err != nil {
		return trace.Wrap(err)
	}
	return trace.Wrap(p.web.Mount(ui.Prefix, uiHandler))
}
