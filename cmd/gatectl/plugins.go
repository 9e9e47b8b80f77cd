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
		Short:   "Install integrations and manage their SCIM tokens",
		Long: `Install integrations and manage their SCIM tokens.
List plugins with "gatectl get plugins"; remove one with "gatectl rm plugin/NAME".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(a.pluginsInstallCommand(), a.pluginsRotateCommand())
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
and the drop is audited. Listing a role needs holding it (or the right to
create and update users). --lock-ttl must be at least the longest
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
					return trace.AlreadyExists("plugin %q is already installed (rotate its token with: gatectl plugins rotate-token %s)", name, name)
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

func (a *app) pluginsRotateCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "rotate-token NAME",
		Short: "Replace a plugin's SCIM bearer token; the old one stops working at once",
		Long: `Make a new SCIM bearer token for the plugin NAME (e.g. okta) and print it
once. The previous token stops working immediately: update the Okta app's
provisioning settings with the new one.

--format json prints {"base_url": "...", "token": "..."}.`,
		Example: "  gatectl plugins rotate-token okta --format json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.checkFormat(); err != nil {
				return err
			}
			c, err := a.client(cmd.Context())
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
		base = "(unknown: start gatehouse with --public-addr) /v1/webapi/scim/" + name
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
		if b, err = sigsyaml.JSONToYAML(b); err != nil {
			return trace.Wrap(err)
		}
		_, err = w.Write(b)
		return trace.Wrap(err)
	}
	_, err = w.Write(append(b, '\n'))
	return trace.Wrap(err)
}
