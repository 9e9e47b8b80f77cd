// Package config reads the gatehouse server's YAML configuration file,
// applies command-line overrides and checks the result. Unknown keys are
// refused, so a typo never silently falls back to a default.
package config

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gravitational/trace"
	"gopkg.in/yaml.v3"

	"github.com/gatehouse/gatehouse/lib/abuse"
)

// Defaults for every setting that has one.
const (
	DefaultDataDir        = "/var/lib/gatehouse"
	DefaultWebAddr        = ":3080"
	DefaultAuthAddr       = ":3025"
	DefaultSSHAddr        = ":3022"
	DefaultStorage        = "sqlite"
	DefaultClusterName    = "gatehouse"
	DefaultLogLevel       = "info"
	DefaultLogFormat      = "text"
	DefaultAuditRetention = 90 * 24 * time.Hour
	DefaultAdminTTL       = 365 * 24 * time.Hour
	// DefaultLiveSessionStaleness is lockwatch's default bound (a test keeps
	// the two equal; config stays a leaf that imports no server package).
	DefaultLiveSessionStaleness = 5 * time.Minute
)

// File is the YAML configuration file. Every key is optional; flags override
// what the file sets.
type File struct {
	// Version is the file format version; "v1" (or empty).
	Version     string   `yaml:"version"`
	DataDir     string   `yaml:"data_dir"`
	ClusterName string   `yaml:"cluster_name"`
	PublicAddr  string   `yaml:"public_addr"`
	Storage     Storage  `yaml:"storage"`
	Auth        Auth     `yaml:"auth"`
	Web         Web      `yaml:"web"`
	SSH         Listener `yaml:"ssh"`
	Diag        Diag     `yaml:"diag"`
	Log         Log      `yaml:"log"`
}

// Storage selects the backend.
type Storage struct {
	// Type is the backend name ("sqlite", or "etcd" for several servers on
	// one cluster state).
	Type string `yaml:"type"`
	// Path is where an embedded backend keeps its files; default
	// <data_dir>/backend.
	Path string `yaml:"path"`
	// Etcd configures the etcd backend (type etcd).
	Etcd Etcd `yaml:"etcd"`
	// ReadCacheMB bounds the in-memory read cache of the sqlite and etcd
	// backends, in MiB (default 256; 0 turns it off).
	ReadCacheMB *int `yaml:"read_cache_mb"`
}

// Etcd is the storage.etcd section: where the etcd cluster is and how to
// authenticate to it. Every gatehouse server of one cluster uses the same
// endpoints and prefix.
type Etcd struct {
	// Endpoints are the etcd client URLs (https://etcd1:2379, ...).
	Endpoints []string `yaml:"endpoints"`
	// Prefix is the key prefix of this gatehouse cluster (default
	// "/gatehouse/"); it must end with "/".
	Prefix string `yaml:"prefix"`
	// CA verifies the etcd servers' certificates (PEM file).
	CA string `yaml:"ca"`
	// Cert and Key are the client certificate and key presented to etcd.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// WatchHealthTimeout, a Go duration, is how long a watch stream may go
	// unconfirmed before it is closed and its consumers reload (the lock
	// view is stale from then on). Default 10s.
	WatchHealthTimeout string `yaml:"watch_health_timeout"`
}

// Auth configures the auth service.
type Auth struct {
	ListenAddr string `yaml:"listen_addr"`
	// AuditRetention, a Go duration, is how long audit events are kept.
	AuditRetention string `yaml:"audit_retention"`
	// AdminIdentityTTL, a Go duration, is the lifetime of the generated
	// <data_dir>/admin.identity.
	AdminIdentityTTL string `yaml:"admin_identity_ttl"`
	// LiveSessionStaleness, a Go duration, is how long live SSH sessions
	// may run on a lock view that cannot be refreshed before they are ended
	// (new sessions are refused at once). Default 5m.
	LiveSessionStaleness string `yaml:"live_session_staleness"`
}

// Web configures the HTTPS listener.
type Web struct {
	ListenAddr string `yaml:"listen_addr"`
	// CertFile and KeyFile (PEM) replace the self-signed certificate.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// TrustedProxies are the CIDRs (or addresses) of the reverse proxies
	// or load balancers in front of the web listener. Only a request whose
	// TCP peer is one of them has its X-Forwarded-For read (its rightmost
	// address that is not a trusted proxy is the client); from anyone else
	// the header is ignored, so that a client cannot pick its own address
	// for the failure limiters and the audit log. Empty: no proxy trusted.
	TrustedProxies []string `yaml:"trusted_proxies"`
}

// Listener is a section with only a listen address.
type Listener struct {
	ListenAddr string `yaml:"listen_addr"`
}

// Diag configures the diagnostics listener (plain HTTP: bind it to loopback
// or a management network).
type Diag struct {
	ListenAddr string `yaml:"listen_addr"`
	// Pprof serves Go's runtime profiles under /debug/pprof/. Off by
	// default: profiles name code paths and a goroutine dump shows what
	// every request is doing, which is for operators only.
	Pprof bool `yaml:"pprof"`
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// Config is the effective, checked configuration.
type Config struct {
	DataDir     string
	ClusterName string
	PublicAddr  string
	StorageType string
	StoragePath string
	// Etcd holds the etcd settings (storage type etcd only); file paths
	// are absolute.
	Etcd Etcd
	// ReadCacheMB is storage.read_cache_mb (sqlite and etcd); nil means
	// the backend's default.
	ReadCacheMB *int
	AuthAddr    string
	WebAddr     string
	WebCertFile string
	WebKeyFile  string
	// WebTrustedProxies is web.trusted_proxies, parsed.
	WebTrustedProxies []netip.Prefix
	SSHAddr           string
	DiagAddr          string
	DiagPprof         bool
	LogLevel          slog.Level
	LogFormat         string
	AuditRetention    time.Duration
	AdminIdentityTTL  time.Duration
	// LiveSessionStaleness is auth.live_session_staleness.
	LiveSessionStaleness time.Duration
}

// Overrides are the command-line flags; a nil field was not given.
type Overrides struct {
	DataDir     *string
	ClusterName *string
	PublicAddr  *string
	Storage     *string
	// EtcdEndpoints is a comma-separated list of etcd client URLs.
	EtcdEndpoints *string
	EtcdPrefix    *string
	EtcdCA        *string
	EtcdCert      *string
	EtcdKey       *string
	AuthAddr      *string
	WebAddr       *string
	// TrustedProxies is a comma-separated list of CIDRs; it replaces
	// web.trusted_proxies ("" trusts none).
	TrustedProxies *string
	SSHAddr        *string
	DiagAddr       *string
	DiagPprof      *bool
	LogLevel       *string
	LogFormat      *string
}

// ReadFile parses a configuration file. A missing file is an error: the
// operator named it.
func ReadFile(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, trace.ConvertSystemError(err)
	}
	f, err := Parse(data)
	if err != nil {
		return nil, trace.BadParameter("config file %s: %v", path, err)
	}
	return f, nil
}

// Parse reads YAML configuration, refusing unknown keys and extra documents.
func Parse(data []byte) (*File, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, trace.BadParameter("%s", cleanYAMLError(err))
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, trace.BadParameter("only one YAML document is allowed")
	}
	if f.Version != "" && f.Version != "v1" {
		return nil, trace.BadParameter("unsupported version %q (want v1)", f.Version)
	}
	return &f, nil
}

// cleanYAMLError turns yaml.v3's "field foo not found in type config.File"
// into words an operator understands.
func cleanYAMLError(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.ReplaceAll(msg, "unmarshal errors:\n  ", "")
	if i := strings.Index(msg, "field "); i >= 0 && strings.Contains(msg, " not found in type ") {
		rest := msg[i+len("field "):]
		name := rest[:strings.Index(rest, " not found in type ")]
		return msg[:i] + "unknown key " + `"` + name + `"`
	}
	return msg
}

// Build merges the file (may be nil) and the overrides over the defaults and
// checks the result.
func Build(f *File, o Overrides) (*Config, error) {
	if f == nil {
		f = &File{}
	}
	c := &Config{
		DataDir:     pick(o.DataDir, f.DataDir, DefaultDataDir),
		ClusterName: pick(o.ClusterName, f.ClusterName, DefaultClusterName),
		PublicAddr:  pick(o.PublicAddr, f.PublicAddr, ""),
		StorageType: pick(o.Storage, f.Storage.Type, DefaultStorage),
		StoragePath: f.Storage.Path,
		ReadCacheMB: f.Storage.ReadCacheMB,
		AuthAddr:    pick(o.AuthAddr, f.Auth.ListenAddr, DefaultAuthAddr),
		WebAddr:     pick(o.WebAddr, f.Web.ListenAddr, DefaultWebAddr),
		WebCertFile: f.Web.CertFile,
		WebKeyFile:  f.Web.KeyFile,
		SSHAddr:     pick(o.SSHAddr, f.SSH.ListenAddr, DefaultSSHAddr),
		DiagAddr:    pick(o.DiagAddr, f.Diag.ListenAddr, ""),
		DiagPprof:   f.Diag.Pprof,
		LogFormat:   pick(o.LogFormat, f.Log.Format, DefaultLogFormat),
	}
	if o.DiagPprof != nil {
		c.DiagPprof = *o.DiagPprof
	}
	if c.DiagPprof && c.DiagAddr == "" {
		return nil, trace.BadParameter("diag.pprof needs the diagnostics listener: set diag.listen_addr (--diag-addr)")
	}
	var err error
	if c.LogLevel, err = ParseLevel(pick(o.LogLevel, f.Log.Level, DefaultLogLevel)); err != nil {
		return nil, trace.Wrap(err)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return nil, trace.BadParameter("log format %q: want text or json", c.LogFormat)
	}
	// Checked here, before anything starts, so that a typo is refused with
	// the choices rather than after the listeners opened and closed again.
	switch c.StorageType {
	case DefaultStorage, "memory", StorageEtcd:
	default:
		return nil, trace.BadParameter("storage type %q: want sqlite, memory or etcd (storage.type, --storage)", c.StorageType)
	}
	if c.AuditRetention, err = parseDuration("auth.audit_retention", f.Auth.AuditRetention, DefaultAuditRetention); err != nil {
		return nil, trace.Wrap(err)
	}
	if c.AdminIdentityTTL, err = parseDuration("auth.admin_identity_ttl", f.Auth.AdminIdentityTTL, DefaultAdminTTL); err != nil {
		return nil, trace.Wrap(err)
	}
	if c.LiveSessionStaleness, err = parseDuration("auth.live_session_staleness", f.Auth.LiveSessionStaleness, DefaultLiveSessionStaleness); err != nil {
		return nil, trace.Wrap(err)
	}
	if c.DataDir, err = filepath.Abs(c.DataDir); err != nil {
		return nil, trace.Wrap(err)
	}
	if c.StoragePath == "" && c.StorageType != "memory" && c.StorageType != StorageEtcd {
		// Embedded engines keep their files in the data dir; the memory
		// engine has none and etcd keeps the state in the etcd cluster.
		c.StoragePath = filepath.Join(c.DataDir, "backend")
	}
	if c.ReadCacheMB != nil && (*c.ReadCacheMB < 0 || *c.ReadCacheMB > 1<<20) {
		return nil, trace.BadParameter("storage.read_cache_mb %d: want 0 (off) to 1048576", *c.ReadCacheMB)
	}
	if c.ReadCacheMB != nil && c.StorageType != DefaultStorage && c.StorageType != StorageEtcd {
		return nil, trace.BadParameter("storage.read_cache_mb applies to storage types %s and %s only", DefaultStorage, StorageEtcd)
	}
	if err := c.buildEtcd(f.Storage.Etcd, o); err != nil {
		return nil, trace.Wrap(err)
	}
	proxies := f.Web.TrustedProxies
	if o.TrustedProxies != nil {
		proxies = nil
		for _, v := range strings.Split(*o.TrustedProxies, ",") {
			if v = strings.TrimSpace(v); v != "" {
				proxies = append(proxies, v)
			}
		}
	}
	if c.WebTrustedProxies, err = abuse.ParseTrustedProxies(proxies); err != nil {
		return nil, trace.BadParameter("web.trusted_proxies: %s", trace.UserMessage(err))
	}
	if (c.WebCertFile == "") != (c.WebKeyFile == "") {
		return nil, trace.BadParameter("web.cert_file and web.key_file go together: set both or neither")
	}
	if strings.TrimSpace(c.ClusterName) == "" || strings.ContainsAny(c.ClusterName, " /\t\n") {
		return nil, trace.BadParameter("cluster name %q: want a non-empty name without spaces or slashes", c.ClusterName)
	}
	for _, a := range []struct{ name, addr string }{
		{"auth address", c.AuthAddr}, {"web address", c.WebAddr}, {"ssh address", c.SSHAddr}, {"diagnostics address", c.DiagAddr},
	} {
		if a.addr == "" && a.name == "diagnostics address" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			return nil, trace.BadParameter("%s %q: want host:port (for example :3080)", a.name, a.addr)
		}
	}
	if c.PublicAddr != "" {
		if strings.Contains(c.PublicAddr, "://") || strings.Contains(c.PublicAddr, "/") {
			return nil, trace.BadParameter("public address %q: want host[:port], without a scheme or path", c.PublicAddr)
		}
	}
	return c, nil
}

// StorageEtcd is the storage type of the etcd backend.
const StorageEtcd = "etcd"

// buildEtcd merges the etcd settings of the file and the flags into c.Etcd
// and checks them against the storage type.
func (c *Config) buildEtcd(f Etcd, o Overrides) error {
	e := Etcd{
		WatchHealthTimeout: f.WatchHealthTimeout,
		Endpoints:          f.Endpoints,
		Prefix:             pick(o.EtcdPrefix, f.Prefix, ""),
		CA:                 pick(o.EtcdCA, f.CA, ""),
		Cert:               pick(o.EtcdCert, f.Cert, ""),
		Key:                pick(o.EtcdKey, f.Key, ""),
	}
	if o.EtcdEndpoints != nil {
		e.Endpoints = strings.Split(*o.EtcdEndpoints, ",")
	}
	var eps []string
	for _, ep := range e.Endpoints {
		if ep = strings.TrimSpace(ep); ep != "" {
			eps = append(eps, ep)
		}
	}
	e.Endpoints = eps
	set := len(e.Endpoints) > 0 || e.Prefix != "" || e.CA != "" || e.Cert != "" || e.Key != "" || e.WatchHealthTimeout != ""
	if c.StorageType != StorageEtcd {
		if set {
			return trace.BadParameter("etcd settings are given but the storage type is %q: set storage.type etcd (--storage etcd)", c.StorageType)
		}
		return nil
	}
	if len(e.Endpoints) == 0 {
		return trace.BadParameter("storage etcd needs at least one endpoint: storage.etcd.endpoints or --etcd-endpoints https://etcd1:2379,https://etcd2:2379")
	}
	if (e.Cert == "") != (e.Key == "") {
		return trace.BadParameter("storage.etcd.cert and storage.etcd.key (--etcd-cert, --etcd-key) go together: set both or neither")
	}
	if e.WatchHealthTimeout != "" {
		if _, err := parseDuration("storage.etcd.watch_health_timeout", e.WatchHealthTimeout, 0); err != nil {
			return trace.Wrap(err)
		}
	}
	if e.Prefix != "" && !strings.HasSuffix(e.Prefix, "/") {
		return trace.BadParameter("etcd prefix %q must end with \"/\"", e.Prefix)
	}
	for _, p := range []*string{&e.CA, &e.Cert, &e.Key} {
		if *p == "" {
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			return trace.Wrap(err)
		}
		*p = abs
	}
	c.Etcd = e
	return nil
}

// StorageSettings are the engine settings passed to the backend registry
// (backend.Params.Settings): the etcd keys for storage etcd, and the read
// cache size for sqlite and etcd when set; nil when there are none.
func (c *Config) StorageSettings() map[string]any {
	var m map[string]any
	switch c.StorageType {
	case DefaultStorage:
	case StorageEtcd:
		m = map[string]any{"endpoints": c.Etcd.Endpoints}
		for k, v := range map[string]string{"prefix": c.Etcd.Prefix, "ca": c.Etcd.CA, "cert": c.Etcd.Cert, "key": c.Etcd.Key, "watch_health_timeout": c.Etcd.WatchHealthTimeout} {
			if v != "" {
				m[k] = v
			}
		}
	default:
		return nil
	}
	if c.ReadCacheMB != nil {
		size := int64(*c.ReadCacheMB) << 20
		if size == 0 {
			size = -1 // off
		}
		if m == nil {
			m = map[string]any{}
		}
		m["read_cache_size"] = size
	}
	return m
}

// ParseLevel parses debug, info, warn or error.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, trace.BadParameter("log level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

func parseDuration(key, s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, trace.BadParameter("%s %q: want a positive Go duration such as 720h", key, s)
	}
	return d, nil
}

func pick(flag *string, file, def string) string {
	if flag != nil {
		return *flag
	}
	if file != "" {
		return file
	}
	return def
}
