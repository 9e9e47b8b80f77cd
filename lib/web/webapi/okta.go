package webapi

import (
	"bytes"
	"context"
	"encoding/xml"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gravitational/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gatehouse/gatehouse/lib/auth/authz"
	"github.com/gatehouse/gatehouse/lib/defaults"
	"github.com/gatehouse/gatehouse/lib/services"
	auditpb "github.com/gatehouse/gatehouse/proto/gatehouse/audit/v1"
	pluginpb "github.com/gatehouse/gatehouse/proto/gatehouse/plugin/v1"
	samlpb "github.com/gatehouse/gatehouse/proto/gatehouse/saml/v1"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// OktaPlugin is the name of the Okta plugin the UI manages.
const OktaPlugin = "okta"

// IntegrationState is the state of an integration on the Integrations page.
type IntegrationState string

// Integration states.
const (
	StateNotConfigured IntegrationState = "not_configured"
	StateSSOOnly       IntegrationState = "sso_only"
	StateSSOAndSCIM    IntegrationState = "sso_scim"
	// StateSSOAndUserSync: user sync (the pull) keeps the accounts.
	StateSSOAndUserSync IntegrationState = "sso_usersync"
	StateError          IntegrationState = "error"
)

// Integration is one row of the Integrations page.
type Integration struct {
	Name  string           `json:"name"`
	Title string           `json:"title"`
	State IntegrationState `json:"state"`
	// Error explains StateError.
	Error string `json:"error,omitempty"`
}

// Integrations is GET /v1/webapi/plugins.
type Integrations struct {
	Integrations []Integration `json:"integrations"`
}

// Permissions say what the caller's roles allow, for the UI only.
type Permissions struct {
	// Read: the integration's settings and status (plugin readnosecrets).
	Read bool `json:"read"`
	// Manage: create the connector, generate tokens, enable or disable
	// SCIM (plugin create+update, saml create).
	Manage bool `json:"manage"`
	// Events: read the audit log (event list).
	Events bool `json:"events"`
}

// Connector is the SSO tile's view of a SAML connector (no secrets).
type Connector struct {
	Name        string `json:"name"`
	Display     string `json:"display,omitempty"`
	IDPEntityID string `json:"idp_entity_id"`
	IDPSSOURL   string `json:"idp_sso_url,omitempty"`
	ACSURL      string `json:"acs_url"`
	Audience    string `json:"audience"`
	// Mappings are the attributes_to_roles rules.
	Mappings []RoleMapping `json:"attributes_to_roles"`
}

// RoleMapping maps an assertion attribute value to roles.
type RoleMapping struct {
	Name  string   `json:"name"`
	Value string   `json:"value"`
	Roles []string `json:"roles"`
}

// SSOTile is the SSO tile's state.
type SSOTile struct {
	Configured bool       `json:"configured"`
	Connector  *Connector `json:"connector,omitempty"`
	// Error says why a configured connector cannot be shown.
	Error string `json:"error,omitempty"`
	// ACSURLBase is the ACS URL without the connector name, for the form.
	ACSURLBase string `json:"acs_url_base"`
}

// SCIMTile is the SCIM tile's state. The token is never part of it.
type SCIMTile struct {
	Enabled bool   `json:"enabled"`
	BaseURL string `json:"base_url"`
}

// StatusTile is the Status tile's state.
type StatusTile struct {
	Code             string `json:"code"`
	ErrorMessage     string `json:"error_message,omitempty"`
	LastSCIMRequest  string `json:"last_scim_request,omitempty"`
	UsersProvisioned int64  `json:"users_provisioned"`
	UsersDeactivated int64  `json:"users_deactivated"`
	LocksWritten     int64  `json:"locks_written"`
	LastError        string `json:"last_error,omitempty"`
	LastErrorTime    string `json:"last_error_time,omitempty"`
	// RolesDropped are the roles SCIM last left out because the plugin may
	// not grant them (its grantable_roles ceiling).
	RolesDropped     []string `json:"roles_dropped,omitempty"`
	RolesDroppedTime string   `json:"roles_dropped_time,omitempty"`
}

// OktaState is GET /v1/webapi/plugins/okta.
type OktaState struct {
	State       IntegrationState `json:"state"`
	Error       string           `json:"error,omitempty"`
	User        string           `json:"user"`
	Permissions Permissions      `json:"permissions"`
	SSO         SSOTile          `json:"sso"`
	SCIM        SCIMTile         `json:"scim"`
	Status      StatusTile       `json:"status"`
	// Settings are the provisioning settings; empty until the plugin exists.
	Settings OktaSettings `json:"settings"`
}

// origin is the https origin of the URLs the UI shows and stores: from the
// configuration, never from the request (see Config.WebAddr), without the
// default port.
func (h *Handler) origin() string {
	if h.cfg.PublicAddr != "" {
		return services.PublicOrigin(h.cfg.PublicAddr)
	}
	return services.PublicOrigin(h.cfg.WebAddr)
}

func (h *Handler) scimBaseURL() string {
	return h.origin() + "/v1/webapi/scim/" + OktaPlugin
}

func (h *Handler) acsURLBase() string {
	return h.origin() + "/v1/webapi/saml/acs/"
}

// permissions answers what the caller may do, through the same checker
// the APIs use.
func (h *Handler) permissions(ctx context.Context) (Permissions, string, error) {
	actx, err := h.cfg.Authorizer.Authorize(ctx)
	if err != nil {
		return Permissions{}, "", trace.Wrap(err)
	}
	may := func(kind string, verbs ...string) bool {
		for _, v := range verbs {
			if actx.Checker.CheckAccess(kind, v) != nil {
				return false
			}
		}
		return true
	}
	return Permissions{
		Read:   may(services.KindPlugin, services.VerbReadNoSecrets) && may(services.KindSAMLConnector, services.VerbReadNoSecrets),
		Manage: may(services.KindPlugin, services.VerbCreate, services.VerbUpdate) && may(services.KindSAMLConnector, services.VerbCreate),
		Events: may(authz.KindEvent, services.VerbList),
	}, actx.Username(), nil
}

// oktaState reads the plugin and its connector through the APIs.
func (h *Handler) oktaState(ctx context.Context) (*OktaState, error) {
	perms, user, err := h.permissions(ctx)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	st := &OktaState{
		State:       StateNotConfigured,
		User:        user,
		Permissions: perms,
		SSO:         SSOTile{ACSURLBase: h.acsURLBase()},
		SCIM:        SCIMTile{BaseURL: h.scimBaseURL()},
		Status:      StatusTile{Code: "unspecified"},
		Settings:    settingsView(nil),
	}
	resp, err := h.cfg.Plugins.GetPlugin(ctx, &pluginpb.GetPluginRequest{Name: OktaPlugin})
	if trace.IsNotFound(err) {
		return st, nil
	}
	if err != nil {
		return nil, trace.Wrap(err)
	}
	p := resp.GetPlugin()
	okta := p.GetSpec().GetOkta()
	st.SCIM.Enabled = okta.GetScimEnabled()
	st.Settings = settingsView(okta)
	st.Status = statusView(p.GetStatus())
	if name := okta.GetSamlConnector(); name != "" {
		st.SSO.Configured = true
		cresp, err := h.cfg.SAML.GetSAMLConnector(ctx, &samlpb.GetSAMLConnectorRequest{Name: name})
		switch {
		case err == nil:
			st.SSO.Connector = connectorView(cresp.GetSamlConnector())
		case trace.IsNotFound(err):
			st.SSO.Error = "SAML connector \"" + name + "\" named by the plugin does not exist"
		default:
			return nil, trace.Wrap(err)
		}
	}
	switch {
	case st.SSO.Error != "":
		st.State, st.Error = StateError, st.SSO.Error
	case p.GetStatus().GetCode() == typesv1.PluginStatusCode_PLUGIN_STATUS_CODE_OTHER_ERROR:
		st.State, st.Error = StateError, p.GetStatus().GetErrorMessage()
		if st.Error == "" {
			st.Error = p.GetStatus().GetOkta().GetLastError()
		}
	case st.SCIM.Enabled:
		st.State = StateSSOAndSCIM
	case okta.GetUserSync().GetEnabled():
		st.State = StateSSOAndUserSync
	default:
		st.State = StateSSOOnly
	}
	return st, nil
}

func formatTime(ts *timestamppb.Timestamp) string {
	if ts == nil || ts.AsTime().IsZero() || ts.AsTime().Unix() == 0 {
		return ""
	}
	return ts.AsTime().UTC().Format(time.RFC3339)
}

func statusView(s *typesv1.PluginStatus) StatusTile {
	code := "unspecified"
	switch s.GetCode() {
	case typesv1.PluginStatusCode_PLUGIN_STATUS_CODE_RUNNING:
		code = "running"
	case typesv1.PluginStatusCode_PLUGIN_STATUS_CODE_OTHER_ERROR:
		code = "error"
	}
	o := s.GetOkta()
	return StatusTile{
		Code:             code,
		ErrorMessage:     s.GetErrorMessage(),
		LastSCIMRequest:  formatTime(o.GetLastScimRequest()),
		UsersProvisioned: o.GetUsersProvisioned(),
		UsersDeactivated: o.GetUsersDeactivated(),
		LocksWritten:     o.GetLocksWritten(),
		LastError:        o.GetLastError(),
		LastErrorTime:    formatTime(o.GetLastErrorTime()),
		RolesDropped:     o.GetRolesDropped(),
		RolesDroppedTime: formatTime(o.GetRolesDroppedTime()),
	}
}

// idpMetadata is the part of IdP metadata the tile shows.
type idpMetadata struct {
	EntityID string `xml:"entityID,attr"`
	IDP      []struct {
		SSO []struct {
			Binding  string `xml:"Binding,attr"`
			Location string `xml:"Location,attr"`
		} `xml:"SingleSignOnService"`
	} `xml:"IDPSSODescriptor"`
}

func parseIDP(text string) (idpMetadata, error) {
	var md idpMetadata
	if err := xml.NewDecoder(bytes.NewReader([]byte(text))).Decode(&md); err != nil {
		return md, trace.BadParameter("the metadata is not XML: %v", err)
	}
	return md, nil
}

func connectorView(c *typesv1.SAMLConnector) *Connector {
	spec := c.GetSpec()
	v := &Connector{
		Name:     c.GetMetadata().GetName(),
		Display:  spec.GetDisplay(),
		ACSURL:   spec.GetAcs(),
		Audience: spec.GetAudience(),
		Mappings: []RoleMapping{},
	}
	if v.Audience == "" {
		v.Audience = v.ACSURL
	}
	if md, err := parseIDP(spec.GetEntityDescriptor()); err == nil {
		v.IDPEntityID = md.EntityID
		for _, d := range md.IDP {
			for _, s := range d.SSO {
				if v.IDPSSOURL == "" || strings.HasSuffix(s.Binding, "HTTP-Redirect") {
					v.IDPSSOURL = s.Location
				}
			}
		}
	}
	for _, m := range spec.GetAttributesToRoles() {
		v.Mappings = append(v.Mappings, RoleMapping{Name: m.GetName(), Value: m.GetValue(), Roles: m.GetRoles()})
	}
	return v
}

func (h *Handler) getOkta(_ http.ResponseWriter, r *http.Request) (any, error) {
	st, err := h.oktaState(r.Context())
	return st, trace.Wrap(err)
}

func (h *Handler) listIntegrations(_ http.ResponseWriter, r *http.Request) (any, error) {
	st, err := h.oktaState(r.Context())
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return Integrations{Integrations: []Integration{{Name: OktaPlugin, Title: "Okta", State: st.State, Error: st.Error}}}, nil
}

// CreateSAMLRequest is POST /v1/webapi/plugins/okta/saml.
type CreateSAMLRequest struct {
	// Name of the connector; "okta" if empty.
	Name string `json:"name"`
	// Display is the sign-in button's label; "Okta" if empty.
	Display string `json:"display"`
	// EntityDescriptor is the Okta app's IdP metadata XML.
	EntityDescriptor string `json:"entity_descriptor"`
	// Mappings are the attributes_to_roles rules.
	Mappings []RoleMapping `json:"attributes_to_roles"`
}

// createSAML creates the SAML connector from the Okta app's metadata and
// points the okta plugin at it, creating the plugin if needed. Both writes
// go through the APIs, so both are authorized and audited.
func (h *Handler) createSAML(w http.ResponseWriter, r *http.Request) (any, error) {
	ctx := r.Context()
	var req CreateSAMLRequest
	if err := readJSON(w, r, &req); err != nil {
		return nil, trace.Wrap(err)
	}
	defaults.IfZero(&req.Name, OktaPlugin)
	defaults.IfZero(&req.Display, "Okta")
	if strings.TrimSpace(req.EntityDescriptor) == "" {
		return nil, trace.BadParameter("paste the Okta app's IdP metadata XML")
	}
	md, err := parseIDP(req.EntityDescriptor)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if md.EntityID == "" || len(md.IDP) == 0 {
		return nil, trace.BadParameter("the metadata has no IdP EntityDescriptor (entityID and IDPSSODescriptor); in Okta, copy the app's \"Identity Provider metadata\"")
	}
	conn := &typesv1.SAMLConnector{
		Kind:     services.KindSAMLConnector,
		Version:  services.V1,
		Metadata: &typesv1.Metadata{Name: req.Name, Description: "Okta SAML app, created in the web UI."},
		Spec: &typesv1.SAMLConnectorSpec{
			EntityDescriptor: req.EntityDescriptor,
			Acs:              h.acsURLBase() + req.Name,
			Display:          req.Display,
		},
	}
	for _, m := range req.Mappings {
		if m.Name == "" && m.Value == "" && len(m.Roles) == 0 {
			continue
		}
		conn.Spec.AttributesToRoles = append(conn.Spec.AttributesToRoles, &typesv1.AttributeMapping{Name: m.Name, Value: m.Value, Roles: m.Roles})
	}
	if _, err := h.cfg.SAML.CreateSAMLConnector(ctx, &samlpb.CreateSAMLConnectorRequest{SamlConnector: conn}); err != nil {
		return nil, trace.Wrap(err)
	}
	if err := h.linkConnector(ctx, req.Name); err != nil {
		return nil, trace.Wrap(err)
	}
	st, err := h.oktaState(ctx)
	return st, trace.Wrap(err)
}

// linkConnector makes the okta plugin use connector name.
func (h *Handler) linkConnector(ctx context.Context, name string) error {
	resp, err := h.cfg.Plugins.GetPlugin(ctx, &pluginpb.GetPluginRequest{Name: OktaPlugin})
	if trace.IsNotFound(err) {
		_, err = h.cfg.Plugins.CreatePlugin(ctx, &pluginpb.CreatePluginRequest{Plugin: &typesv1.Plugin{
			Kind:     services.KindPlugin,
			Version:  services.V1,
			Metadata: &typesv1.Metadata{Name: OktaPlugin, Description: "Okta: SAML sign-in and SCIM provisioning."},
			Spec:     &typesv1.PluginSpec{Settings: &typesv1.PluginSpec_Okta{Okta: &typesv1.OktaPluginSettings{SamlConnector: name}}},
		}})
		return trace.Wrap(err)
	}
	if err != nil {
		return trace.Wrap(err)
	}
	p := proto.Clone(resp.GetPlugin()).(*typesv1.Plugin)
	if p.GetSpec().GetOkta() == nil {
		return trace.BadParameter("plugin %q has no okta settings", OktaPlugin)
	}
	p.Spec.GetOkta().SamlConnector = name
	_, err = h.cfg.Plugins.UpdatePlugin(ctx, &pluginpb.UpdatePluginRequest{Plugin: p})
	return trace.Wrap(err)
}

// TokenResponse is POST /v1/webapi/plugins/okta/scim/token. The token is
// in this answer only; it is stored as a hash.
type TokenResponse struct {
	Token   string `json:"token"`
	BaseURL string `json:"base_url"`
}

func (h *Handler) generateToken(_ http.ResponseWriter, r *http.Request) (any, error) {
	// The API authorizes before it looks the plugin up, so a caller without
	// the rights learns nothing about it.
	resp, err := h.cfg.Plugins.GenerateSCIMToken(r.Context(), &pluginpb.GenerateSCIMTokenRequest{Name: OktaPlugin})
	if trace.IsNotFound(err) {
		return nil, trace.BadParameter("set up SSO first: SCIM adopts the users who signed in through the Okta SAML connector")
	}
	if err != nil {
		return nil, trace.Wrap(err)
	}
	base := resp.GetBaseUrl()
	if base == "" {
		base = h.scimBaseURL()
	}
	return TokenResponse{Token: resp.GetToken(), BaseURL: base}, nil
}

// SetSCIMRequest is PUT /v1/webapi/plugins/okta/scim.
type SetSCIMRequest struct {
	Enabled bool `json:"enabled"`
}

// maxUpdateAttempts bounds retries when the plugin changed between read
// and update (the SCIM endpoint writes its status often).
const maxUpdateAttempts = 5

func (h *Handler) setSCIM(w http.ResponseWriter, r *http.Request) (any, error) {
	ctx := r.Context()
	var req SetSCIMRequest
	if err := readJSON(w, r, &req); err != nil {
		return nil, trace.Wrap(err)
	}
	err := h.updateOkta(ctx, func(okta *typesv1.OktaPluginSettings) error {
		okta.ScimEnabled = req.Enabled
		return nil
	})
	if err != nil {
		return nil, trace.Wrap(err)
	}
	st, err := h.oktaState(ctx)
	return st, trace.Wrap(err)
}

// updateOkta applies modify to a copy of the okta plugin's settings and
// writes the plugin back, reading it again and retrying (maxUpdateAttempts
// in all) when it changed between the read and the update. No plugin yet is
// "set up SSO first"; modify's error is returned as is.
func (h *Handler) updateOkta(ctx context.Context, modify func(okta *typesv1.OktaPluginSettings) error) error {
	var err error
	for range maxUpdateAttempts {
		var resp *pluginpb.GetPluginResponse
		resp, err = h.cfg.Plugins.GetPlugin(ctx, &pluginpb.GetPluginRequest{Name: OktaPlugin})
		if trace.IsNotFound(err) {
			return trace.BadParameter("set up SSO first")
		}
		if err != nil {
			return trace.Wrap(err)
		}
		p := proto.Clone(resp.GetPlugin()).(*typesv1.Plugin)
		okta := p.GetSpec().GetOkta()
		if okta == nil {
			return trace.BadParameter("plugin %q has no okta settings", OktaPlugin)
		}
		if err := modify(okta); err != nil {
			return trace.Wrap(err)
		}
		_, err = h.cfg.Plugins.UpdatePlugin(ctx, &pluginpb.UpdatePluginRequest{Plugin: p})
		if !trace.IsCompareFailed(err) {
			break
		}
	}
	return trace.Wrap(err)
}

// Event is one audit event on the Status tile.
type Event struct {
	Time     string `json:"time"`
	Type     string `json:"type"`
	User     string `json:"user,omitempty"`
	Outcome  string `json:"outcome"`
	Resource string `json:"resource,omitempty"`
	Message  string `json:"message,omitempty"`
}

// EventsResponse is GET /v1/webapi/plugins/okta/events.
type EventsResponse struct {
	Events []Event `json:"events"`
}

// Events window and bounds of the Status tile.
const (
	eventsWindow   = 7 * 24 * time.Hour
	eventsShown    = 25
	eventsPageSize = 500
	// eventsMaxScan bounds the events read to find the recent ones.
	eventsMaxScan = 20000
)

// isOktaEvent reports whether e is about the Okta integration: SCIM
// provisioning, the plugin, or its SAML connector.
func isOktaEvent(e *typesv1.AuditEvent, connector string) bool {
	t := e.GetType()
	switch {
	case strings.HasPrefix(t, "scim."), strings.HasPrefix(t, "scim_"):
		return true
	case e.GetResource() == services.KindPlugin+"/"+OktaPlugin:
		return true
	case connector != "" && e.GetResource() == services.KindSAMLConnector+"/"+connector:
		return true
	case e.GetFields()["plugin"] == OktaPlugin:
		return true
	case strings.HasPrefix(e.GetResource(), services.KindLock+"/scim-"+OktaPlugin+"-"):
		// Its deactivation locks (named by scimprov.LockName), lifted by a
		// person on the Locks page or with gatectl.
		return true
	}
	return false
}

func (h *Handler) listEvents(_ http.ResponseWriter, r *http.Request) (any, error) {
	ctx := r.Context()
	connector := ""
	if resp, err := h.cfg.Plugins.GetPlugin(ctx, &pluginpb.GetPluginRequest{Name: OktaPlugin}); err == nil {
		connector = resp.GetPlugin().GetSpec().GetOkta().GetSamlConnector()
	} else if !trace.IsNotFound(err) {
		return nil, trace.Wrap(err)
	}
	now := h.cfg.Clock.Now()
	req := &auditpb.SearchEventsRequest{
		From:  timestamppb.New(now.Add(-eventsWindow)),
		To:    timestamppb.New(now.Add(time.Minute)),
		Limit: eventsPageSize,
	}
	var recent []*typesv1.AuditEvent
	for scanned := 0; scanned < eventsMaxScan; {
		resp, err := h.cfg.Events.SearchEvents(ctx, req)
		if err != nil {
			return nil, trace.Wrap(err)
		}
		scanned += len(resp.GetEvents())
		for _, e := range resp.GetEvents() {
			if isOktaEvent(e, connector) {
				recent = append(recent, e)
				if len(recent) > eventsShown {
					recent = recent[1:]
				}
			}
		}
		if resp.GetNextPageToken() == "" {
			break
		}
		req.PageToken = resp.GetNextPageToken()
	}
	slices.Reverse(recent)
	out := EventsResponse{Events: make([]Event, 0, len(recent))}
	for _, e := range recent {
		out.Events = append(out.Events, Event{
			Time:     formatTime(e.GetTime()),
			Type:     e.GetType(),
			User:     e.GetUser(),
			Outcome:  e.GetOutcome(),
			Resource: e.GetResource(),
			Message:  e.GetMessage(),
		})
	}
	return out, nil
}
