package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/gravitational/trace"
	"github.com/spf13/cobra"

	"github.com/gatehouse/gatehouse/lib/canonical"
	"github.com/gatehouse/gatehouse/lib/scim/scimrecord"
	"github.com/gatehouse/gatehouse/lib/services"
	lockv1 "github.com/gatehouse/gatehouse/proto/gatehouse/lock/v1"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// lockOutput is the stable JSON/YAML shape of one lock in locks ls / rm.
type lockOutput struct {
	Name      string `json:"name"`
	Target    string `json:"target"`
	Message   string `json:"message"`
	CreatedBy string `json:"created_by"`
	CreatedAt string `json:"created_at"`
	// Expires is empty for a lock in force until lifted.
	Expires string `json:"expires"`
	// Plugin names the SCIM plugin that wrote the lock, if one did.
	Plugin string `json:"plugin,omitempty"`
	Reason string `json:"reason,omitempty"`
}

func lockView(l *typesv1.Lock) lockOutput {
	o := lockOutput{
		Name:      l.GetMetadata().GetName(),
		Target:    lockTarget(l.GetSpec().GetTarget()),
		Message:   l.GetSpec().GetMessage(),
		CreatedBy: l.GetSpec().GetCreatedBy(),
		Plugin:    scimLockPlugin(l),
		Reason:    l.GetMetadata().GetLabels()[scimrecord.LabelReason],
	}
	if t := l.GetSpec().GetCreatedAt(); t != nil {
		o.CreatedAt = ts(t)
	}
	if t := l.GetMetadata().GetExpires(); t != nil {
		o.Expires = ts(t)
	}
	return o
}

// scimLockPlugin is the plugin whose SCIM deactivation wrote l (its reason
// has SCIM's prefix), or "".
func scimLockPlugin(l *typesv1.Lock) string {
	labels := l.GetMetadata().GetLabels()
	if strings.HasPrefix(labels[scimrecord.LabelReason], scimrecord.ReasonPrefix) {
		return labels[services.LabelPlugin]
	}
	return ""
}

func (a *app) locksCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "locks",
		Aliases: []string{"lock"},
		Short:   "List and lift locks",
		Long: `List and lift locks. A lock refuses every credential and session of what
it targets (a user, a role, a login or a node) and ends the live ones.

SCIM writes a lock when Okta deactivates or unassigns a person: it is
permanent unless the Okta plugin sets lock_ttl ("gatectl plugins update okta
--lock-ttl 720h"), and SCIM lifts it itself when Okta assigns the person
again. Create a lock with "gatectl create -f lock.yaml"; "gatectl get locks"
and "gatectl rm lock/NAME" work as for any resource.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(a.locksLsCommand(), a.locksRmCommand())
	return cmd
}

// listLocks reads every lock, those targeting user only when user is set
// (compared in canonical form, as the server compares names).
func listLocks(ctx context.Context, c *apis, user string) ([]*typesv1.Lock, error) {
	all, err := listAll(func(tok string) ([]*typesv1.Lock, string, error) {
		r, err := c.locks.ListLocks(ctx, &lockv1.ListLocksRequest{PageSize: pageSize, PageToken: tok})
		return r.GetLocks(), r.GetNextPageToken(), trace.Wrap(err)
	})
	if err != nil {
		return nil, trace.Wrap(err)
	}
	var out []*typesv1.Lock
	for _, m := range all {
		l := m.(*typesv1.Lock)
		if user == "" || canonical.Equal(l.GetSpec().GetTarget().GetUser(), user) {
			out = append(out, l)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetMetadata().GetName() < out[j].GetMetadata().GetName() })
	return out, nil
}

func (a *app) locksLsCommand() *cobra.Command {
	var user string
	cmd := &cobra.Command{
		Use:   "ls [--user NAME]",
		Short: "List locks: target, reason, who wrote it, when, expiry",
		Long: `List the locks: their target, message (the reason), who wrote them
(a person, or "plugin:okta" for SCIM), when, and when they expire ("never":
until lifted). --user lists only the locks targeting that user (names are
compared in canonical form, so "Alice@Example.com" finds alice@example.com).

--format json prints a list of {"name", "target", "message", "created_by",
"created_at", "expires", "plugin", "reason"}.`,
		Example: "  gatectl locks ls\n  gatectl locks ls --user alice@example.com",
		Args:    noArgs("pass a user with --user NAME"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.checkedClient(cmd.Context())
			if err != nil {
				return err
			}
			locks, err := listLocks(cmd.Context(), c, user)
			if err != nil {
				return trace.Wrap(err)
			}
			out := make([]lockOutput, 0, len(locks))
			for _, l := range locks {
				out = append(out, lockView(l))
			}
			if a.format != "text" {
				return printData(a.out, a.format, out)
			}
			if len(out) == 0 {
				if user != "" {
					_, err = fmt.Fprintf(a.out, "No lock targets user %q.\n", canonical.Username(user))
				} else {
					_, err = fmt.Fprintln(a.out, "No locks.")
				}
				return trace.Wrap(err)
			}
			return trace.Wrap(printLockTable(a.out, out))
		},
	}
	cmd.Flags().StringVar(&user, "user", "", "only the locks targeting this user")
	return cmd
}

func printLockTable(w io.Writer, locks []lockOutput) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTARGET\tBY\tCREATED\tEXPIRES\tMESSAGE")
	for _, l := range locks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", l.Name, l.Target, dash(l.CreatedBy), dash(l.CreatedAt), orDefault(l.Expires, "never"), dash(l.Message))
	}
	return trace.Wrap(tw.Flush())
}

// liftExplanation says what lifting l means, for the confirmation.
func liftExplanation(l *typesv1.Lock) string {
	user := l.GetSpec().GetTarget().GetUser()
	if p := scimLockPlugin(l); p != "" && user != "" {
		return fmt.Sprintf(`Lock %q was written by SCIM (plugin %q) when Okta deactivated or unassigned %s.
Lifting it does not restore the account: it stays deleted. Assigning the person
to the app again in Okta re-creates it (and lifts this lock by itself). Every
certificate, session and password link of the old account stays void whatever
you do. Once lifted, the name is free: a SAML login through the plugin's
connector may create a temporary account under it.`, l.GetMetadata().GetName(), p, user)
	}
	return fmt.Sprintf("Lock %q on %s will be lifted: what it targets can sign in and get credentials again.",
		l.GetMetadata().GetName(), lockTarget(l.GetSpec().GetTarget()))
}

func (a *app) locksRmCommand() *cobra.Command {
	var (
		user string
		yes  bool
	)
	cmd := &cobra.Command{
		Use:   "rm (LOCKNAME | --user NAME) [--yes]",
		Short: "Lift a lock, or every lock on a user; asks for confirmation",
		Long: `Lift (delete) the lock LOCKNAME, or with --user every lock targeting the
user NAME (canonical form). It shows the locks and what lifting them means,
and asks for confirmation unless --yes is given.

Lifting a lock SCIM wrote when Okta deactivated a person does not bring the
account back: the account stays deleted, and assigning the person again in
Okta re-creates it (SCIM then lifts its own lock). Credentials of the old
account stay void for good. Each lift is an audit event ("lock.delete")
naming who lifted it; see "gatectl events ls".`,
		Example: `  gatectl locks rm --user alice@example.com
  gatectl locks rm scim-okta-3f2a... --yes`,
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case len(args) > 1:
				return trace.BadParameter("locks rm takes one LOCKNAME")
			case len(args) == 1 && user != "":
				return trace.BadParameter("give either LOCKNAME or --user NAME, not both")
			case len(args) == 0 && user == "":
				return trace.BadParameter("locks rm needs a LOCKNAME or --user NAME (list them with gatectl locks ls)")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, err := a.checkedClient(ctx)
			if err != nil {
				return err
			}
			var locks []*typesv1.Lock
			if len(args) == 1 {
				r, err := c.locks.GetLock(ctx, &lockv1.GetLockRequest{Name: args[0]})
				if err != nil {
					if trace.IsNotFound(err) {
						return trace.NotFound("lock %q not found (list locks with gatectl locks ls)", args[0])
					}
					return trace.Wrap(err)
				}
				locks = []*typesv1.Lock{r.GetLock()}
			} else {
				if locks, err = listLocks(ctx, c, user); err != nil {
					return trace.Wrap(err)
				}
				if len(locks) == 0 {
					return trace.NotFound("no lock targets user %q", canonical.Username(user))
				}
			}
			// The explanation goes to stderr with the prompt, so that
			// --format json keeps stdout machine-readable.
			msg := cmd.ErrOrStderr()
			views := make([]lockOutput, 0, len(locks))
			for _, l := range locks {
				views = append(views, lockView(l))
			}
			if !yes || a.format == "text" {
				if err := printLockTable(msg, views); err != nil {
					return err
				}
				for _, l := range locks {
					fmt.Fprintf(msg, "\n%s\n", liftExplanation(l))
				}
			}
			if !yes {
				fmt.Fprintf(msg, "\nLift %d lock(s)? Type yes to confirm: ", len(locks))
				line, _ := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if strings.TrimSpace(strings.ToLower(line)) != "yes" {
					return trace.BadParameter("not confirmed: no lock was lifted (pass --yes to skip the question)")
				}
			}
			var lifted []lockOutput
			for i, l := range locks {
				_, err := c.locks.DeleteLock(ctx, &lockv1.DeleteLockRequest{Name: l.GetMetadata().GetName()})
				if err != nil && !trace.IsNotFound(err) {
					return trace.Wrap(err, "lifted %d of %d locks; lock %q was not lifted", len(lifted), len(locks), l.GetMetadata().GetName())
				}
				lifted = append(lifted, views[i])
			}
			if a.format != "text" {
				return printData(a.out, a.format, lifted)
			}
			for _, l := range lifted {
				fmt.Fprintf(a.out, "Lock %q on %s lifted.\n", l.Name, l.Target)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&user, "user", "", "lift every lock targeting this user")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}
