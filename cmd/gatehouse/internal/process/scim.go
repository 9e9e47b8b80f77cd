package process

import (
	"context"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/abuse"
	"github.com/gatehouse/gatehouse/lib/auth/scimprov"
	"github.com/gatehouse/gatehouse/lib/services"
	scimserver "github.com/gatehouse/gatehouse/plugins/scim/server"
)

// The real provisioner must satisfy every interface the SCIM endpoint declares: it is passed as
// all four below. Checked here, where both packages are imported (scimprov must not import the
// plugin, nor the plugin scimprov).
var (
	_ scimserver.Users          = (*scimprov.Provisioner)(nil)
	_ scimserver.Groups         = (*scimprov.Provisioner)(nil)
	_ scimserver.TokenChecker   = (*scimprov.Provisioner)(nil)
	_ scimserver.StatusRecorder = (*scimprov.Provisioner)(nil)
)

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
	if err := p.canonicalizeSCIMIndexes(ctx, prov); err != nil {
		return trace.Wrap(err, "moving SCIM userName and externalId indexes")
	}
	// "" (no public address) lets the endpoint answer with the origin the
	// client used; its Location URLs are only sent back, never stored.
	publicURL := services.PublicOrigin(p.set.PublicAddr)
	h, err := scimserver.New(scimserver.Config{
		Users:      prov,
		Groups:     prov,
		Tokens:     prov,
		Status:     prov,
		Registerer: p.cfg.Registry,
		Logger:     p.cfg.Logger,
		Clock:      p.cfg.Clock,
		PublicURL:  publicURL,
		Sources:    abuse.NewSources(p.set.WebTrustedProxies),
	})
	if err != nil {
		return trace.Wrap(err)
	}
	return trace.Wrap(p.web.Mount(scimserver.MountPrefix, h))
}

// canonicalizeSCIMIndexes moves each SCIM plugin's userName index entries
// written before usernames were canonical (scimstore.CanonicalizeUserNameIndex)
// and its externalId index entries written while externalId was unique
// (scimstore.MigrateExternalIDIndex) before the endpoint serves, so that no
// lookup misses one and no second record takes a name. It scans each plugin
// once; later starts skip it.
func (p *Process) canonicalizeSCIMIndexes(ctx context.Context, prov *scimprov.Provisioner) error {
	names, err := prov.SCIMPlugins(ctx)
	if err != nil {
		return trace.Wrap(err)
	}
	for _, name := range names {
		xrep, err := prov.Store().MigrateExternalIDIndex(ctx, name)
		if err != nil {
			return trace.Wrap(err, "plugin %q", name)
		}
		if !xrep.Skipped {
			p.log.InfoContext(ctx, "Moved the SCIM externalId index to one entry per record (externalId is no longer unique).",
				"plugin", name, "moved", xrep.Moved, "dropped", xrep.Dropped, "retry_next_start", xrep.Unfinished)
		}
		rep, err := prov.Store().CanonicalizeUserNameIndex(ctx, name)
		if err != nil {
			return trace.Wrap(err, "plugin %q", name)
		}
		if rep.Skipped {
			continue
		}
		p.log.InfoContext(ctx, "Checked the SCIM userName index for canonical names.",
			"plugin", name, "records", rep.Scanned, "moved", rep.Moved, "retry_next_start", rep.Unfinished)
		for _, c := range rep.Collisions {
			p.log.WarnContext(ctx, "Two SCIM records have the same canonical userName; the older index entry is kept and this record cannot be found by userName. Delete the record that does not stand for the person (in Okta, or with the SCIM API).",
				"plugin", name, "scim_id", c.ID, "user_name", c.UserName, "holder_scim_id", c.HolderID)
		}
	}
	return nil
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
