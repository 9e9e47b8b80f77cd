package process

import (
	"context"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/abuse"
	"github.com/gatehouse/gatehouse/lib/auth/scimprov"
	"github.com/gatehouse/gatehouse/lib/services"
	scimserver "github.com/gatehouse/gatehouse/plugins/scim/server"
)

// The real provisioner must satisfy the interface the SCIM endpoint declares.
var _ scimserver.Provisioner = (*scimprov.Provisioner)(nil)

// mountSCIM builds the SCIM provisioner over the process's backend and auth services and mounts
// the SCIM endpoint on the web listener at /v1/webapi/scim/. Its metrics go to the process
// registry (served on the diagnostics listener's /metrics).
func (p *Process) mountSCIM(ctx context.Context) error {
	svc := p.auth.Services()
	prov, err := scimprov.New(scimprov.Config{
		Backend:        p.backend,
		Plugins:        svc.Plugins,
		Credentials:    svc.PluginStaticCredentials,
		SAMLConnectors: svc.SAMLConnectors,
		Roles:          svc.Roles,
		Audit:          svc.Events,
		AuditRetention: p.set.AuditRetention,
		Clock:          p.cfg.Clock,
		Logger:         p.cfg.Logger,
	})
	if err != nil {
		return trace.Wrap(err, "starting the SCIM provisioner")
	}
	p.scim = prov
	// "" (no public address) lets the endpoint answer with the origin the
	// client used; its Location URLs are only sent back, never stored.
	publicURL := services.PublicOrigin(p.set.PublicAddr)
	h, err := scimserver.New(scimserver.Config{
		Provisioner: prov,
		Registerer:  p.cfg.Registry,
		Logger:      p.cfg.Logger,
		Clock:       p.cfg.Clock,
		PublicURL:   publicURL,
		Sources:     abuse.NewSources(p.set.WebTrustedProxies),
	})
	if err != nil {
		return trace.Wrap(err)
	}
	return trace.Wrap(p.web.Mount(scimserver.MountPrefix, h))
}

// closeSCIM stops the provisioner's status flusher, writing what is pending. It runs after the
// web listener stopped and before the backend closes.
func (p *Process) closeSCIM() {
	if p.scim != nil {
		if err := p.scim.Close(); err != nil {
			p.log.Warn("Closing the SCIM provisioner.", "error", err)
		}
	}
}
