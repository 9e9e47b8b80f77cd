package server_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/auth/pluginv1"
	"github.com/gatehouse/gatehouse/lib/auth/scimprov"
	"github.com/gatehouse/gatehouse/lib/backend/lite"
	"github.com/gatehouse/gatehouse/lib/services"
	"github.com/gatehouse/gatehouse/lib/services/scimstore"
	"github.com/gatehouse/gatehouse/plugins/scim/server"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// BenchmarkLookupHTTPS runs Okta's filter lookup through the real handler,
// provisioner and SQLite backend over HTTPS in one process, so that its CPU
// profile shows the whole request path:
//
//	go test ./plugins/scim/server -run - -bench LookupHTTPS -benchtime 20000x -cpuprofile /tmp/cpu.out
func BenchmarkLookupHTTPS(b *testing.B) {
	ctx := context.Background()
	bk, err := lite.New(ctx, lite.Config{Path: filepath.Join(b.TempDir(), "gatehouse.db")})
	require.NoError(b, err)
	b.Cleanup(func() { bk.Close() })
	svc, err := services.New(services.Config{Backend: bk})
	require.NoError(b, err)
	al, err := services.NewAuditLog(services.AuditLogConfig{Backend: bk})
	require.NoError(b, err)
	_, err = svc.CreatePlugin(ctx, &typesv1.Plugin{
		Metadata: &typesv1.Metadata{Name: "okta"},
		Spec: &typesv1.PluginSpec{
			Settings: &typesv1.PluginSpec_Okta{Okta: &typesv1.OktaPluginSettings{
				SamlConnector: "okta", ScimEnabled: true, DefaultRoles: []string{"access"},
			}},
			StaticCredentialsRef: &typesv1.PluginStaticCredentialsRef{Labels: pluginv1.CredentialsLabels("okta")},
		},
	})
	require.NoError(b, err)
	token, hash, err := pluginv1.NewToken()
	require.NoError(b, err)
	_, err = svc.UpsertPluginStaticCredentials(ctx, &typesv1.PluginStaticCredentials{
		Metadata: &typesv1.Metadata{Name: pluginv1.CredentialsName("okta"), Labels: pluginv1.CredentialsLabels("okta")},
		Spec:     &typesv1.PluginStaticCredentialsSpec{ScimTokenHash: hash},
	})
	require.NoError(b, err)
	prov, err := scimprov.New(scimprov.Config{
		Backend: bk, Plugins: svc.PluginService, Credentials: svc.PluginStaticCredentialsService,
		SAMLConnectors: svc.SAMLConnectorService, Roles: svc.RoleService, Audit: al,
	})
	require.NoError(b, err)
	b.Cleanup(func() { prov.Close() })
	const users = 2000
	for i := range users {
		attrs := fmt.Sprintf(`{"userName":"u%05d@example.com","name":{"givenName":"U","familyName":"Doe"},"emails":[{"primary":true,"value":"u%05d@example.com","type":"work"}],"displayName":"U Doe","locale":"en-US","externalId":"00u%d"}`, i, i, i)
		_, err := prov.CreateUser(ctx, "okta", &scimstore.UserRecord{
			UserName: fmt.Sprintf("u%05d@example.com", i), ExternalID: fmt.Sprintf("00u%d", i), Active: true, Attributes: []byte(attrs),
		})
		require.NoError(b, err)
	}
	h, err := server.New(server.Config{Provisioner: prov})
	require.NoError(b, err)
	srv := httptest.NewTLSServer(h)
	b.Cleanup(srv.Close)
	tr := srv.Client().Transport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	tr.MaxIdleConnsPerHost = 64
	client := &http.Client{Transport: tr}
	var n atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1) % users
			filter := url.QueryEscape(fmt.Sprintf(`userName eq "u%05d@example.com"`, i))
			req, _ := http.NewRequest(http.MethodGet, srv.URL+server.MountPrefix+"okta/Users?filter="+filter, nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"totalResults":1`) {
				b.Errorf("status %d: %s", resp.StatusCode, body)
				return
			}
		}
	})
}
