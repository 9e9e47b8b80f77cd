// Package auth is the Gatehouse auth server: it composes the typed resource
// services, owns the cluster's certificate authorities, issues user
// identities, and serves the admin gRPC APIs over mTLS, authorizing every
// call against the caller's current roles (see lib/auth/authz).
//
// Design decisions:
//
//   - The caller's username comes from its verified client certificate; its
//     roles are re-read from its user resource on every call (the roles in
//     the certificate's Organization are informational). A role change, a
//     user deletion or a lock takes effect on the next call, not when the
//     certificate expires.
//   - Every user carries an incarnation, the random id of one life of the
//     account, which the server owns (lib/services). Certificates carry
//     the incarnation they were issued to (lib/auth/certext), and every
//     check refuses one that is not the user's current one: credentials die
//     with the account, whatever later happens to its name. The built-in
//     operator identity, which has no user record, keeps its incarnation
//     under its own key (services.BuiltinAdminService); gatehouse recover
//     replaces it, which voids every admin identity issued before.
//   - CAs are created on first start with backend Create, so that two
//     servers starting at once on one backend agree on one set of keys: the
//     loser re-reads the winner's.
//   - Preset roles are created only if absent, so an operator's edits stick.
package auth

import (
	"context"
	"log/slog"
	"time"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"

	"github.com/gatehouse/gatehouse/lib/auth/audit"
	"github.com/gatehouse/gatehouse/lib/auth/authz"
	"github.com/gatehouse/gatehouse/lib/auth/pluginv1"
	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/defaults"
	"github.com/gatehouse/gatehouse/lib/services"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// Defaults.
const (
	// DefaultClusterName is used when Config.ClusterName is empty.
	DefaultClusterName = "gatehouse"
	// DefaultAuditRetention is how long audit events are kept.
	DefaultAuditRetention = services.DefaultAuditRetention
)

// Config configures the auth server.
type Config struct {
	// Backend stores everything. Required.
	Backend backend.Backend
	// ClusterName names the cluster in CA certificates; DefaultClusterName
	// if empty.
	ClusterName string
	// Clock defaults to the backend's clock, which decides expiry.
	Clock clockwork.Clock
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// AuditRetention is how long audit events are kept;
	// DefaultAuditRetention if zero.
	AuditRetention time.Duration
	// PublicAddr is the host:port shown to people, as in the SCIM base URL
	// https://<PublicAddr>/v1/webapi/scim/okta. Optional.
	PublicAddr string
	// WebAddr is the web listener's own dialable host:port: the URLs the
	// server hands out (SCIM base URL, password links) use it when
	// PublicAddr is empty, as the web UI and the startup banner do, so
	// gatectl and the UI show the same URL. Optional.
	WebAddr string
	// Locks, if set, is where API calls are checked against locks (a
	// process's lock watcher, which must fail closed: return an error while
	// its view is stale). By default the locks are read from the backend on
	// every call. Credentials are always issued against the backend.
	Locks authz.LockGetter
	// CredentialSealer seals the credentials a plugin calls out with (user
	// sync's Okta API credential); without it they cannot be set.
	CredentialSealer pluginv1.Sealer
}

// CheckAndSetDefaults validates the config and fills in defaults.
func (c *Config) CheckAndSetDefaults() error {
	if c.Backend == nil {
		return trace.BadParameter("auth: missing Backend")
	}
	defaults.IfZero(&c.ClusterName, DefaultClusterName)
	defaults.ClockFrom(&c.Clock, c.Backend.Clock)
	defaults.Logger(&c.Logger, "auth")
	switch {
	case c.AuditRetention < 0:
		return trace.BadParameter("auth: AuditRetention must not be negative")
	case c.AuditRetention == 0:
		c.AuditRetention = DefaultAuditRetention
	}
	return nil
}

// Services are the typed resource services the server is composed of.
type Services struct {
	Users                   *services.UserService
	Roles                   *services.RoleService
	Locks                   *services.LockService
	Plugins                 *services.PluginService
	PluginStaticCredentials *services.PluginStaticCredentialsService
	SAMLConnectors          *services.SAMLConnectorService
	CertAuthorities         *services.CertAuthorityService
	Events                  *services.AuditLog
	// BuiltinAdmin keeps the incarnation of the built-in operator identity.
	BuiltinAdmin *services.BuiltinAdminService
}

// Server is the auth server.
type Server struct {
	cfg        Config
	services   Services
	authorizer *authz.Authorizer
	recorder   *audit.Recorder
	userCA     *certAuthority
	hostCA     *certAuthority
}

// New opens the auth server on cfg.Backend: it creates the CAs and preset
// roles on first start and loads them on later ones.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, trace.Wrap(err)
	}
	svcCfg := services.Config{Backend: cfg.Backend}
	s := &Server{cfg: cfg}
	var err error
	if s.services.Users, err = services.NewUserService(svcCfg); err != nil {
		return nil, trace.Wrap(err)
	}
	if s.services.Roles, err = services.NewRoleService(svcCfg); err != nil {
		return nil, trace.Wrap(err)
	}
	if s.services.Locks, err = services.NewLockService(svcCfg); err != nil {
		return nil, trace.Wrap(err)
	}
	if s.services.Plugins, err = services.NewPluginService(svcCfg); err != nil {
		return nil, trace.Wrap(err)
	}
	if s.services.PluginStaticCredentials, err = services.NewPluginStaticCredentialsService(svcCfg); err != nil {
		return nil, trace.Wrap(err)
	}
	if s.services.SAMLConnectors, err = services.NewSAMLConnectorService(svcCfg); err != nil {
		return nil, trace.Wrap(err)
	}
	if s.services.CertAuthorities, err = services.NewCertAuthorityService(svcCfg); err != nil {
		return nil, trace.Wrap(err)
	}
	if s.services.BuiltinAdmin, err = services.NewBuiltinAdminService(svcCfg); err != nil {
		return nil, trace.Wrap(err)
	}
	s.services.Events, err = services.NewAuditLog(services.AuditLogConfig{
		Backend:   cfg.Backend,
		Clock:     cfg.Clock,
		Retention: cfg.AuditRetention,
		Logger:    cfg.Logger,
	})
	if err != nil {
		return nil, trace.Wrap(err)
	}
	s.recorder, err = audit.NewRecorder(audit.RecorderConfig{
		Sink:   s.services.Events,
		Clock:  cfg.Clock,
		Logger: cfg.Logger,
	})
	if err != nil {
		return nil, trace.Wrap(err)
	}
	var locks authz.LockGetter = s.services.Locks
	if cfg.Locks != nil {
		locks = cfg.Locks
	}
	s.authorizer, err = authz.New(authz.Config{
		Users:  s.services.Users,
		Roles:  s.services.Roles,
		Locks:  locks,
		Clock:  cfg.Clock,
		Logger: cfg.Logger,

		BuiltinAdmin:      s.services.BuiltinAdmin,
		BuiltinAdminRoles: BuiltinAdminRoles(),
	})
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if s.userCA, err = s.ensureCA(ctx, UserCA); err != nil {
		return nil, trace.Wrap(err)
	}
	if s.hostCA, err = s.ensureCA(ctx, HostCA); err != nil {
		return nil, trace.Wrap(err)
	}
	if err := s.ensurePresetRoles(ctx); err != nil {
		return nil, trace.Wrap(err)
	}
	if err := s.ensureBuiltinAdmin(ctx); err != nil {
		return nil, trace.Wrap(err)
	}
	if err := s.reportUsers(ctx); err != nil {
		return nil, trace.Wrap(err)
	}
	s.assignMissingIncarnations(ctx)
	return s, nil
}

// ensureBuiltinAdmin makes sure the built-in operator identity has an
// incarnation, so that its credentials can be bound to one (see
// authz.Authorizer). On a backend from an earlier version there is none
// yet: admin identities issued then carry none and are refused, and the
// process rewrites its admin.identity.
func (s *Server) ensureBuiltinAdmin(ctx context.Context) error {
	_, how, err := s.services.BuiltinAdmin.EnsureBuiltinAdmin(ctx)
	if err != nil {
		return trace.Wrap(err, "storing the incarnation of %s", services.BuiltinAdmin)
	}
	switch how {
	case services.BuiltinAdminCreated:
		s.cfg.Logger.InfoContext(ctx, "Gave the built-in operator identity an incarnation; admin identities issued before it are refused", "identity", services.BuiltinAdmin)
	case services.BuiltinAdminReplaced:
		s.cfg.Logger.WarnContext(ctx, "The stored incarnation of the built-in operator identity was unreadable and was replaced; admin identities issued before are refused", "identity", services.BuiltinAdmin)
	}
	return nil
}

// assignMissingIncarnations gives every user stored before incarnations
// existed a fresh one, so that "no incarnation" is never a state a user is
// in (such a user's credentials are refused everywhere anyway: an empty
// incarnation matches nothing). A user it cannot update is logged and left
// as it is; its credentials stay refused and the next write of it, or of
// its credentials, assigns one.
func (s *Server) assignMissingIncarnations(ctx context.Context) {
	n, errs := s.services.Users.AssignMissingIncarnations(ctx)
	for _, err := range errs {
		s.cfg.Logger.WarnContext(ctx, "Cannot give a user stored without an incarnation one", "error", err)
	}
	if n > 0 {
		s.cfg.Logger.InfoContext(ctx, "Gave users stored without an incarnation a fresh one; their older credentials stay refused", "users", n)
	}
}

// Services returns the typed services, for in-process callers (the SCIM
// plugin's adapter, the web listener).
func (s *Server) Services() Services { return s.services }

// Authorizer returns the server's authorizer.
func (s *Server) Authorizer() *authz.Authorizer { return s.authorizer }

// Recorder returns the server's audit recorder.
func (s *Server) Recorder() *audit.Recorder { return s.recorder }

// ClusterName returns the cluster's name.
func (s *Server) ClusterName() string { return s.cfg.ClusterName }

// ensureCA loads the CA of type typ, creating it if this is the first start.
func (s *Server) ensureCA(ctx context.Context, typ string) (*certAuthority, error) {
	ca, err := s.services.CertAuthorities.GetCertAuthority(ctx, typ, true)
	if trace.IsNotFound(err) {
		fresh, genErr := newCertAuthorityResource(s.cfg.ClusterName, typ, s.cfg.Clock.Now())
		if genErr != nil {
			return nil, trace.Wrap(genErr)
		}
		_, err = s.services.CertAuthorities.CreateCertAuthority(ctx, fresh)
		switch {
		case err == nil:
			s.cfg.Logger.InfoContext(ctx, "Created certificate authority", "type", typ, "cluster", s.cfg.ClusterName)
		case trace.IsAlreadyExists(err):
			// Another server created it first; use its keys.
		default:
			return nil, trace.Wrap(err, "creating %s CA", typ)
		}
		ca, err = s.services.CertAuthorities.GetCertAuthority(ctx, typ, true)
	}
	if err != nil {
		return nil, trace.Wrap(err, "loading %s CA", typ)
	}
	if cn := ca.GetSpec().GetClusterName(); cn != s.cfg.ClusterName {
		return nil, trace.BadParameter("the %s CA in this backend belongs to cluster %q, not %q; use the same cluster name or a new data directory", typ, cn, s.cfg.ClusterName)
	}
	parsed, err := parseCertAuthority(ca)
	return parsed, trace.Wrap(err)
}

// Preset role names.
const (
	// PresetEditorRole manages every resource.
	PresetEditorRole = "editor"
	// PresetAccessRole logs in to nodes with the logins in the user's
	// "logins" trait.
	PresetAccessRole = "access"
	// PresetAuditorRole reads the audit log, and sees users, locks, plugins
	// and SAML connectors without their secrets: everything the web UI's
	// Users, Locks and Integrations pages show, read-only.
	PresetAuditorRole = "auditor"
)

// LoginsTraitTemplate and LoginsTrait: see authz, which expands them
// (authz.LoginsFor).
const (
	LoginsTraitTemplate = authz.LoginsTraitTemplate
	LoginsTrait         = authz.LoginsTrait
)

func presetRole(name, desc string, allow *typesv1.RoleConditions) *typesv1.Role {
	return &typesv1.Role{
		Kind:     services.KindRole,
		Version:  services.V1,
		Metadata: &typesv1.Metadata{Name: name, Description: desc},
		Spec:     &typesv1.RoleSpec{Allow: allow},
	}
}

const presetEditorDescription = "Manages every resource; no node logins."

func presetEditorAllow() *typesv1.RoleConditions {
	return &typesv1.RoleConditions{
		Rules: []*typesv1.Rule{{Resources: []string{services.Wildcard}, Verbs: []string{services.Wildcard}}},
	}
}

// PresetRoles returns the roles every cluster starts with.
func PresetRoles() []*typesv1.Role {
	role := presetRole
	return []*typesv1.Role{
		role(PresetEditorRole, presetEditorDescription, presetEditorAllow()),
		role(PresetAccessRole, "Logs in to SSH nodes as the logins in the user's \"logins\" trait; no admin API access.", &typesv1.RoleConditions{
			Logins: []string{LoginsTraitTemplate},
		}),
		role(PresetAuditorRole, "Reads the audit log; sees users, locks, plugins and SAML connectors without secrets; changes nothing.", &typesv1.RoleConditions{
			Rules: []*typesv1.Rule{
				{Resources: []string{authz.KindEvent}, Verbs: []string{services.VerbList, services.VerbRead}},
				{Resources: []string{services.KindUser, services.KindLock, services.KindPlugin, services.KindSAMLConnector}, Verbs: []string{services.VerbList, services.VerbReadNoSecrets}},
			},
		}),
	}
}

// ensurePresetRoles creates each preset role that does not exist yet.
func (s *Server) ensurePresetRoles(ctx context.Context) error {
	for _, r := range PresetRoles() {
		_, err := s.services.Roles.CreateRole(ctx, r)
		switch {
		case err == nil:
			s.cfg.Logger.InfoContext(ctx, "Created preset role", "role", r.GetMetadata().GetName())
		case trace.IsAlreadyExists(err):
		default:
			return trace.Wrap(err, "creating preset role %q", r.GetMetadata().GetName())
		}
	}
	return nil
}

// BuiltinAdminRoles returns the roles of the built-in operator identity
// services.BuiltinAdmin: the preset editor role as defined here in code. The
// stored "editor" role is not consulted, since an editor may edit or delete
// it; the operator's rights must not depend on it.
func BuiltinAdminRoles() []*typesv1.Role {
	return []*typesv1.Role{presetRole(PresetEditorRole, presetEditorDescription, presetEditorAllow())}
}

// legacyAdminUser is the ordinary user earlier versions created on first
// start and issued admin.identity to.
const legacyAdminUser = "admin"

// reportUsers logs, at startup, the stored usernames that need the
// operator's attention (services.ReportUsernames), and says once that a user
// "admin" left by an earlier version is now an ordinary user. It changes
// nothing: startup never grants a role to any account.
func (s *Server) reportUsers(ctx context.Context) error {
	if _, err := services.ReportUsernames(ctx, s.services.Users, s.cfg.Logger); err != nil {
		return trace.Wrap(err)
	}
	u, err := s.services.Users.GetUser(ctx, legacyAdminUser, false)
	switch {
	case trace.IsNotFound(err):
		return nil
	case err != nil:
		return trace.Wrap(err)
	}
	if u.GetSpec().GetCreatedBy().GetUser().GetName() == "system" {
		s.cfg.Logger.InfoContext(ctx, "The user \"admin\" created by an earlier version is now an ordinary user: admin.identity is issued to the built-in identity "+services.BuiltinAdmin+". Nothing was changed; delete the user if nobody needs it.",
			"user", legacyAdminUser, "roles", u.GetSpec().GetRoles())
	}
	return nil
}
