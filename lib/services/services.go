// Package services holds the typed resource services of Gatehouse: users,
// roles, locks, plugins, plugin static credentials, SAML connectors,
// certificate authorities, and the audit log. Each is a thin layer over the
// one generic service in lib/services/generic, which owns marshalling, keys,
// paging, revisions and error messages; this package adds each kind's
// validation (the Validate* functions, which also set defaults), its secrets
// handling and kind-specific queries.
//
// Conventions every service follows:
//
//   - Keys are <prefix>/<name>; the *Key functions build them, and the
//     Marshal*/Unmarshal* functions turn resources into backend items and
//     back, so that lib/auth can put writes of several kinds into one
//     backend.AtomicWrite.
//   - Reads and writes return the resource with metadata.revision set from the
//     backend. Update* requires metadata.revision and fails with
//     trace.CompareFailed if the resource changed since; UpdateAndSwap* is the
//     read-modify-write helper.
//   - Secrets (user local_auth, the SCIM token hash, the SAML signing private
//     key, CA private keys) come out only of calls made with withSecrets set.
//     Writes return the stored resource without its secrets.
//   - Missing resources are trace.NotFound(`user "alice" not found`), taken
//     names trace.AlreadyExists(`user "alice" already exists`).
package services

import (
	"context"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/services/generic"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// Resource kinds, as written in the kind field.
const (
	KindUser                    = "user"
	KindRole                    = "role"
	KindLock                    = "lock"
	KindPlugin                  = "plugin"
	KindPluginStaticCredentials = "plugin_static_credentials"
	KindSAMLConnector           = "saml"
	KindCertAuthority           = "cert_authority"
)

// V1 is the only resource version.
const V1 = "v1"

// Key prefixes: resources of each kind live at <prefix>/<name>.
const (
	UsersPrefix                   = "users"
	RolesPrefix                   = "roles"
	LocksPrefix                   = "locks"
	PluginsPrefix                 = "plugins"
	PluginStaticCredentialsPrefix = "plugin_static_credentials"
	SAMLConnectorsPrefix          = "saml"
	CertAuthoritiesPrefix         = "cert_authorities"
	EventsPrefix                  = "events"
)

// UserKey is the backend key of a user.
func UserKey(name string) backend.Key { return backend.NewKey(UsersPrefix, name) }

// RoleKey is the backend key of a role.
func RoleKey(name string) backend.Key { return backend.NewKey(RolesPrefix, name) }

// LockKey is the backend key of a lock.
func LockKey(name string) backend.Key { return backend.NewKey(LocksPrefix, name) }

// PluginKey is the backend key of a plugin.
func PluginKey(name string) backend.Key { return backend.NewKey(PluginsPrefix, name) }

// PluginStaticCredentialsKey is the backend key of plugin static credentials.
func PluginStaticCredentialsKey(name string) backend.Key {
	return backend.NewKey(PluginStaticCredentialsPrefix, name)
}

// SAMLConnectorKey is the backend key of a SAML connector.
func SAMLConnectorKey(name string) backend.Key { return backend.NewKey(SAMLConnectorsPrefix, name) }

// CertAuthorityKey is the backend key of a certificate authority.
func CertAuthorityKey(name string) backend.Key { return backend.NewKey(CertAuthoritiesPrefix, name) }

// CheckBackend proves that b answers with one cheap read, of a key nothing
// stores (the /readyz check).
func CheckBackend(ctx context.Context, b backend.Backend) error {
	_, err := b.Get(ctx, backend.NewKey("readyz"))
	if err == nil || trace.IsNotFound(err) {
		return nil
	}
	return trace.Wrap(err)
}

// Labels that Gatehouse itself sets on resources.
const (
	// LabelOrigin marks a user as provisioned and managed by a SCIM plugin;
	// its value is the plugin's name ("okta"). Local users and the temporary
	// users a SAML login creates carry no origin label: that absence is what
	// lets a SCIM create adopt a temporary SAML user.
	LabelOrigin = "gatehouse.dev/origin"
	// LabelPlugin names the plugin a resource belongs to: the plugin that
	// manages a user or wrote a lock, or owns static credentials.
	LabelPlugin = "gatehouse.dev/plugin"
)

const (
	maxLabels          = 64
	maxLabelKeyLength  = 253
	maxLabelValueBytes = 4096
	maxDescription     = 4096
	maxListEntries     = 256
	maxStringField     = 1024
)

// Config configures the typed services.
type Config struct {
	// Backend stores every resource. Required.
	Backend backend.Backend
}

// CheckAndSetDefaults validates the config.
func (c *Config) CheckAndSetDefaults() error {
	if c.Backend == nil {
		return trace.BadParameter("services: missing Backend")
	}
	return nil
}

// checkHeader defaults and checks kind and version, and checks metadata.
func checkHeader(kind string, k, v *string, md *typesv1.Metadata) error {
	if *k == "" {
		*k = kind
	}
	if *k != kind {
		return trace.BadParameter("kind must be %q, got %q", kind, *k)
	}
	if *v == "" {
		*v = V1
	}
	if *v != V1 {
		return trace.BadParameter("%s: unsupported version %q, only %q is supported", kind, *v, V1)
	}
	return checkMetadata(kind, md)
}

// checkMetadata checks the name, labels and description.
func checkMetadata(kind string, md *typesv1.Metadata) error {
	if md == nil {
		return trace.BadParameter("%s: missing metadata", kind)
	}
	if err := generic.CheckName(kind, md.GetName()); err != nil {
		return trace.Wrap(err)
	}
	if len(md.GetDescription()) > maxDescription {
		return trace.BadParameter("%s %q: description is over %d bytes", kind, md.GetName(), maxDescription)
	}
	if len(md.GetLabels()) > maxLabels {
		return trace.BadParameter("%s %q: %d labels, over the limit of %d", kind, md.GetName(), len(md.GetLabels()), maxLabels)
	}
	for k, v := range md.GetLabels() {
		if k == "" || len(k) > maxLabelKeyLength {
			return trace.BadParameter("%s %q: label keys must be 1 to %d bytes, got %q", kind, md.GetName(), maxLabelKeyLength, k)
		}
		if limit := labelValueLimit(k); len(v) > limit {
			return trace.BadParameter("%s %q: label %q value is over %d bytes", kind, md.GetName(), k, limit)
		}
	}
	return nil
}

// checkNames checks a list of names of another kind (roles a user holds).
func checkNames(kind, name, field, refKind string, names []string) error {
	if len(names) > maxListEntries {
		return trace.BadParameter("%s %q: %s has %d entries, over the limit of %d", kind, name, field, len(names), maxListEntries)
	}
	for _, n := range names {
		if err := generic.CheckName(refKind, n); err != nil {
			return trace.BadParameter("%s %q: %s: %v", kind, name, field, err)
		}
	}
	return nil
}

// checkStrings bounds a list of free strings (logins, default roles).
func checkStrings(kind, name, field string, values []string) error {
	if len(values) > maxListEntries {
		return trace.BadParameter("%s %q: %s has %d entries, over the limit of %d", kind, name, field, len(values), maxListEntries)
	}
	for _, v := range values {
		if v == "" || len(v) > maxStringField {
			return trace.BadParameter("%s %q: %s entries must be 1 to %d bytes", kind, name, field, maxStringField)
		}
	}
	return nil
}

// Services bundles every typed service over one backend.
type Services struct {
	*UserService
	*RoleService
	*LockService
	*PluginService
	*PluginStaticCredentialsService
	*SAMLConnectorService
	*CertAuthorityService
}

// New returns every typed service over cfg.Backend. The audit log has its
// own config (retention) and constructor, NewAuditLog.
func New(cfg Config) (*Services, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, trace.Wrap(err)
	}
	var (
		s   Services
		err error
	)
	if s.UserService, err = NewUserService(cfg); err != nil {
		return nil, trace.Wrap(err)
	}
	if s.RoleService, err = NewRoleService(cfg); err != nil {
		return nil, trace.Wrap(err)
	}
	if s.LockService, err = NewLockService(cfg); err != nil {
		return nil, trace.Wrap(err)
	}
	if s.PluginService, err = NewPluginService(cfg); err != nil {
		return nil, trace.Wrap(err)
	}
	if s.PluginStaticCredentialsService, err = NewPluginStaticCredentialsService(cfg); err != nil {
		return nil, trace.Wrap(err)
	}
	if s.SAMLConnectorService, err = NewSAMLConnectorService(cfg); err != nil {
		return nil, trace.Wrap(err)
	}
	if s.CertAuthorityService, err = NewCertAuthorityService(cfg); err != nil {
		return nil, trace.Wrap(err)
	}
	return &s, nil
}

// SCIMOrigin returns the name of the SCIM plugin that manages the user, or ""
// for a local or SSO-created user.
func SCIMOrigin(u *typesv1.User) string {
	return u.GetMetadata().GetLabels()[LabelOrigin]
}
