package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gravitational/trace"
	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/gatehouse/gatehouse/lib/atomicfile"
	credentialsv1 "github.com/gatehouse/gatehouse/proto/gatehouse/credentials/v1"
)

// Output formats of auth sign.
const (
	signFormatOpenSSH  = "openssh"
	signFormatIdentity = "identity"
)

func (a *app) authCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "auth",
		Short: "Issue credentials for users",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(a.authSignCommand())
	return cmd
}

func (a *app) authSignCommand() *cobra.Command {
	var (
		user   string
		ttl    time.Duration
		out    string
		format string
	)
	cmd := &cobra.Command{
		Use:   "sign --user NAME --out FILE [--ttl 1h] [--format openssh|identity]",
		Short: "Issue an SSH certificate or an identity file for a user",
		Long: `Issue credentials for the user NAME (needs the create verb on kind "cert",
which the editor role has).

--format openssh (the default) makes a new ed25519 key here and writes it to
FILE (mode 0600) and its certificate to FILE-cert.pub, so that
"ssh -i FILE -p PORT LOGIN@NODE" works: the certificate's principals are
the logins the user's roles allow, its key id is the username. The command
it prints uses the SSH node's port from <data-dir>/ssh_addr with --data-dir,
else the default, 3022.

--format identity writes an identity file (mode 0600) to FILE for
"gatectl --identity FILE --auth-server HOST:PORT": an mTLS client
certificate acting as the user, with exactly the user's rights.

The lifetime is --ttl, cut to the shortest max_session_ttl of the user's
roles (and to the user's expiry); 0 means that maximum. A locked or expired
user gets nothing. The private key never leaves this machine for openssh;
for identity it is made by the server and sent over the mTLS connection.`,
		Example: `  gatectl auth sign --user alice --ttl 1h --out alice && ssh -i alice -p 3022 alice@node
  gatectl auth sign --user ci-reader --ttl 8h --out ci.identity --format identity`,
		Args: noArgs("pass the user with --user NAME"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case user == "":
				return trace.BadParameter("auth sign needs --user NAME")
			case out == "":
				return trace.BadParameter("auth sign needs --out FILE")
			case ttl < 0:
				return trace.BadParameter("--ttl must not be negative")
			case format != signFormatOpenSSH && format != signFormatIdentity:
				return trace.BadParameter("unknown --format %q: want openssh or identity", format)
			}
			user, note := canonicalName(user)
			if note != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "Signing for user %q%s.\n", user, note)
			}
			ctx := cmd.Context()
			c, err := a.client(ctx)
			if err != nil {
				return err
			}
			var d *durationpb.Duration
			if ttl > 0 {
				d = durationpb.New(ttl)
			}
			if format == signFormatIdentity {
				r, err := c.creds.CreateUserIdentity(ctx, &credentialsv1.CreateUserIdentityRequest{User: user, Ttl: d})
				if err != nil {
					return trace.Wrap(err)
				}
				if err := atomicfile.WriteFile(out, r.GetIdentity(), 0o600); err != nil {
					return err
				}
				_, err = fmt.Fprintf(a.out, "Identity of %q written to %s, valid until %s.\n", user, out, r.GetValidBefore().AsTime().UTC().Format(time.RFC3339))
				return trace.Wrap(err)
			}
			pub, priv, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				return trace.Wrap(err)
			}
			sshPub, err := ssh.NewPublicKey(pub)
			if err != nil {
				return trace.Wrap(err)
			}
			r, err := c.creds.SignSSHCert(ctx, &credentialsv1.SignSSHCertRequest{User: user, PublicKey: string(ssh.MarshalAuthorizedKey(sshPub)), Ttl: d})
			if err != nil {
				return trace.Wrap(err)
			}
			block, err := ssh.MarshalPrivateKey(priv, "gatehouse "+user)
			if err != nil {
				return trace.Wrap(err)
			}
			if err := atomicfile.WriteFile(out, pem.EncodeToMemory(block), 0o600); err != nil {
				return err
			}
			if err := atomicfile.WriteFile(out+"-cert.pub", []byte(r.GetCertificate()), 0o644); err != nil {
				return err
			}
			_, err = fmt.Fprintf(a.out, "SSH key %s and certificate %s-cert.pub for %q (logins %v), valid until %s.\nUse: ssh -i %s -p %s LOGIN@NODE\n",
				out, out, user, r.GetPrincipals(), r.GetValidBefore().AsTime().UTC().Format(time.RFC3339), out, a.sshPort())
			return trace.Wrap(err)
		},
	}
	f := cmd.Flags()
	f.StringVar(&user, "user", "", "user to issue credentials for (required)")
	f.DurationVar(&ttl, "ttl", time.Hour, "requested lifetime, e.g. 1h; 0 means the longest the user's roles allow")
	f.StringVar(&out, "out", "", "file to write (openssh: FILE and FILE-cert.pub) (required)")
	// Shadows the global --format (text, yaml, json) on this command.
	f.StringVar(&format, "format", signFormatOpenSSH, "what to write: openssh (key and certificate) or identity (gatectl identity file)")
	return cmd
}

// defaultSSHPort is gatehouse start's default --ssh-addr port.
const defaultSSHPort = "3022"

// sshPort is the SSH node's port for the command auth sign prints: the one
// the server on --data-dir bound (its ssh_addr file), so that the command
// works as printed on a server started with another --ssh-addr; else the
// default. It is only a hint, so an unreadable file falls back quietly.
func (a *app) sshPort() string {
	if a.dataDir == "" {
		return defaultSSHPort
	}
	data, err := os.ReadFile(filepath.Join(a.dataDir, sshAddrFile))
	if err != nil {
		return defaultSSHPort
	}
	_, port, err := net.SplitHostPort(strings.TrimSpace(string(data)))
	if err != nil || port == "" {
		return defaultSSHPort
	}
	return port
}
