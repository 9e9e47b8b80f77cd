package standin

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/auth/client"
	"github.com/gatehouse/gatehouse/lib/auth/identityfile"
	"github.com/gatehouse/gatehouse/lib/auth/saml"
	pluginv1 "github.com/gatehouse/gatehouse/proto/gatehouse/plugin/v1"
	rolev1 "github.com/gatehouse/gatehouse/proto/gatehouse/role/v1"
	samlv1 "github.com/gatehouse/gatehouse/proto/gatehouse/saml/v1"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// What the demo sets up in Gatehouse.
const (
	// ConnectorName is the SAML connector and PluginName the okta plugin,
	// the names the Okta guide uses.
	ConnectorName = "okta"
	PluginName    = "okta"
	// DemoRole is every provisioned person's default role: SSH as the
	// demo's OS login, nothing in the admin API.
	DemoRole = "demo"
	// AuditorRole is the preset role the Auditors group maps to.
	AuditorRole = "auditor"
)

// Files of Gatehouse's data dir the stand-in reads, as gatectl does.
const (
	adminIdentityFile = "admin.identity"
	authAddrFile      = "auth_addr"
	webCertFile       = "web.crt"
)

// Gatehouse is how the stand-in reaches a running Gatehouse: its web URL
// (the browser's, the ACS's and SCIM's) and its data dir (the operator
// identity, the auth address and the self-signed web certificate).
type Gatehouse struct {
	// URL is the web listener's base URL, e.g. https://localhost:3080.
	URL string
	// DataDir is the server's --data-dir.
	DataDir string
}

// HTTPClient trusts Gatehouse's self-signed web certificate from the data
// dir, and nothing else.
func (g Gatehouse) HTTPClient() (*http.Client, error) {
	pemBytes, err := os.ReadFile(filepath.Join(g.DataDir, webCertFile))
	if err != nil {
		return nil, trace.ConvertSystemError(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, trace.BadParameter("%s holds no certificate", filepath.Join(g.DataDir, webCertFile))
	}
	return &http.Client{
		Timeout:   scimCallBudget,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
	}, nil
}

// ACSURL is the connector's assertion consumer service.
func (g Gatehouse) ACSURL() string { return g.URL + "/v1/webapi/saml/acs/" + ConnectorName }

// SCIMBaseURL is the okta plugin's SCIM connector base URL.
func (g Gatehouse) SCIMBaseURL() string { return g.URL + "/v1/webapi/scim/" + PluginName }

// AdminClient dials the auth server's gRPC API with the operator identity
// in the data dir, as gatectl --data-dir does.
func (g Gatehouse) AdminClient(ctx context.Context) (*client.Client, error) {
	addr, err := os.ReadFile(filepath.Join(g.DataDir, authAddrFile))
	if err != nil {
		return nil, trace.Wrap(trace.ConvertSystemError(err), "is gatehouse running with --data-dir %s?", g.DataDir)
	}
	id, err := identityfile.Read(filepath.Join(g.DataDir, adminIdentityFile))
	if err != nil {
		return nil, trace.Wrap(err)
	}
	c, err := client.New(ctx, client.Config{Addr: strings.TrimSpace(string(addr)), Identity: id})
	return c, trace.Wrap(err)
}

// SetupConfig is what Setup writes.
type SetupConfig struct {
	// IdPMetadata is the stand-in IdP's metadata XML.
	IdPMetadata string
	// Login is the OS login the demo role allows on the SSH node.
	Login string
}

// Setup configures Gatehouse the way an administrator sets up Okta,
// through the same admin API gatectl and the web UI use: the demo role,
// the SAML connector from the IdP's metadata (group Auditors → auditor),
// the okta plugin with SCIM on and the demo role as default, and a new
// SCIM bearer token (returned; Gatehouse keeps only its hash). It is
// idempotent, so that `make demo` can run again on the same data dir: the
// token is then rotated, as `gatectl plugins rotate-token` does.
func Setup(ctx context.Context, api *client.Client, g Gatehouse, cfg SetupConfig) (string, error) {
	if cfg.Login == "" {
		return "", trace.BadParameter("setup: missing the OS login")
	}
	role := &typesv1.Role{
		Kind:     "role",
		Version:  "v1",
		Metadata: &typesv1.Metadata{Name: DemoRole, Description: "Gatehouse demo (make demo): SSH as " + cfg.Login},
		Spec: &typesv1.RoleSpec{
			Allow:   &typesv1.RoleConditions{Logins: []string{cfg.Login}},
			Options: &typesv1.RoleOptions{MaxSessionTtl: "8h"},
		},
	}
	if err := checkDemoConnector(ctx, api); err != nil {
		return "", trace.Wrap(err)
	}
	if _, err := api.Roles.UpsertRole(ctx, &rolev1.UpsertRoleRequest{Role: role}); err != nil {
		return "", trace.Wrap(err, "writing role %q", DemoRole)
	}
	connector := &typesv1.SAMLConnector{
		Kind:     "saml",
		Version:  "v1",
		Metadata: &typesv1.Metadata{Name: ConnectorName},
		Spec: &typesv1.SAMLConnectorSpec{
			Display:          "Okta",
			Acs:              g.ACSURL(),
			EntityDescriptor: cfg.IdPMetadata,
			AttributesToRoles: []*typesv1.AttributeMapping{
				{Name: AttrGroups, Value: GroupAuditors, Roles: []string{AuditorRole}},
			},
		},
	}
	if _, err := api.SAML.UpsertSAMLConnector(ctx, &samlv1.UpsertSAMLConnectorRequest{SamlConnector: connector}); err != nil {
		return "", trace.Wrap(err, "writing SAML connector %q", ConnectorName)
	}
	settings := &typesv1.OktaPluginSettings{SamlConnector: ConnectorName, ScimEnabled: true, DefaultRoles: []string{DemoRole}}
	got, err := api.Plugins.GetPlugin(ctx, &pluginv1.GetPluginRequest{Name: PluginName})
	switch {
	case trace.IsNotFound(err):
		plugin := &typesv1.Plugin{
			Kind:     "plugin",
			Version:  "v1",
			Metadata: &typesv1.Metadata{Name: PluginName},
			Spec:     &typesv1.PluginSpec{Settings: &typesv1.PluginSpec_Okta{Okta: settings}},
		}
		if _, err := api.Plugins.CreatePlugin(ctx, &pluginv1.CreatePluginRequest{Plugin: plugin}); err != nil {
			return "", trace.Wrap(err, "installing plugin %q", PluginName)
		}
	case err != nil:
		return "", trace.Wrap(err)
	default:
		plugin := got.GetPlugin()
		if okta := plugin.GetSpec().GetOkta(); okta == nil || !okta.GetScimEnabled() || okta.GetSamlConnector() != ConnectorName {
			// Keep what an operator changed since (default roles, lock TTL);
			// only what the demo needs to work is put back.
			if okta != nil {
				okta.SamlConnector, okta.ScimEnabled = ConnectorName, true
			} else {
				plugin.Spec = &typesv1.PluginSpec{Settings: &typesv1.PluginSpec_Okta{Okta: settings}}
			}
			if _, err := api.Plugins.UpdatePlugin(ctx, &pluginv1.UpdatePluginRequest{Plugin: plugin}); err != nil {
				return "", trace.Wrap(err, "turning SCIM on in plugin %q", PluginName)
			}
		}
	}
	tok, err := api.Plugins.GenerateSCIMToken(ctx, &pluginv1.GenerateSCIMTokenRequest{Name: PluginName})
	if err != nil {
		return "", trace.Wrap(err, "making the SCIM token")
	}
	return tok.GetToken(), nil
}

// checkDemoConnector refuses to take over an "okta" SAML connector that
// trusts a real IdP: the demo would replace its metadata with the
// stand-in's and rotate the plugin's SCIM token, cutting the real Okta off.
// A connector of an earlier demo (an IdP on loopback) is fine.
func checkDemoConnector(ctx context.Context, api *client.Client) error {
	got, err := api.SAML.GetSAMLConnector(ctx, &samlv1.GetSAMLConnectorRequest{Name: ConnectorName})
	switch {
	case trace.IsNotFound(err):
		return nil
	case err != nil:
		return trace.Wrap(err)
	}
	ed, err := saml.ParseIDPMetadata(got.GetSamlConnector().GetSpec().GetEntityDescriptor())
	if err == nil && isLoopbackURL(ed.EntityID) {
		return nil
	}
	entityID := "(unreadable metadata)"
	if err == nil {
		entityID = ed.EntityID
	}
	return trace.AlreadyExists("SAML connector %q already trusts the identity provider %s, which is not a demo stand-in; "+
		"the demo would replace it and rotate the okta plugin's SCIM token. Run the demo with its own --data-dir", ConnectorName, entityID)
}

func isLoopbackURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	if u.Hostname() == "localhost" {
		return true
	}
	ip := net.ParseIP(u.Hostname())
	return ip != nil && ip.IsLoopback()
}

// SPMetadata downloads Gatehouse's SP metadata for the connector, what an
// Okta administrator reads the ACS URL and audience from.
func SPMetadata(ctx context.Context, c *http.Client, g Gatehouse) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.URL+"/v1/webapi/saml/metadata/"+ConnectorName, nil)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, trace.ConnectionProblem(err, "fetching Gatehouse's SP metadata: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, trace.ConnectionProblem(err, "fetching Gatehouse's SP metadata: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, trace.BadParameter("fetching Gatehouse's SP metadata: HTTP %d: %s", resp.StatusCode, body)
	}
	return body, nil
}
