package process

import (
	"context"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/abuse"
	"github.com/gatehouse/gatehouse/lib/auth/saml"
	"github.com/gatehouse/gatehouse/lib/services/websession"
	"github.com/gatehouse/gatehouse/lib/web"
	"github.com/gatehouse/gatehouse/lib/web/sso"
)

// SSOPrefix is where the login API is mounted: it answers only its own
// paths under it (saml/, sessions, users/password); longer mounts (SCIM,
// plugins, auth) take precedence.
const SSOPrefix = "/v1/webapi/"

// mountSSO serves SAML login, password login, web sessions, session SSH
// certificates and password-set links (lib/web/sso). Every request of a
// web session is checked against the process's lock watcher (fail closed
// while its view is stale); a login reads the locks from the backend, so
// that a login right after an unlock is not refused by a view a few
// milliseconds behind.
func (p *Process) mountSSO(ctx context.Context) error {
	svc := p.auth.Services()
	locks := saml.BackendLocks{Locks: svc.Locks, Now: p.cfg.Clock.Now}
	mgr, err := websession.New(websession.Config{Backend: p.backend, Clock: p.cfg.Clock})
	if err != nil {
		return trace.Wrap(err)
	}
	provider, err := saml.New(saml.Config{Backend: p.backend, Clock: p.cfg.Clock, Logger: p.cfg.Logger})
	if err != nil {
		return trace.Wrap(err)
	}
	sessions, err := web.NewSessionAuth(web.SessionAuthConfig{
		Sessions: mgr,
		Users:    svc.Users,
		Locks:    p.locks,
		Clock:    p.cfg.Clock,
		Logger:   p.cfg.Logger,
		OnDenied: sso.OnDenied(p.auth.Recorder()),
	})
	if err != nil {
		return trace.Wrap(err)
	}
	h, err := sso.New(sso.Config{
		Connectors:  svc.SAMLConnectors,
		SAML:        provider,
		Login:       saml.LoginConfig{Users: svc.Users, Roles: svc.Roles, Locks: locks, Recorder: p.auth.Recorder()},
		Sessions:    mgr,
		SessionAuth: sessions,
		Users:       svc.Users,
		Certs:       p.auth,
		Recorder:    p.auth.Recorder(),
		Clock:       p.cfg.Clock,
		Logger:      p.cfg.Logger,
		Sources:     abuse.NewSources(p.set.WebTrustedProxies),
		SSHAddr:     p.sshAddrForUsers(),
	})
	if err != nil {
		return trace.Wrap(err)
	}
	return trace.Wrap(p.web.Mount(SSOPrefix, h))
}
