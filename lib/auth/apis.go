package auth

import (
	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/auth/auditv1"
	"github.com/gatehouse/gatehouse/lib/auth/crud"
	"github.com/gatehouse/gatehouse/lib/auth/lockv1"
	"github.com/gatehouse/gatehouse/lib/auth/pluginv1"
	"github.com/gatehouse/gatehouse/lib/auth/samlv1"
)

// APIs are the auth API implementations for in-process callers such as
// the web API. They are the very handlers the gRPC server registers, built
// on the same authorizer, recorder and services, so a call made with
// authz.ContextWithIdentity(ctx, id) is authorized, validated and audited
// exactly as the same call over gRPC would be.
type APIs struct {
	Plugins *pluginv1.Service
	SAML    *samlv1.Service
	Events  *auditv1.Service
	Locks   *lockv1.Service
}

// serviceDeps are the dependencies the auth server hands every API service:
// its authorizer, its audit recorder and its clock.
func (s *Server) serviceDeps() crud.Deps {
	return crud.Deps{Authorizer: s.authorizer, Recorder: s.recorder, Clock: s.cfg.Clock}
}

// NewAPIs builds the in-process APIs.
func (s *Server) NewAPIs() (*APIs, error) {
	deps := s.serviceDeps()
	plugins, err := pluginv1.New(pluginv1.Config{
		Deps:              deps,
		Plugins:           s.services.Plugins,
		StaticCredentials: s.services.PluginStaticCredentials,
		Connectors:        s.services.SAMLConnectors,
		Roles:             s.services.Roles,
		Backend:           s.cfg.Backend,
		PublicAddr:        s.URLAddr(),
		Sealer:            s.cfg.CredentialSealer,
		Logger:            s.cfg.Logger,
	})
	if err != nil {
		return nil, trace.Wrap(err)
	}
	saml, err := samlv1.New(samlv1.Config{Deps: deps, Connectors: s.services.SAMLConnectors, Prepare: s.prepareSAMLConnector})
	if err != nil {
		return nil, trace.Wrap(err)
	}
	events, err := auditv1.New(auditv1.Config{Authorizer: s.authorizer, Events: s.services.Events, Clock: s.cfg.Clock})
	if err != nil {
		return nil, trace.Wrap(err)
	}
	locks, err := lockv1.New(lockv1.Config{Deps: deps, Locks: s.services.Locks})
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &APIs{Plugins: plugins, SAML: saml, Events: events, Locks: locks}, nil
}

// PublicAddr is the host:port people and Okta reach the web listener at
// (empty when not configured).
func (s *Server) PublicAddr() string { return s.cfg.PublicAddr }

// URLAddr is the host:port of the URLs the server hands out: the public
// address, or the web listener's own when there is none (empty when
// neither is known, as in gatehouse recover).
func (s *Server) URLAddr() string {
	if s.cfg.PublicAddr != "" {
		return s.cfg.PublicAddr
	}
	return s.cfg.WebAddr
}
