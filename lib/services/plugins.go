package services

import (
	"context"
	"time"

	"github.com/gravitational/trace"
	"google.golang.org/protobuf/proto"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/services/generic"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

const maxStatusMessage = 4096

// ValidatePlugin checks a plugin and sets its defaults (kind "plugin",
// version "v1"): it needs type settings (only okta exists), and for okta a
// saml_connector name, a lock_ttl that parses as a positive Go duration if
// set, non-negative rate limits and valid default role names.
func ValidatePlugin(p *typesv1.Plugin) error {
	if p == nil {
		return trace.BadParameter("missing plugin")
	}
	if err := checkHeader(KindPlugin, &p.Kind, &p.Version, p.GetMetadata()); err != nil {
		return trace.Wrap(err)
	}
	name := p.GetMetadata().GetName()
	okta := p.GetSpec().GetOkta()
	if okta == nil {
		return trace.BadParameter("plugin %q: spec needs type settings (okta)", name)
	}
	if okta.GetSamlConnector() == "" {
		return trace.BadParameter("plugin %q: okta.saml_connector must name the SAML connector of the Okta app", name)
	}
	if err := generic.CheckName(KindSAMLConnector, okta.GetSamlConnector()); err != nil {
		return trace.BadParameter("plugin %q: okta.saml_connector: %v", name, err)
	}
	if ttl := okta.GetLockTtl(); ttl != "" {
		if _, err := ParseLockTTL(ttl); err != nil {
			return trace.BadParameter("plugin %q: okta.lock_ttl: %v", name, err)
		}
	}
	if okta.GetScimRateLimit() < 0 || okta.GetScimRateBurst() < 0 {
		return trace.BadParameter("plugin %q: okta.scim_rate_limit and okta.scim_rate_burst must not be negative", name)
	}
	if err := checkNames(KindPlugin, name, "okta.default_roles", KindRole, okta.GetDefaultRoles()); err != nil {
		return trace.Wrap(err)
	}
	if ref := p.GetSpec().GetStaticCredentialsRef(); ref != nil {
		if len(ref.GetLabels()) == 0 {
			return trace.BadParameter("plugin %q: static_credentials_ref needs at least one label", name)
		}
		if err := checkLabelMap(KindPlugin, name, "static_credentials_ref.labels", ref.GetLabels()); err != nil {
			return trace.Wrap(err)
		}
	}
	if err := ValidateUserSync(name, okta); err != nil {
		return trace.Wrap(err)
	}
	if st := p.GetStatus(); st != nil {
		if len(st.GetErrorMessage()) > maxStatusMessage || len(st.GetOkta().GetLastError()) > maxStatusMessage {
			return trace.BadParameter("plugin %q: status messages must be at most %d bytes", name, maxStatusMessage)
		}
	}
	return nil
}

// ParseLockTTL parses an okta lock_ttl: a positive Go duration.
func ParseLockTTL(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, trace.BadParameter("%q is not a duration such as \"720h\"", s)
	}
	if d <= 0 {
		return 0, trace.BadParameter("%q must be positive", s)
	}
	return d, nil
}

func checkLabelMap(kind, name, field string, labels map[string]string) error {
	if len(labels) > maxLabels {
		return trace.BadParameter("%s %q: %s has %d entries, over the limit of %d", kind, name, field, len(labels), maxLabels)
	}
	for k, v := range labels {
		if k == "" || len(k) > maxLabelKeyLength || len(v) > maxLabelValueBytes {
			return trace.BadParameter("%s %q: %s has a key or value out of bounds", kind, name, field)
		}
	}
	return nil
}

// MarshalPlugin validates p (on a copy) and returns the backend item storing
// it at PluginKey(name).
func MarshalPlugin(p *typesv1.Plugin) (backend.Item, error) {
	return marshalValidated(PluginsPrefix, p, ValidatePlugin)
}

// UnmarshalPlugin decodes a stored plugin.
func UnmarshalPlugin(item backend.Item) (*typesv1.Plugin, error) {
	return unmarshalStored[*typesv1.Plugin](item)
}

// PluginService stores plugins at plugins/<name>.
type PluginService struct {
	svc *generic.Service[*typesv1.Plugin]
	// b takes the writes of a plugin together with its credentials
	// (plugin_writes.go).
	b backend.Backend
}

// NewPluginService returns the plugin service.
func NewPluginService(cfg Config) (*PluginService, error) {
	svc, err := newGeneric(cfg, generic.Config[*typesv1.Plugin]{
		Kind:      KindPlugin,
		KeyPrefix: PluginsPrefix,
		Validate:  ValidatePlugin,
		// Over etcd the SCIM token check reads the plugin on every request
		// (the settings view is off there): decoding it was 12% of an etcd
		// server's CPU during lookups.
		CacheDecoded: true,
	})
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &PluginService{svc: svc, b: cfg.Backend}, nil
}

// GetPlugin reads a plugin.
func (s *PluginService) GetPlugin(ctx context.Context, name string) (*typesv1.Plugin, error) {
	p, err := s.svc.Get(ctx, name)
	return p, trace.Wrap(err)
}

// GetPluginItem reads plugin name as stored, for a caller that decodes it
// itself, once per revision, and shares the result (the SCIM token check
// over a fenced backend, lib/auth/scimprov/fenced.go). trace.NotFound as
// GetPlugin.
func (s *PluginService) GetPluginItem(ctx context.Context, name string) (*backend.Item, error) {
	if err := generic.CheckName(KindPlugin, name); err != nil {
		return nil, trace.Wrap(err)
	}
	item, err := s.b.Get(ctx, s.svc.Key(name))
	if trace.IsNotFound(err) {
		return nil, trace.NotFound("%s %q not found", KindPlugin, name)
	}
	return item, trace.Wrap(err)
}

// ListPlugins returns a page of plugins in name order and the next page's
// token.
func (s *PluginService) ListPlugins(ctx context.Context, pageSize int, pageToken string) ([]*typesv1.Plugin, string, error) {
	ps, next, err := s.svc.List(ctx, pageSize, pageToken)
	return ps, next, trace.Wrap(err)
}

// ListAllPlugins reads every plugin, page by page.
func (s *PluginService) ListAllPlugins(ctx context.Context) ([]*typesv1.Plugin, error) {
	ps, err := s.svc.ListAll(ctx, nil)
	return ps, trace.Wrap(err)
}

// CreatePlugin writes a new plugin; trace.AlreadyExists if the name is taken.
func (s *PluginService) CreatePlugin(ctx context.Context, p *typesv1.Plugin) (*typesv1.Plugin, error) {
	out, err := s.svc.Create(ctx, p)
	return out, trace.Wrap(err)
}

// UpdatePlugin overwrites a plugin still at p.metadata.revision (required),
// status included.
func (s *PluginService) UpdatePlugin(ctx context.Context, p *typesv1.Plugin) (*typesv1.Plugin, error) {
	out, err := s.svc.Update(ctx, p)
	return out, trace.Wrap(err)
}

// UpdateAndSwapPlugin reads a plugin, applies modify and writes it back if
// nobody changed it meanwhile, retrying a bounded number of times.
func (s *PluginService) UpdateAndSwapPlugin(ctx context.Context, name string, modify func(*typesv1.Plugin) error) (*typesv1.Plugin, error) {
	out, err := s.svc.UpdateAndSwap(ctx, name, modify)
	return out, trace.Wrap(err)
}

// SetPluginStatus replaces only the plugin's status, through update-and-swap
// so that a concurrent settings change is never lost.
func (s *PluginService) SetPluginStatus(ctx context.Context, name string, status *typesv1.PluginStatus) (*typesv1.Plugin, error) {
	st := proto.Clone(status).(*typesv1.PluginStatus)
	out, err := s.svc.UpdateAndSwap(ctx, name, func(p *typesv1.Plugin) error {
		p.Status = st
		return nil
	})
	return out, trace.Wrap(err)
}

// DeletePlugin removes a plugin; trace.NotFound if missing.
func (s *PluginService) DeletePlugin(ctx context.Context, name string) error {
	return trace.Wrap(s.svc.Delete(ctx, name))
}
