// Command gatehouse runs the Gatehouse server: `gatehouse start` brings up
// the backend, the auth service (gRPC over mTLS), the HTTPS web listener and,
// if asked, a Prometheus diagnostics listener. The wiring lives in
// internal/process; this file is flags and signals.
//
// CLI library: github.com/spf13/cobra (already a module dependency).
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/gatehouse/gatehouse/cmd/internal/errline"

	"github.com/gravitational/trace"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gatehouse/gatehouse/cmd/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/cmd/gatehouse/internal/process"
	"github.com/gatehouse/gatehouse/lib/auth"
	"github.com/gatehouse/gatehouse/lib/auth/identityfile"
	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/canonical"
	"github.com/gatehouse/gatehouse/lib/safetext"
	"github.com/gatehouse/gatehouse/lib/services"
)

// version is set at link time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	root := rootCommand(stdout, stderr)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(stderr, "ERROR: "+errline.Of(err))
		return 1
	}
	return 0
}

func rootCommand(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "gatehouse",
		Short: "Gatehouse identity-aware access server",
		Long: `Gatehouse is an identity-aware access server. Okta provisions its users over SCIM;
a deactivated user is deleted and locked at once.

  gatehouse start --data-dir ./data --public-addr localhost:3080

then administer it with gatectl --data-dir ./data (see gatectl --help).`,
		SilenceUsage:      true,
		SilenceErrors:     true,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return trace.BadParameter("%v (see %s --help)", err, c.CommandPath())
	})
	root.AddCommand(startCommand(stdout, stderr), signCommand(stdout, stderr), recoverCommand(stdout, stderr), versionCommand(stdout))
	return root
}

func versionCommand(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			rev := ""
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" && len(s.Value) >= 12 {
						rev = " (" + s.Value[:12] + ")"
					}
				}
			}
			_, err := fmt.Fprintf(stdout, "gatehouse %s%s\n", version, rev)
			return trace.Wrap(err)
		},
	}
}

// startFlags are the flags of `gatehouse start`; only the ones given
// override the config file.
type startFlags struct {
	configFile string
	dataDir, clusterName, publicAddr, storage,
	authAddr, webAddr, sshAddr, diagAddr, logLevel, logFormat string
	trustedProxies                                       string
	etcdEndpoints, etcdPrefix, etcdCA, etcdCert, etcdKey string
	diagPprof                                            bool
}

// registerOffline registers the flags of a command that opens the server's
// storage itself while the server is stopped (recover, sign): where the
// configuration and the data are, and the cluster's name.
func (f *startFlags) registerOffline(fs *pflag.FlagSet, configHelp string) {
	fs.StringVarP(&f.configFile, "config", "c", "", configHelp)
	fs.StringVar(&f.dataDir, "data-dir", config.DefaultDataDir, "the server's data directory")
	fs.StringVar(&f.storage, "storage", config.DefaultStorage, "storage backend")
	f.registerEtcd(fs)
	fs.StringVar(&f.clusterName, "cluster-name", config.DefaultClusterName, "cluster name")
}

// registerEtcd adds the etcd storage flags.
func (f *startFlags) registerEtcd(fs *pflag.FlagSet) {
	fs.StringVar(&f.etcdEndpoints, "etcd-endpoints", "", "with --storage etcd: comma-separated etcd client URLs (https://etcd1:2379,https://etcd2:2379)")
	fs.StringVar(&f.etcdPrefix, "etcd-prefix", "", `with --storage etcd: key prefix of this cluster, ending in "/" (default "/gatehouse/")`)
	fs.StringVar(&f.etcdCA, "etcd-ca", "", "with --storage etcd: CA file (PEM) that verifies the etcd servers")
	fs.StringVar(&f.etcdCert, "etcd-cert", "", "with --storage etcd: client certificate file (PEM) presented to etcd")
	fs.StringVar(&f.etcdKey, "etcd-key", "", "with --storage etcd: client key file (PEM) for --etcd-cert")
}

func (f *startFlags) register(fs *pflag.FlagSet) {
	fs.StringVarP(&f.configFile, "config", "c", "", "YAML configuration file (flags override it)")
	fs.StringVar(&f.dataDir, "data-dir", config.DefaultDataDir, "directory for the database, keys, admin identity and address files")
	fs.StringVar(&f.clusterName, "cluster-name", config.DefaultClusterName, "cluster name, written into certificates")
	fs.StringVar(&f.publicAddr, "public-addr", "", "host:port people and Okta reach the web listener at (used in the SCIM base URL, the SAML ACS URL and password links; default: the web listener's address)")
	fs.StringVar(&f.storage, "storage", config.DefaultStorage, "storage backend: "+strings.Join(backend.Names(), ", ")+" (memory: for tests, lost on exit)")
	f.registerEtcd(fs)
	fs.StringVar(&f.authAddr, "auth-addr", config.DefaultAuthAddr, "auth gRPC (mTLS) listen address; port 0 picks a free port")
	fs.StringVar(&f.webAddr, "web-addr", config.DefaultWebAddr, "HTTPS web listen address; port 0 picks a free port")
	fs.StringVar(&f.trustedProxies, "trusted-proxies", "", "comma-separated CIDRs of the reverse proxies in front of the web listener whose X-Forwarded-For is believed (none unless set)")
	fs.StringVar(&f.sshAddr, "ssh-addr", config.DefaultSSHAddr, "SSH node listen address (user certificates from the cluster's user CA); port 0 picks a free port")
	fs.StringVar(&f.diagAddr, "diag-addr", "", "diagnostics listen address serving Prometheus /metrics and /healthz over plain HTTP (off unless set)")
	fs.BoolVar(&f.diagPprof, "diag-pprof", false, "with --diag-addr: also serve Go runtime profiles at /debug/pprof/ (for operators only)")
	fs.StringVar(&f.logLevel, "log-level", config.DefaultLogLevel, "log level: debug, info, warn, error")
	fs.StringVar(&f.logFormat, "log-format", config.DefaultLogFormat, "log format: text or json")
}

// overrides returns the flags that were set on the command line.
func (f *startFlags) overrides(fs *pflag.FlagSet) config.Overrides {
	set := func(name string, v *string) *string {
		if fs.Changed(name) {
			return v
		}
		return nil
	}
	setBool := func(name string, v *bool) *bool {
		if fs.Changed(name) {
			return v
		}
		return nil
	}
	return config.Overrides{
		DataDir:        set("data-dir", &f.dataDir),
		ClusterName:    set("cluster-name", &f.clusterName),
		PublicAddr:     set("public-addr", &f.publicAddr),
		Storage:        set("storage", &f.storage),
		EtcdEndpoints:  set("etcd-endpoints", &f.etcdEndpoints),
		EtcdPrefix:     set("etcd-prefix", &f.etcdPrefix),
		EtcdCA:         set("etcd-ca", &f.etcdCA),
		EtcdCert:       set("etcd-cert", &f.etcdCert),
		EtcdKey:        set("etcd-key", &f.etcdKey),
		AuthAddr:       set("auth-addr", &f.authAddr),
		WebAddr:        set("web-addr", &f.webAddr),
		TrustedProxies: set("trusted-proxies", &f.trustedProxies),
		SSHAddr:        set("ssh-addr", &f.sshAddr),
		DiagAddr:       set("diag-addr", &f.diagAddr),
		DiagPprof:      setBool("diag-pprof", &f.diagPprof),
		LogLevel:       set("log-level", &f.logLevel),
		LogFormat:      set("log-format", &f.logFormat),
	}
}

func (f *startFlags) load(fs *pflag.FlagSet) (*config.Config, error) {
	var file *config.File
	if f.configFile != "" {
		var err error
		if file, err = config.ReadFile(f.configFile); err != nil {
			return nil, trace.Wrap(err)
		}
	}
	return config.Build(file, f.overrides(fs))
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel, ReplaceAttr: safeLogAttr}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// maxLogValue bounds one string in a log line: values come from outside
// (a SAML NameID, the login an unauthenticated SSH client asks for, a
// certificate's key id) and may be as long as a packet.
const maxLogValue = 1024

// safeLogAttr bounds every string and error value of a log line and shows
// its control characters and bidi overrides as \uXXXX escapes. The text
// handler quotes such a value itself, but the JSON handler writes C1
// controls, DEL and bidi overrides raw, which a terminal tailing the log
// acts on.
func safeLogAttr(_ []string, a slog.Attr) slog.Attr {
	var s string
	switch a.Value.Kind() {
	case slog.KindString:
		s = a.Value.String()
	case slog.KindAny:
		err, ok := a.Value.Any().(error)
		if !ok || err == nil {
			return a
		}
		s = err.Error()
	default:
		return a
	}
	b := s
	if len(b) > maxLogValue {
		b = fmt.Sprintf("%s...(%d bytes in all)", safetext.Prefix(b, maxLogValue), len(s))
	}
	// A value that needs neither is left as it is (an error keeps the
	// handler's own formatting).
	if b = safetext.Escape(b); b != s {
		a.Value = slog.StringValue(b)
	}
	return a
}

func startCommand(stdout, stderr io.Writer) *cobra.Command {
	var f startFlags
	cmd := &cobra.Command{
		Use:   "start",
		Short: "Start the Gatehouse server",
		Long: `Start the Gatehouse server: storage, the auth service (gRPC, mTLS), the HTTPS web
listener (/healthz, /readyz, SCIM and SSO endpoints), the SSH node service and,
with --diag-addr, Prometheus /metrics (and, with --diag-pprof, Go profiles).

Settings come from --config FILE (YAML; unknown keys are refused) and flags;
a flag given on the command line wins over the file. See docs/reference.md for the
file's keys.

On start the server writes into --data-dir:
  admin.identity   credentials of the built-in operator identity @admin (editor
                   rights) for gatectl, mode 0600, renewed by the running server
                   before they expire; if an editor locks @admin, see
                   gatehouse recover --help
  auth_addr        the auth listener's address, for gatectl --data-dir
  web_addr         the web listener's address
  ssh_addr         the SSH node's address
  ssh_host_key     the SSH node's host key, mode 0600 (its certificate is issued
                   by the host CA at every start)
  web.crt/web.key  the self-signed web certificate, unless one is configured

With --storage etcd the cluster state (CAs, users, roles, locks, plugins)
lives in etcd and several servers, each with its own --data-dir, serve it at
once behind a load balancer (see docs/ha.md).

SIGINT or SIGTERM shuts it down gracefully.`,
		Example: "  gatehouse start --data-dir ./data --public-addr localhost:3080\n  gatehouse start --config /etc/gatehouse.yaml --log-format json",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.load(cmd.Flags())
			if err != nil {
				return trace.Wrap(err)
			}
			log := newLogger(cfg, stderr)
			slog.SetDefault(log)
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			p, err := process.Start(ctx, process.Config{Settings: cfg, Logger: log, Stdout: stdout})
			if err != nil {
				return trace.Wrap(err)
			}
			<-ctx.Done()
			log.Info("Shutting down.")
			sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			return trace.Wrap(p.Shutdown(sctx))
		},
	}
	f.register(cmd.Flags())
	return cmd
}

func recoverCommand(stdout, stderr io.Writer) *cobra.Command {
	var f startFlags
	cmd := &cobra.Command{
		Use:   "recover",
		Short: "Give the operator back admin.identity: void old copies, lift locks on @admin (server stopped)",
		Long: `Recover the built-in operator identity @admin on a stopped server.

admin.identity is issued to @admin, Gatehouse's built-in operator identity: it is
no user record, so no identity provider (SCIM, SAML) and no lock on a user or a
role can take it over or lock it out. Only a lock whose target is the user
"@admin", written by an editor through the lock API, refuses it. If such a lock
leaves nobody able to lift it, run this on the server's host:

  1. stop the server (the gatehouse start process);
  2. gatehouse recover --data-dir DIR (the server's --data-dir, and its
     --cluster-name if it sets one; or its --config): it voids every admin identity issued before (a leaked copy of
     admin.identity included), removes every lock whose target user is @admin,
     printing each one and recording it in the audit log, and writes a fresh
     DIR/admin.identity;
  3. start the server again and use gatectl --data-dir DIR.

It refuses to run while the server holds the data dir (the SQLite storage admits
one process at a time), and on a data dir without a Gatehouse cluster. On etcd
storage (--storage etcd ...) it may run while the servers are up; they see the
locks go, and the old admin identities stop working, at once (each server
rewrites its own admin.identity within 10 minutes). It changes nothing else:
users, roles and other locks stay as they are.`,
		Example: "  gatehouse recover --data-dir /var/lib/gatehouse\n  gatehouse recover --config /etc/gatehouse.yaml",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.load(cmd.Flags())
			if err != nil {
				return trace.Wrap(err)
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			_, err = process.Recover(ctx, process.RecoverConfig{Settings: cfg, Logger: newLogger(cfg, stderr), Stdout: stdout})
			return trace.Wrap(err)
		},
	}
	fs := cmd.Flags()
	f.registerOffline(fs, "YAML configuration file (the server's)")
	fs.StringVar(&f.logLevel, "log-level", config.DefaultLogLevel, "log level: debug, info, warn, error")
	return cmd
}

func signCommand(stdout, stderr io.Writer) *cobra.Command {
	var (
		f    startFlags
		user string
		ttl  time.Duration
		out  string
	)
	cmd := &cobra.Command{
		Use:   "sign --user NAME --out FILE",
		Short: "Write an identity file for a user (run on the server host while gatehouse is stopped)",
		Long: `Issue credentials for an existing user and write them as an identity file that
gatectl accepts with --identity. The certificate carries the user's roles, so
the identity can do exactly what those roles allow; its lifetime is capped by
the roles' max_session_ttl.

This opens the storage directly: run it on the server's host, with the same
--data-dir and --cluster-name (or --config), while "gatehouse start" is
stopped (the SQLite storage admits one process at a time). On etcd storage
(--storage etcd --etcd-endpoints ...) it may run while the servers are up.`,
		Example: "  gatehouse sign --data-dir ./data --user alice --ttl 8h --out alice.identity",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if user == "" || out == "" {
				return trace.BadParameter("sign needs --user NAME and --out FILE")
			}
			cfg, err := f.load(cmd.Flags())
			if err != nil {
				return trace.Wrap(err)
			}
			log := newLogger(cfg, stderr)
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			bk, err := backend.New(ctx, cfg.StorageType, backend.Params{Path: cfg.StoragePath, Settings: cfg.StorageSettings()})
			if err != nil {
				return trace.Wrap(err, "opening %s (is gatehouse start still running on this data dir?)", cfg.StoragePath)
			}
			defer bk.Close()
			a, err := auth.New(ctx, auth.Config{Backend: bk, ClusterName: cfg.ClusterName, Logger: log, AuditRetention: cfg.AuditRetention, PublicAddr: cfg.PublicAddr})
			if err != nil {
				return trace.Wrap(err)
			}
			if c := canonical.Username(user); c != user && !services.IsReservedUsername(user) {
				fmt.Fprintf(stdout, "Signing for user %q (you typed %q; Gatehouse stores usernames in canonical form).\n", c, user)
				user = c
			}
			id, err := a.GenerateUserIdentity(ctx, user, ttl)
			if err != nil {
				return trace.Wrap(err)
			}
			if err := identityfile.Write(out, id); err != nil {
				return trace.Wrap(err)
			}
			abs, _ := filepath.Abs(out)
			_, err = fmt.Fprintf(stdout, "Wrote the identity of user %q to %s\nUse it with: gatectl --auth-server HOST:PORT --identity %s ...\n", user, abs, abs)
			return trace.Wrap(err)
		},
	}
	fs := cmd.Flags()
	f.registerOffline(fs, "YAML configuration file")
	fs.StringVar(&user, "user", "", "user to issue the identity for (must exist)")
	fs.DurationVar(&ttl, "ttl", time.Hour, "certificate lifetime (capped by the user's roles)")
	fs.StringVar(&out, "out", "", "identity file to write (mode 0600)")
	return cmd
}

// noArgs refuses arguments: every setting is a flag. cobra's own check calls
// a stray argument an "unknown command", which misleads on "gatehouse start
// ./data" (meant: --data-dir ./data).
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	return trace.BadParameter("%s takes no argument, got %q: settings are flags, such as --data-dir DIR (see %s --help)", cmd.CommandPath(), strings.Join(args, " "), cmd.CommandPath())
}
