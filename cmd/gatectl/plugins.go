package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/gravitational/trace"
	"github.com/spf13/cobra"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/gatehouse/gatehouse/lib/safetext"
	pluginv1 "github.com/gatehouse/gatehouse/proto/gatehouse/plugin/v1"
	samlv1 "github.com/gatehouse/gatehouse/proto/gatehouse/saml/v1"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// tokenOutput is the stable JSON/YAML shape of install and rotate-token.
type tokenOutput struct {
	BaseURL string `json:"base_url"`
	Token   string `json:"token"`
}

func (a *app) pluginsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "plugins",
		Aliases: []string{"plugin"},
		Short:   "Install integrations, change their settings and manage their SCIM tokens",
		Long: `Install integrations, change their settings and manage their SCIM tokens.
List plugins with "gatectl get plugins"; remove one with "gatectl rm plugin/NAME".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(a.pluginsInstallCommand(), a.pluginsUpdateCommand(), a.pluginsRotateCommand())
	cmd.AddCommand(a.userSyncCommands()...)
	return cmd
}

func (a *app) pluginsInstallCommand() *cobra.Command {
	var (
		samlConnector string
		defaultRoles  []string
		grantable     []string
		lockTTL       time.Duration
		name          string
	)
	cmd := &cobra.Command{
		Use:   "install okta --saml-connector NAME",
		Short: "Install the Okta plugin and print its SCIM base URL and bearer token",
		Long: `Install the Okta plugin: SCIM provisioning from the Okta app whose SAML
connector is NAME (it must exist: create it first with "gatectl create -f").

Prints the SCIM base URL and a new bearer token to paste into the Okta app's
provisioning settings. Gatehouse keeps only a hash of the token: it is shown
this once. "gatectl plugins rotate-token okta" replaces it.

SCIM grants a user --default-roles plus the roles its Okta groups map to
through the SAML connector, cut to --grantable-roles. Without
--grantable-roles, SCIM may grant every role that cannot write plugins,
connectors, roles, users, locks or certificates; anything else is dropped
and the drop is audited. Listing a role needs holding it (unless your
roles allow everything). --lock-ttl must be at least the longest
max_session_ttl of any role.

--format json prints {"base_url": "...", "token": "..."}.`,
		Example: "  gatectl plugins install okta --saml-connector okta --default-roles access --lock-ttl 720h",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 || args[0] != "okta" {
				return trace.BadParameter("plugins install needs the plugin type; supported: okta")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.checkFormat(); err != nil {
				return err
			}
			if samlConnector == "" {
				return trace.BadParameter("plugins install okta needs --saml-connector NAME (the SAML connector of the same Okta app)")
			}
			if lockTTL < 0 {
				return trace.BadParameter("--lock-ttl must not be negative")
			}
			ctx := cmd.Context()
			c, err := a.client(ctx)
			if err != nil {
				return err
			}
			// Checked here for a clear message; the server refuses it too.
			if _, err := c.saml.GetSAMLConnector(ctx, &samlv1.GetSAMLConnectorRequest{Name: samlConnector}); err != nil {
				if trace.IsNotFound(err) {
					return trace.NotFound("SAML connector %q not found: create it first (gatectl create -f connector.yaml), then install the plugin", samlConnector)
				}
				return trace.Wrap(err)
			}
			settings := &typesv1.OktaPluginSettings{
				SamlConnector:  samlConnector,
				ScimEnabled:    true,
				DefaultRoles:   defaultRoles,
				GrantableRoles: grantable,
			}
			if lockTTL > 0 {
				settings.LockTtl = lockTTL.String()
			}
			plugin := &typesv1.Plugin{
				Kind:     "plugin",
				Version:  "v1",
				Metadata: &typesv1.Metadata{Name: name},
				Spec:     &typesv1.PluginSpec{Settings: &typesv1.PluginSpec_Okta{Okta: settings}},
			}
			if _, err := c.plugins.CreatePlugin(ctx, &pluginv1.CreatePluginRequest{Plugin: plugin}); err != nil {
				if trace.IsAlreadyExists(err) {
					return trace.AlreadyExists("plugin %q is already installed (perhaps from the web UI): change its settings with \"gatectl plugins update %s\", make a new SCIM token with \"gatectl plugins rotate-token %s\"", name, name, name)
				}
				return trace.Wrap(err)
			}
			out, err := generateToken(ctx, c, name)
			if err != nil {
				return trace.Wrap(err, "plugin %q was installed but no SCIM token was made; run: gatectl plugins rotate-token %s", name, name)
			}
			if a.format == "text" {
				return printTokenText(a.out, fmt.Sprintf("Okta plugin %q installed, linked to SAML connector %q.", name, samlConnector), out, name)
			}
			return printData(a.out, a.format, out)
		},
	}
	f := cmd.Flags()
	f.StringVar(&samlConnector, "saml-connector", "", "name of the Okta app's SAML connector (required)")
	f.StringSliceVar(&defaultRoles, "default-roles", nil, "roles given to every SCIM-provisioned user, comma-separated")
	f.StringSliceVar(&grantable, "grantable-roles", nil, "the only roles SCIM may grant, comma-separated (default: every role that cannot administer the cluster)")
	f.DurationVar(&lockTTL, "lock-ttl", 0, "how long a deactivation lock lasts, e.g. 720h (default: until deleted)")
	f.StringVar(&name, "name", "okta", "plugin resource name")
	return cmd
}

// pluginSettingsOutput is the stable JSON/YAML shape of plugins update.
type pluginSettingsOutput struct {
	Name           string   `json:"name"`
	SAMLConnector  string   `json:"saml_connector"`
	SCIMEnabled    bool     `json:"scim_enabled"`
	DefaultRoles   []string `json:"default_roles"`
	GrantableRoles []string `json:"grantable_roles"`
	LockTTL        string   `json:"lock_ttl"`
}

func (a *app) pluginsUpdateCommand() *cobra.Command {
	var (
		defaultRoles []string
		grantable    []string
		lockTTL      string
	)
	cmd := &cobra.Command{
		Use:   "update NAME [--default-roles a,b] [--grantable-roles a,b] [--lock-ttl 720h|0]",
		Short: "Change the Okta plugin's role and lock settings; only the flags given change",
		Long: `Change the settings of the Okta plugin NAME (e.g. okta), whether it was
installed with "gatectl plugins install" or from the web UI's Okta tile. Only
the flags given change; everything else, the SCIM token included, is kept.

  --default-roles a,b    roles every SCIM-provisioned user gets ("" for none)
  --grantable-roles a,b  the only roles SCIM may grant ("" for the default:
                         every role that cannot administer the cluster)
  --lock-ttl DURATION    how long a deactivation lock lasts, e.g. 720h;
                         0 makes locks permanent (until lifted: see
                         "gatectl locks rm")

A SCIM user's roles are --default-roles plus the roles its pushed Okta groups
map to through the SAML connector, cut to --grantable-roles. Existing SCIM
users are brought in line with the new settings within a few seconds (a
reconcile pass starts within 2 s; each change is audited as
scim.roles.reconciled). The server checks the settings: listing a role
needs holding it (unless your roles allow everything), and --lock-ttl
must be at least the longest max_session_ttl of any role.

--format json prints the plugin's settings after the update.`,
		Example: `  gatectl plugins update okta --default-roles access
  gatectl plugins update okta --grantable-roles access,auditor --lock-ttl 720h
  gatectl plugins update okta --lock-ttl 0`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return trace.BadParameter("plugins update needs the plugin's NAME (e.g. okta)")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.checkFormat(); err != nil {
				return err
			}
			f := cmd.Flags()
			if !f.Changed("default-roles") && !f.Changed("grantable-roles") && !f.Changed("lock-ttl") {
				return trace.BadParameter("nothing to update: give --default-roles, --grantable-roles or --lock-ttl")
			}
			name := args[0]
			ctx := cmd.Context()
			c, err := a.client(ctx)
			if err != nil {
				return err
			}
			up, err := updateOktaSettings(ctx, c, name, func(okta *typesv1.OktaPluginSettings) {
				if f.Changed("default-roles") {
					okta.DefaultRoles = nonEmptyItems(defaultRoles)
				}
				if f.Changed("grantable-roles") {
					okta.GrantableRoles = nonEmptyItems(grantable)
				}
				if f.Changed("lock-ttl") {
					okta.LockTtl = lockTTLSetting(lockTTL)
				}
			})
			if err != nil {
				return trace.Wrap(err)
			}
			o := up.GetSpec().GetOkta()
			out := pluginSettingsOutput{
				Name:           name,
				SAMLConnector:  o.GetSamlConnector(),
				SCIMEnabled:    o.GetScimEnabled(),
				DefaultRoles:   nonNil(o.GetDefaultRoles()),
				GrantableRoles: nonNil(o.GetGrantableRoles()),
				LockTTL:        o.GetLockTtl(),
			}
			if a.format != "text" {
				return printData(a.out, a.format, out)
			}
			var b strings.Builder
			fmt.Fprintf(&b, "Plugin %q updated.\n", name)
			fmt.Fprintf(&b, "  default roles:    %s\n", dash(strings.Join(out.DefaultRoles, ", ")))
			fmt.Fprintf(&b, "  grantable roles:  %s\n", orDefault(strings.Join(out.GrantableRoles, ", "), "(default: every role that cannot administer the cluster)"))
			fmt.Fprintf(&b, "  lock TTL:         %s\n", orDefault(out.LockTTL, "(none: deactivation locks last until lifted)"))
			_, err = io.WriteString(a.out, b.String())
			return trace.Wrap(err)
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&defaultRoles, "default-roles", nil, `roles given to every SCIM-provisioned user, comma-separated ("" for none)`)
	f.StringSliceVar(&grantable, "grantable-roles", nil, `the only roles SCIM may grant, comma-separated ("" for the default)`)
	f.StringVar(&lockTTL, "lock-ttl", "", "how long a deactivation lock lasts, e.g. 720h; 0 for until lifted")
	return cmd
}

// updateOktaSettings reads the Okta plugin name, applies change to its
// settings and writes it back at the revision read, so that a change made
// meanwhile (in the UI, or SCIM's status counters) is never overwritten:
// on a conflict it reads again and reapplies change, a few times.
func updateOktaSettings(ctx context.Context, c *apis, name string, change func(*typesv1.OktaPluginSettings)) (*typesv1.Plugin, error) {
	for range 3 {
		r, err := c.plugins.GetPlugin(ctx, &pluginv1.GetPluginRequest{Name: name})
		if err != nil {
			if trace.IsNotFound(err) {
				return nil, trace.NotFound("plugin %q is not installed: install it with \"gatectl plugins install okta --saml-connector NAME\" or from the web UI", name)
			}
			return nil, trace.Wrap(err)
		}
		p := r.GetPlugin()
		if p.GetSpec().GetOkta() == nil {
			return nil, trace.BadParameter("plugin %q is not an Okta plugin; only Okta plugins have these settings", name)
		}
		change(p.GetSpec().GetOkta())
		up, err := c.plugins.UpdatePlugin(ctx, &pluginv1.UpdatePluginRequest{Plugin: p})
		if trace.IsCompareFailed(err) {
			continue
		}
		if err != nil {
			return nil, trace.Wrap(err)
		}
		return up.GetPlugin(), nil
	}
	return nil, trace.CompareFailed("plugin %q kept changing while it was being updated; run the command again", name)
}

// lockTTLSetting is the lock_ttl stored for --lock-ttl v: "0" (or empty,
// "0s"...) clears it, anything else goes to the server as typed, which
// checks it.
func lockTTLSetting(v string) string {
	v = strings.TrimSpace(v)
	if d, err := time.ParseDuration(v); v == "" || (err == nil && d == 0) {
		return ""
	}
	return v
}

// nonEmptyItems drops empty items, so that --default-roles "" means none.
func nonEmptyItems(in []string) []string {
	var out []string
	for _, s := range in {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func nonNil(in []string) []string {
	if in == nil {
		return []string{}
	}
	return in
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (a *app) pluginsRotateCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "rotate-token NAME",
		Short: "Replace a plugin's SCIM bearer token; the old one stops working at once",
		Long: `Make a new SCIM bearer token for the plugin NAME (e.g. okta) and print it
once. The previous token stops working immediately: update the Okta app's
provisioning settings with the new one.

--format json prints {"base_url": "...", "token": "..."}.`,
		Example: "  gatectl plugins rotate-token okta --format json",
		Args:    oneArg("the plugin's NAME", "gatectl plugins rotate-token okta"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.checkedClient(cmd.Context())
			if err != nil {
				return err
			}
			out, err := generateToken(cmd.Context(), c, args[0])
			if err != nil {
				return trace.Wrap(err)
			}
			if a.format == "text" {
				return printTokenText(a.out, fmt.Sprintf("New SCIM token for plugin %q; the previous token no longer works.", args[0]), out, args[0])
			}
			return printData(a.out, a.format, out)
		},
	}
}

func generateToken(ctx context.Context, c *apis, name string) (tokenOutput, error) {
	r, err := c.plugins.GenerateSCIMToken(ctx, &pluginv1.GenerateSCIMTokenRequest{Name: name})
	if err != nil {
		return tokenOutput{}, trace.Wrap(err)
	}
	return tokenOutput{BaseURL: r.GetBaseUrl(), Token: r.GetToken()}, nil
}

func printTokenText(w io.Writer, headline string, out tokenOutput, name string) error {
	base := out.BaseURL
	if base == "" {
		// Servers build it from --public-addr or their web listener; only
		// a server of an earlier version sends none.
		base = "https://<web address>/v1/webapi/scim/" + name + " (the server sent no base URL: see the web UI's SCIM tile)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", headline)
	fmt.Fprintf(&b, "In the Okta app, Provisioning > Integration > SCIM connection:\n")
	fmt.Fprintf(&b, "  SCIM connector base URL:  %s\n", base)
	fmt.Fprintf(&b, "  Authentication mode:      HTTP Header (Bearer)\n")
	fmt.Fprintf(&b, "  Bearer token:             %s\n\n", out.Token)
	fmt.Fprintf(&b, "The token is shown only this once. Replace it with: gatectl plugins rotate-token %s\n", name)
	_, err := io.WriteString(w, b.String())
	return trace.Wrap(err)
}

// printData writes v as indented JSON or as YAML.
func printData(w io.Writer, format string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return trace.Wrap(err)
	}
	if format == "yaml" {
		// The YAML parser refuses a raw C1 control or DEL in its input
		// (encoding/json leaves them raw), which would make one hostile
		// string fail the whole listing: escaped, the JSON text says the
		// same and the YAML emitter writes them as escapes itself.
		if b, err = sigsyaml.JSONToYAML([]byte(safetext.Escape(string(b)))); err != nil {
			return trace.Wrap(err)
		}
		_, err = w.Write(b)
		return trace.Wrap(err)
	}
	_, err = w.Write(append(b, '\n'))
	return trace.Wrap(err)
}
