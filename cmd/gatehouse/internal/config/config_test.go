package config

import (
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/srv/lockwatch"
)

func ptr(s string) *string { return &s }

func TestParseAndOverride(t *testing.T) {
	t.Parallel()
	f, err := Parse([]byte(`
version: v1
data_dir: /srv/gh
cluster_name: acme
public_addr: gatehouse.acme.com:443
storage:
  type: sqlite
auth:
  listen_addr: 127.0.0.1:4025
  audit_retention: 720h
web:
  listen_addr: :443
ssh:
  listen_addr: :2222
diag:
  listen_addr: 127.0.0.1:3000
log:
  level: debug
  format: json
`))
	require.NoError(t, err)
	c, err := Build(f, Overrides{WebAddr: ptr("127.0.0.1:8443"), LogLevel: ptr("warn")})
	require.NoError(t, err)
	require.Equal(t, "/srv/gh", c.DataDir)
	require.Equal(t, filepath.Join("/srv/gh", "backend"), c.StoragePath)
	require.Equal(t, "acme", c.ClusterName)
	require.Equal(t, "gatehouse.acme.com:443", c.PublicAddr)
	require.Equal(t, "127.0.0.1:4025", c.AuthAddr)
	require.Equal(t, "127.0.0.1:8443", c.WebAddr, "flag beats file")
	require.Equal(t, ":2222", c.SSHAddr)
	require.Equal(t, "127.0.0.1:3000", c.DiagAddr)
	require.Equal(t, slog.LevelWarn, c.LogLevel, "flag beats file")
	require.Equal(t, "json", c.LogFormat)
	require.Equal(t, 720*time.Hour, c.AuditRetention)
}

// TestTrustedProxies: web.trusted_proxies is parsed from the file, the flag
// replaces it, and the default trusts no proxy.
func TestTrustedProxies(t *testing.T) {
	t.Parallel()
	c, err := Build(nil, Overrides{})
	require.NoError(t, err)
	require.Empty(t, c.WebTrustedProxies, "no proxy is trusted by default")
	f, err := Parse([]byte("web:\n  trusted_proxies: [10.0.0.0/8, \"192.0.2.10\", \"2001:db8::/32\"]\n"))
	require.NoError(t, err)
	c, err = Build(f, Overrides{})
	require.NoError(t, err)
	require.Equal(t, []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.10/32"), netip.MustParsePrefix("2001:db8::/32"),
	}, c.WebTrustedProxies)
	c, err = Build(f, Overrides{TrustedProxies: ptr(" 172.16.0.0/12 ,")})
	require.NoError(t, err)
	require.Equal(t, []netip.Prefix{netip.MustParsePrefix("172.16.0.0/12")}, c.WebTrustedProxies, "the flag replaces the file")
	c, err = Build(f, Overrides{TrustedProxies: ptr("")})
	require.NoError(t, err)
	require.Empty(t, c.WebTrustedProxies, "an empty flag trusts none")
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	c, err := Build(nil, Overrides{})
	require.NoError(t, err)
	require.Equal(t, DefaultDataDir, c.DataDir)
	require.Equal(t, ":3080", c.WebAddr)
	require.Equal(t, ":3025", c.AuthAddr)
	require.Equal(t, ":3022", c.SSHAddr)
	require.Empty(t, c.DiagAddr, "diagnostics are off unless set")
	require.Equal(t, "sqlite", c.StorageType)
	require.Equal(t, slog.LevelInfo, c.LogLevel)
	require.Equal(t, DefaultAdminTTL, c.AdminIdentityTTL)

	// An empty flag value is an explicit choice, e.g. --diag-addr "" turns
	// diagnostics off even when the file sets them.
	f, err := Parse([]byte("diag:\n  listen_addr: :3000\n"))
	require.NoError(t, err)
	c, err = Build(f, Overrides{DiagAddr: ptr("")})
	require.NoError(t, err)
	require.Empty(t, c.DiagAddr)
}

func TestRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, yaml string
		o          Overrides
		want       string
	}{
		{name: "unknown top key", yaml: "web_adr: :1\n", want: `unknown key "web_adr"`},
		{name: "unknown nested key", yaml: "web:\n  listen: :1\n", want: `unknown key "listen"`},
		{name: "bad version", yaml: "version: v2\n", want: "unsupported version"},
		{name: "two documents", yaml: "cluster_name: a\n---\ncluster_name: b\n", want: "one YAML document"},
		{name: "bad yaml", yaml: "web: [\n", want: ""},
		{name: "bad level", o: Overrides{LogLevel: ptr("loud")}, want: "log level"},
		{name: "bad format", o: Overrides{LogFormat: ptr("xml")}, want: "log format"},
		{name: "unknown storage", o: Overrides{Storage: ptr("postgres")}, want: `storage type "postgres": want sqlite, memory or etcd`},
		{name: "unknown storage in file", yaml: "storage:\n  type: lite\n", want: `storage type "lite": want sqlite, memory or etcd`},
		{name: "bad addr", o: Overrides{WebAddr: ptr("3080")}, want: "web address"},
		{name: "bad retention", yaml: "auth:\n  audit_retention: forever\n", want: "audit_retention"},
		{name: "cert without key", yaml: "web:\n  cert_file: /x.pem\n", want: "cert_file"},
		{name: "public addr with scheme", o: Overrides{PublicAddr: ptr("https://x")}, want: "public address"},
		{name: "cluster name with space", o: Overrides{ClusterName: ptr("a b")}, want: "cluster name"},
		{name: "bad live session staleness", yaml: "auth:\n  live_session_staleness: -1m\n", want: "auth.live_session_staleness"},
		{name: "pprof without diag listener", yaml: "diag:\n  pprof: true\n", want: "diag.listen_addr"},
		{name: "trusted proxy not a CIDR", yaml: "web:\n  trusted_proxies: [lb.example.com]\n", want: "web.trusted_proxies"},
		{name: "trusted proxy with host bits", yaml: "web:\n  trusted_proxies: [10.0.0.1/8]\n", want: "did you mean 10.0.0.0/8"},
		{name: "trusted proxy bad prefix", o: Overrides{TrustedProxies: ptr("10.0.0.0/40")}, want: "web.trusted_proxies"},
		{name: "trusted proxy empty entry", yaml: "web:\n  trusted_proxies: [\"\"]\n", want: "web.trusted_proxies"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, err := Parse([]byte(tc.yaml))
			if err == nil {
				_, err = Build(f, tc.o)
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestReadFile(t *testing.T) {
	t.Parallel()
	_, err := ReadFile(filepath.Join(t.TempDir(), "missing.yaml"))
	require.Error(t, err)
	p := filepath.Join(t.TempDir(), "gatehouse.yaml")
	require.NoError(t, os.WriteFile(p, []byte("bogus: 1\n"), 0o600))
	_, err = ReadFile(p)
	require.ErrorContains(t, err, p)
	require.ErrorContains(t, err, `unknown key "bogus"`)
}

func TestEtcdStorage(t *testing.T) {
	t.Parallel()
	file := `
storage:
  type: etcd
  etcd:
    endpoints: [https://etcd1:2379, https://etcd2:2379]
    prefix: /gh-prod/
    ca: /etc/gatehouse/etcd-ca.pem
    cert: /etc/gatehouse/etcd.pem
    key: /etc/gatehouse/etcd-key.pem
`
	for _, tc := range []struct {
		name    string
		file    string
		o       Overrides
		wantErr string
		check   func(t *testing.T, c *Config)
	}{
		{name: "file", file: file, check: func(t *testing.T, c *Config) {
			require.Equal(t, "etcd", c.StorageType)
			require.Empty(t, c.StoragePath, "etcd keeps no files in the data dir")
			require.Equal(t, map[string]any{
				"endpoints": []string{"https://etcd1:2379", "https://etcd2:2379"},
				"prefix":    "/gh-prod/",
				"ca":        "/etc/gatehouse/etcd-ca.pem",
				"cert":      "/etc/gatehouse/etcd.pem",
				"key":       "/etc/gatehouse/etcd-key.pem",
			}, c.StorageSettings())
		}},
		{name: "flags beat the file", file: file, o: Overrides{EtcdEndpoints: ptr(" http://a:2379, http://b:2379 ,"), EtcdPrefix: ptr("/x/")}, check: func(t *testing.T, c *Config) {
			require.Equal(t, []string{"http://a:2379", "http://b:2379"}, c.Etcd.Endpoints)
			require.Equal(t, "/x/", c.Etcd.Prefix)
			require.Equal(t, "/etc/gatehouse/etcd.pem", c.Etcd.Cert, "kept from the file")
		}},
		{name: "flags only, relative paths made absolute", o: Overrides{Storage: ptr("etcd"), EtcdEndpoints: ptr("http://127.0.0.1:2379"), EtcdCA: ptr("ca.pem")}, check: func(t *testing.T, c *Config) {
			wd, err := os.Getwd()
			require.NoError(t, err)
			require.Equal(t, map[string]any{"endpoints": []string{"http://127.0.0.1:2379"}, "ca": filepath.Join(wd, "ca.pem")}, c.StorageSettings())
		}},
		{name: "no endpoints", o: Overrides{Storage: ptr("etcd")}, wantErr: "at least one endpoint"},
		{name: "cert without key", o: Overrides{Storage: ptr("etcd"), EtcdEndpoints: ptr("https://e:2379"), EtcdCert: ptr("c.pem")}, wantErr: "go together"},
		{name: "prefix without slash", o: Overrides{Storage: ptr("etcd"), EtcdEndpoints: ptr("https://e:2379"), EtcdPrefix: ptr("/gh")}, wantErr: `must end with "/"`},
		{name: "etcd settings with sqlite", o: Overrides{EtcdEndpoints: ptr("https://e:2379")}, wantErr: `storage type is "sqlite"`},
		{name: "watch health timeout", file: file + "    watch_health_timeout: 3s\n", check: func(t *testing.T, c *Config) {
			require.Equal(t, "3s", c.StorageSettings()["watch_health_timeout"])
		}},
		{name: "bad watch health timeout", file: file + "    watch_health_timeout: soon\n", wantErr: "storage.etcd.watch_health_timeout"},
		{name: "sqlite has no settings", check: func(t *testing.T, c *Config) {
			require.Nil(t, c.StorageSettings())
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var f *File
			if tc.file != "" {
				var err error
				f, err = Parse([]byte(tc.file))
				require.NoError(t, err)
			}
			c, err := Build(f, tc.o)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			tc.check(t, c)
		})
	}
}

// TestReadCacheSetting: storage.read_cache_mb reaches the sqlite and etcd
// backends as bytes, 0 turning the cache off; unset passes nothing (the
// backend's default); other storage types refuse it.
func TestReadCacheSetting(t *testing.T) {
	t.Parallel()
	build := func(yaml string) (*Config, error) {
		f, err := Parse([]byte(yaml))
		require.NoError(t, err)
		return Build(f, Overrides{})
	}
	c, err := build("storage:\n  read_cache_mb: 64\n")
	require.NoError(t, err)
	require.Equal(t, map[string]any{"read_cache_size": int64(64 << 20)}, c.StorageSettings())
	c, err = build("storage:\n  read_cache_mb: 0\n")
	require.NoError(t, err)
	require.Equal(t, map[string]any{"read_cache_size": int64(-1)}, c.StorageSettings())
	c, err = build("storage:\n  type: sqlite\n")
	require.NoError(t, err)
	require.Nil(t, c.StorageSettings())
	_, err = build("storage:\n  read_cache_mb: -1\n")
	require.ErrorContains(t, err, "read_cache_mb")
	c, err = build("storage:\n  type: etcd\n  read_cache_mb: 64\n  etcd:\n    endpoints: [https://127.0.0.1:2379]\n")
	require.NoError(t, err)
	require.Equal(t, map[string]any{"endpoints": []string{"https://127.0.0.1:2379"}, "read_cache_size": int64(64 << 20)}, c.StorageSettings())
	c, err = build("storage:\n  type: etcd\n  read_cache_mb: 0\n  etcd:\n    endpoints: [https://127.0.0.1:2379]\n")
	require.NoError(t, err)
	require.Equal(t, int64(-1), c.StorageSettings()["read_cache_size"])
	_, err = build("storage:\n  type: memory\n  read_cache_mb: 64\n")
	require.ErrorContains(t, err, "read_cache_mb")
}

func TestLiveSessionStaleness(t *testing.T) {
	t.Parallel()
	c, err := Build(nil, Overrides{})
	require.NoError(t, err)
	require.Equal(t, DefaultLiveSessionStaleness, c.LiveSessionStaleness)
	// config keeps its own copy of lockwatch's default so that it imports no
	// server package; the copy must not drift.
	require.Equal(t, lockwatch.DefaultLiveSessionStaleness, DefaultLiveSessionStaleness)
	f, err := Parse([]byte("auth:\n  live_session_staleness: 90s\n"))
	require.NoError(t, err)
	c, err = Build(f, Overrides{})
	require.NoError(t, err)
	require.Equal(t, 90*time.Second, c.LiveSessionStaleness)
}
