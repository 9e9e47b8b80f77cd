package sso_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/auth"
	"github.com/gatehouse/gatehouse/lib/auth/audit"
	"github.com/gatehouse/gatehouse/lib/auth/saml"
	"github.com/gatehouse/gatehouse/lib/auth/saml/samltest"
	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/backend/memory"
	"github.com/gatehouse/gatehouse/lib/services"
	"github.com/gatehouse/gatehouse/lib/services/websession"
	"github.com/gatehouse/gatehouse/lib/web"
	"github.com/gatehouse/gatehouse/lib/web/sso"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

type recorder struct {
	mu     sync.Mutex
	events []audit.Event
}

func (r *recorder) Record(_ context.Context, e audit.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

// startLogin runs GET saml/sso in a browser holding cookies and returns
// the IdP URL and the binding cookie it set.
func startLogin(t *testing.T, h http.Handler, redirect string, cookies ...*http.Cookie) (string, *http.Cookie) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/v1/webapi/saml/sso?connector_id=okta&redirect_url="+url.QueryEscape(redirect), nil)
	for _, ck := range cookies {
		req.AddCookie(ck)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	require.Equal(t, http.StatusFound, w.Code, w.Body.String())
	ck := findCookie(w, sso.BindingCookie)
	require.NotNil(t, ck, "saml/sso sets the binding cookie")
	return w.Header().Get("Location"), ck
}

// acsSources gives each postACS its own source address, so that the tests
// that read the audit event of each refusal are not aggregated
// (TestACSFailuresAggregated covers that).
var acsSources atomic.Int64

// postACS posts an IdP's form to the ACS as a browser holding cookies.
func postACS(t *testing.T, h http.Handler, form samltest.Form, accept string, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	t.Helper()
	body := url.Values{"SAMLResponse": {form.SAMLResponse}, "RelayState": {form.RelayState}}.Encode()
	req := httptest.NewRequest(http.MethodPost, "/v1/webapi/saml/acs/okta", strings.NewReader(body))
	req.RemoteAddr = fmt.Sprintf("[2001:db8:%x::1]:443", acsSources.Add(1))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	for _, ck := range cookies {
		req.AddCookie(&http.Cookie{Name: ck.Name, Value: ck.Value})
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func findCookie(w *httptest.ResponseRecorder, name string) *http.Cookie {
	for _, ck := range w.Result().Cookies() {
		if ck.Name == name {
			return ck
		}
	}
	return nil
}

// requireSession checks that w signed the browser in and sends it to target.
func requireSession(t *testing.T, w *httptest.ResponseRecorder, target string) {
	t.Helper()
	require.Equal(t, http.StatusSeeOther, w.Code, w.Body.String())
	require.Equal(t, target, w.Header().Get("Location"))
	ck := findCookie(w, web.SessionCookie)
	require.True(t, ck != nil && ck.Value != "", "a session cookie is set")
}

type noCerts struct{}

func (noCerts) SignSSHUserCert(context.Context, auth.SSHCertRequest) ([]byte, error) {
	return nil, nil
}

func newHandler(t *testing.T, opts ...func(*sso.Config)) (*sso.Handler, *services.Services, *websession.Manager, *recorder) {
	t.Helper()
	h, svc, mgr, rec, _ := newHandlerOn(t, opts...)
	return h, svc, mgr, rec
}

// newHandlerOn is newHandler that also returns the backend.
func newHandlerOn(t *testing.T, opts ...func(*sso.Config)) (*sso.Handler, *services.Services, *websession.Manager, *recorder, backend.Backend) {
	t.Helper()
	ctx := context.Background()
	clock := clockwork.NewFakeClockAt(time.Now())
	bk, err := memory.New(ctx, memory.Config{Clock: clock})
	require.NoError(t, err)
	t.Cleanup(func() { bk.Close() })
	svc, err := services.New(services.Config{Backend: bk})
	require.NoError(t, err)
	mgr, err := websession.New(websession.Config{Backend: bk, Clock: clock})
	require.NoError(t, err)
	locks := saml.BackendLocks{Locks: svc, Now: clock.Now}
	sa, err := web.NewSessionAuth(web.SessionAuthConfig{Sessions: mgr, Users: svc, Locks: locks, Clock: clock})
	require.NoError(t, err)
	p, err := saml.New(saml.Config{Backend: bk, Clock: clock})
	require.NoError(t, err)
	rec := &recorder{}
	cfg := sso.Config{
		Connectors: svc, SAML: p, Sessions: mgr, SessionAuth: sa, Users: svc, Certs: noCerts{}, Recorder: rec, Clock: clock,
		Login: saml.LoginConfig{Users: svc, Roles: svc, Locks: locks, Recorder: rec},
	}
	for _, o := range opts {
		o(&cfg)
	}
	h, err := sso.New(cfg)
	require.NoError(t, err)
	return h, svc, mgr, rec, bk
}

func TestACSRefusesHugeAndUnknown(t *testing.T) {
	t.Parallel()
	h, _, _, rec := newHandler(t)
	body := "SAMLResponse=" + strings.Repeat("A", sso.MaxACSBody+10)
	req := httptest.NewRequest(http.MethodPost, "/v1/webapi/saml/acs/okta", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	require.Equal(t, http.StatusRequestEntityTooLarge, w.Code)
	require.Contains(t, w.Body.String(), saml.ReasonTooLarge)
	require.Equal(t, saml.EventLogin, rec.events[len(rec.events)-1].Type)

	req = httptest.NewRequest(http.MethodPost, "/v1/webapi/saml/acs/nope", strings.NewReader(url.Values{"SAMLResponse": {"x"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	w = httptest.NewRecorder()
	h.ServeHTTP(w, req)
	require.Equal(t, http.StatusNotFound, w.Code)
	require.Contains(t, w.Body.String(), `"error"`)

	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/v1/webapi/saml/sso?connector_id=okta&redirect_url=https://evil.example.com/", nil))
	require.Equal(t, http.StatusBadRequest, w.Code)
	// A browser gets an HTML page that may run and load nothing.
	require.Equal(t, "text/html; charset=utf-8", w.Header().Get("Content-Type"))
	require.Equal(t, sso.ErrorPageCSP, w.Header().Get("Content-Security-Policy"))
	require.Contains(t, sso.ErrorPageCSP, "default-src 'none'")
}

func TestPasswordLogin(t *testing.T) {
	t.Parallel()
	h, svc, mgr, _ := newHandler(t)
	ctx := context.Background()
	_, err := svc.CreateUser(ctx, &typesv1.User{Metadata: &typesv1.Metadata{Name: "root"}, Spec: &typesv1.UserSpec{Roles: []string{"editor"}}})
	require.NoError(t, err)
	require.NoError(t, svc.SetLocalPassword(ctx, "root", "correct horse battery"))
	require.Error(t, svc.SetLocalPassword(ctx, "root", "short"))

	login := func(user, pw string) *httptest.ResponseRecorder {
		b, _ := json.Marshal(sso.PasswordLoginRequest{User: user, Password: pw})
		req := httptest.NewRequest(http.MethodPost, "/v1/webapi/sessions", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		req.RemoteAddr = "192.0.2.1:1234"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	w := login("root", "correct horse battery")
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	var info sso.SessionInfo
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &info))
	require.Equal(t, "root", info.User)
	var cookie *http.Cookie
	for _, c := range w.Result().Cookies() {
		if c.Name == web.SessionCookie {
			cookie = c
		}
	}
	require.NotNil(t, cookie)
	require.True(t, cookie.HttpOnly && cookie.Secure)
	s, err := mgr.GetSession(ctx, cookie.Value)
	require.NoError(t, err)
	require.Equal(t, info.CSRFToken, s.CSRFToken)

	require.Equal(t, http.StatusForbidden, login("root", "wrong password!!").Code)
	require.Equal(t, http.StatusForbidden, login("nobody", "whatever pass").Code)
	// Failures are rate limited per user and address.
	for range 5 {
		login("root", "wrong password!!")
	}
	require.Equal(t, http.StatusTooManyRequests, login("root", "correct horse battery").Code)

	// Password links: one use.
	root, err := svc.GetUser(ctx, "root", false)
	require.NoError(t, err)
	tok, _, err := mgr.CreatePasswordToken(ctx, root, time.Hour)
	require.NoError(t, err)
	set := func(tok, pw string) int {
		b, _ := json.Marshal(sso.SetPasswordRequest{Token: tok, Password: pw})
		req := httptest.NewRequest(http.MethodPost, "/v1/webapi/users/password", bytes.NewReader(b))
		req.RemoteAddr = "198.51.100.7:1"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code
	}
	require.Equal(t, http.StatusBadRequest, set(tok, "short"), "policy first, token kept")
	require.Equal(t, http.StatusOK, set(tok, "another long password"))
	require.Equal(t, http.StatusForbidden, set(tok, "another long password"))
}

// TestPasswordLoginCanonicalName: a password login names the account in
// canonical form, so look-alike spellings sign in as the one account and
// share its failure limit.
func TestPasswordLoginCanonicalName(t *testing.T) {
	t.Parallel()
	h, svc, _, _ := newHandler(t)
	ctx := context.Background()
	_, err := svc.CreateUser(ctx, &typesv1.User{Metadata: &typesv1.Metadata{Name: "root"}, Spec: &typesv1.UserSpec{Roles: []string{"editor"}}})
	require.NoError(t, err)
	require.NoError(t, svc.SetLocalPassword(ctx, "root", "correct horse battery"))
	addr := "192.0.2.9:1234"
	login := func(user, pw string) *httptest.ResponseRecorder {
		b, _ := json.Marshal(sso.PasswordLoginRequest{User: user, Password: pw})
		req := httptest.NewRequest(http.MethodPost, "/v1/webapi/sessions", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		req.RemoteAddr = addr
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	for _, name := range []string{"ROOT", "Root", "ｒｏｏｔ"} {
		w := login(name, "correct horse battery")
		require.Equal(t, http.StatusOK, w.Code, "%s: %s", name, w.Body.String())
		var info sso.SessionInfo
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &info))
		require.Equal(t, "root", info.User, "the session names the stored account")
	}
	// Failures under different spellings count against the one account.
	for _, name := range []string{"ROOT", "Root", "ｒｏｏｔ", "rOOT", "RooT"} {
		require.Equal(t, http.StatusForbidden, login(name, "wrong password!!").Code)
	}
	require.Equal(t, http.StatusTooManyRequests, login("root", "correct horse battery").Code)
	// A built-in identity has no password login.
	addr = "192.0.2.10:1234"
	require.Equal(t, http.StatusForbidden, login("@admin", "whatever password").Code)
}

// TestPasswordLoginLimitCannotBeFlushed: requests that are refused by the
// limiter must not be able to reset it. Before the fix every request, even
// a rate-limited one, added a limiter for its username, and the map was
// wiped when it reached 10,000 entries: 10,000 cheap requests with made-up
// usernames bought five more password guesses.
func TestPasswordLoginLimitCannotBeFlushed(t *testing.T) {
	t.Parallel()
	h, svc, _, _ := newHandler(t)
	ctx := context.Background()
	_, err := svc.CreateUser(ctx, &typesv1.User{Metadata: &typesv1.Metadata{Name: "root"}, Spec: &typesv1.UserSpec{Roles: []string{"editor"}}})
	require.NoError(t, err)
	require.NoError(t, svc.SetLocalPassword(ctx, "root", "correct horse battery"))

	login := func(user, pw string) int {
		b, _ := json.Marshal(sso.PasswordLoginRequest{User: user, Password: pw})
		req := httptest.NewRequest(http.MethodPost, "/v1/webapi/sessions", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
		req.RemoteAddr = "192.0.2.9:1234"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code
	}
	for range 5 {
		require.Equal(t, http.StatusForbidden, login("root", "wrong password!!"))
	}
	require.Equal(t, http.StatusTooManyRequests, login("root", "correct horse battery"))
	for i := range 10001 {
		require.Equal(t, http.StatusTooManyRequests, login(fmt.Sprintf("flood-%d", i), "x"))
	}
	require.Equal(t, http.StatusTooManyRequests, login("root", "correct horse battery"),
		"a flood of refused requests must not reset the limiter")
}

// TestACSDisableIdPInitiated drives the ACS with a real IdP: an
// IdP-initiated login lands in a session by default, and is refused with a
// 403, an explanation and an audited failure when the connector sets
// disable_idp_initiated; SP-initiated logins work either way.
func TestACSDisableIdPInitiated(t *testing.T) {
	t.Parallel()
	for _, disabled := range []bool{false, true} {
		t.Run(fmt.Sprintf("disable_idp_initiated=%v", disabled), func(t *testing.T) {
			t.Parallel()
			h, idp, rec := samlFixture(t, disabled)
			const acs = "https://gatehouse.example.com/v1/webapi/saml/acs/okta"

			post := func(form samltest.Form, accept string, cookies ...*http.Cookie) *httptest.ResponseRecorder {
				require.Equal(t, acs, form.Action)
				return postACS(t, h, form, accept, cookies...)
			}

			t.Run("SP-initiated", func(t *testing.T) {
				loc, binding := startLogin(t, h, "/web/cluster")
				form := idp.FollowSSO(t, loc)
				requireSession(t, post(form, "", binding), "/web/cluster")
			})

			t.Run("IdP-initiated", func(t *testing.T) {
				form := idp.IdPInitiated(t, acs)
				if !disabled {
					requireSession(t, post(form, ""), sso.DefaultRedirect)
					return
				}
				w := post(form, "application/json")
				require.Equal(t, http.StatusForbidden, w.Code, w.Body.String())
				require.Empty(t, w.Result().Cookies(), "no session")
				var body web.ErrorBody
				require.NoError(t, json.Unmarshal(w.Body.Bytes(), &body))
				require.Equal(t, `IdP-initiated login is disabled for connector "okta"; start the login from Gatehouse's login page`, body.Error)
				last := rec.events[len(rec.events)-1]
				require.Equal(t, saml.EventLogin, last.Type)
				require.Error(t, last.Err)
				require.Equal(t, "true", last.Fields["idp_initiated"])
				require.Equal(t, "okta", last.Fields["connector"])

				// A browser gets the HTML error page.
				w = post(idp.IdPInitiated(t, acs), "")
				require.Equal(t, http.StatusForbidden, w.Code)
				require.Contains(t, w.Header().Get("Content-Type"), "text/html")
				require.Contains(t, w.Body.String(), "IdP-initiated login is disabled for connector")
			})
		})
	}
}

// samlFixture is a handler with connector "okta" on a real test IdP where
// alice is signed in.
func samlFixture(t *testing.T, disableIdPInitiated bool, opts ...func(*sso.Config)) (*sso.Handler, *samltest.IdP, *recorder) {
	t.Helper()
	h, svc, _, rec := newHandler(t, opts...)
	ctx := context.Background()
	_, err := svc.CreateRole(ctx, &typesv1.Role{Metadata: &typesv1.Metadata{Name: "dev"}, Spec: &typesv1.RoleSpec{Allow: &typesv1.RoleConditions{Logins: []string{"ubuntu"}}}})
	require.NoError(t, err)
	idp := samltest.NewIdP(t, samltest.Options{})
	idp.AddUser(t, "alice", "alice@example.com", "alice-password", "admins")
	c := &typesv1.SAMLConnector{
		Metadata: &typesv1.Metadata{Name: "okta"},
		Spec: &typesv1.SAMLConnectorSpec{
			EntityDescriptor:    idp.MetadataXML(t),
			Acs:                 "https://gatehouse.example.com/v1/webapi/saml/acs/okta",
			AttributesToRoles:   []*typesv1.AttributeMapping{{Name: samltest.GroupsAttribute, Value: "admins", Roles: []string{"dev"}}},
			DisableIdpInitiated: disableIdPInitiated,
		},
	}
	require.NoError(t, saml.PrepareConnector(ctx, c, saml.PrepareConfig{}))
	_, err = svc.CreateSAMLConnector(ctx, c)
	require.NoError(t, err)
	stored, err := svc.GetSAMLConnector(ctx, "okta", true)
	require.NoError(t, err)
	md, err := saml.Metadata(stored, nil)
	require.NoError(t, err)
	idp.RegisterSP(t, "gatehouse", md)
	idp.Login(t, "alice", "alice-password")
	return h, idp, rec
}

// TestACSBrowserBinding: an SP-initiated login finishes only in the
// browser that started it. The IdP's answer posted by another browser
// (login CSRF: the attacker's own login, finished in the victim's
// browser), without the binding cookie or with another login's, is
// refused with a 403 and an audited failure, and the login can still
// finish in its own browser, once.
func TestACSBrowserBinding(t *testing.T) {
	t.Parallel()
	for _, disabled := range []bool{false, true} {
		t.Run(fmt.Sprintf("disable_idp_initiated=%v", disabled), func(t *testing.T) {
			t.Parallel()
			h, idp, rec := samlFixture(t, disabled)

			loc, attacker := startLogin(t, h, "/web/attacker")
			require.True(t, attacker.HttpOnly, "HttpOnly")
			require.True(t, attacker.Secure, "Secure")
			require.Equal(t, http.SameSiteNoneMode, attacker.SameSite, "the ACS is a cross-site POST")
			require.Equal(t, "/", attacker.Path)
			require.Equal(t, int(saml.RequestTTL/time.Second), attacker.MaxAge)
			require.Empty(t, attacker.Domain)
			require.True(t, saml.ValidBinding(attacker.Value))
			require.NotContains(t, loc, attacker.Value, "the binding does not travel to the IdP")
			form := idp.FollowSSO(t, loc)

			requireRefused := func(t *testing.T, w *httptest.ResponseRecorder, detail string) {
				t.Helper()
				require.Equal(t, http.StatusForbidden, w.Code, w.Body.String())
				require.Nil(t, findCookie(w, web.SessionCookie), "no session")
				require.Nil(t, findCookie(w, sso.BindingCookie), "the browser's own binding is left alone")
				var body web.ErrorBody
				require.NoError(t, json.Unmarshal(w.Body.Bytes(), &body))
				require.Equal(t, saml.ReasonBrowser, body.Error)
				last := rec.events[len(rec.events)-1]
				require.Equal(t, saml.EventLogin, last.Type)
				require.Error(t, last.Err)
				require.True(t, trace.IsAccessDenied(last.Err))
				require.Contains(t, last.Err.Error(), "started in another browser")
				require.Contains(t, last.Message, detail)
				require.Equal(t, "false", last.Fields["idp_initiated"])
				require.Equal(t, "okta", last.Fields["connector"])
				for _, e := range rec.events {
					require.NotContains(t, fmt.Sprint(e), attacker.Value, "the binding is never audited")
				}
			}

			t.Run("without the cookie", func(t *testing.T) {
				requireRefused(t, postACS(t, h, form, "application/json"), "no browser binding")
			})
			t.Run("with another login's cookie", func(t *testing.T) {
				_, victim := startLogin(t, h, "")
				require.NotEqual(t, attacker.Value, victim.Value)
				requireRefused(t, postACS(t, h, form, "application/json", victim), "another browser's binding")
			})
			t.Run("with a made-up cookie", func(t *testing.T) {
				requireRefused(t, postACS(t, h, form, "application/json", &http.Cookie{Name: sso.BindingCookie, Value: "x"}), "another browser's binding")
			})
			t.Run("a browser gets the HTML page", func(t *testing.T) {
				w := postACS(t, h, form, "")
				require.Equal(t, http.StatusForbidden, w.Code)
				require.Contains(t, w.Header().Get("Content-Type"), "text/html")
				require.Contains(t, w.Body.String(), "started in another browser")
			})

			// The refusals left the login outstanding: its own browser
			// finishes it, and the binding cookie is cleared.
			w := postACS(t, h, form, "", attacker)
			requireSession(t, w, "/web/attacker")
			cleared := findCookie(w, sso.BindingCookie)
			require.NotNil(t, cleared, "the binding cookie is cleared")
			require.Negative(t, cleared.MaxAge)
			require.Equal(t, "/", cleared.Path)
			last := rec.events[len(rec.events)-1]
			require.NoError(t, last.Err)
			require.Equal(t, "false", last.Fields["idp_initiated"])

			// Once: the relay state is gone and the assertion used.
			// Without its request the response is unsolicited: refused for
			// not answering a request, or as IdP-initiated when those are off.
			w = postACS(t, h, form, "application/json", attacker)
			if disabled {
				require.Equal(t, http.StatusForbidden, w.Code, w.Body.String())
				require.Contains(t, w.Body.String(), "IdP-initiated login is disabled")
			} else {
				require.Equal(t, http.StatusBadRequest, w.Code, w.Body.String())
				require.Contains(t, w.Body.String(), saml.ReasonRequest)
			}
			require.Nil(t, findCookie(w, web.SessionCookie))
		})
	}
}

// TestACSBindingTwoTabs: a browser that starts a second login before the
// first is answered keeps its binding, so the first still finishes.
func TestACSBindingTwoTabs(t *testing.T) {
	t.Parallel()
	h, idp, _ := samlFixture(t, true)
	loc1, ck := startLogin(t, h, "/web/one")
	form1 := idp.FollowSSO(t, loc1)
	loc2, ck2 := startLogin(t, h, "/web/two", &http.Cookie{Name: ck.Name, Value: ck.Value})
	require.Equal(t, ck.Value, ck2.Value, "the binding is kept")
	require.Equal(t, int(saml.RequestTTL/time.Second), ck2.MaxAge, "and its lifetime renewed")
	require.NotEqual(t, loc1, loc2)
	requireSession(t, postACS(t, h, form1, "", ck), "/web/one")

	// A browser with a malformed cookie gets a fresh binding.
	_, ck3 := startLogin(t, h, "", &http.Cookie{Name: ck.Name, Value: "not-a-binding"})
	require.True(t, saml.ValidBinding(ck3.Value))
}

// TestACSIdPInitiatedIgnoresBinding: with IdP-initiated logins allowed,
// an unsolicited response signs in with or without a binding cookie.
func TestACSIdPInitiatedIgnoresBinding(t *testing.T) {
	t.Parallel()
	h, idp, rec := samlFixture(t, false)
	const acs = "https://gatehouse.example.com/v1/webapi/saml/acs/okta"
	requireSession(t, postACS(t, h, idp.IdPInitiated(t, acs), ""), sso.DefaultRedirect)
	require.Equal(t, "true", rec.events[len(rec.events)-1].Fields["idp_initiated"])
	_, ck := startLogin(t, h, "")
	w := postACS(t, h, idp.IdPInitiated(t, acs), "", ck)
	requireSession(t, w, sso.DefaultRedirect)
	require.Nil(t, findCookie(w, sso.BindingCookie), "an unsolicited response leaves the binding of a login under way alone")
}

// TestSessionInfoSSHAddr: the session's info names the SSH node's address,
// which the web UI's SSH access page puts in the ssh command; without one
// configured the field is absent.
func TestSessionInfoSSHAddr(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, addr string }{
		{"configured", "gatehouse.example.com:3022"},
		{"none", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, svc, _, _ := newHandler(t, func(c *sso.Config) { c.SSHAddr = tc.addr })
			ctx := context.Background()
			_, err := svc.CreateUser(ctx, &typesv1.User{Metadata: &typesv1.Metadata{Name: "root"}, Spec: &typesv1.UserSpec{Roles: []string{"access"}}})
			require.NoError(t, err)
			require.NoError(t, svc.SetLocalPassword(ctx, "root", "correct horse battery"))
			b, _ := json.Marshal(sso.PasswordLoginRequest{User: "root", Password: "correct horse battery"})
			req := httptest.NewRequest(http.MethodPost, "/v1/webapi/sessions", bytes.NewReader(b))
			req.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			require.Equal(t, http.StatusOK, w.Code, w.Body.String())
			ck := findCookie(w, web.SessionCookie)
			require.NotNil(t, ck)

			req = httptest.NewRequest(http.MethodGet, "/v1/webapi/sessions/current", nil)
			req.AddCookie(ck)
			w = httptest.NewRecorder()
			h.ServeHTTP(w, req)
			require.Equal(t, http.StatusOK, w.Code, w.Body.String())
			var info map[string]any
			require.NoError(t, json.Unmarshal(w.Body.Bytes(), &info))
			require.Equal(t, "root", info["user"])
			if tc.addr == "" {
				require.NotContains(t, info, "ssh_addr")
				return
			}
			require.Equal(t, tc.addr, info["ssh_addr"])
		})
	}
}

// TestACSNeedsAForm: the HTTP-POST binding is an HTML form. A genuine
// response sent in any other body is refused with a 415 that says so, and
// the refusal is audited; the same response posted as a form is accepted
// (the refusals did not consume it).
func TestACSNeedsAForm(t *testing.T) {
	t.Parallel()
	h, idp, rec := samlFixture(t, false)
	const acs = "https://gatehouse.example.com/v1/webapi/saml/acs/okta"
	form := idp.IdPInitiated(t, acs)
	asJSON, err := json.Marshal(map[string]string{"SAMLResponse": form.SAMLResponse})
	require.NoError(t, err)
	asForm := url.Values{"SAMLResponse": {form.SAMLResponse}}.Encode()
	for _, tc := range []struct{ contentType, body string }{
		{"application/json", string(asJSON)},
		{"multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"SAMLResponse\"\r\n\r\n" + form.SAMLResponse + "\r\n--x--\r\n"},
		{"text/plain", asForm},
		{"", asForm},
		{"application/x-www-form-urlencoded-x", asForm},
	} {
		t.Run(tc.contentType, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/v1/webapi/saml/acs/okta", strings.NewReader(tc.body))
			req.RemoteAddr = fmt.Sprintf("[2001:db8:%x::1]:443", acsSources.Add(1))
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			req.Header.Set("Accept", "application/json")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			require.Equal(t, http.StatusUnsupportedMediaType, w.Code, w.Body.String())
			require.Contains(t, w.Body.String(), "must be posted as an HTML form")
			require.Nil(t, findCookie(w, web.SessionCookie))
			last := rec.events[len(rec.events)-1]
			require.Equal(t, saml.EventLogin, last.Type)
			require.Contains(t, last.Message, "Content-Type is")
			require.Error(t, last.Err)
		})
	}
	// With a charset parameter, as browsers may send it.
	req := httptest.NewRequest(http.MethodPost, "/v1/webapi/saml/acs/okta", strings.NewReader(asForm))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=UTF-8")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	requireSession(t, w, sso.DefaultRedirect)
}

// TestACSStorageFailureIsNotTheClients: when a valid response cannot be
// recorded as used, the ACS answers 5xx, not a refusal of the response,
// and gives the source's failure back: more such posts than the failure
// limiter's burst are never throttled, and the response, still unused,
// signs the user in once the storage is back.
func TestACSStorageFailureIsNotTheClients(t *testing.T) {
	t.Parallel()
	bk, err := memory.New(context.Background(), memory.Config{Clock: clockwork.NewFakeClockAt(time.Now())})
	require.NoError(t, err)
	t.Cleanup(func() { bk.Close() })
	store := &samltest.ReplayStoreDown{Backend: bk}
	p, err := saml.New(saml.Config{Backend: store})
	require.NoError(t, err)
	h, idp, _ := samlFixture(t, false, func(c *sso.Config) { c.SAML = p })
	form := idp.IdPInitiated(t, "https://gatehouse.example.com/v1/webapi/saml/acs/okta")
	post := func() *httptest.ResponseRecorder {
		body := url.Values{"SAMLResponse": {form.SAMLResponse}}.Encode()
		req := httptest.NewRequest(http.MethodPost, "/v1/webapi/saml/acs/okta", strings.NewReader(body))
		req.RemoteAddr = "192.0.2.7:5555"
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	store.Down.Store(true)
	for i := 0; i < 25; i++ {
		w := post()
		require.GreaterOrEqual(t, w.Code, 500, "post %d: %s", i, w.Body.String())
		require.Contains(t, w.Body.String(), "the SAML login failed")
		require.Nil(t, findCookie(w, web.SessionCookie))
	}
	store.Down.Store(false)
	requireSession(t, post(), sso.DefaultRedirect)
}
