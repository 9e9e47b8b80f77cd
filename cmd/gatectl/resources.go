package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gravitational/trace"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	lockv1 "github.com/gatehouse/gatehouse/proto/gatehouse/lock/v1"
	pluginv1 "github.com/gatehouse/gatehouse/proto/gatehouse/plugin/v1"
	rolev1 "github.com/gatehouse/gatehouse/proto/gatehouse/role/v1"
	samlv1 "github.com/gatehouse/gatehouse/proto/gatehouse/saml/v1"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
	userv1 "github.com/gatehouse/gatehouse/proto/gatehouse/user/v1"
)

// kindOps are the calls gatectl makes for one resource kind.
type kindOps struct {
	kind    string
	aliases []string
	get     func(ctx context.Context, c *apis, name string) (proto.Message, error)
	list    func(ctx context.Context, c *apis) ([]proto.Message, error)
	create  func(ctx context.Context, c *apis, m proto.Message) error
	// upsert creates or replaces whatever the stored revision.
	upsert func(ctx context.Context, c *apis, m proto.Message) error
	del    func(ctx context.Context, c *apis, name string) error
	// header and row make the text table.
	header []string
	row    func(m proto.Message) []string
}

// pageSize is what gatectl asks for per list call.
const pageSize = 500

// listAll drains a paged list call.
func listAll[T proto.Message](fetch func(token string) ([]T, string, error)) ([]proto.Message, error) {
	var out []proto.Message
	token := ""
	for {
		items, next, err := fetch(token)
		if err != nil {
			return nil, trace.Wrap(err)
		}
		for _, it := range items {
			out = append(out, it)
		}
		if next == "" {
			return out, nil
		}
		token = next
	}
}

var kinds = []*kindOps{
	{
		kind: "user", aliases: []string{"users"},
		get: func(ctx context.Context, c *apis, name string) (proto.Message, error) {
			r, err := c.users.GetUser(ctx, &userv1.GetUserRequest{Name: name})
			return r.GetUser(), trace.Wrap(err)
		},
		list: func(ctx context.Context, c *apis) ([]proto.Message, error) {
			return listAll(func(tok string) ([]*typesv1.User, string, error) {
				r, err := c.users.ListUsers(ctx, &userv1.ListUsersRequest{PageSize: pageSize, PageToken: tok})
				return r.GetUsers(), r.GetNextPageToken(), trace.Wrap(err)
			})
		},
		create: func(ctx context.Context, c *apis, m proto.Message) error {
			_, err := c.users.CreateUser(ctx, &userv1.CreateUserRequest{User: m.(*typesv1.User)})
			return trace.Wrap(err)
		},
		upsert: func(ctx context.Context, c *apis, m proto.Message) error {
			_, err := c.users.UpsertUser(ctx, &userv1.UpsertUserRequest{User: m.(*typesv1.User)})
			return trace.Wrap(err)
		},
		del: func(ctx context.Context, c *apis, name string) error {
			_, err := c.users.DeleteUser(ctx, &userv1.DeleteUserRequest{Name: name})
			return trace.Wrap(err)
		},
		header: []string{"NAME", "ROLES", "CREATED BY", "EXPIRES"},
		row: func(m proto.Message) []string {
			u := m.(*typesv1.User)
			by := u.GetSpec().GetCreatedBy()
			creator := by.GetUser().GetName()
			if t := by.GetConnector().GetType(); t != "" {
				creator = t + ":" + by.GetConnector().GetId()
			}
			return []string{u.GetMetadata().GetName(), strings.Join(u.GetSpec().GetRoles(), ","), dash(creator), ts(u.GetMetadata().GetExpires())}
		},
	},
	{
		kind: "role", aliases: []string{"roles"},
		get: func(ctx context.Context, c *apis, name string) (proto.Message, error) {
			r, err := c.roles.GetRole(ctx, &rolev1.GetRoleRequest{Name: name})
			return r.GetRole(), trace.Wrap(err)
		},
		list: func(ctx context.Context, c *apis) ([]proto.Message, error) {
			return listAll(func(tok string) ([]*typesv1.Role, string, error) {
				r, err := c.roles.ListRoles(ctx, &rolev1.ListRolesRequest{PageSize: pageSize, PageToken: tok})
				return r.GetRoles(), r.GetNextPageToken(), trace.Wrap(err)
			})
		},
		create: func(ctx context.Context, c *apis, m proto.Message) error {
			_, err := c.roles.CreateRole(ctx, &rolev1.CreateRoleRequest{Role: m.(*typesv1.Role)})
			return trace.Wrap(err)
		},
		upsert: func(ctx context.Context, c *apis, m proto.Message) error {
			_, err := c.roles.UpsertRole(ctx, &rolev1.UpsertRoleRequest{Role: m.(*typesv1.Role)})
			return trace.Wrap(err)
		},
		del: func(ctx context.Context, c *apis, name string) error {
			_, err := c.roles.DeleteRole(ctx, &rolev1.DeleteRoleRequest{Name: name})
			return trace.Wrap(err)
		},
		header: []string{"NAME", "ALLOW", "DENY", "LOGINS"},
		row: func(m proto.Message) []string {
			r := m.(*typesv1.Role)
			return []string{r.GetMetadata().GetName(), rules(r.GetSpec().GetAllow().GetRules()), rules(r.GetSpec().GetDeny().GetRules()), dash(strings.Join(r.GetSpec().GetAllow().GetLogins(), ","))}
		},
	},
	{
		kind: "lock", aliases: []string{"locks"},
		get: func(ctx context.Context, c *apis, name string) (proto.Message, error) {
			r, err := c.locks.GetLock(ctx, &lockv1.GetLockRequest{Name: name})
			return r.GetLock(), trace.Wrap(err)
		},
		list: func(ctx context.Context, c *apis) ([]proto.Message, error) {
			return listAll(func(tok string) ([]*typesv1.Lock, string, error) {
				r, err := c.locks.ListLocks(ctx, &lockv1.ListLocksRequest{PageSize: pageSize, PageToken: tok})
				return r.GetLocks(), r.GetNextPageToken(), trace.Wrap(err)
			})
		},
		create: func(ctx context.Context, c *apis, m proto.Message) error {
			_, err := c.locks.CreateLock(ctx, &lockv1.CreateLockRequest{Lock: m.(*typesv1.Lock)})
			return trace.Wrap(err)
		},
		upsert: func(ctx context.Context, c *apis, m proto.Message) error {
			_, err := c.locks.UpsertLock(ctx, &lockv1.UpsertLockRequest{Lock: m.(*typesv1.Lock)})
			return trace.Wrap(err)
		},
		del: func(ctx context.Context, c *apis, name string) error {
			_, err := c.locks.DeleteLock(ctx, &lockv1.DeleteLockRequest{Name: name})
			return trace.Wrap(err)
		},
		header: []string{"NAME", "TARGET", "MESSAGE", "EXPIRES"},
		row: func(m proto.Message) []string {
			l := m.(*typesv1.Lock)
			return []string{l.GetMetadata().GetName(), lockTarget(l.GetSpec().GetTarget()), dash(l.GetSpec().GetMessage()), ts(l.GetMetadata().GetExpires())}
		},
	},
	{
		kind: "saml", aliases: []string{"saml_connector", "saml_connectors", "saml-connector", "saml-connectors"},
		get: func(ctx context.Context, c *apis, name string) (proto.Message, error) {
			r, err := c.saml.GetSAMLConnector(ctx, &samlv1.GetSAMLConnectorRequest{Name: name})
			return r.GetSamlConnector(), trace.Wrap(err)
		},
		list: func(ctx context.Context, c *apis) ([]proto.Message, error) {
			return listAll(func(tok string) ([]*typesv1.SAMLConnector, string, error) {
				r, err := c.saml.ListSAMLConnectors(ctx, &samlv1.ListSAMLConnectorsRequest{PageSize: pageSize, PageToken: tok})
				return r.GetSamlConnectors(), r.GetNextPageToken(), trace.Wrap(err)
			})
		},
		create: func(ctx context.Context, c *apis, m proto.Message) error {
			_, err := c.saml.CreateSAMLConnector(ctx, &samlv1.CreateSAMLConnectorRequest{SamlConnector: m.(*typesv1.SAMLConnector)})
			return trace.Wrap(err)
		},
		upsert: func(ctx context.Context, c *apis, m proto.Message) error {
			_, err := c.saml.UpsertSAMLConnector(ctx, &samlv1.UpsertSAMLConnectorRequest{SamlConnector: m.(*typesv1.SAMLConnector)})
			return trace.Wrap(err)
		},
		del: func(ctx context.Context, c *apis, name string) error {
			_, err := c.saml.DeleteSAMLConnector(ctx, &samlv1.DeleteSAMLConnectorRequest{Name: name})
			return trace.Wrap(err)
		},
		header: []string{"NAME", "DISPLAY", "ACS"},
		row: func(m proto.Message) []string {
			s := m.(*typesv1.SAMLConnector)
			return []string{s.GetMetadata().GetName(), dash(s.GetSpec().GetDisplay()), dash(s.GetSpec().GetAcs())}
		},
	},
	{
		kind: "plugin", aliases: []string{"plugins"},
		get: func(ctx context.Context, c *apis, name string) (proto.Message, error) {
			// Never with_secrets: gatectl has no reason to fetch hashes.
			r, err := c.plugins.GetPlugin(ctx, &pluginv1.GetPluginRequest{Name: name})
			return r.GetPlugin(), trace.Wrap(err)
		},
		list: func(ctx context.Context, c *apis) ([]proto.Message, error) {
			return listAll(func(tok string) ([]*typesv1.Plugin, string, error) {
				r, err := c.plugins.ListPlugins(ctx, &pluginv1.ListPluginsRequest{PageSize: pageSize, PageToken: tok})
				return r.GetPlugins(), r.GetNextPageToken(), trace.Wrap(err)
			})
		},
		create: func(ctx context.Context, c *apis, m proto.Message) error {
			_, err := c.plugins.CreatePlugin(ctx, &pluginv1.CreatePluginRequest{Plugin: m.(*typesv1.Plugin)})
			return trace.Wrap(err)
		},
		upsert: func(ctx context.Context, c *apis, m proto.Message) error {
			// PluginService has no upsert: create, or update over the
			// current revision.
			p := proto.Clone(m).(*typesv1.Plugin)
			cur, err := c.plugins.GetPlugin(ctx, &pluginv1.GetPluginRequest{Name: p.GetMetadata().GetName()})
			if trace.IsNotFound(err) {
				_, err = c.plugins.CreatePlugin(ctx, &pluginv1.CreatePluginRequest{Plugin: p})
				return trace.Wrap(err)
			}
			if err != nil {
				return trace.Wrap(err)
			}
			if p.Metadata == nil {
				p.Metadata = &typesv1.Metadata{}
			}
			p.Metadata.Revision = cur.GetPlugin().GetMetadata().GetRevision()
			_, err = c.plugins.UpdatePlugin(ctx, &pluginv1.UpdatePluginRequest{Plugin: p})
			return trace.Wrap(err)
		},
		del: func(ctx context.Context, c *apis, name string) error {
			_, err := c.plugins.DeletePlugin(ctx, &pluginv1.DeletePluginRequest{Name: name})
			return trace.Wrap(err)
		},
		header: []string{"NAME", "TYPE", "SAML CONNECTOR", "SCIM", "USER SYNC", "STATUS"},
		row: func(m proto.Message) []string {
			p := m.(*typesv1.Plugin)
			typ, conn, scim, userSync := "-", "-", "-", "-"
			if o := p.GetSpec().GetOkta(); o != nil {
				typ, conn = "okta", o.GetSamlConnector()
				scim, userSync = "disabled", "disabled"
				if o.GetScimEnabled() {
					scim = "enabled"
				}
				if o.GetUserSync().GetEnabled() {
					userSync = "enabled"
				}
			}
			// The server sets no status code of its own (only a SetPluginStatus
			// call does), so an unset one is "-", not "unspecified", which read
			// as a state of the plugin.
			status := "-"
			if code := p.GetStatus().GetCode(); code != typesv1.PluginStatusCode_PLUGIN_STATUS_CODE_UNSPECIFIED {
				status = strings.ToLower(strings.TrimPrefix(code.String(), "PLUGIN_STATUS_CODE_"))
			}
			return []string{p.GetMetadata().GetName(), typ, conn, scim, userSync, status}
		},
	},
}

// lookupKind finds a kind by name or alias.
func lookupKind(s string) (*kindOps, error) {
	s = strings.ToLower(s)
	for _, k := range kinds {
		if k.kind == s {
			return k, nil
		}
		for _, a := range k.aliases {
			if a == s {
				return k, nil
			}
		}
	}
	return nil, trace.BadParameter("unknown resource kind %q (want user, role, lock, saml or plugin)", s)
}

// parseRef splits KIND[/NAME].
func parseRef(ref string, needName bool) (*kindOps, string, error) {
	kindStr, name, hasName := strings.Cut(ref, "/")
	k, err := lookupKind(kindStr)
	if err != nil {
		return nil, "", trace.Wrap(err)
	}
	if hasName && name == "" || strings.Contains(name, "/") {
		return nil, "", trace.BadParameter("%q: want KIND/NAME, for example user/alice", ref)
	}
	if needName && name == "" {
		return nil, "", trace.BadParameter("%q: name missing: want KIND/NAME, for example %s/NAME", ref, k.kind)
	}
	return k, name, nil
}

func (a *app) getCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "get KIND[/NAME]",
		Short: "Show resources: user, role, lock, saml, plugin (plurals work too)",
		Long: `Show one resource (KIND/NAME) or all of a kind (KIND).

Kinds: user, role, lock, saml, plugin (plural forms are accepted).
--format yaml prints documents that "gatectl create -f" reads back;
--format json prints one object for KIND/NAME and an array for KIND.
Secrets (SCIM token hashes, private keys) are never shown.`,
		Example: "  gatectl get plugins\n  gatectl get user/alice --format yaml",
		Args:    oneArg("KIND or KIND/NAME (kinds: user, role, lock, saml, plugin)", "gatectl get users"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.checkFormat(); err != nil {
				return err
			}
			k, name, err := parseRef(args[0], false)
			if err != nil {
				return err
			}
			c, err := a.client(cmd.Context())
			if err != nil {
				return err
			}
			var items []proto.Message
			if name != "" {
				m, err := k.get(cmd.Context(), c, name)
				if err != nil {
					return trace.Wrap(err)
				}
				items = []proto.Message{m}
			} else if items, err = k.list(cmd.Context(), c); err != nil {
				return trace.Wrap(err)
			}
			if a.format == "text" {
				return printTable(a.out, k.header, items, k.row)
			}
			return encodeResources(a.out, a.format, items, name != "")
		},
	}
}

func (a *app) createCommand() *cobra.Command {
	var file string
	var force bool
	cmd := &cobra.Command{
		Use:   "create -f FILE",
		Short: "Create resources from a YAML or JSON file",
		Long: `Create the resources in FILE ("-" reads stdin): YAML documents separated by
"---", or JSON, each with kind, version (v1), metadata (name, labels, expires)
and spec. Without --force an existing resource is an error; with --force it is
replaced (created if missing). See docs/reference.md for examples of each kind.`,
		Example: "  gatectl create -f okta-saml.yaml\n  gatectl create --force -f roles.yaml",
		Args:    noArgs("give the file with -f FILE"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.checkFormat(); err != nil {
				return err
			}
			if file == "" {
				return trace.BadParameter("create needs -f FILE")
			}
			var data []byte
			var err error
			if file == "-" {
				data, err = io.ReadAll(os.Stdin)
			} else {
				data, err = os.ReadFile(file)
			}
			if err != nil {
				return trace.ConvertSystemError(err)
			}
			msgs, err := decodeResources(data)
			if err != nil {
				return trace.BadParameter("%s: %v", file, userMessage(err))
			}
			c, err := a.client(cmd.Context())
			if err != nil {
				return err
			}
			var results []map[string]string
			for _, m := range msgs {
				kind, name := kindName(m)
				k, err := lookupKind(kind)
				if err != nil {
					return err
				}
				action := "created"
				if force {
					err = k.upsert(cmd.Context(), c, m)
					action = "created or updated"
				} else {
					err = k.create(cmd.Context(), c, m)
					if trace.IsAlreadyExists(err) {
						return trace.AlreadyExists("%s %q already exists (use --force to replace it)", kind, name)
					}
				}
				if err != nil {
					return trace.Wrap(err)
				}
				results = append(results, map[string]string{"kind": kind, "name": name, "result": action})
				if a.format == "text" {
					fmt.Fprintf(a.out, "%s %q has been %s\n", kind, name, action)
				}
			}
			if a.format != "text" {
				return printData(a.out, a.format, results)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "resource file (YAML or JSON; - for stdin)")
	cmd.Flags().BoolVar(&force, "force", false, "replace resources that exist")
	return cmd
}

func (a *app) rmCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "rm KIND/NAME",
		Aliases: []string{"delete"},
		Short:   "Delete a resource",
		Long: `Delete one resource. Deleting a plugin also deletes its SCIM token hash.
Kinds: user, role, lock, saml, plugin.`,
		Example: "  gatectl rm user/alice\n  gatectl rm lock/alice-offboarded",
		Args:    oneArg("KIND/NAME", "gatectl rm user/alice"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.checkFormat(); err != nil {
				return err
			}
			k, name, err := parseRef(args[0], true)
			if err != nil {
				return err
			}
			c, err := a.client(cmd.Context())
			if err != nil {
				return err
			}
			if err := k.del(cmd.Context(), c, name); err != nil {
				return trace.Wrap(err)
			}
			if a.format == "text" {
				_, err = fmt.Fprintf(a.out, "%s %q has been deleted\n", k.kind, name)
				return trace.Wrap(err)
			}
			return printData(a.out, a.format, map[string]string{"kind": k.kind, "name": name, "result": "deleted"})
		},
	}
}

// kindName reads kind and metadata.name from any resource message.
func kindName(m proto.Message) (string, string) {
	type resource interface {
		GetKind() string
		GetMetadata() *typesv1.Metadata
	}
	if r, ok := m.(resource); ok {
		return r.GetKind(), r.GetMetadata().GetName()
	}
	return "", ""
}

func printTable(w io.Writer, header []string, items []proto.Message, row func(proto.Message) []string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	rows := make([][]string, 0, len(items))
	for _, m := range items {
		rows = append(rows, row(m))
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i][0] < rows[j][0] })
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return trace.Wrap(tw.Flush())
}

func rules(rs []*typesv1.Rule) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, strings.Join(r.GetResources(), ",")+":"+strings.Join(r.GetVerbs(), ","))
	}
	return dash(strings.Join(parts, " "))
}

func lockTarget(t *typesv1.LockTarget) string {
	var parts []string
	for _, p := range [][2]string{{"user", t.GetUser()}, {"role", t.GetRole()}, {"login", t.GetLogin()}, {"node", t.GetNode()}} {
		if p[1] != "" {
			parts = append(parts, p[0]+"="+p[1])
		}
	}
	return dash(strings.Join(parts, ","))
}

func ts(t *timestamppb.Timestamp) string {
	if t == nil {
		return "-"
	}
	return t.AsTime().UTC().Format(time.RFC3339)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
