// Package scimprov is the auth side of SCIM provisioning: it implements the
// Provisioner interface that the SCIM HTTP server (plugins/scim/server)
// declares, over the shared backend, for each provisioning plugin ("okta").
//
// What it guarantees, and how:
//
//   - Every change to a user (create, update, adoption, deactivation,
//     reactivation, deletion) is ONE backend.AtomicWrite carrying the SCIM
//     record and its indexes (lib/services/scimstore), the Gatehouse user,
//     the deactivation lock and the audit events, each conditioned on what
//     was read (a revision, or absence). A crash can never leave a user
//     deleted without its lock, nor a record without its user. A condition
//     that fails because something else changed meanwhile is re-planned
//     from a fresh read; a change to the record itself is reported as
//     trace.CompareFailed (the SCIM ETag).
//   - Deactivation locks have a deterministic name per plugin and username
//     (LockName), carry the labels origin=<plugin>, gatehouse.dev/plugin and
//     gatehouse.dev/reason, and are removed on reactivation only if those
//     labels say this plugin wrote them, with a revision condition on the
//     exact lock read: an administrator's lock is never removed.
//   - Roles of a provisioned user are the plugin's default_roles plus what
//     the plugin's SAML connector grants through
//     services.RolesFromAttributes for {"groups": <SCIM group names>}, the
//     same rule SAML login applies; the "groups" trait holds those names.
//   - Group membership changes update member records and users in
//     conditional writes of at most backend.MaxAtomicWriteActions keys (see
//     groups.go for what is and is not atomic).
//   - Bearer tokens are checked against the bcrypt hash once per token and
//     credential revision; verified tokens are remembered only as SHA-256
//     digests (tokens.go).
//   - Plugin settings and credential hashes on the request path come from
//     an in-memory view fed by a backend watcher (view.go), consulted only
//     while in sync: over lite, whose watchers get a write's events before
//     the write is acknowledged, a rotation, disable or deletion applies to
//     the next request. Out of sync (starting, watcher closed, reloading),
//     and over backends that do not make that promise (etcd, where another
//     server's write arrives over a stream with no useful bound), every
//     request reads the backend.
//   - Plugin status counters are aggregated in memory and written at most
//     every StatusFlushInterval, and on Close.
package scimprov

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"

	"github.com/gatehouse/gatehouse/lib/auth/audit"
	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/defaults"
	"github.com/gatehouse/gatehouse/lib/scim/scimrecord"
	"github.com/gatehouse/gatehouse/lib/services"
	"github.com/gatehouse/gatehouse/lib/services/scimstore"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// Defaults.
const (
	// DefaultStatusFlushInterval is how often plugin status is written.
	DefaultStatusFlushInterval = 2 * time.Second
	// maxAttempts bounds re-planning after a condition failed because of a
	// concurrent change to something other than the record being updated.
	maxAttempts = 8
)

// Plugins is the part of the plugin service the provisioner uses
// (*services.PluginService).
type Plugins interface {
	GetPlugin(ctx context.Context, name string) (*typesv1.Plugin, error)
	// GetPluginItem is GetPlugin as stored, for the fenced token check,
	// which decodes it once per revision (fenced.go).
	GetPluginItem(ctx context.Context, name string) (*backend.Item, error)
	ListAllPlugins(ctx context.Context) ([]*typesv1.Plugin, error)
	UpdateAndSwapPlugin(ctx context.Context, name string, modify func(*typesv1.Plugin) error) (*typesv1.Plugin, error)
}

// Roles reads roles, to decide which ones the plugin may grant
// (*services.RoleService).
type Roles interface {
	GetRole(ctx context.Context, name string) (*typesv1.Role, error)
	ListAllRoles(ctx context.Context) ([]*typesv1.Role, error)
}

// Credentials finds a plugin's static credentials
// (*services.PluginStaticCredentialsService).
type Credentials interface {
	ListPluginStaticCredentialsByLabels(ctx context.Context, labels map[string]string, withSecrets bool) ([]*typesv1.PluginStaticCredentials, error)
}

// SAMLConnectors reads the plugin's SAML connector
// (*services.SAMLConnectorService).
type SAMLConnectors interface {
	GetSAMLConnector(ctx context.Context, name string, withSecrets bool) (*typesv1.SAMLConnector, error)
}

var (
	_ Plugins        = (*services.PluginService)(nil)
	_ Credentials    = (*services.PluginStaticCredentialsService)(nil)
	_ SAMLConnectors = (*services.SAMLConnectorService)(nil)
	_ Roles          = (*services.RoleService)(nil)
	_ audit.Sink     = (*services.AuditLog)(nil)
)

// Config configures a Provisioner.
type Config struct {
	// Backend stores records, users, locks and the audit events written in
	// the same atomic writes. Required.
	Backend backend.Backend
	// Plugins reads plugin settings and writes status. Required.
	Plugins Plugins
	// Credentials finds the plugin's token hash. Required.
	Credentials Credentials
	// SAMLConnectors reads the plugin's SAML connector (role mapping).
	// Required.
	SAMLConnectors SAMLConnectors
	// Roles reads the roles SCIM would grant, for the plugin's ceiling.
	// Required.
	Roles Roles
	// Audit stores events that are not part of a state change (refused
	// tokens). Required (*services.AuditLog).
	Audit audit.Sink
	// AuditRetention is the expiry of the events written inside atomic
	// writes; it must match the audit log's. services.DefaultAuditRetention
	// if zero.
	AuditRetention time.Duration
	// Clock defaults to the backend's clock.
	Clock clockwork.Clock
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// StatusFlushInterval is how often plugin status is written;
	// DefaultStatusFlushInterval if zero.
	StatusFlushInterval time.Duration
	// SettingsCache chooses between the watcher-fed view of plugin settings
	// and credential hashes and a backend read on every request
	// (SettingsCacheAuto: the view over lite, reads otherwise; see view.go).
	SettingsCache SettingsCacheMode
	// ReconcileInterval is how often the provisioner looks for a change of
	// what SCIM may grant (reconcile.go); DefaultReconcileInterval if zero.
	ReconcileInterval time.Duration
	// SettingsRetry is the first delay before the view's watcher is
	// reopened after it failed to open; DefaultSettingsRetry if zero.
	SettingsRetry time.Duration
}

// DefaultSettingsRetry is the first delay before reopening the settings
// view's watcher after a failure (doubling up to 16 times this).
const DefaultSettingsRetry = 500 * time.Millisecond

// settingsApplyInterval is how often the view applies queued events when no
// request does: often enough that the watcher's queue (1024 events of two
// rarely written prefixes) never fills.
const settingsApplyInterval = 250 * time.Millisecond

// CheckAndSetDefaults validates the config and fills in defaults.
func (c *Config) CheckAndSetDefaults() error {
	switch {
	case c.Backend == nil:
		return trace.BadParameter("scimprov: missing Backend")
	case c.Plugins == nil:
		return trace.BadParameter("scimprov: missing Plugins")
	case c.Credentials == nil:
		return trace.BadParameter("scimprov: missing Credentials")
	case c.SAMLConnectors == nil:
		return trace.BadParameter("scimprov: missing SAMLConnectors")
	case c.Roles == nil:
		return trace.BadParameter("scimprov: missing Roles")
	case c.Audit == nil:
		return trace.BadParameter("scimprov: missing Audit")
	case c.AuditRetention < 0 || c.StatusFlushInterval < 0 || c.SettingsRetry < 0 || c.ReconcileInterval < 0:
		return trace.BadParameter("scimprov: durations must not be negative")
	}
	defaults.IfZero(&c.AuditRetention, services.DefaultAuditRetention)
	defaults.ClockFrom(&c.Clock, c.Backend.Clock)
	defaults.Logger(&c.Logger, "scimprov")
	defaults.IfZero(&c.StatusFlushInterval, DefaultStatusFlushInterval)
	defaults.IfZero(&c.ReconcileInterval, DefaultReconcileInterval)
	defaults.IfZero(&c.SettingsRetry, DefaultSettingsRetry)
	switch c.SettingsCache {
	case SettingsCacheAuto, SettingsCacheOff, SettingsCacheOn:
	default:
		return trace.BadParameter("scimprov: unknown SettingsCache mode %d", c.SettingsCache)
	}
	return nil
}

// Provisioner implements the SCIM server's Provisioner interface.
type Provisioner struct {
	cfg    Config
	store  *scimstore.Store
	tokens tokenCache
	// creds shares the token check's credential reads when the view is off
	// and the backend does not fence them.
	creds freshReads
	// fenced says the backend's reads of plugins and credentials see every
	// write acknowledged before them on any server, at the cost of a memory
	// read (etcdbk.Backend.FenceReads): the token check then reads them
	// directly, without freshReads, and decodes them once per revision.
	fenced      bool
	fencedReads fencedReads
	counts      countCache
	connectors  connectorCache
	status      statusAggregator
	// view is the watcher-fed copy of plugin settings and credentials; nil
	// when every request reads the backend.
	view *settingsView

	cancel        context.CancelFunc
	done          chan struct{}
	viewDone      chan struct{}
	reconcileDone chan struct{}
	once          sync.Once
}

// New returns a Provisioner and starts its status flush loop; Close stops it.
func New(cfg Config) (*Provisioner, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, trace.Wrap(err)
	}
	store, err := scimstore.New(cfg.Backend)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Provisioner{
		cfg:    cfg,
		store:  store,
		cancel: cancel,
		done:   make(chan struct{}),
	}
	p.tokens.init()
	p.status.init()
	go p.flushLoop(ctx, cfg.Clock.NewTicker(cfg.StatusFlushInterval))
	p.reconcileDone = make(chan struct{})
	go p.reconcileLoop(ctx, cfg.Clock.NewTicker(cfg.ReconcileInterval), p.reconcileDone)
	p.viewDone = make(chan struct{})
	if useView(cfg) {
		p.view = &settingsView{b: cfg.Backend}
		go p.runSettingsView(ctx, p.view, settingsApplyInterval, cfg.SettingsRetry)
	} else {
		close(p.viewDone)
		if fb, ok := cfg.Backend.(fencedBackend); ok && cfg.SettingsCache == SettingsCacheAuto {
			p.fenced = fb.FenceReads(viewPrefixes()...)
		}
	}
	return p, nil
}

// fencedBackend is implemented by backends that can make reads of a few
// prefixes see every write acknowledged before them on any server while
// answering them from memory (etcdbk.Backend).
type fencedBackend interface {
	FenceReads(prefixes ...backend.Key) bool
}

func useView(cfg Config) bool {
	switch cfg.SettingsCache {
	case SettingsCacheOn:
		return true
	case SettingsCacheOff:
		return false
	}
	b, ok := cfg.Backend.(ackAfterFanOut)
	return ok && b.AckAfterWatchFanOut()
}

// Close stops the flush loop and writes the pending plugin status.
func (p *Provisioner) Close() error {
	p.once.Do(func() {
		p.cancel()
		<-p.done
		<-p.viewDone
		<-p.reconcileDone
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p.FlushStatus(ctx)
	})
	return nil
}

// Store returns the record store, for read-only use (tests, tools).
func (p *Provisioner) Store() *scimstore.Store { return p.store }

// pluginContext is what every operation needs from the plugin resource.
type pluginContext struct {
	name      string
	okta      *typesv1.OktaPluginSettings
	connector *typesv1.SAMLConnector // nil when missing: no mappings
	lockTTL   time.Duration
	// via names the channel a change came through in audit events
	// ("user sync" for pulled users); empty for SCIM.
	via string
}

// loadAndNormalize is the start of every SCIM create and update: the
// plugin is loaded (an unknown plugin is NotFound before the record is
// looked at), then rec is checked and normalized by normalize.
func loadAndNormalize[R any](ctx context.Context, p *Provisioner, plugin string, rec *R, normalize func(*R) (*R, error)) (*pluginContext, *R, error) {
	pc, err := p.loadPlugin(ctx, plugin)
	if err != nil {
		return nil, nil, trace.Wrap(err)
	}
	in, err := normalize(rec)
	if err != nil {
		return nil, nil, trace.Wrap(err)
	}
	return pc, in, nil
}

// loadPlugin reads plugin name and its SAML connector. A plugin that is
// missing or not an Okta plugin is trace.NotFound. A missing connector only
// means no mapped roles: provisioning (and above all deactivation) must not
// fail because a connector is being replaced.
func (p *Provisioner) loadPlugin(ctx context.Context, name string) (*pluginContext, error) {
	if err := scimstore.CheckPlugin(name); err != nil {
		return nil, trace.NotFound("plugin %q not found", name)
	}
	ps, err := p.pluginState(ctx, name)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	okta := ps.okta
	if okta == nil {
		return nil, trace.NotFound("plugin %q is not a SCIM provisioning plugin", name)
	}
	pc := &pluginContext{name: name, okta: okta}
	if ttl := okta.GetLockTtl(); ttl != "" {
		if pc.lockTTL, err = services.ParseLockTTL(ttl); err != nil {
			return nil, trace.Wrap(err)
		}
	}
	conn, err := p.samlConnector(ctx, okta.GetSamlConnector())
	switch {
	case err == nil:
		pc.connector = conn
	case trace.IsNotFound(err):
		p.cfg.Logger.WarnContext(ctx, "SAML connector of the SCIM plugin is missing; provisioning without mapped roles",
			"plugin", name, "saml_connector", okta.GetSamlConnector())
	default:
		return nil, trace.Wrap(err)
	}
	return pc, nil
}

// SCIMSettings returns the SCIM settings of plugin; trace.NotFound if there
// is no such plugin.
func (p *Provisioner) SCIMSettings(ctx context.Context, plugin string) (*scimrecord.SCIMSettings, error) {
	ps, err := p.pluginState(ctx, plugin)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return ps.settings(plugin)
}
