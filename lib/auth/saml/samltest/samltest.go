// Package samltest runs a real SAML identity provider in-process for tests:
// crewjam/saml's samlidp, standing in for Okta. It is only for tests.
package samltest

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/xml"
	"html"
	"io"
	"math/big"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	crewjam "github.com/crewjam/saml"
	"github.com/crewjam/saml/samlidp"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"
)

// IdP is a running in-process identity provider.
type IdP struct {
	// URL is the IdP's base URL; its entity ID is URL + "/metadata".
	URL string
	// Server is the samlidp server.
	Server *samlidp.Server
	// HTTP is the test server serving it.
	HTTP *httptest.Server
	// Client is a browser for the IdP: it keeps the IdP's session cookie.
	Client *http.Client
}

// Options tune NewIdP.
type Options struct {
	// AsURL makes the IdP claim another IdP's base URL (its entity ID),
	// while signing with its own key: an impostor.
	AsURL string
}

// NewIdP starts an IdP with a fresh RSA signing key.
func NewIdP(t testing.TB, opts Options) *IdP {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "samltest okta"},
		// Valid well either side of the clocks tests move to (an hour back
		// for "not yet valid" assertions): the certificate's own window
		// must never be what a time-window test trips on.
		NotBefore: time.Now().Add(-48 * time.Hour),
		NotAfter:  time.Now().Add(48 * time.Hour),
		KeyUsage:  x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)

	var handler http.Handler
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(hs.Close)
	base := hs.URL
	if opts.AsURL != "" {
		base = opts.AsURL
	}
	u, err := url.Parse(base)
	require.NoError(t, err)
	srv, err := samlidp.New(samlidp.Options{
		URL:         *u,
		Key:         key,
		Signer:      key,
		Certificate: cert,
		Store:       &samlidp.MemoryStore{},
	})
	require.NoError(t, err)
	handler = srv
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &IdP{
		URL:    hs.URL,
		Server: srv,
		HTTP:   hs,
		Client: &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	}
}

// EntityID is the IdP's entity ID (its metadata URL).
func (i *IdP) EntityID() string { return i.Server.IDP.MetadataURL.String() }

// MetadataXML returns the IdP's metadata.
func (i *IdP) MetadataXML(t testing.TB) string {
	t.Helper()
	out, err := xml.MarshalIndent(i.Server.IDP.Metadata(), "", "  ")
	require.NoError(t, err)
	return xml.Header + string(out)
}

// AddUser adds a user who logs in with password; groups are sent as the
// eduPersonAffiliation attribute.
func (i *IdP) AddUser(t testing.TB, name, email, password string, groups ...string) {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	require.NoError(t, err)
	require.NoError(t, i.Server.Store.Put("/users/"+name, samlidp.User{Name: name, Email: email, HashedPassword: hash, Groups: groups}))
}

// RegisterSP registers a service provider from its metadata.
func (i *IdP) RegisterSP(t testing.TB, id string, metadata []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, i.URL+"/services/"+id, bytes.NewReader(metadata))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Less(t, resp.StatusCode, 300, "registering the SP: %s", body)
}

// Login logs the browser in at the IdP.
func (i *IdP) Login(t testing.TB, user, password string) {
	t.Helper()
	resp, err := i.Client.PostForm(i.URL+"/login", url.Values{"user": {user}, "password": {password}})
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "IdP login: %s", body)
	require.False(t, strings.Contains(string(body), "Invalid username"), "IdP login refused")
}

// Form is the auto-submitting form the IdP answers with.
type Form struct {
	Action       string
	SAMLResponse string
	RelayState   string
}

var (
	actionRE = regexp.MustCompile(`<form[^>]*action="([^"]*)"`)
	inputRE  = regexp.MustCompile(`<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"`)
)

// ParseForm extracts the POST binding form from an IdP page.
func ParseForm(t testing.TB, page string) Form {
	t.Helper()
	m := actionRE.FindStringSubmatch(page)
	require.NotNil(t, m, "no form in the IdP's answer:\n%s", page)
	f := Form{Action: html.UnescapeString(m[1])}
	for _, in := range inputRE.FindAllStringSubmatch(page, -1) {
		switch in[1] {
		case "SAMLResponse":
			f.SAMLResponse = html.UnescapeString(in[2])
		case "RelayState":
			f.RelayState = html.UnescapeString(in[2])
		}
	}
	require.NotEmpty(t, f.SAMLResponse, "no SAMLResponse in the IdP's answer:\n%s", page)
	return f
}

// FollowSSO opens an SP-initiated redirect URL (which may name another
// IdP's host; it is sent to this IdP) with the logged-in browser and
// returns the response form.
func (i *IdP) FollowSSO(t testing.TB, redirect string) Form {
	t.Helper()
	u, err := url.Parse(redirect)
	require.NoError(t, err)
	own, err := url.Parse(i.URL)
	require.NoError(t, err)
	u.Scheme, u.Host = own.Scheme, own.Host
	resp, err := i.Client.Get(u.String())
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "IdP SSO: %s", body)
	return ParseForm(t, string(body))
}

// IdPInitiated runs an IdP-initiated login to the SP with entity ID spID
// (as from the Okta dashboard) and returns the response form.
func (i *IdP) IdPInitiated(t testing.TB, spID string) Form {
	t.Helper()
	sc, err := json.Marshal(samlidp.Shortcut{Name: "app", ServiceProviderID: spID})
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPut, i.URL+"/shortcuts/app", bytes.NewReader(sc))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Less(t, resp.StatusCode, 300)
	resp, err = i.Client.Get(i.URL + "/login/app")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "IdP-initiated login: %s", body)
	return ParseForm(t, string(body))
}

// GroupsAttribute is the attribute name samlidp sends groups under (the
// eduPersonAffiliation FriendlyName; its Name is an OID).
const GroupsAttribute = "eduPersonAffiliation"

var _ = crewjam.HTTPPostBinding
