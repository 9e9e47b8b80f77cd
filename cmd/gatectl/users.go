package main

import (
	"bufio"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/gravitational/trace"
	"github.com/spf13/cobra"

	"github.com/gatehouse/gatehouse/lib/canonical"
	"github.com/gatehouse/gatehouse/lib/services"
	credentialsv1 "github.com/gatehouse/gatehouse/proto/gatehouse/credentials/v1"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
	userv1 "github.com/gatehouse/gatehouse/proto/gatehouse/user/v1"
	"google.golang.org/protobuf/types/known/structpb"
)

// webAddrFile is the server's web address file in its data directory.
const webAddrFile = "web_addr"

// maxPasswordInput bounds what --password-stdin reads.
const maxPasswordInput = 4096

// userAddOutput is the stable JSON/YAML shape of users add.
type userAddOutput struct {
	User        string   `json:"user"`
	Roles       []string `json:"roles"`
	Logins      []string `json:"logins,omitempty"`
	PasswordURL string   `json:"password_url,omitempty"`
	PasswordSet bool     `json:"password_set"`
	LinkExpires string   `json:"link_expires,omitempty"`
}

func (a *app) usersCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "users",
		Aliases: []string{"user"},
		Short:   "Add local users",
		Long: `Add local users: accounts that log in with a password, for the first
administrator and break-glass access. People from Okta are provisioned over
SCIM and log in with SAML; they need no local account.
List users with "gatectl get users"; remove one with "gatectl rm user/NAME".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(a.usersAddCommand())
	return cmd
}

func (a *app) usersAddCommand() *cobra.Command {
	var (
		roles         []string
		logins        []string
		passwordStdin bool
	)
	cmd := &cobra.Command{
		Use:   "add NAME --roles ROLE[,ROLE...]",
		Short: "Create a local user and print a one-time link to set its password",
		Long: `Create the local user NAME holding --roles. --logins sets the user's "logins"
trait: the OS logins that roles using {{internal.logins}} (the preset "access"
role does) allow on SSH nodes.

By default it prints a one-time link, valid for 24 hours, that sets the
password: https://<public addr>/web/password?token=... Send it to the person
over a trusted channel; the link works once.

With --password-stdin the password is read from the first line of stdin
instead (12 to 72 bytes) and no link is made.

--format json prints {"user", "roles", "logins", "password_url", "password_set", "link_expires"}.`,
		Example: `  gatectl users add alice --roles editor
  gatectl users add breakglass --roles editor,access --logins root
  printf '%s\n' "$PASSWORD" | gatectl users add ops --roles access --logins ops --password-stdin`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return trace.BadParameter("users add needs exactly one NAME")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.checkFormat(); err != nil {
				return err
			}
			// Gatehouse stores usernames in canonical form (the server
			// folds a create the same way); say so when that changes the
			// name typed.
			name, note := canonicalName(args[0])
			if len(roles) == 0 {
				return trace.BadParameter("users add needs --roles ROLE[,ROLE...] (for example --roles editor)")
			}
			var password string
			if passwordStdin {
				pw, err := readPassword(cmd.InOrStdin())
				if err != nil {
					return err
				}
				password = pw
			}
			ctx := cmd.Context()
			c, err := a.client(ctx)
			if err != nil {
				return err
			}
			user := &typesv1.User{
				Kind:     "user",
				Version:  "v1",
				Metadata: &typesv1.Metadata{Name: name},
				Spec:     &typesv1.UserSpec{Roles: roles},
			}
			if len(logins) > 0 {
				vals := make([]any, len(logins))
				for i, l := range logins {
					vals[i] = l
				}
				list, err := structpb.NewList(vals)
				if err != nil {
					return trace.Wrap(err)
				}
				user.Spec.Traits = map[string]*structpb.ListValue{"logins": list}
			}
			if _, err := c.users.CreateUser(ctx, &userv1.CreateUserRequest{User: user}); err != nil {
				if trace.IsAlreadyExists(err) {
					return trace.AlreadyExists("user %q already exists%s", name, note)
				}
				return trace.Wrap(err)
			}
			out := userAddOutput{User: name, Roles: roles, Logins: logins}
			if passwordStdin {
				if _, err := c.creds.SetPassword(ctx, &credentialsv1.SetPasswordRequest{User: name, Password: password}); err != nil {
					return trace.Wrap(err, "user %q was created but its password was not set", name)
				}
				out.PasswordSet = true
			} else {
				r, err := c.creds.CreatePasswordToken(ctx, &credentialsv1.CreatePasswordTokenRequest{User: name})
				if err != nil {
					return trace.Wrap(err, "user %q was created but no password link was made", name)
				}
				out.PasswordURL = a.absoluteURL(r.GetUrl())
				out.LinkExpires = r.GetExpires().AsTime().UTC().Format("2006-01-02 15:04 MST")
			}
			if a.format != "text" {
				return printData(a.out, a.format, out)
			}
			var b strings.Builder
			fmt.Fprintf(&b, "User %q created with roles %s%s.\n", name, strings.Join(roles, ", "), note)
			if out.PasswordSet {
				fmt.Fprintf(&b, "Its password is set.\n")
			} else {
				fmt.Fprintf(&b, "\nSend this one-time link to set the password (valid until %s):\n\n  %s\n", out.LinkExpires, out.PasswordURL)
			}
			_, err = io.WriteString(a.out, b.String())
			return trace.Wrap(err)
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&roles, "roles", nil, "roles of the user, comma-separated (required)")
	f.StringSliceVar(&logins, "logins", nil, `OS logins for the user's "logins" trait, comma-separated`)
	f.BoolVar(&passwordStdin, "password-stdin", false, "read the password from stdin instead of printing a one-time link")
	return cmd
}

// canonicalName returns the canonical form of a username typed on the
// command line and, when it differs, a note for messages saying so.
func canonicalName(typed string) (string, string) {
	name := canonical.Username(typed)
	if name == typed || strings.HasPrefix(name, "@") {
		// A reserved name is sent as typed, so the server's refusal names it.
		return typed, ""
	}
	return name, fmt.Sprintf(" (you typed %q; Gatehouse stores usernames in canonical form)", typed)
}

// readPassword reads the first line of r, without its line ending.
func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, maxPasswordInput)).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", trace.Wrap(err, "reading the password from stdin")
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", trace.BadParameter("--password-stdin: no password on stdin")
	}
	// Checked here too, before the user is created: the server checks it
	// only when setting it, which would leave a user without the password
	// asked for.
	if err := services.CheckPassword(pw); err != nil {
		return "", trace.BadParameter("--password-stdin: %s; no user was created", trace.UserMessage(err))
	}
	return pw, nil
}

// absoluteURL turns a relative link from a server without --public-addr
// into one on the web address in the data dir, when there is one.
func (a *app) absoluteURL(link string) string {
	if strings.HasPrefix(link, "https://") || a.dataDir == "" {
		return link
	}
	data, err := os.ReadFile(filepath.Join(a.dataDir, webAddrFile))
	if err != nil {
		return link
	}
	u, err := url.Parse(link)
	if err != nil {
		return link
	}
	u.Scheme, u.Host = "https", strings.TrimSpace(string(data))
	return u.String()
}
