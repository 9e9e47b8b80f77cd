package webapi_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gatehouse/gatehouse/lib/auth"
	"github.com/gatehouse/gatehouse/lib/auth/scimprov"
	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/backend/memory"
	"github.com/gatehouse/gatehouse/lib/services"
	"github.com/gatehouse/gatehouse/lib/services/scimstore"
	"github.com/gatehouse/gatehouse/lib/services/websession"
	"github.com/gatehouse/gatehouse/lib/web"
	"github.com/gatehouse/gatehouse/lib/web/webapi"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

const publicAddr = "gatehouse.example.com:443"

// publicOrigin is publicAddr's origin in URLs: the default port is left out.
const publicOrigin = "https://gatehouse.example.com"

// noLocks is the lock checker of the session middleware: these tests are
// about RBAC and CSRF, lockwatch has its own.
type noLocks struct{}

func (noLocks) CheckLockInForce(context.Context, services.LockSubject) error { return nil }

// storedLocks is the Users page's lock view read from the backend on each
// call, standing in for the process's lock watcher.
type storedLocks struct{ locks *services.LockService }

func (s storedLocks) LocksInForce() []*typesv1.Lock {
	l, err := s.locks.GetLocksInForce(context.Background())
	if err != nil {
		panic(err) // the memory backend does not fail
	}
	return l
}

type env struct {
	t      testing.TB
	srv    *httptest.Server
	auth   *auth.Server
	mgr    *websession.Manager
	events *services.AuditLog
	bk     backend.Backend
	// host, if set, is the Host header of every request (a forged one).
	host string
}

// session is a signed-in browser: its cookie and CSRF token.
type session struct {
	id, csrf string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvAddrs(t, publicAddr, "")
}

// newEnvAddrs is newEnv with the handler's (and auth server's) public
// address and the web listener's address given.
func newEnvAddrs(t testing.TB, publicAddr, webAddr string) *env {
	t.Helper()
	bk, err := memory.New(context.Background(), memory.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { bk.Close() })
	return newEnvOn(t, bk, publicAddr, webAddr)
}

// newEnvOn is newEnvAddrs over the backend given.
func newEnvOn(t testing.TB, bk backend.Backend, publicAddr, webAddr string) *env {
	t.Helper()
	return newEnvWith(t, auth.Config{Backend: bk, PublicAddr: publicAddr}, webAddr)
}

// newEnvWith is the test environment over an auth server made from cfg.
func newEnvWith(t testing.TB, cfg auth.Config, webAddr string) *env {
	t.Helper()
	ctx := context.Background()
	bk, publicAddr := cfg.Backend, cfg.PublicAddr
	a, err := auth.New(ctx, cfg)
	require.NoError(t, err)
	apis, err := a.NewAPIs()
	require.NoError(t, err)
	mgr, err := websession.New(websession.Config{Backend: bk})
	require.NoError(t, err)
	sa, err := web.NewSessionAuth(web.SessionAuthConfig{Sessions: mgr, Users: a.Services().Users, Locks: noLocks{}})
	require.NoError(t, err)
	records, err := scimstore.New(bk)
	require.NoError(t, err)
	h, err := webapi.New(webapi.Config{
		RequireSession: sa.RequireSession,
		Plugins:        apis.Plugins,
		SAML:           apis.SAML,
		Events:         apis.Events,
		Authorizer:     a.Authorizer(),
		Recorder:       a.Recorder(),
		Users:          a.Services().Users,
		LockView:       storedLocks{a.Services().Locks},
		SCIM:           records,
		Locks:          apis.Locks,
		PublicAddr:     publicAddr,
		WebAddr:        webAddr,
	})
	require.NoError(t, err)
	pub, err := webapi.NewPublicHandler(a.Services().SAMLConnectors, nil)
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle(webapi.PluginsPrefix, h)
	mux.Handle(webapi.AdminPrefix, h)
	mux.Handle(webapi.PublicPrefix, pub)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &env{t: t, srv: srv, auth: a, mgr: mgr, events: a.Services().Events, bk: bk}
}

// user creates a user with roles and signs it in.
func (e *env) user(name string, roles ...string) session {
	e.t.Helper()
	ctx := context.Background()
	u, err := e.auth.Services().Users.CreateUser(ctx, &typesv1.User{
		Kind: services.KindUser, Version: services.V1,
		Metadata: &typesv1.Metadata{Name: name},
		Spec:     &typesv1.UserSpec{Roles: roles},
	})
	require.NoError(e.t, err)
	s, err := e.mgr.CreateSession(ctx, u, websession.MethodPassword, "", time.Hour)
	require.NoError(e.t, err)
	return session{id: s.ID, csrf: s.CSRFToken}
}

// role creates a role allowing verbs on kinds.
func (e *env) role(name string, kinds, verbs []string) {
	e.t.Helper()
	_, err := e.auth.Services().Roles.CreateRole(context.Background(), &typesv1.Role{
		Kind: services.KindRole, Version: services.V1,
		Metadata: &typesv1.Metadata{Name: name},
		Spec:     &typesv1.RoleSpec{Allow: &typesv1.RoleConditions{Rules: []*typesv1.Rule{{Resources: kinds, Verbs: verbs}}}},
	})
	require.NoError(e.t, err)
}

// csrfMode says what CSRF header a request carries.
type csrfMode int

const (
	csrfRight csrfMode = iota
	csrfNone
	csrfWrong
)

func (e *env) do(s *session, csrf csrfMode, method, path string, body any) (int, map[string]any) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(e.t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	require.NoError(e.t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if e.host != "" {
		req.Host = e.host
	}
	if s != nil {
		req.AddCookie(&http.Cookie{Name: web.SessionCookie, Value: s.id})
		switch csrf {
		case csrfRight:
			req.Header.Set(web.CSRFHeader, s.csrf)
		case csrfWrong:
			req.Header.Set(web.CSRFHeader, s.csrf+"x")
		}
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	require.Equal(e.t, "no-store", resp.Header.Get("Cache-Control"), "%s %s", method, path)
	var out map[string]any
	if len(raw) > 0 {
		require.NoError(e.t, json.Unmarshal(raw, &out), "%s %s: %s", method, path, raw)
	}
	return resp.StatusCode, out
}

// idpMetadata is SAML IdP metadata with a fresh signing certificate.
func idpMetadata(t *testing.T, entityID string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "idp"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	return `<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="` + entityID + `">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>` +
		base64.StdEncoding.EncodeToString(der) + `</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://example.okta.com/app/x/sso/saml"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>`
}

type endpoint struct {
	method, path string
	body         any
}

func endpoints(t *testing.T) []endpoint {
	return []endpoint{
		{http.MethodGet, "/v1/webapi/plugins", nil},
		{http.MethodGet, "/v1/webapi/plugins/okta", nil},
		{http.MethodGet, "/v1/webapi/plugins/okta/events", nil},
		{http.MethodPost, "/v1/webapi/plugins/okta/saml", webapi.CreateSAMLRequest{EntityDescriptor: idpMetadata(t, "http://www.okta.com/exk1")}},
		{http.MethodPost, "/v1/webapi/plugins/okta/scim/token", nil},
		{http.MethodPut, "/v1/webapi/plugins/okta/scim", webapi.SetSCIMRequest{Enabled: true}},
		{http.MethodPut, "/v1/webapi/plugins/okta/settings", webapi.OktaSettings{DefaultRoles: []string{"access"}}},
		{http.MethodGet, "/v1/webapi/admin/users", nil},
		{http.MethodGet, "/v1/webapi/admin/locks", nil},
		{http.MethodDelete, "/v1/webapi/admin/locks/some-lock", nil},
	}
}

// TestAccess checks over HTTP that every endpoint refuses a request
// without a session (401), with a session whose roles lack the verbs
// (403, as over gRPC), and a state change without the right CSRF token
// (403), and records the RBAC refusals in the audit log.
func TestAccess(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.role("plugin-reader", []string{"plugin", "saml"}, []string{"list", "readnosecrets"})
	nobody := e.user("nobody", auth.PresetAccessRole)
	auditor := e.user("auditor", auth.PresetAuditorRole)
	reader := e.user("reader", "plugin-reader")
	admin := e.user("admin", auth.PresetEditorRole)
	ended := e.user("ended", auth.PresetEditorRole)
	require.NoError(t, e.mgr.DeleteSession(context.Background(), ended.id))
	// The plugin exists, so that refusals come from RBAC and not from a
	// missing plugin.
	code, st := e.do(&admin, csrfRight, http.MethodPost, "/v1/webapi/plugins/okta/saml", webapi.CreateSAMLRequest{EntityDescriptor: idpMetadata(t, "http://www.okta.com/exk0")})
	require.Equal(t, http.StatusOK, code, "%v", st)

	for _, ep := range endpoints(t) {
		t.Run(ep.method+" "+ep.path, func(t *testing.T) {
			code, body := e.do(nil, csrfNone, ep.method, ep.path, ep.body)
			require.Equal(t, http.StatusUnauthorized, code, "no session")
			require.NotEmpty(t, body["error"])
			code, _ = e.do(&session{id: "forged"}, csrfNone, ep.method, ep.path, ep.body)
			require.Equal(t, http.StatusUnauthorized, code, "unknown session")
			code, _ = e.do(&ended, csrfRight, ep.method, ep.path, ep.body)
			require.Equal(t, http.StatusUnauthorized, code, "ended session")
			code, body = e.do(&nobody, csrfRight, ep.method, ep.path, ep.body)
			require.Equal(t, http.StatusForbidden, code, "roles without the verbs: %v", body)
			require.Contains(t, body["error"], "access denied")
			// The auditor reads everything the UI shows and changes nothing.
			code, body = e.do(&auditor, csrfRight, ep.method, ep.path, ep.body)
			if ep.method == http.MethodGet {
				require.Equal(t, http.StatusOK, code, "the auditor reads: %v", body)
			} else {
				require.Equal(t, http.StatusForbidden, code, "the auditor writes nothing: %v", body)
				require.Contains(t, body["error"], "access denied")
			}
			if ep.method != http.MethodGet {
				code, _ = e.do(&reader, csrfRight, ep.method, ep.path, ep.body)
				require.Equal(t, http.StatusForbidden, code, "read-only roles cannot change")
				for _, mode := range []csrfMode{csrfNone, csrfWrong} {
					code, body = e.do(&admin, mode, ep.method, ep.path, ep.body)
					require.Equal(t, http.StatusForbidden, code, "CSRF mode %d", mode)
					require.Contains(t, body["error"], web.CSRFHeader)
				}
			}
		})
	}

	// Nothing was changed by any refused request.
	code, st = e.do(&admin, csrfRight, http.MethodGet, "/v1/webapi/plugins/okta", nil)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, string(webapi.StateSSOOnly), st["state"])
	require.Equal(t, "http://www.okta.com/exk0", st["sso"].(map[string]any)["connector"].(map[string]any)["idp_entity_id"])
	tokens, err := e.events.Search(context.Background(), time.Now().Add(-time.Hour), time.Now().Add(time.Hour), []string{"plugin.token.create", "plugin.token.rotate", "plugin.update"}, 10)
	require.NoError(t, err)
	require.Empty(t, tokens)

	// RBAC refusals are audited as over gRPC.
	evs, err := e.events.Search(context.Background(), time.Now().Add(-time.Hour), time.Now().Add(time.Hour), []string{"access.denied"}, 1000)
	require.NoError(t, err)
	users := map[string]bool{}
	for _, ev := range evs {
		users[ev.GetUser()] = true
		require.Equal(t, services.OutcomeDenied, ev.GetOutcome())
	}
	require.True(t, users["nobody"] && users["reader"], "denied users audited: %v", users)
}

// TestOktaFlow walks the UI's calls as an editor: connector from metadata,
// token, enable, regenerate, disable, each audited.
func TestOktaFlow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin := e.user("alice", auth.PresetEditorRole)

	code, st := e.do(&admin, csrfRight, http.MethodGet, "/v1/webapi/plugins/okta", nil)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "not_configured", st["state"])
	require.Equal(t, map[string]any{"read": true, "manage": true, "events": true}, st["permissions"])
	require.Equal(t, publicOrigin+"/v1/webapi/scim/okta", st["scim"].(map[string]any)["base_url"])

	// Enabling SCIM before SSO is refused with a reason.
	code, body := e.do(&admin, csrfRight, http.MethodPost, "/v1/webapi/plugins/okta/scim/token", nil)
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body["error"], "SSO first")

	// Bad metadata is refused with a reason.
	code, body = e.do(&admin, csrfRight, http.MethodPost, "/v1/webapi/plugins/okta/saml", webapi.CreateSAMLRequest{EntityDescriptor: "<html>"})
	require.Equal(t, http.StatusBadRequest, code, "%v", body)
	code, _ = e.do(&admin, csrfRight, http.MethodPost, "/v1/webapi/plugins/okta/saml", map[string]any{"bogus": 1})
	require.Equal(t, http.StatusBadRequest, code)

	code, st = e.do(&admin, csrfRight, http.MethodPost, "/v1/webapi/plugins/okta/saml", webapi.CreateSAMLRequest{
		EntityDescriptor: idpMetadata(t, "http://www.okta.com/exk1"),
		Mappings:         []webapi.RoleMapping{{Name: "groups", Value: "admins", Roles: []string{"editor"}}},
	})
	require.Equal(t, http.StatusOK, code, "%v", st)
	require.Equal(t, "sso_only", st["state"])
	conn := st["sso"].(map[string]any)["connector"].(map[string]any)
	require.Equal(t, "okta", conn["name"])
	require.Equal(t, "http://www.okta.com/exk1", conn["idp_entity_id"])
	require.Equal(t, publicOrigin+"/v1/webapi/saml/acs/okta", conn["acs_url"])

	// The sign-in page lists it without a session.
	code, body = e.do(nil, csrfNone, http.MethodGet, "/v1/webapi/auth/connectors", nil)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, []any{map[string]any{"name": "okta", "display": "Okta"}}, body["connectors"])

	code, tok := e.do(&admin, csrfRight, http.MethodPost, "/v1/webapi/plugins/okta/scim/token", nil)
	require.Equal(t, http.StatusOK, code)
	first, _ := tok["token"].(string)
	require.Len(t, first, 43)
	code, st = e.do(&admin, csrfRight, http.MethodGet, "/v1/webapi/plugins/okta", nil)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "sso_only", st["state"], "a token alone does not turn SCIM on")
	require.NotContains(t, toJSON(t, st), first, "the tile state never carries the token")

	code, st = e.do(&admin, csrfRight, http.MethodPut, "/v1/webapi/plugins/okta/scim", webapi.SetSCIMRequest{Enabled: true})
	require.Equal(t, http.StatusOK, code, "%v", st)
	require.Equal(t, "sso_scim", st["state"])
	code, tok = e.do(&admin, csrfRight, http.MethodPost, "/v1/webapi/plugins/okta/scim/token", nil)
	require.Equal(t, http.StatusOK, code)
	require.NotEqual(t, first, tok["token"])
	code, st = e.do(&admin, csrfRight, http.MethodPut, "/v1/webapi/plugins/okta/scim", webapi.SetSCIMRequest{Enabled: false})
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "sso_only", st["state"])

	code, body = e.do(&admin, csrfRight, http.MethodGet, "/v1/webapi/plugins/okta/events", nil)
	require.Equal(t, http.StatusOK, code)
	var types []string
	for _, ev := range body["events"].([]any) {
		m := ev.(map[string]any)
		types = append(types, m["type"].(string))
		require.Equal(t, "alice", m["user"])
	}
	// Newest first; the attempt before SSO existed is audited as failed,
	// as over gRPC.
	require.Equal(t, []string{"plugin.update", "plugin.token.rotate", "plugin.update", "plugin.token.create", "plugin.create", "saml.create", "plugin.token.create"}, types)
	evs := body["events"].([]any)
	require.Equal(t, "failure", evs[len(evs)-1].(map[string]any)["outcome"])
	require.NotContains(t, toJSON(t, body), first)

	// Integrations list.
	code, body = e.do(&admin, csrfRight, http.MethodGet, "/v1/webapi/plugins", nil)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, []any{map[string]any{"name": "okta", "title": "Okta", "state": "sso_only"}}, body["integrations"])

	// Roles SCIM had to leave out show in the Status tile.
	_, err := e.auth.Services().Plugins.UpdateAndSwapPlugin(context.Background(), "okta", func(p *typesv1.Plugin) error {
		p.Status = &typesv1.PluginStatus{Okta: &typesv1.OktaPluginStatus{RolesDropped: []string{"editor"}, RolesDroppedTime: timestamppb.Now()}}
		return nil
	})
	require.NoError(t, err)
	code, st = e.do(&admin, csrfRight, http.MethodGet, "/v1/webapi/plugins/okta", nil)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, []any{"editor"}, st["status"].(map[string]any)["roles_dropped"])
	require.NotEmpty(t, st["status"].(map[string]any)["roles_dropped_time"])
}

// TestDisableSCIMVoidsToken: disabling SCIM from the UI deletes the token,
// so enabling it again does not revive it; the SCIM endpoint's check
// refuses it, and accepts only a token generated afterwards.
func TestDisableSCIMVoidsToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	admin := e.user("alice", auth.PresetEditorRole)
	svc := e.auth.Services()
	prov, err := scimprov.New(scimprov.Config{
		Backend:        e.bk,
		Plugins:        svc.Plugins,
		Credentials:    svc.PluginStaticCredentials,
		SAMLConnectors: svc.SAMLConnectors,
		Roles:          svc.Roles,
		Audit:          svc.Events,
		SettingsCache:  scimprov.SettingsCacheOff,
	})
	require.NoError(t, err)
	t.Cleanup(func() { prov.Close() })
	authn := func(token string) error {
		settings, err := prov.AuthenticateSCIM(ctx, webapi.OktaPlugin, token, nil)
		if err == nil {
			require.True(t, settings.Enabled)
		}
		return err
	}
	setSCIM := func(on bool, want webapi.IntegrationState) {
		t.Helper()
		code, st := e.do(&admin, csrfRight, http.MethodPut, "/v1/webapi/plugins/okta/scim", webapi.SetSCIMRequest{Enabled: on})
		require.Equal(t, http.StatusOK, code, "%v", st)
		require.Equal(t, string(want), st["state"])
	}
	newToken := func() string {
		t.Helper()
		code, tok := e.do(&admin, csrfRight, http.MethodPost, "/v1/webapi/plugins/okta/scim/token", nil)
		require.Equal(t, http.StatusOK, code, "%v", tok)
		return tok["token"].(string)
	}

	code, st := e.do(&admin, csrfRight, http.MethodPost, "/v1/webapi/plugins/okta/saml", webapi.CreateSAMLRequest{EntityDescriptor: idpMetadata(t, "http://www.okta.com/exk1")})
	require.Equal(t, http.StatusOK, code, "%v", st)
	old := newToken()
	setSCIM(true, webapi.StateSSOAndSCIM)
	require.NoError(t, authn(old))

	setSCIM(false, webapi.StateSSOOnly)
	setSCIM(true, webapi.StateSSOAndSCIM)
	err = authn(old)
	require.True(t, trace.IsAccessDenied(err), "the token of before the disable must stay dead: %v", err)

	fresh := newToken()
	require.NoError(t, authn(fresh))
	require.True(t, trace.IsAccessDenied(authn(old)))

	// The disable is in the Status tile's events, saying the token went.
	code, body := e.do(&admin, csrfRight, http.MethodGet, "/v1/webapi/plugins/okta/events", nil)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, toJSON(t, body), "bearer token was deleted")

	// Enable, then Cancel (the tile's Cancel sends SCIM off): the token
	// shown is deleted, so turning SCIM on later (from any client) does
	// not bring it back, and the token of before the Enable stays dead.
	setSCIM(false, webapi.StateSSOOnly)
	cancelled := newToken()
	setSCIM(false, webapi.StateSSOOnly)
	setSCIM(true, webapi.StateSSOAndSCIM)
	for _, tok := range []string{cancelled, fresh, old} {
		err := authn(tok)
		require.True(t, trace.IsAccessDenied(err), "a token of before the Cancel must stay dead: %v", err)
	}
	code, body = e.do(&admin, csrfRight, http.MethodGet, "/v1/webapi/plugins/okta/events", nil)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, toJSON(t, body), "generated to enable it was deleted")
}

// TestURLsIgnoreHost: a client-controlled Host header never ends up in the
// URLs the UI shows, nor in the ACS URL stored in the connector; without a
// public address the web listener's own address is used.
func TestURLsIgnoreHost(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, public, web, want string
	}{
		{name: "public address", public: "gatehouse.example.com:3080", web: "127.0.0.1:3080", want: "https://gatehouse.example.com:3080"},
		{name: "listener address", public: "", web: "localhost:3080", want: "https://localhost:3080"},
		{name: "public address on the default port", public: "gatehouse.example.com:443", web: "127.0.0.1:3080", want: "https://gatehouse.example.com"},
		{name: "listener on the default port", public: "", web: "localhost:443", want: "https://localhost"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnvAddrs(t, tc.public, tc.web)
			admin := e.user("alice", auth.PresetEditorRole)
			e.host = "evil.example.net"

			code, st := e.do(&admin, csrfRight, http.MethodGet, "/v1/webapi/plugins/okta", nil)
			require.Equal(t, http.StatusOK, code, "%v", st)
			require.Equal(t, tc.want+"/v1/webapi/scim/okta", st["scim"].(map[string]any)["base_url"])
			require.Equal(t, tc.want+"/v1/webapi/saml/acs/", st["sso"].(map[string]any)["acs_url_base"])

			code, st = e.do(&admin, csrfRight, http.MethodPost, "/v1/webapi/plugins/okta/saml", webapi.CreateSAMLRequest{EntityDescriptor: idpMetadata(t, "http://www.okta.com/exk1")})
			require.Equal(t, http.StatusOK, code, "%v", st)
			conn, err := e.auth.Services().SAMLConnectors.GetSAMLConnector(context.Background(), "okta", false)
			require.NoError(t, err)
			require.Equal(t, tc.want+"/v1/webapi/saml/acs/okta", conn.GetSpec().GetAcs())
			require.Equal(t, tc.want+"/v1/webapi/saml/acs/okta", conn.GetSpec().GetAudience())

			code, tok := e.do(&admin, csrfRight, http.MethodPost, "/v1/webapi/plugins/okta/scim/token", nil)
			require.Equal(t, http.StatusOK, code, "%v", tok)
			require.Equal(t, tc.want+"/v1/webapi/scim/okta", tok["base_url"])
			require.NotContains(t, toJSON(t, st)+toJSON(t, tok), "evil")
		})
	}
}

// TestConfigNeedsAnAddress: without a public or listener address there is
// nothing to build URLs from, and the request's Host is no substitute.
func TestConfigNeedsAnAddress(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bk, err := memory.New(ctx, memory.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { bk.Close() })
	a, err := auth.New(ctx, auth.Config{Backend: bk})
	require.NoError(t, err)
	apis, err := a.NewAPIs()
	require.NoError(t, err)
	records, err := scimstore.New(bk)
	require.NoError(t, err)
	cfg := webapi.Config{
		RequireSession: func(next http.Handler) http.Handler { return next },
		Plugins:        apis.Plugins,
		SAML:           apis.SAML,
		Events:         apis.Events,
		Authorizer:     a.Authorizer(),
		Recorder:       a.Recorder(),
		Users:          a.Services().Users,
		LockView:       storedLocks{a.Services().Locks},
		SCIM:           records,
		Locks:          apis.Locks,
	}
	_, err = webapi.New(cfg)
	require.True(t, trace.IsBadParameter(err), "got %v", err)
	require.Contains(t, err.Error(), "PublicAddr or WebAddr")
	cfg.WebAddr = "localhost:3080"
	_, err = webapi.New(cfg)
	require.NoError(t, err)
}

func toJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

// TestBodyLimits: the JSON endpoints refuse other content types and
// oversized bodies.
func TestBodyLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin := e.user("alice", auth.PresetEditorRole)
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/v1/webapi/plugins/okta/saml", strings.NewReader("entity_descriptor=x"))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: web.SessionCookie, Value: admin.id})
	req.Header.Set(web.CSRFHeader, admin.csrf)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)

	code, _ := e.do(&admin, csrfRight, http.MethodPost, "/v1/webapi/plugins/okta/saml", webapi.CreateSAMLRequest{EntityDescriptor: strings.Repeat("x", webapi.MaxBodyBytes)})
	require.Equal(t, http.StatusRequestEntityTooLarge, code)
}
