package webapi

import (
	"net/http"
	"slices"
	"strings"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/services"
	"github.com/gatehouse/gatehouse/lib/services/generic"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// OktaSettings are the provisioning settings the Okta tile edits: PUT
// /v1/webapi/plugins/okta/settings, and part of GET /v1/webapi/plugins/okta.
type OktaSettings struct {
	// DefaultRoles are given to every SCIM-provisioned user.
	DefaultRoles []string `json:"default_roles"`
	// GrantableRoles are the ceiling of what SCIM may grant; empty means
	// every role that cannot administer the cluster.
	GrantableRoles []string `json:"grantable_roles"`
	// LockTTL bounds deactivation locks (a Go duration such as "720h");
	// empty means they stay until lifted.
	LockTTL string `json:"lock_ttl"`
}

// maxSettingsRoles bounds each role list (the stored limit of a list).
const maxSettingsRoles = 256

// check refuses what the plugin API would refuse with a less direct
// message, naming the field: empty or malformed role names, duplicates,
// lists over the limit, a lock_ttl that is not a positive duration. What
// needs the cluster's state (roles the caller may grant, a lock_ttl that
// outlasts every certificate) the plugin API decides.
func (s *OktaSettings) check() error {
	for _, f := range []struct {
		label string
		roles []string
	}{{"Default roles", s.DefaultRoles}, {"Grantable roles", s.GrantableRoles}} {
		if len(f.roles) > maxSettingsRoles {
			return trace.BadParameter("%s: %d roles, over the limit of %d", f.label, len(f.roles), maxSettingsRoles)
		}
		for i, r := range f.roles {
			if err := generic.CheckName(services.KindRole, r); err != nil {
				return trace.BadParameter("%s: %q is not a role name: %s", f.label, r, trace.UserMessage(err))
			}
			if slices.Contains(f.roles[:i], r) {
				return trace.BadParameter("%s: %q is listed twice", f.label, r)
			}
		}
	}
	if s.LockTTL != "" {
		if _, err := services.ParseLockTTL(s.LockTTL); err != nil {
			return trace.BadParameter("Lock TTL: %s; leave it empty to keep locks until they are lifted", trace.UserMessage(err))
		}
	}
	return nil
}

func settingsView(okta *typesv1.OktaPluginSettings) OktaSettings {
	s := OktaSettings{DefaultRoles: okta.GetDefaultRoles(), GrantableRoles: okta.GetGrantableRoles(), LockTTL: okta.GetLockTtl()}
	if s.DefaultRoles == nil {
		s.DefaultRoles = []string{}
	}
	if s.GrantableRoles == nil {
		s.GrantableRoles = []string{}
	}
	return s
}

// setSettings is PUT /v1/webapi/plugins/okta/settings. The update goes
// through the plugin API, which authorizes it (plugin update), refuses
// grants the caller could not give (403) and a lock_ttl shorter than a
// certificate can live (400), and audits it.
func (h *Handler) setSettings(w http.ResponseWriter, r *http.Request) (any, error) {
	ctx := r.Context()
	var req OktaSettings
	if err := readJSON(w, r, &req); err != nil {
		return nil, trace.Wrap(err)
	}
	req.LockTTL = strings.TrimSpace(req.LockTTL)
	if err := req.check(); err != nil {
		return nil, trace.Wrap(err)
	}
	err := h.updateOkta(ctx, func(okta *typesv1.OktaPluginSettings) error {
		okta.DefaultRoles = req.DefaultRoles
		okta.GrantableRoles = req.GrantableRoles
		okta.LockTtl = req.LockTTL
		return nil
	})
	if err != nil {
		return nil, trace.Wrap(err)
	}
	st, err := h.oktaState(ctx)
	return st, trace.Wrap(err)
}
