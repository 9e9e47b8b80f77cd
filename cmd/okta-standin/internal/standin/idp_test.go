package standin

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/auth/saml"
	"github.com/gatehouse/gatehouse/lib/auth/saml/samltest"
	"github.com/gatehouse/gatehouse/lib/backend/memory"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

const testACS = "https://gatehouse.example.com/v1/webapi/saml/acs/okta"

// idpFixture is the stand-in's IdP on a test listener, and Gatehouse's SAML
// checks (lib/auth/saml) with a connector made from the IdP's metadata, as
// Setup makes it.
type idpFixture struct {
	idp       *IdP
	dir       *Directory
	url       string
	provider  *saml.Provider
	connector *typesv1.SAMLConnector
	binding   string
	clock     *clockwork.FakeClock
}

func newIdPFixture(t *testing.T) *idpFixture {
	t.Helper()
	ctx := context.Background()
	dir := NewDirectory(nil, DemoPeople)
	var h http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	key, cert, err := LoadOrCreateSigningKey(t.TempDir(), time.Now())
	require.NoError(t, err)
	clock := clockwork.NewFakeClockAt(time.Now())
	idp, err := NewIdP(IdPConfig{BaseURL: srv.URL, Key: key, Certificate: cert, Directory: dir, RestartURL: "https://gatehouse.example.com/web/login", Clock: clock})
	require.NoError(t, err)
	h = idp.Handler()

	md, err := idp.MetadataXML()
	require.NoError(t, err)
	c := &typesv1.SAMLConnector{
		Metadata: &typesv1.Metadata{Name: ConnectorName},
		Spec: &typesv1.SAMLConnectorSpec{
			EntityDescriptor:  md,
			Acs:               testACS,
			AttributesToRoles: []*typesv1.AttributeMapping{{Name: AttrGroups, Value: GroupAuditors, Roles: []string{AuditorRole}}},
		},
	}
	require.NoError(t, saml.PrepareConnector(ctx, c, saml.PrepareConfig{}))
	spMD, err := saml.Metadata(c, clockwork.NewRealClock())
	require.NoError(t, err)
	entityID, err := idp.RegisterSP(spMD)
	require.NoError(t, err)
	require.Equal(t, testACS, entityID, "the SP's entity ID is its ACS (no audience set)")

	bk, err := memory.New(ctx, memory.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { bk.Close() })
	p, err := saml.New(saml.Config{Backend: bk})
	require.NoError(t, err)
	binding, err := saml.NewBinding()
	require.NoError(t, err)
	return &idpFixture{idp: idp, dir: dir, url: srv.URL, provider: p, connector: c, binding: binding, clock: clock}
}

// setPerson puts a person in a state without SCIM (the directory's SCIM
// side has its own tests).
func (f *idpFixture) setPerson(t *testing.T, id string, active, assigned bool, groups ...string) {
	t.Helper()
	f.dir.mu.Lock()
	defer f.dir.mu.Unlock()
	p, err := f.dir.find(id)
	require.NoError(t, err)
	p.Active, p.Assigned, p.Groups = active, assigned, groups
}

// browser is a cookie-keeping client that does not follow redirects.
func browser(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// signIn starts an SP-initiated login at Gatehouse's SP, picks person on
// the IdP's picker and returns the IdP's last page and status.
func (f *idpFixture) signIn(t *testing.T, person string) (int, string, string) {
	t.Helper()
	return f.signInAfter(t, person, 0)
}

// signInAfter is signIn with the person taking wait on the picker.
func (f *idpFixture) signInAfter(t *testing.T, person string, wait time.Duration) (int, string, string) {
	status, page, relay, _ := f.signInWithCookies(t, person, wait)
	return status, page, relay
}

// signInWithCookies is signInAfter that also returns the cookies the
// IdP's last answer set.
func (f *idpFixture) signInWithCookies(t *testing.T, person string, wait time.Duration) (int, string, string, []*http.Cookie) {
	t.Helper()
	u, err := f.provider.AuthnRequest(context.Background(), f.connector, "/web", f.binding)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(u.String(), f.url+pathSSO+"?"), u.String())
	b := browser(t)
	resp, err := b.Get(u.String())
	require.NoError(t, err)
	page := readBody(t, resp)
	require.Equal(t, http.StatusOK, resp.StatusCode, page)
	require.Contains(t, page, `id="pick-`+person+`"`, "the picker lists the people")
	f.clock.Advance(wait)
	resp, err = b.PostForm(f.url+pathPick, url.Values{"person": {person}, "request": {u.RawQuery}})
	require.NoError(t, err)
	readBody(t, resp)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	next, err := resp.Location()
	require.NoError(t, err)
	resp, err = b.Get(next.String())
	require.NoError(t, err)
	page = readBody(t, resp)
	relay := u.Query().Get("RelayState")
	return resp.StatusCode, page, relay, resp.Cookies()
}

func TestAssertionAcceptedByGatehouse(t *testing.T) {
	t.Parallel()
	f := newIdPFixture(t)
	f.setPerson(t, "ada", true, true, GroupAuditors)

	status, page, relay := f.signIn(t, "ada")
	require.Equal(t, http.StatusOK, status, page)
	form := samltest.ParseForm(t, page)
	require.Equal(t, testACS, form.Action)
	require.Equal(t, relay, form.RelayState)

	// Gatehouse's own checks: signature against the connector's metadata,
	// issuer, audience, destination, time window, the request it answers.
	a, err := f.provider.ParseResponse(context.Background(), f.connector, form.SAMLResponse, form.RelayState, f.binding)
	require.NoError(t, err)
	require.Equal(t, "ada@example.com", a.NameID)
	require.False(t, a.IdPInitiated)
	require.Equal(t, []string{GroupAuditors}, a.Attributes[AttrGroups])
	require.Equal(t, []string{"Ada"}, a.Attributes[AttrFirstName])
	require.Equal(t, []string{"Lovelace"}, a.Attributes[AttrLastName])
	require.Equal(t, []string{"ada@example.com"}, a.Attributes[AttrEmail])
	require.Equal(t, "ada@example.com", saml.Username(a))

	// The same response again is a replay.
	_, err = f.provider.ParseResponse(context.Background(), f.connector, form.SAMLResponse, form.RelayState, f.binding)
	require.Error(t, err)
}

func TestAssertionFromAnotherKeyRefused(t *testing.T) {
	t.Parallel()
	f := newIdPFixture(t)
	f.setPerson(t, "ada", true, true)
	// Gatehouse trusts another key for this IdP (a connector made from
	// other metadata): the stand-in's signature must not pass.
	other := newIdPFixture(t)
	md, err := other.idp.MetadataXML()
	require.NoError(t, err)
	md = strings.ReplaceAll(md, other.url, f.url) // same entity ID and SSO URL, other key
	f.connector.Spec.EntityDescriptor = md

	status, page, _ := f.signIn(t, "ada")
	require.Equal(t, http.StatusOK, status, page)
	form := samltest.ParseForm(t, page)
	_, err = f.provider.ParseResponse(context.Background(), f.connector, form.SAMLResponse, form.RelayState, f.binding)
	var re *saml.ResponseError
	require.ErrorAs(t, err, &re)
	require.Equal(t, saml.ReasonSignature, re.Reason, re.Detail)
}

// Only people who are active and assigned to the app get an assertion, as
// in Okta; the others see why on the picker.
func TestSignInNeedsActiveAndAssigned(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name             string
		active, assigned bool
		want             string
	}{
		{name: "not assigned", active: true, assigned: false, want: "is not assigned to the Gatehouse app"},
		{name: "deactivated", active: false, assigned: true, want: "is deactivated in Okta"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newIdPFixture(t)
			f.setPerson(t, "grace", tc.active, tc.assigned)
			status, page, _ := f.signIn(t, "grace")
			require.Equal(t, http.StatusOK, status)
			require.Contains(t, page, `id="picker-error"`)
			require.Contains(t, page, tc.want)
			require.NotContains(t, page, "SAMLResponse")
		})
	}
}

func TestPickRefusesCrossOriginAndUnknownPeople(t *testing.T) {
	t.Parallel()
	f := newIdPFixture(t)
	for _, tc := range []struct {
		name   string
		form   url.Values
		header http.Header
		want   int
	}{
		{name: "cross-site form", form: url.Values{"person": {"ada"}, "request": {"SAMLRequest=x"}}, header: http.Header{"Sec-Fetch-Site": {"cross-site"}}, want: http.StatusForbidden},
		{name: "unknown person", form: url.Values{"person": {"mallory"}, "request": {"SAMLRequest=x"}}, want: http.StatusBadRequest},
		{name: "no request", form: url.Values{"person": {"ada"}}, want: http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, f.url+pathPick, strings.NewReader(tc.form.Encode()))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			for k, v := range tc.header {
				req.Header[k] = v
			}
			resp, err := browser(t).Do(req)
			require.NoError(t, err)
			readBody(t, resp)
			require.Equal(t, tc.want, resp.StatusCode)
			require.Empty(t, resp.Cookies(), "no pick is recorded")
		})
	}
}

func TestSigningKeyKeptAcrossRestarts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	k1, c1, err := LoadOrCreateSigningKey(dir, time.Now())
	require.NoError(t, err)
	k2, c2, err := LoadOrCreateSigningKey(dir, time.Now())
	require.NoError(t, err)
	require.True(t, k1.Equal(k2))
	require.True(t, c1.Equal(c2))
	// Close to expiry: a new pair.
	k3, _, err := LoadOrCreateSigningKey(dir, c1.NotAfter)
	require.NoError(t, err)
	require.False(t, k1.Equal(k3))
}

// A person who takes longer than a SAML request lives on the picker is
// sent back to Gatehouse to start over, and their choice is dropped.
func TestExpiredRequestStartsOver(t *testing.T) {
	t.Parallel()
	f := newIdPFixture(t)
	f.setPerson(t, "ada", true, true)
	status, page, _, cookies := f.signInWithCookies(t, "ada", 2*time.Minute)
	require.Equal(t, http.StatusBadRequest, status)
	require.Len(t, cookies, 1)
	require.Equal(t, pickCookie, cookies[0].Name)
	require.Negative(t, cookies[0].MaxAge, "the choice is dropped")
	require.Contains(t, page, "This sign-in request has expired")
	require.Contains(t, page, `href="https://gatehouse.example.com/web/login"`)
	require.NotContains(t, page, "SAMLResponse")
}
