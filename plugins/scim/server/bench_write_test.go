package server_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/auth/scimprov"
	"github.com/gatehouse/gatehouse/lib/backend/memory"
	"github.com/gatehouse/gatehouse/lib/services"
	"github.com/gatehouse/gatehouse/plugins/scim/server"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// The write benchmarks run Okta's create and deactivation through the handler and the real
// provisioner over the memory backend (no TLS, no SQLite): the CPU and allocations the SCIM layers
// above the backend add to every write, steady on a busy machine.
//
//	go test ./plugins/scim/server -run '^$' -bench 'CreateHandler|DeactivateHandler' -benchmem

// oktaCreateBody is a user as Okta's POST /Users sends it (userName and externalId filled in).
const oktaCreateBody = `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"%s","name":{"givenName":"Jane","familyName":"Doe"},` +
	`"emails":[{"primary":true,"value":"%s","type":"work"}],"displayName":"Jane Doe","locale":"en-US","externalId":"%s",` +
	`"groups":[],"password":"Pl@ceholder-1","active":true}`

// oktaDeactivateBody is Okta's deactivation.
const oktaDeactivateBody = `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}`

// newWriteBench is the handler over the real provisioner and the memory backend, with plugin
// "okta" (SCIM on) and its SAML connector, and the plugin's token.
func newWriteBench(b *testing.B) (http.Handler, string) {
	ctx := context.Background()
	bk, err := memory.New(ctx, memory.Config{})
	require.NoError(b, err)
	b.Cleanup(func() { bk.Close() })
	svc, err := services.New(services.Config{Backend: bk})
	require.NoError(b, err)
	// The role the plugin grants by default, as the presets provide it on a real server.
	_, err = svc.CreateRole(ctx, &typesv1.Role{Metadata: &typesv1.Metadata{Name: "access"}, Spec: &typesv1.RoleSpec{
		Allow: &typesv1.RoleConditions{Logins: []string{"ubuntu"}},
	}})
	require.NoError(b, err)
	_, err = svc.CreateSAMLConnector(ctx, &typesv1.SAMLConnector{
		Metadata: &typesv1.Metadata{Name: "okta"},
		Spec: &typesv1.SAMLConnectorSpec{
			EntityDescriptor: "<EntityDescriptor/>",
			Acs:              "https://gatehouse.example.com/v1/webapi/saml/acs/okta",
			AttributesToRoles: []*typesv1.AttributeMapping{
				{Name: "groups", Value: "Everyone", Roles: []string{"access"}},
			},
		},
	})
	require.NoError(b, err)
	token := installPlugin(b, svc, "okta", true, false)
	// With the settings view, as a server over lite has it (memory, like lite, hands a write's
	// events to its watchers before acknowledging it).
	al, err := services.NewAuditLog(services.AuditLogConfig{Backend: bk})
	require.NoError(b, err)
	prov, err := scimprov.New(scimprov.Config{
		Backend: bk, Plugins: svc.PluginService, Credentials: svc.PluginStaticCredentialsService,
		SAMLConnectors: svc.SAMLConnectorService, Roles: svc.RoleService, Audit: al,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), SettingsCache: scimprov.SettingsCacheOn,
	})
	require.NoError(b, err)
	b.Cleanup(func() { prov.Close() })
	h, err := server.New(server.Config{Users: prov, Groups: prov, Tokens: prov, Status: prov,
		DefaultRateLimit: 1 << 30, DefaultRateBurst: 1 << 30, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(b, err)
	return h, token
}

// serveWrite sends one write and checks its status; it returns the answer's body.
func serveWrite(b *testing.B, h http.Handler, token, method, path, body string, want int) string {
	r := httptest.NewRequest(method, server.MountPrefix+"okta"+path, strings.NewReader(body))
	r.RemoteAddr = "192.0.2.1:40000"
	r.Header.Set("Authorization", "Bearer "+token)
	r.Header.Set("Content-Type", "application/scim+json")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != want {
		b.Fatalf("%s %s: status %d: %s", method, path, w.Code, w.Body)
	}
	return w.Body.String()
}

// createBenchUser creates user i and returns its SCIM id.
func createBenchUser(b *testing.B, h http.Handler, token string, i int) string {
	name := fmt.Sprintf("bench%07d@example.com", i)
	out := serveWrite(b, h, token, http.MethodPost, "/Users", fmt.Sprintf(oktaCreateBody, name, name, fmt.Sprintf("00u%07d", i)), http.StatusCreated)
	_, rest, ok := strings.Cut(out, `"id":"`)
	require.True(b, ok, out)
	id, _, _ := strings.Cut(rest, `"`)
	return id
}

func BenchmarkCreateHandler(b *testing.B) {
	h, token := newWriteBench(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		createBenchUser(b, h, token, i)
		i++
	}
}

func BenchmarkDeactivateHandler(b *testing.B) {
	h, token := newWriteBench(b)
	// b.Loop runs the body b.N times at most once per benchmark run; create as many users first.
	ids := make([]string, 0, b.N)
	for i := range b.N {
		ids = append(ids, createBenchUser(b, h, token, i))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		serveWrite(b, h, token, http.MethodPatch, "/Users/"+ids[i], oktaDeactivateBody, http.StatusOK)
	}
}
