// Package pluginv1 serves gatehouse.plugin.v1.PluginService: plugins and
// their SCIM bearer tokens. Every RPC runs in the same order: authorize the
// caller, check the verb on kind "plugin", validate the request, act, and
// return the error wrapped (the interceptor turns it into a gRPC status).
//
// A plugin's SCIM token is stored only as a bcrypt hash, in a
// plugin_static_credentials resource named <plugin>-scim-token and labelled
// LabelPlugin=<plugin>; the plugin's spec.static_credentials_ref selects that
// label and is managed by the server. The plaintext is returned once by
// GenerateSCIMToken and appears nowhere else: not in the backend, not in
// audit events, not in logs. An update that turns SCIM off deletes the token
// hash in the same write, so turning SCIM on again needs a new token; so
// does any update that leaves SCIM off (a token generated to enable SCIM,
// then cancelled). Beside the hash, the credential keeps a short fingerprint
// of the token (services.SCIMTokenFingerprint), which lets the SCIM endpoint
// refuse a wrong token without running bcrypt.
package pluginv1

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"maps"
	"slices"

	"github.com/gravitational/trace"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/protobuf/proto"

	"github.com/gatehouse/gatehouse/lib/auth/audit"
	"github.com/gatehouse/gatehouse/lib/auth/authz"
	"github.com/gatehouse/gatehouse/lib/auth/crud"
	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/defaults"
	"github.com/gatehouse/gatehouse/lib/services"
	"github.com/gatehouse/gatehouse/lib/services/generic"
	pluginpb "github.com/gatehouse/gatehouse/proto/gatehouse/plugin/v1"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// LabelPlugin links static credentials to the plugin they belong to.
const LabelPlugin = services.LabelPlugin

// TokenBytes is the entropy of a SCIM token.
const TokenBytes = 32

// maxRotateAttempts bounds retries of a token rotation that raced another
// change to the plugin or its credentials.
const maxRotateAttempts = 5

// Plugins is the part of the plugins service the handlers use.
type Plugins interface {
	GetPlugin(ctx context.Context, name string) (*typesv1.Plugin, error)
	ListPlugins(ctx context.Context, pageSize int, pageToken string) ([]*typesv1.Plugin, string, error)
	CreatePlugin(ctx context.Context, p *typesv1.Plugin) (*typesv1.Plugin, error)
	UpdatePlugin(ctx context.Context, p *typesv1.Plugin) (*typesv1.Plugin, error)
	SetPluginStatus(ctx context.Context, name string, status *typesv1.PluginStatus) (*typesv1.Plugin, error)
	UpdatePluginDeletingCredentials(ctx context.Context, p *typesv1.Plugin, creds []*typesv1.PluginStaticCredentials) (*typesv1.Plugin, error)
	DeletePluginWithCredentials(ctx context.Context, p *typesv1.Plugin, creds []*typesv1.PluginStaticCredentials) error
	ReplacePluginCredentials(ctx context.Context, p *typesv1.Plugin, link map[string]string, existing []*typesv1.PluginStaticCredentials, cred *typesv1.PluginStaticCredentials) error
}

// StaticCredentials is the part of the static credentials service the
// handlers use.
type StaticCredentials interface {
	ListPluginStaticCredentialsByLabels(ctx context.Context, labels map[string]string, withSecrets bool) ([]*typesv1.PluginStaticCredentials, error)
}

// Connectors finds the SAML connector an Okta plugin names.
type Connectors interface {
	GetSAMLConnector(ctx context.Context, name string, withSecrets bool) (*typesv1.SAMLConnector, error)
}

// Roles lists roles, to bound lock_ttl by the longest session a role allows.
type Roles interface {
	ListAllRoles(ctx context.Context) ([]*typesv1.Role, error)
	GetRole(ctx context.Context, name string) (*typesv1.Role, error)
}

var (
	_ Roles             = (*services.RoleService)(nil)
	_ Plugins           = (*services.PluginService)(nil)
	_ StaticCredentials = (*services.PluginStaticCredentialsService)(nil)
	_ Connectors        = (*services.SAMLConnectorService)(nil)
)

// Config configures the service.
type Config struct {
	crud.Deps
	Plugins           Plugins
	StaticCredentials StaticCredentials
	Connectors        Connectors
	// Roles bounds lock_ttl by the longest max_session_ttl.
	Roles Roles
	// Backend holds the user sync's credential, trigger and state
	// (usersync.go); plugins and their tokens are written through Plugins.
	Backend backend.Backend
	// PublicAddr is the host:port of the web listener shown to people (the
	// public address, or the listener's own without one: auth.Server's
	// URLAddr); the SCIM base URL is built from it, so gatectl prints the
	// URL the web UI shows. Optional.
	PublicAddr string
	// Sealer seals user sync credentials; without it they cannot be set.
	Sealer Sealer
	Logger *slog.Logger
}

// CheckAndSetDefaults validates the config.
func (c *Config) CheckAndSetDefaults() error {
	if err := crud.CheckConfig("pluginv1", &c.Clock,
		crud.Need("Authorizer", c.Authorizer == nil),
		crud.Need("Recorder", c.Recorder == nil),
		crud.Need("Plugins", c.Plugins == nil),
		crud.Need("StaticCredentials", c.StaticCredentials == nil),
		crud.Need("Connectors", c.Connectors == nil),
		crud.Need("Roles", c.Roles == nil),
		crud.Need("Backend", c.Backend == nil),
	); err != nil {
		return trace.Wrap(err)
	}
	defaults.Logger(&c.Logger, "pluginv1")
	return nil
}

// Service implements pluginpb.PluginServiceServer.
type Service struct {
	pluginpb.UnsafePluginServiceServer
	cfg Config
}

var _ pluginpb.PluginServiceServer = (*Service)(nil)

// New returns the service.
func New(cfg Config) (*Service, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, trace.Wrap(err)
	}
	return &Service{cfg: cfg}, nil
}

const kind = services.KindPlugin

func (s *Service) authorize(ctx context.Context, verbs ...string) (*authz.Context, error) {
	return crud.Authorize(ctx, s.cfg.Authorizer, kind, verbs...)
}

// authorizeOn is authorize for a call on the plugin name: the caller is
// authorized first, then the name is checked.
func (s *Service) authorizeOn(ctx context.Context, name string, verbs ...string) (*authz.Context, error) {
	actx, err := s.authorize(ctx, verbs...)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if err := generic.CheckName(kind, name); err != nil {
		return nil, trace.Wrap(err)
	}
	return actx, nil
}

func (s *Service) record(ctx context.Context, actx *authz.Context, typ, name string, err error) {
	crud.Record(ctx, s.cfg.Recorder, actx, kind, typ, name, err)
}

// CredentialsLabels are the labels linking static credentials to plugin name.
func CredentialsLabels(name string) map[string]string {
	return map[string]string{LabelPlugin: name}
}

// CredentialsName is the name of the static credentials holding plugin
// name's SCIM token hash.
func CredentialsName(name string) string { return name + "-scim-token" }

// SCIMBaseURL is the SCIM base URL of plugin name on publicAddr, or "" when
// there is no public address.
func SCIMBaseURL(publicAddr, name string) string {
	if publicAddr == "" {
		return ""
	}
	return services.PublicOrigin(publicAddr) + "/v1/webapi/scim/" + name
}

// prepare validates a plugin from a request and links it to its
// credentials: the server owns spec.static_credentials_ref, so any other
// value is refused. An Okta plugin's SAML connector must exist, its grants
// must be the caller's to give (checkGrants) and name roles that exist
// (checkRolesExist), and its lock_ttl must outlast every certificate
// (checkLockTTL).
func (s *Service) prepare(ctx context.Context, actx *authz.Context, p *typesv1.Plugin) (*typesv1.Plugin, error) {
	if p == nil {
		return nil, trace.BadParameter("missing plugin")
	}
	name := p.GetMetadata().GetName()
	if err := generic.CheckName(kind, name); err != nil {
		return nil, trace.Wrap(err)
	}
	want := CredentialsLabels(name)
	if ref := p.GetSpec().GetStaticCredentialsRef(); ref != nil && len(ref.GetLabels()) > 0 && !maps.Equal(ref.GetLabels(), want) {
		return nil, trace.BadParameter("plugin %q: spec.static_credentials_ref is managed by the server; leave it unset", name)
	}
	if conn := p.GetSpec().GetOkta().GetSamlConnector(); conn != "" {
		if _, err := s.cfg.Connectors.GetSAMLConnector(ctx, conn, false); err != nil {
			if trace.IsNotFound(err) {
				return nil, trace.BadParameter("plugin %q: SAML connector %q does not exist; create it first", name, conn)
			}
			return nil, trace.Wrap(err)
		}
	}
	if err := s.checkConnectorFree(ctx, p); err != nil {
		return nil, trace.Wrap(err)
	}
	// The stored plugin, if any: both checks look only at what this write changes.
	cur, err := s.cfg.Plugins.GetPlugin(ctx, name)
	switch {
	case trace.IsNotFound(err):
		cur = nil
	case err != nil:
		return nil, trace.Wrap(err)
	}
	if err := s.checkGrants(actx, p, cur); err != nil {
		return nil, trace.Wrap(err)
	}
	if err := checkConnectorSwitch(actx, p, cur); err != nil {
		return nil, trace.Wrap(err)
	}
	if err := checkOrgSwitch(actx, p, cur); err != nil {
		return nil, trace.Wrap(err)
	}
	if err := s.checkRolesExist(ctx, p, cur); err != nil {
		return nil, trace.Wrap(err)
	}
	if err := s.checkLockTTL(ctx, p); err != nil {
		return nil, trace.Wrap(err)
	}
	p = proto.Clone(p).(*typesv1.Plugin)
	if p.Spec == nil {
		p.Spec = &typesv1.PluginSpec{}
	}
	p.Spec.StaticCredentialsRef = &typesv1.PluginStaticCredentialsRef{Labels: want}
	return p, nil
}

// checkGrants refuses a plugin whose default_roles or grantable_roles list a
// role the caller could not give anyone directly, when either list is new or
// changed: whoever may only update the plugin must not be able to make SCIM
// hand out more than they hold (invariant 4, "grants have a ceiling"). A
// caller may list a role they hold, the same rule as for giving a role
// directly through the user API (authz.Checker.CheckGrant); a caller whose
// roles allow every verb on every kind may list any. Unchanged lists are not
// checked again, so that an unrelated update by someone else still works.
func (s *Service) checkGrants(actx *authz.Context, p, cur *typesv1.Plugin) error {
	okta, old := p.GetSpec().GetOkta(), cur.GetSpec().GetOkta()
	if cur != nil && slices.Equal(old.GetDefaultRoles(), okta.GetDefaultRoles()) && slices.Equal(old.GetGrantableRoles(), okta.GetGrantableRoles()) {
		return nil
	}
	name := p.GetMetadata().GetName()
	if err := actx.Checker.CheckGrant(fmt.Sprintf("plugin %q default_roles or grantable_roles", name), slices.Concat(okta.GetDefaultRoles(), okta.GetGrantableRoles())); err != nil {
		return trace.Wrap(err)
	}
	// An empty grantable_roles is the default ceiling, every role that
	// administers nothing: emptying the list widens what the connector's
	// mappings (written by someone else) may grant.
	if len(old.GetGrantableRoles()) > 0 && len(okta.GetGrantableRoles()) == 0 && !actx.Checker.Unrestricted() {
		return trace.AccessDenied("plugin %q: emptying grantable_roles lifts SCIM's ceiling to every role that administers nothing; only a caller whose roles allow every verb on every kind may do that", name)
	}
	return nil
}

// checkConnectorFree refuses an Okta plugin naming a SAML connector that
// another plugin already names. A plugin's SCIM adopts the temporary users
// of its connector and the connector signs in the plugin's SCIM users, so a
// second plugin on the same connector (whose SCIM token its writer takes)
// would reach the first one's accounts (invariant 1). Two writes racing
// each other are not caught.
func (s *Service) checkConnectorFree(ctx context.Context, p *typesv1.Plugin) error {
	conn := p.GetSpec().GetOkta().GetSamlConnector()
	if conn == "" {
		return nil
	}
	for token := ""; ; {
		plugins, next, err := s.cfg.Plugins.ListPlugins(ctx, 0, token)
		if err != nil {
			return trace.Wrap(err)
		}
		for _, o := range plugins {
			if o.GetMetadata().GetName() != p.GetMetadata().GetName() && o.GetSpec().GetOkta().GetSamlConnector() == conn {
				return trace.BadParameter("plugin %q: SAML connector %q belongs to plugin %q; each plugin needs a connector of its own", p.GetMetadata().GetName(), conn, o.GetMetadata().GetName())
			}
		}
		if next == "" {
			return nil
		}
		token = next
	}
}

// checkConnectorSwitch refuses a caller whose roles do not allow every verb
// on every kind pointing an Okta plugin that has a SAML connector at another
// one: the plugin's connector signs in the plugin's SCIM users, so a
// connector of the caller's own (with an identity provider it controls)
// would sign it in as any of them, with the roles SCIM gave them.
func checkConnectorSwitch(actx *authz.Context, p, cur *typesv1.Plugin) error {
	old := cur.GetSpec().GetOkta().GetSamlConnector()
	if old == "" || old == p.GetSpec().GetOkta().GetSamlConnector() || actx.Checker.Unrestricted() {
		return nil
	}
	return trace.AccessDenied("plugin %q: its SAML connector %q signs in its SCIM users; only a caller whose roles allow every verb on every kind may point it at another connector", p.GetMetadata().GetName(), old)
}

// checkOrgSwitch refuses a caller whose roles do not allow every verb on
// every kind setting or changing the Okta org of an existing plugin's user
// sync. The org decides which of the plugin's accounts live: pointed at an
// org the caller runs (with a credential of the caller's own), a full pass
// would deprovision every account of the plugin missing there, its SCIM
// users included once user sync takes over from SCIM. And while a user sync
// credential is stored, the next connection test or sync would send it (an
// Okta API token, or a JWT signed with the service app's key) to the new
// org's host. A new plugin, which has no accounts yet, may name its org.
func checkOrgSwitch(actx *authz.Context, p, cur *typesv1.Plugin) error {
	old := cur.GetSpec().GetOkta().GetUserSync().GetOrgUrl()
	if cur == nil || old == p.GetSpec().GetOkta().GetUserSync().GetOrgUrl() || actx.Checker.Unrestricted() {
		return nil
	}
	return trace.AccessDenied("plugin %q: user sync's org decides which of the plugin's accounts live and is where its credential is sent; only a caller whose roles allow every verb on every kind may set or change it (now %q)", p.GetMetadata().GetName(), old)
}

// checkRolesExist refuses default_roles or grantable_roles that newly list a
// role that does not exist (checked after checkGrants, so that whether a role
// exists is not told to a caller who may not list it). Such a name grants
// nothing today, but the grants reconcile gives every SCIM user the plugin's
// default roles within seconds of a change, so a role created later under
// that name (a typo's correction, another administrator's new role) would go
// to all of them without anyone deciding so. Names the stored plugin already
// lists are not checked again: a role deleted since does not block an
// unrelated update (and grants nothing while it does not exist).
func (s *Service) checkRolesExist(ctx context.Context, p, cur *typesv1.Plugin) error {
	okta := p.GetSpec().GetOkta()
	known := slices.Concat(cur.GetSpec().GetOkta().GetDefaultRoles(), cur.GetSpec().GetOkta().GetGrantableRoles())
	added := slices.DeleteFunc(slices.Concat(okta.GetDefaultRoles(), okta.GetGrantableRoles()), func(r string) bool {
		return slices.Contains(known, r)
	})
	missing, err := services.FirstMissingRole(ctx, s.cfg.Roles.GetRole, added)
	if err != nil || missing == "" {
		return trace.Wrap(err)
	}
	return trace.BadParameter("plugin %q: role %q does not exist; create the role first (gatectl create -f role.yaml), so that a role created later under that name is not granted to SCIM users unnoticed", p.GetMetadata().GetName(), missing)
}

// checkLockTTL refuses a lock_ttl shorter than the longest max_session_ttl
// of any role: a deactivation lock that expires while a certificate issued
// before it is still valid would let that certificate work again.
func (s *Service) checkLockTTL(ctx context.Context, p *typesv1.Plugin) error {
	raw := p.GetSpec().GetOkta().GetLockTtl()
	if raw == "" {
		return nil
	}
	ttl, err := services.ParseLockTTL(raw)
	if err != nil {
		return trace.Wrap(err)
	}
	// from names where the bound comes from, for the error: "role (default)"
	// read as a role named "(default)".
	longest, from := services.DefaultSessionTTL, "the default for roles without max_session_ttl"
	roles, err := s.cfg.Roles.ListAllRoles(ctx)
	if err != nil {
		return trace.Wrap(err)
	}
	for _, r := range roles {
		if d := services.RoleMaxSessionTTL(r); d > longest {
			longest, from = d, "role "+r.GetMetadata().GetName()
		}
	}
	if ttl < longest {
		return trace.BadParameter("plugin %q: lock_ttl %s is shorter than the longest session a role allows (%s, %s): a lock must outlast every certificate issued before it; use at least %s or leave lock_ttl empty",
			p.GetMetadata().GetName(), ttl, longest, from, longest)
	}
	return nil
}

// CreatePlugin creates a plugin.
func (s *Service) CreatePlugin(ctx context.Context, req *pluginpb.CreatePluginRequest) (*pluginpb.CreatePluginResponse, error) {
	actx, err := s.authorize(ctx, services.VerbCreate)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	p, err := s.prepare(ctx, actx, req.GetPlugin())
	if err != nil {
		return nil, trace.Wrap(err)
	}
	out, err := s.cfg.Plugins.CreatePlugin(ctx, p)
	s.record(ctx, actx, audit.EventPluginCreate, p.GetMetadata().GetName(), err)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &pluginpb.CreatePluginResponse{Plugin: out}, nil
}

// GetPlugin reads a plugin; with_secrets (verb read) adds its credentials.
func (s *Service) GetPlugin(ctx context.Context, req *pluginpb.GetPluginRequest) (*pluginpb.GetPluginResponse, error) {
	verb := services.VerbReadNoSecrets
	if req.GetWithSecrets() {
		verb = services.VerbRead
	}
	if _, err := s.authorize(ctx, verb); err != nil {
		return nil, trace.Wrap(err)
	}
	if err := generic.CheckName(kind, req.GetName()); err != nil {
		return nil, trace.Wrap(err)
	}
	p, err := s.cfg.Plugins.GetPlugin(ctx, req.GetName())
	if err != nil {
		return nil, trace.Wrap(err)
	}
	resp := &pluginpb.GetPluginResponse{Plugin: p}
	if req.GetWithSecrets() {
		if labels := p.GetSpec().GetStaticCredentialsRef().GetLabels(); len(labels) > 0 {
			creds, err := s.cfg.StaticCredentials.ListPluginStaticCredentialsByLabels(ctx, labels, true)
			if err != nil {
				return nil, trace.Wrap(err)
			}
			resp.StaticCredentials = creds
		}
	}
	return resp, nil
}

// ListPlugins pages through plugins; never with secrets.
func (s *Service) ListPlugins(ctx context.Context, req *pluginpb.ListPluginsRequest) (*pluginpb.ListPluginsResponse, error) {
	if _, err := s.authorize(ctx, services.VerbList, services.VerbReadNoSecrets); err != nil {
		return nil, trace.Wrap(err)
	}
	if req.GetPageSize() < 0 {
		return nil, trace.BadParameter("page_size must not be negative")
	}
	ps, next, err := s.cfg.Plugins.ListPlugins(ctx, int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &pluginpb.ListPluginsResponse{Plugins: ps, NextPageToken: next}, nil
}

// UpdatePlugin replaces a plugin at the revision given.
func (s *Service) UpdatePlugin(ctx context.Context, req *pluginpb.UpdatePluginRequest) (*pluginpb.UpdatePluginResponse, error) {
	actx, err := s.authorize(ctx, services.VerbUpdate)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	p, err := s.prepare(ctx, actx, req.GetPlugin())
	if err != nil {
		return nil, trace.Wrap(err)
	}
	name := p.GetMetadata().GetName()
	if p.GetMetadata().GetRevision() == "" {
		return nil, trace.BadParameter("plugin %q: metadata.revision is required to update; read the plugin first", name)
	}
	out, deleted, err := s.updatePlugin(ctx, p)
	ev := audit.Event{Type: audit.EventPluginUpdate, User: actx.Username(), Resource: kind + "/" + name, Err: err}
	switch deleted {
	case tokenDeletedDisabled:
		ev.Message = "SCIM disabled: its bearer token was deleted; enabling SCIM again needs a new token"
		ev.Fields = map[string]string{"scim_token": "deleted"}
	case tokenDeletedPending:
		ev.Message = "SCIM stays off: the bearer token generated to enable it was deleted"
		ev.Fields = map[string]string{"scim_token": "deleted"}
	}
	s.cfg.Recorder.Record(ctx, ev)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &pluginpb.UpdatePluginResponse{Plugin: out}, nil
}

// tokenDeletion says which tokens an update deleted.
type tokenDeletion int

const (
	tokenKept tokenDeletion = iota
	// tokenDeletedDisabled: the update turned SCIM off.
	tokenDeletedDisabled
	// tokenDeletedPending: SCIM was off and stays off; the token deleted
	// was generated for an enable that did not happen (the UI's Cancel).
	tokenDeletedPending
)

// updatePlugin writes p at its revision. Whenever the update leaves SCIM
// off, the plugin's token hashes are deleted in the same atomic write: a
// disabled integration must not keep a token that turning SCIM on again
// would silently bring back (an admin who disables SCIM, or cancels
// enabling it, believes the token dead). The UI's enable flow generates the
// token and then turns SCIM on with no update in between; its Cancel is an
// update with SCIM off.
func (s *Service) updatePlugin(ctx context.Context, p *typesv1.Plugin) (out *typesv1.Plugin, deleted tokenDeletion, err error) {
	name := p.GetMetadata().GetName()
	if p.GetSpec().GetOkta().GetScimEnabled() {
		out, err := s.cfg.Plugins.UpdatePlugin(ctx, p)
		return out, tokenKept, trace.Wrap(err)
	}
	cur, err := s.cfg.Plugins.GetPlugin(ctx, name)
	if err != nil {
		return nil, tokenKept, trace.Wrap(err)
	}
	creds, err := s.linkedCredentials(ctx, cur)
	if err != nil {
		return nil, tokenKept, trace.Wrap(err)
	}
	if len(creds) == 0 {
		out, err := s.cfg.Plugins.UpdatePlugin(ctx, p)
		return out, tokenKept, trace.Wrap(err)
	}
	deleted = tokenDeletedPending
	if cur.GetSpec().GetOkta().GetScimEnabled() {
		deleted = tokenDeletedDisabled
	}
	// The plugin must still be at the revision the caller read; the
	// credentials at the revisions just listed (a token rotated meanwhile
	// makes the write fail rather than survive it).
	out, err = s.cfg.Plugins.UpdatePluginDeletingCredentials(ctx, p, creds)
	if trace.IsCompareFailed(err) {
		if _, gerr := s.cfg.Plugins.GetPlugin(ctx, name); trace.IsNotFound(gerr) {
			return nil, tokenKept, trace.Wrap(gerr)
		}
		return nil, tokenKept, trace.CompareFailed("plugin %q was changed since it was read (revision mismatch): read it again and retry", name)
	}
	if err != nil {
		return nil, tokenKept, trace.Wrap(err)
	}
	return out, deleted, nil
}

// DeletePlugin deletes a plugin and its linked credentials in one atomic
// write, so that no token outlives its plugin.
func (s *Service) DeletePlugin(ctx context.Context, req *pluginpb.DeletePluginRequest) (*pluginpb.DeletePluginResponse, error) {
	name := req.GetName()
	actx, err := s.authorizeOn(ctx, name, services.VerbDelete)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	err = s.deletePlugin(ctx, name)
	s.record(ctx, actx, audit.EventPluginDelete, name, err)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &pluginpb.DeletePluginResponse{}, nil
}

func (s *Service) deletePlugin(ctx context.Context, name string) error {
	for attempt := 0; attempt < maxRotateAttempts; attempt++ {
		p, err := s.cfg.Plugins.GetPlugin(ctx, name)
		if err != nil {
			return trace.Wrap(err)
		}
		creds, err := s.linkedCredentials(ctx, p)
		if err != nil {
			return trace.Wrap(err)
		}
		// The user sync credential goes with the plugin too.
		syncCreds, err := s.cfg.StaticCredentials.ListPluginStaticCredentialsByLabels(ctx, services.UserSyncCredentialsLabels(name), false)
		if err != nil {
			return trace.Wrap(err)
		}
		err = s.cfg.Plugins.DeletePluginWithCredentials(ctx, p, append(creds, syncCreds...))
		if trace.IsCompareFailed(err) {
			continue
		}
		return trace.Wrap(err)
	}
	return trace.CompareFailed("plugin %q kept changing while it was being deleted; try again", name)
}

// linkedCredentials returns the credentials plugin p links to (with the
// server's label, whatever the stored reference says).
func (s *Service) linkedCredentials(ctx context.Context, p *typesv1.Plugin) ([]*typesv1.PluginStaticCredentials, error) {
	creds, err := s.cfg.StaticCredentials.ListPluginStaticCredentialsByLabels(ctx, CredentialsLabels(p.GetMetadata().GetName()), false)
	return creds, trace.Wrap(err)
}

// GenerateSCIMToken makes a new SCIM token for a plugin, stores its bcrypt
// hash in place of any previous one, and returns the plaintext once.
func (s *Service) GenerateSCIMToken(ctx context.Context, req *pluginpb.GenerateSCIMTokenRequest) (*pluginpb.GenerateSCIMTokenResponse, error) {
	name := req.GetName()
	actx, err := s.authorizeOn(ctx, name, services.VerbUpdate)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if err := s.checkTokenReach(ctx, actx, name); err != nil {
		s.record(ctx, actx, audit.EventPluginTokenCreate, name, err)
		return nil, trace.Wrap(err)
	}
	token, rotated, err := s.generateToken(ctx, name)
	typ := audit.EventPluginTokenCreate
	if rotated {
		typ = audit.EventPluginTokenRotate
	}
	s.record(ctx, actx, typ, name, err)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &pluginpb.GenerateSCIMTokenResponse{Token: token, BaseUrl: SCIMBaseURL(s.cfg.PublicAddr, name)}, nil
}

// checkTokenReach refuses the SCIM token of plugin name to a caller whose
// roles do not allow every verb on every kind, unless it holds every role
// the token can hand out: whoever holds the token gives SCIM users (the
// caller's own account among them, if the plugin manages it) the plugin's
// default_roles and the roles its connector maps pushed groups to, within
// grantable_roles. Without grantable_roles, every mapped role counts, even
// one the default ceiling would drop.
func (s *Service) checkTokenReach(ctx context.Context, actx *authz.Context, name string) error {
	if actx.Checker.Unrestricted() {
		return nil
	}
	p, err := s.cfg.Plugins.GetPlugin(ctx, name)
	if err != nil {
		return trace.Wrap(err)
	}
	okta := p.GetSpec().GetOkta()
	roles := slices.Clone(okta.GetDefaultRoles())
	if conn := okta.GetSamlConnector(); conn != "" {
		c, err := s.cfg.Connectors.GetSAMLConnector(ctx, conn, false)
		if err != nil && !trace.IsNotFound(err) {
			return trace.Wrap(err)
		}
		for _, m := range c.GetSpec().GetAttributesToRoles() {
			roles = append(roles, m.GetRoles()...)
		}
	}
	if g := okta.GetGrantableRoles(); len(g) > 0 {
		roles = slices.DeleteFunc(roles, func(r string) bool { return !slices.Contains(g, r) })
	}
	return trace.Wrap(actx.Checker.CheckGrant(fmt.Sprintf("plugin %q SCIM token (whoever holds it gives SCIM users the plugin's default roles and the roles its connector maps groups to)", name), roles))
}

// NewToken returns a random SCIM token and its bcrypt hash.
func NewToken() (token string, hash []byte, err error) {
	raw := make([]byte, TokenBytes)
	if _, err := rand.Read(raw); err != nil {
		return "", nil, trace.Wrap(err)
	}
	token = base64.RawURLEncoding.EncodeToString(raw)
	hash, err = bcrypt.GenerateFromPassword([]byte(token), bcrypt.DefaultCost)
	if err != nil {
		return "", nil, trace.Wrap(err)
	}
	return token, hash, nil
}

// generateToken writes a fresh token hash and removes every other linked
// credential, conditioned on the plugin not changing meanwhile. rotated
// reports whether a previous token was replaced.
func (s *Service) generateToken(ctx context.Context, name string) (token string, rotated bool, err error) {
	token, hash, err := NewToken()
	if err != nil {
		return "", false, trace.Wrap(err)
	}
	for attempt := 0; attempt < maxRotateAttempts; attempt++ {
		p, err := s.cfg.Plugins.GetPlugin(ctx, name)
		if err != nil {
			return "", false, trace.Wrap(err)
		}
		existing, err := s.linkedCredentials(ctx, p)
		if err != nil {
			return "", false, trace.Wrap(err)
		}
		err = s.cfg.Plugins.ReplacePluginCredentials(ctx, p, CredentialsLabels(name), existing, &typesv1.PluginStaticCredentials{
			Metadata: &typesv1.Metadata{
				Name:        CredentialsName(name),
				Description: "SCIM bearer token hash of plugin " + name,
				Labels:      CredentialsLabels(name),
			},
			Spec: &typesv1.PluginStaticCredentialsSpec{
				ScimTokenHash:        hash,
				ScimTokenFingerprint: services.SCIMTokenFingerprint(token),
			},
		})
		if trace.IsCompareFailed(err) {
			continue
		}
		if err != nil {
			return "", false, trace.Wrap(err)
		}
		return token, len(existing) > 0, nil
	}
	return "", false, trace.CompareFailed("plugin %q kept changing while its token was being generated; try again", name)
}

// SetPluginStatus replaces a plugin's status.
func (s *Service) SetPluginStatus(ctx context.Context, req *pluginpb.SetPluginStatusRequest) (*pluginpb.SetPluginStatusResponse, error) {
	actx, err := s.authorize(ctx, services.VerbUpdate)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if err := generic.CheckName(kind, req.GetName()); err != nil {
		return nil, trace.Wrap(err)
	}
	if req.GetStatus() == nil {
		return nil, trace.BadParameter("missing status")
	}
	out, err := s.cfg.Plugins.SetPluginStatus(ctx, req.GetName(), req.GetStatus())
	s.record(ctx, actx, audit.EventPluginStatus, req.GetName(), err)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &pluginpb.SetPluginStatusResponse{Plugin: out}, nil
}
