// Command gatectl administers a Gatehouse cluster over the auth service's
// gRPC API (mTLS): it creates, reads and deletes resources, installs the Okta
// plugin and rotates its SCIM token, and searches the audit log.
//
// CLI library: github.com/spf13/cobra (already a module dependency), which
// gives every command --help and POSIX flags.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/gatehouse/gatehouse/cmd/internal/errline"

	"github.com/gravitational/trace"
	"github.com/spf13/cobra"

	"github.com/gatehouse/gatehouse/lib/safetext"
)

// version is set at link time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes gatectl with args and returns the process exit code. Errors
// are printed as one line on stderr.
//
// Everything gatectl prints, in every format, goes through a safetext.Writer:
// names, messages, traits and audit fields come from identity providers and
// SCIM clients, and a control character or a bidirectional override in them
// must reach the operator's terminal as a visible \uXXXX escape (an OSC 52
// sequence would otherwise write the operator's clipboard). Tab and line
// feed pass; JSON output stays valid JSON of the same values.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	out, errOut := &safetext.Writer{W: stdout}, &safetext.Writer{W: stderr}
	defer func() {
		_ = out.Flush()
		_ = errOut.Flush()
	}()
	app := newApp(out)
	root := app.rootCommand()
	root.SetArgs(args)
	root.SetOut(out)
	root.SetErr(errOut)
	if err := root.ExecuteContext(ctx); err != nil {
		msg := errline.Join(userMessage(err))
		// gRPC connects lazily, so an auth server that cannot be reached
		// shows first as the call's error, which names no address.
		if trace.IsConnectionProblem(err) && app.addr != "" && !strings.Contains(msg, "auth server at") {
			msg = fmt.Sprintf("auth server at %s: %s (is gatehouse running there? the address comes from --auth-server or <data-dir>/auth_addr)", app.addr, msg)
		}
		fmt.Fprintln(errOut, "ERROR: "+msg)
		return 1
	}
	return 0
}

// userMessage is the error as a person should read it, without stacks.
func userMessage(err error) string {
	msg := trace.UserMessage(err)
	if msg == "" {
		msg = err.Error()
	}
	return msg
}

// app holds the global flags and the connection, opened on first use.
type app struct {
	out        io.Writer
	dataDir    string
	authServer string
	identity   string
	format     string
	conn       *apis
	// addr is the auth server the connection was opened to, for errors.
	addr string
}

func newApp(out io.Writer) *app { return &app{out: out} }

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "gatectl",
		Short: "Administer a Gatehouse cluster",
		Long: `gatectl administers a Gatehouse cluster through the auth service's gRPC API (mTLS).

On the server's host, point it at the data directory: it reads the admin identity
(<data-dir>/admin.identity) and the auth address (<data-dir>/auth_addr) there:

  gatectl --data-dir ./data get plugins

Elsewhere, give the auth address and an identity file:

  gatectl --auth-server auth.example.com:3025 --identity alice.identity get users`,
		SilenceUsage:      true,
		SilenceErrors:     true,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
		Version:           version,
		PersistentPostRunE: func(*cobra.Command, []string) error {
			return a.close()
		},
	}
	// The same line as gatectl version (cobra's default is "gatectl version dev").
	root.SetVersionTemplate("gatectl {{.Version}}\n")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return trace.BadParameter("%v (see %s --help)", err, c.CommandPath())
	})
	pf := root.PersistentFlags()
	pf.StringVar(&a.dataDir, "data-dir", os.Getenv("GATEHOUSE_DATA_DIR"), "server data directory: use its admin.identity and auth_addr (env GATEHOUSE_DATA_DIR)")
	pf.StringVar(&a.authServer, "auth-server", "", "auth service address, host:port (default: read from <data-dir>/auth_addr)")
	pf.StringVar(&a.identity, "identity", "", "identity file (default: <data-dir>/admin.identity)")
	pf.StringVar(&a.format, "format", "text", "output format: text, yaml or json")

	root.AddCommand(
		a.createCommand(),
		a.getCommand(),
		a.rmCommand(),
		a.pluginsCommand(),
		a.locksCommand(),
		a.eventsCommand(),
		a.usersCommand(),
		a.authCommand(),
		a.versionCommand(),
	)
	return root
}

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print gatectl's version",
		Args:  noArgs(""),
		RunE: func(*cobra.Command, []string) error {
			_, err := fmt.Fprintf(a.out, "gatectl %s\n", version)
			return trace.Wrap(err)
		},
	}
}

// checkFormat validates --format before any call is made.
func (a *app) checkFormat() error {
	switch a.format {
	case "text", "yaml", "json":
		return nil
	}
	return trace.BadParameter("unknown --format %q: want text, yaml or json", a.format)
}

// oneArg checks that a command got exactly one argument, and otherwise says
// which one it wants and how it looks. cobra's own check ("accepts 1
// arg(s), received 0") names neither the command nor the argument.
func oneArg(what, example string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch len(args) {
		case 1:
			return nil
		case 0:
			return trace.BadParameter("%s needs %s, for example: %s", cmd.CommandPath(), what, example)
		default:
			return trace.BadParameter("%s takes one argument, %s; got %d: %s", cmd.CommandPath(), what, len(args), strings.Join(args, " "))
		}
	}
}

// noArgs refuses arguments to a command that takes none. cobra's own check
// calls a stray argument an "unknown command", which misleads on a command
// without subcommands (gatectl create okta-saml.yaml, without -f). hint, if
// set, says what the argument was probably meant to be.
func noArgs(hint string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return nil
		}
		msg := fmt.Sprintf("%s takes no argument, got %q", cmd.CommandPath(), strings.Join(args, " "))
		if hint != "" {
			msg += ": " + hint
		}
		return trace.BadParameter("%s", msg)
	}
}
