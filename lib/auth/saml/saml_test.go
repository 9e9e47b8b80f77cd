package saml_test

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/beevik/etree"
	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gatehouse/gatehouse/lib/auth/audit"
	"github.com/gatehouse/gatehouse/lib/auth/saml"
	"github.com/gatehouse/gatehouse/lib/auth/saml/samltest"
	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/backend/memory"
	"github.com/gatehouse/gatehouse/lib/services"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

const acsURL = "https://gatehouse.example.com/v1/webapi/saml/acs/okta"

type recorder struct{ events []audit.Event }

func (r *recorder) Record(_ context.Context, e audit.Event) { r.events = append(r.events, e) }

type fixture struct {
	clock     *clockwork.FakeClock
	svc       *services.Services
	provider  *saml.Provider
	idp       *samltest.IdP
	connector *typesv1.SAMLConnector
	rec       *recorder
	login     saml.LoginConfig
	// binding is the browser binding of the fixture's one browser.
	binding string
	bk      backend.Backend
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	clock := clockwork.NewFakeClockAt(time.Now())
	bk, err := memory.New(ctx, memory.Config{Clock: clock})
	require.NoError(t, err)
	t.Cleanup(func() { bk.Close() })
	svc, err := services.New(services.Config{Backend: bk})
	require.NoError(t, err)
	for _, r := range []*typesv1.Role{
		{Metadata: &typesv1.Metadata{Name: "dev"}, Spec: &typesv1.RoleSpec{Allow: &typesv1.RoleConditions{Logins: []string{"ubuntu"}}, Options: &typesv1.RoleOptions{MaxSessionTtl: "2h"}}},
		{Metadata: &typesv1.Metadata{Name: "ops"}, Spec: &typesv1.RoleSpec{Allow: &typesv1.RoleConditions{Logins: []string{"root"}}}},
	} {
		_, err := svc.CreateRole(ctx, r)
		require.NoError(t, err)
	}
	idp := samltest.NewIdP(t, samltest.Options{})
	idp.AddUser(t, "alice", "alice@example.com", "alice-password", "admins")
	c := connector(t, "okta", idp.MetadataXML(t), "")
	stored, err := svc.CreateSAMLConnector(ctx, c)
	require.NoError(t, err)
	require.Empty(t, stored.GetSpec().GetSigningKeyPair().GetPrivateKey(), "secrets are not returned")
	c, err = svc.GetSAMLConnector(ctx, "okta", true)
	require.NoError(t, err)
	md, err := saml.Metadata(c, clock)
	require.NoError(t, err)
	idp.RegisterSP(t, "gatehouse", md)
	p, err := saml.New(saml.Config{Backend: bk, Clock: clock})
	require.NoError(t, err)
	rec := &recorder{}
	binding, err := saml.NewBinding()
	require.NoError(t, err)
	require.True(t, saml.ValidBinding(binding))
	return &fixture{
		clock: clock, svc: svc, provider: p, idp: idp, connector: c, rec: rec, binding: binding, bk: bk,
		login: saml.LoginConfig{Users: svc, Roles: svc, Locks: saml.BackendLocks{Locks: svc, Now: clock.Now}, Recorder: rec},
	}
}

func connector(t *testing.T, name, metadata, audience string) *typesv1.SAMLConnector {
	t.Helper()
	c := &typesv1.SAMLConnector{
		Metadata: &typesv1.Metadata{Name: name},
		Spec: &typesv1.SAMLConnectorSpec{
			EntityDescriptor: metadata,
			Acs:              acsURL,
			Audience:         audience,
			AttributesToRoles: []*typesv1.AttributeMapping{
				{Name: samltest.GroupsAttribute, Value: "admins", Roles: []string{"dev", "ops"}},
				// A mapping to a role that does not exist.
				{Name: samltest.GroupsAttribute, Value: "ghosts", Roles: []string{"ghost"}},
			},
		},
	}
	require.NoError(t, saml.PrepareConnector(context.Background(), c, saml.PrepareConfig{}))
	require.NotEmpty(t, c.GetSpec().GetSigningKeyPair().GetPrivateKey())
	return c
}

// spInitiated runs an SP-initiated login at the IdP and returns the form.
func (f *fixture) spInitiated(t *testing.T) samltest.Form {
	t.Helper()
	u, err := f.provider.AuthnRequest(context.Background(), f.connector, "/after", f.binding)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(u.String(), f.idp.URL+"/sso?"), u.String())
	f.idp.Login(t, "alice", "alice-password")
	return f.idp.FollowSSO(t, u.String())
}

func requireReason(t *testing.T, err error, reason string) {
	t.Helper()
	require.Error(t, err)
	var re *saml.ResponseError
	require.ErrorAs(t, err, &re, "got %v", err)
	require.Equal(t, reason, re.Reason, "detail: %s", re.Detail)
}

func TestSPInitiatedLogin(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	form := f.spInitiated(t)
	require.Equal(t, acsURL, form.Action)
	a, err := f.provider.ParseResponse(ctx, f.connector, form.SAMLResponse, form.RelayState, f.binding)
	require.NoError(t, err)
	require.Equal(t, "alice@example.com", a.NameID)
	require.False(t, a.IdPInitiated)
	require.Equal(t, "/after", a.RedirectURL)
	require.Contains(t, a.Attributes[samltest.GroupsAttribute], "admins")
	require.Equal(t, []string{"admins"}, a.Traits[samltest.GroupsAttribute])

	// The same response again: the request was answered and the assertion used.
	_, err = f.provider.ParseResponse(ctx, f.connector, form.SAMLResponse, form.RelayState, f.binding)
	require.Error(t, err)

	res, err := saml.Login(ctx, f.login, f.connector, a, f.clock.Now())
	require.NoError(t, err)
	require.Equal(t, saml.OutcomeCreated, res.Outcome)
	require.Equal(t, 2*time.Hour, res.SessionTTL)
	u, err := f.svc.GetUser(ctx, "alice@example.com", false)
	require.NoError(t, err)
	require.Equal(t, []string{"dev", "ops"}, u.GetSpec().GetRoles())
	require.WithinDuration(t, f.clock.Now().Add(2*time.Hour), u.GetMetadata().GetExpires().AsTime(), time.Second)
	require.Equal(t, "saml", u.GetSpec().GetCreatedBy().GetConnector().GetType())
	require.Equal(t, "okta", u.GetSpec().GetCreatedBy().GetConnector().GetId())
	require.Equal(t, "alice@example.com", u.GetSpec().GetCreatedBy().GetConnector().GetIdentity())
	require.Empty(t, services.SCIMOrigin(u), "a temporary SAML user carries no origin label")
}

// TestBrowserBinding: a response to an SP-initiated login is accepted only
// with the binding of the browser that started it. Without it, or with
// another browser's, it is refused before validation and the request stays
// outstanding; the request still answers once.
func TestBrowserBinding(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()

	_, err := f.provider.AuthnRequest(ctx, f.connector, "", "")
	require.True(t, trace.IsBadParameter(err), "a login cannot start unbound: %v", err)
	_, err = f.provider.AuthnRequest(ctx, f.connector, "", "not-a-binding")
	require.True(t, trace.IsBadParameter(err), "%v", err)

	form := f.spInitiated(t)
	// Only the binding's hash is stored.
	prefix := backend.NewKey(saml.RequestsPrefix, "")
	res, err := f.bk.GetRange(ctx, prefix, backend.RangeEnd(prefix), 0)
	require.NoError(t, err)
	require.Len(t, res.Items, 1)
	require.Contains(t, string(res.Items[0].Value), `"binding_sha256":"`)
	require.NotContains(t, string(res.Items[0].Value), f.binding)

	other, err := saml.NewBinding()
	require.NoError(t, err)
	for _, tc := range []struct {
		name, binding, detail string
	}{
		{"no binding", "", "no browser binding"},
		{"another browser's binding", other, "another browser's binding"},
		{"a malformed binding", "x", "another browser's binding"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := f.provider.ParseResponse(ctx, f.connector, form.SAMLResponse, form.RelayState, tc.binding)
			require.Nil(t, a)
			require.ErrorIs(t, err, saml.ErrBrowserMismatch)
			requireReason(t, err, saml.ReasonBrowser)
			var re *saml.ResponseError
			require.ErrorAs(t, err, &re)
			require.Contains(t, re.Detail, tc.detail)
			require.NotContains(t, re.Detail, f.binding)
		})
	}

	// The refusals consumed neither the request nor the assertion.
	a, err := f.provider.ParseResponse(ctx, f.connector, form.SAMLResponse, form.RelayState, f.binding)
	require.NoError(t, err)
	require.False(t, a.IdPInitiated)
	require.Equal(t, "/after", a.RedirectURL)
	// Answered once: the relay state is gone, the assertion used.
	_, err = f.provider.ParseResponse(ctx, f.connector, form.SAMLResponse, form.RelayState, f.binding)
	requireReason(t, err, saml.ReasonRequest)
}

func TestIdPInitiatedLoginAndReplay(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.idp.Login(t, "alice", "alice-password")
	form := f.idp.IdPInitiated(t, f.connector.GetSpec().GetAudience())
	a, err := f.provider.ParseResponse(ctx, f.connector, form.SAMLResponse, form.RelayState, f.binding)
	require.NoError(t, err)
	require.True(t, a.IdPInitiated)
	require.Equal(t, "alice@example.com", a.NameID)

	_, err = f.provider.ParseResponse(ctx, f.connector, form.SAMLResponse, form.RelayState, f.binding)
	requireReason(t, err, saml.ReasonReplayed)

	// The replay cache is the backend: a second provider on it (another
	// server) refuses it as well.
	_, err = f.provider.ParseResponse(ctx, f.connector, form.SAMLResponse, "unknown-relay-state", f.binding)
	requireReason(t, err, saml.ReasonReplayed)
}

// TestReplayCacheStorageFailure: a valid response that cannot be recorded
// as used is not refused as the client's mistake (no *ResponseError, the
// storage error's kind kept), and stays unused: once the storage is back
// it is accepted, once.
func TestReplayCacheStorageFailure(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	store := &samltest.ReplayStoreDown{Backend: f.bk}
	p, err := saml.New(saml.Config{Backend: store, Clock: f.clock})
	require.NoError(t, err)
	f.idp.Login(t, "alice", "alice-password")
	form := f.idp.IdPInitiated(t, f.connector.GetSpec().GetAudience())

	store.Down.Store(true)
	_, err = p.ParseResponse(ctx, f.connector, form.SAMLResponse, "", f.binding)
	require.Error(t, err)
	var re *saml.ResponseError
	require.False(t, errors.As(err, &re), "a storage failure is not a refusal of the response: %v", err)
	require.True(t, trace.IsConnectionProblem(err), "%v", err)

	store.Down.Store(false)
	a, err := p.ParseResponse(ctx, f.connector, form.SAMLResponse, "", f.binding)
	require.NoError(t, err)
	require.Equal(t, "alice@example.com", a.NameID)
	_, err = p.ParseResponse(ctx, f.connector, form.SAMLResponse, "", f.binding)
	requireReason(t, err, saml.ReasonReplayed)
}

func decodeDoc(t *testing.T, b64 string) *etree.Document {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(b64)
	require.NoError(t, err)
	doc := etree.NewDocument()
	require.NoError(t, doc.ReadFromBytes(raw))
	return doc
}

func encodeDoc(t *testing.T, doc *etree.Document) string {
	t.Helper()
	raw, err := doc.WriteToBytes()
	require.NoError(t, err)
	return base64.StdEncoding.EncodeToString(raw)
}

func TestBadResponses(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.idp.Login(t, "alice", "alice-password")
	spID := f.connector.GetSpec().GetAudience()

	t.Run("unsigned", func(t *testing.T) {
		doc := decodeDoc(t, f.idp.IdPInitiated(t, spID).SAMLResponse)
		n := 0
		for _, sig := range doc.FindElements("//Signature") {
			sig.Parent().RemoveChild(sig)
			n++
		}
		require.Positive(t, n)
		_, err := f.provider.ParseResponse(ctx, f.connector, encodeDoc(t, doc), "", f.binding)
		requireReason(t, err, saml.ReasonSignature)
	})
	t.Run("tampered", func(t *testing.T) {
		doc := decodeDoc(t, f.idp.IdPInitiated(t, spID).SAMLResponse)
		nameID := doc.FindElement("//NameID")
		require.NotNil(t, nameID)
		nameID.SetText("mallory@example.com")
		_, err := f.provider.ParseResponse(ctx, f.connector, encodeDoc(t, doc), "", f.binding)
		requireReason(t, err, saml.ReasonSignature)
	})
	t.Run("signed by another key", func(t *testing.T) {
		impostor := samltest.NewIdP(t, samltest.Options{AsURL: f.idp.URL})
		impostor.AddUser(t, "alice", "alice@example.com", "alice-password", "admins")
		md, err := saml.Metadata(f.connector, f.clock)
		require.NoError(t, err)
		impostor.RegisterSP(t, "gatehouse", md)
		impostor.Login(t, "alice", "alice-password")
		u, err := f.provider.AuthnRequest(ctx, f.connector, "", f.binding)
		require.NoError(t, err)
		form := impostor.FollowSSO(t, u.String())
		_, err = f.provider.ParseResponse(ctx, f.connector, form.SAMLResponse, form.RelayState, f.binding)
		requireReason(t, err, saml.ReasonSignature)
	})
	t.Run("SHA-1 signature", func(t *testing.T) {
		// SHA-1 is broken for collisions; Okta signs with SHA-256.
		sha1IdP := samltest.NewIdP(t, samltest.Options{})
		sha1IdP.Server.IDP.SignatureMethod = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
		sha1IdP.AddUser(t, "alice", "alice@example.com", "alice-password", "admins")
		c := connector(t, "sha1", sha1IdP.MetadataXML(t), "")
		md, err := saml.Metadata(c, f.clock)
		require.NoError(t, err)
		sha1IdP.RegisterSP(t, "gatehouse", md)
		sha1IdP.Login(t, "alice", "alice-password")
		_, err = f.provider.ParseResponse(ctx, c, sha1IdP.IdPInitiated(t, acsURL).SAMLResponse, "", f.binding)
		requireReason(t, err, saml.ReasonSignature)
	})
	t.Run("DOCTYPE", func(t *testing.T) {
		// A genuine signed response with a DTD before its root: the
		// signatures do not cover it, so only a check for the DTD refuses
		// it. A fresh response each time, so no refusal is a replay.
		for _, dtd := range []string{
			`<!DOCTYPE r [<!ENTITY x "admin@example.com">]>`,
			`<!DOCTYPE r SYSTEM "https://attacker.example.com/x.dtd">`,
			`<!DOCTYPE r [<!ENTITY a "aaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>`,
		} {
			raw, err := base64.StdEncoding.DecodeString(f.idp.IdPInitiated(t, spID).SAMLResponse)
			require.NoError(t, err)
			_, err = f.provider.ParseResponse(ctx, f.connector, base64.StdEncoding.EncodeToString(append([]byte(dtd), raw...)), "", f.binding)
			requireReason(t, err, saml.ReasonMalformed)
			var re *saml.ResponseError
			require.ErrorAs(t, err, &re)
			require.Contains(t, re.Detail, "<!DOCTYPE>", dtd)
		}
		// Without the DTD the same kind of response is accepted: the DTD
		// alone was refused.
		_, err := f.provider.ParseResponse(ctx, f.connector, f.idp.IdPInitiated(t, spID).SAMLResponse, "", f.binding)
		require.NoError(t, err)
	})
	t.Run("encrypted assertion", func(t *testing.T) {
		// The IdP's signed assertion, encrypted to the SP's certificate
		// (published in its metadata) as an IdP told to encrypt would:
		// Gatehouse asks for unencrypted assertions and decrypts nothing
		// an unauthenticated post carries.
		doc := decodeDoc(t, f.idp.IdPInitiated(t, spID).SAMLResponse)
		for _, sig := range doc.FindElements("./Response/Signature") {
			doc.Root().RemoveChild(sig)
		}
		block, _ := pem.Decode([]byte(f.connector.GetSpec().GetSigningKeyPair().GetCert()))
		require.NotNil(t, block)
		cert, err := x509.ParseCertificate(block.Bytes)
		require.NoError(t, err)
		samltest.EncryptAssertion(t, doc, cert)
		_, err = f.provider.ParseResponse(ctx, f.connector, encodeDoc(t, doc), "", f.binding)
		requireReason(t, err, saml.ReasonEncrypted)
	})
	t.Run("detail quoting a huge attribute is bounded", func(t *testing.T) {
		// No key is needed: an unsigned response's Destination is checked
		// (and quoted in the library's error) before any signature.
		doc := decodeDoc(t, f.idp.IdPInitiated(t, spID).SAMLResponse)
		for _, sig := range doc.FindElements("//Signature") {
			sig.Parent().RemoveChild(sig)
		}
		doc.Root().CreateAttr("Destination", strings.Repeat("é", 50<<10))
		_, err := f.provider.ParseResponse(ctx, f.connector, encodeDoc(t, doc), "", f.binding)
		requireReason(t, err, saml.ReasonDestination)
		var re *saml.ResponseError
		require.ErrorAs(t, err, &re)
		require.Less(t, len(re.Detail), 600)
		require.True(t, utf8.ValidString(re.Detail), re.Detail)
		require.Contains(t, re.Detail, "more bytes)")
	})
	t.Run("wrong audience", func(t *testing.T) {
		other := connector(t, "other", f.idp.MetadataXML(t), "https://other.example.com/sp")
		_, err := f.provider.ParseResponse(ctx, other, f.idp.IdPInitiated(t, spID).SAMLResponse, "", f.binding)
		requireReason(t, err, saml.ReasonAudience)
	})
	t.Run("expired", func(t *testing.T) {
		form := f.idp.IdPInitiated(t, spID)
		p2, clock2 := providerAt(t, f.clock.Now().Add(time.Hour))
		_ = clock2
		_, err := p2.ParseResponse(ctx, f.connector, form.SAMLResponse, "", f.binding)
		requireReason(t, err, saml.ReasonExpired)
	})
	t.Run("not yet valid", func(t *testing.T) {
		form := f.idp.IdPInitiated(t, spID)
		p2, _ := providerAt(t, f.clock.Now().Add(-time.Hour))
		_, err := p2.ParseResponse(ctx, f.connector, form.SAMLResponse, "", f.binding)
		requireReason(t, err, saml.ReasonExpired)
	})
	for _, tc := range []struct {
		name, body, reason string
	}{
		{"empty", "", saml.ReasonMalformed},
		{"not base64", "%%%not base64", saml.ReasonMalformed},
		{"not XML", base64.StdEncoding.EncodeToString([]byte("hello")), saml.ReasonMalformed},
		{"truncated XML", base64.StdEncoding.EncodeToString([]byte(`<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"><saml:Assertion`)), saml.ReasonMalformed},
		{"other root", base64.StdEncoding.EncodeToString([]byte(`<foo/>`)), saml.ReasonMalformed},
		{"huge", base64.StdEncoding.EncodeToString(make([]byte, saml.MaxResponseSize+1024)), saml.ReasonTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.provider.ParseResponse(ctx, f.connector, tc.body, "", f.binding)
			require.Error(t, err)
			var re *saml.ResponseError
			require.ErrorAs(t, err, &re)
			if tc.reason == saml.ReasonMalformed {
				// The library classifies some garbage as missing elements
				// or generic invalidity; all that matters is a refusal
				// that is not a signature or replay claim.
				require.Contains(t, []string{saml.ReasonMalformed, saml.ReasonGeneric}, re.Reason, re.Detail)
				return
			}
			require.Equal(t, tc.reason, re.Reason, re.Detail)
		})
	}
}

func providerAt(t *testing.T, at time.Time) (*saml.Provider, *clockwork.FakeClock) {
	t.Helper()
	clock := clockwork.NewFakeClockAt(at)
	bk, err := memory.New(context.Background(), memory.Config{Clock: clock})
	require.NoError(t, err)
	t.Cleanup(func() { bk.Close() })
	p, err := saml.New(saml.Config{Backend: bk, Clock: clock})
	require.NoError(t, err)
	return p, clock
}

func TestPrepareConnector(t *testing.T) {
	t.Parallel()
	c := &typesv1.SAMLConnector{Metadata: &typesv1.Metadata{Name: "x"}, Spec: &typesv1.SAMLConnectorSpec{EntityDescriptor: "<nope/>", Acs: acsURL}}
	require.True(t, trace.IsBadParameter(saml.PrepareConnector(context.Background(), c, saml.PrepareConfig{})))
}

// --- login outcome ---

func assertion(nameID string, groups ...string) *saml.Assertion {
	return &saml.Assertion{
		Connector:  "okta",
		NameID:     nameID,
		Attributes: map[string][]string{samltest.GroupsAttribute: groups},
		Traits:     map[string][]string{"groups": groups, "logins": {"alice"}},
	}
}

func TestLoginOutcomes(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	now := f.clock.Now()
	put := func(u *typesv1.User) {
		_, err := f.svc.CreateUser(ctx, u)
		require.NoError(t, err)
	}
	put(&typesv1.User{Metadata: &typesv1.Metadata{Name: "temp@example.com", Expires: timestamppb.New(now.Add(time.Minute))}, Spec: &typesv1.UserSpec{
		Roles:     []string{"ops"},
		CreatedBy: &typesv1.CreatedBy{Connector: &typesv1.ConnectorRef{Type: "saml", Id: "okta", Identity: "temp@example.com"}},
	}})
	// As scimprov writes them: created_by names the plugin's SAML connector.
	put(&typesv1.User{Metadata: &typesv1.Metadata{Name: "scim@example.com", Labels: map[string]string{services.LabelOrigin: "okta", services.LabelSCIMID: "00u1"}}, Spec: &typesv1.UserSpec{
		Roles:     []string{"ops"},
		Traits:    services.NewTraits(map[string][]string{"groups": {"Engineering"}, "logins": {"scim-login"}}),
		CreatedBy: &typesv1.CreatedBy{Connector: &typesv1.ConnectorRef{Type: "saml", Id: "okta", Identity: "scim@example.com"}},
	}})
	put(&typesv1.User{Metadata: &typesv1.Metadata{Name: "scim-noroles@example.com", Labels: map[string]string{services.LabelOrigin: "okta", services.LabelSCIMID: "00u4"}}, Spec: &typesv1.UserSpec{
		CreatedBy: &typesv1.CreatedBy{Connector: &typesv1.ConnectorRef{Type: "saml", Id: "okta", Identity: "scim-noroles@example.com"}},
	}})
	// Written before adoption cleared expiry: a login makes it long-lived.
	put(&typesv1.User{Metadata: &typesv1.Metadata{Name: "scim-expiring@example.com", Expires: timestamppb.New(now.Add(time.Hour)), Labels: map[string]string{services.LabelOrigin: "okta", services.LabelSCIMID: "00u5"}}, Spec: &typesv1.UserSpec{
		Roles:     []string{"ops"},
		CreatedBy: &typesv1.CreatedBy{Connector: &typesv1.ConnectorRef{Type: "saml", Id: "okta", Identity: "scim-expiring@example.com"}},
	}})
	put(&typesv1.User{Metadata: &typesv1.Metadata{Name: "scim-other@example.com", Labels: map[string]string{services.LabelOrigin: "okta", services.LabelSCIMID: "00u2"}}, Spec: &typesv1.UserSpec{
		Roles:     []string{"ops"},
		CreatedBy: &typesv1.CreatedBy{Connector: &typesv1.ConnectorRef{Type: "saml", Id: "other", Identity: "scim-other@example.com"}},
	}})
	put(&typesv1.User{Metadata: &typesv1.Metadata{Name: "scim-noconn@example.com", Labels: map[string]string{services.LabelOrigin: "okta", services.LabelSCIMID: "00u3"}}, Spec: &typesv1.UserSpec{
		Roles: []string{"ops"},
	}})
	put(&typesv1.User{Metadata: &typesv1.Metadata{Name: "local"}, Spec: &typesv1.UserSpec{Roles: []string{"ops"}, LocalAuth: &typesv1.LocalAuthSecrets{PasswordHash: []byte("$2a$10$xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")}}})
	put(&typesv1.User{Metadata: &typesv1.Metadata{Name: "github@example.com"}, Spec: &typesv1.UserSpec{
		CreatedBy: &typesv1.CreatedBy{Connector: &typesv1.ConnectorRef{Type: "saml", Id: "other", Identity: "github@example.com"}},
	}})
	put(&typesv1.User{Metadata: &typesv1.Metadata{Name: "locked@example.com", Labels: map[string]string{services.LabelOrigin: "okta"}}, Spec: &typesv1.UserSpec{Roles: []string{"ops"}}})
	_, err := f.svc.CreateLock(ctx, &typesv1.Lock{Metadata: &typesv1.Metadata{Name: "l1"}, Spec: &typesv1.LockSpec{
		Target: &typesv1.LockTarget{User: "locked@example.com"}, Message: "deactivated in Okta",
	}})
	require.NoError(t, err)
	_, err = f.svc.CreateLock(ctx, &typesv1.Lock{Metadata: &typesv1.Metadata{Name: "l2"}, Spec: &typesv1.LockSpec{
		Target: &typesv1.LockTarget{User: "newlocked@example.com"}, Message: "pre-emptively locked",
	}})
	require.NoError(t, err)

	for _, tc := range []struct {
		name    string
		a       *saml.Assertion
		outcome string
		errMsg  string
		check   func(t *testing.T, u *typesv1.User)
		// ttl, when set, is the session TTL the login must give.
		ttl time.Duration
		// unchanged says the login must not write the user at all.
		unchanged bool
	}{
		{name: "new user becomes temporary", a: assertion("new@example.com", "admins"), outcome: saml.OutcomeCreated, check: func(t *testing.T, u *typesv1.User) {
			require.WithinDuration(t, now.Add(2*time.Hour), u.GetMetadata().GetExpires().AsTime(), time.Second)
			require.Equal(t, []string{"dev", "ops"}, u.GetSpec().GetRoles())
			require.Equal(t, []string{"admins"}, services.TraitValues(u, "groups"))
			cb := u.GetSpec().GetCreatedBy().GetConnector()
			require.Equal(t, []string{"saml", "okta", "new@example.com"}, []string{cb.GetType(), cb.GetId(), cb.GetIdentity()})
		}},
		{name: "temporary user of the connector is refreshed", a: assertion("temp@example.com", "admins"), outcome: saml.OutcomeRefreshed, check: func(t *testing.T, u *typesv1.User) {
			require.WithinDuration(t, now.Add(2*time.Hour), u.GetMetadata().GetExpires().AsTime(), time.Second)
			require.Equal(t, []string{"dev", "ops"}, u.GetSpec().GetRoles())
			require.Equal(t, []string{"alice"}, services.TraitValues(u, "logins"))
		}},
		// SCIM is the one source of a SCIM user's roles: the mapping (admins
		// → dev, ops) neither rewrites nor adds to them, so a role SCIM's
		// ceiling dropped cannot come back through a login.
		// The session lasts what the stored role allows (ops: the default),
		// not the mapping's dev (2h); nothing is written.
		{name: "SCIM user signs in with its stored roles and stays long-lived", a: assertion("scim@example.com", "admins"), outcome: saml.OutcomeSCIMRefreshed, ttl: services.DefaultSessionTTL, unchanged: true, check: func(t *testing.T, u *typesv1.User) {
			require.Nil(t, u.GetMetadata().GetExpires())
			require.Equal(t, []string{"ops"}, u.GetSpec().GetRoles(), "the stored roles, not the mapping's")
			require.Equal(t, []string{"Engineering"}, services.TraitValues(u, "groups"), "the stored traits, not the assertion's")
			require.Equal(t, []string{"scim-login"}, services.TraitValues(u, "logins"))
			require.Equal(t, "okta", services.SCIMOrigin(u))
			require.Equal(t, "00u1", u.GetMetadata().GetLabels()[services.LabelSCIMID])
			require.Equal(t, "okta", u.GetSpec().GetCreatedBy().GetConnector().GetId())
		}},
		{name: "SCIM user whose mapped role does not exist still signs in", a: assertion("scim@example.com", "ghosts"), outcome: saml.OutcomeSCIMRefreshed, ttl: services.DefaultSessionTTL, unchanged: true, check: func(t *testing.T, u *typesv1.User) {
			require.Equal(t, []string{"ops"}, u.GetSpec().GetRoles())
		}},
		{name: "SCIM user without stored roles is refused although the assertion maps roles", a: assertion("scim-noroles@example.com", "admins"), errMsg: "holds no role; its roles come from SCIM"},
		{name: "SCIM user without stored roles and without a mapping is refused", a: assertion("scim-noroles@example.com", "sales"), errMsg: "holds no role; its roles come from SCIM"},
		{name: "SCIM user with an expiry becomes long-lived", a: assertion("scim-expiring@example.com", "sales"), outcome: saml.OutcomeSCIMRefreshed, check: func(t *testing.T, u *typesv1.User) {
			require.Nil(t, u.GetMetadata().GetExpires())
			require.Equal(t, []string{"ops"}, u.GetSpec().GetRoles())
		}},
		{name: "temporary user whose assertion maps no role is refused and kept as it was", a: assertion("temp@example.com", "sales"), errMsg: "no Gatehouse role is mapped"},
		{name: "temporary user whose mapped role does not exist is refused", a: assertion("temp@example.com", "ghosts"), errMsg: "do not exist"},
		{name: "SCIM user of another SAML connector is refused", a: assertion("scim-other@example.com", "admins"), errMsg: `signs in through SAML connector "other"`},
		{name: "SCIM user without a SAML connector is refused", a: assertion("scim-noconn@example.com", "admins"), errMsg: "managed by"},
		{name: "local user is refused", a: assertion("local", "admins"), errMsg: "local user"},
		{name: "user of another connector is refused", a: assertion("github@example.com", "admins"), errMsg: `connector "other"`},
		{name: "no role is refused", a: assertion("norole@example.com", "sales"), errMsg: "no Gatehouse role is mapped"},
		{name: "SCIM user whose assertion maps no role still signs in", a: assertion("scim@example.com", "sales"), outcome: saml.OutcomeSCIMRefreshed, ttl: services.DefaultSessionTTL, unchanged: true, check: func(t *testing.T, u *typesv1.User) {
			require.Equal(t, []string{"ops"}, u.GetSpec().GetRoles())
			require.Equal(t, []string{"Engineering"}, services.TraitValues(u, "groups"))
		}},
		{name: "locked existing user is refused with the lock message", a: assertion("locked@example.com", "admins"), errMsg: "deactivated in Okta"},
		{name: "locked new user is refused with the lock message", a: assertion("newlocked@example.com", "admins"), errMsg: "pre-emptively locked"},
		// The username is the canonical form of the NameID; the IdP's
		// spelling stays in created_by.connector.identity.
		{name: "mixed-case NameID creates the canonical user", a: assertion("Mixed.Case@Example.COM", "admins"), outcome: saml.OutcomeCreated, check: func(t *testing.T, u *typesv1.User) {
			require.Equal(t, "mixed.case@example.com", u.GetMetadata().GetName())
			require.Equal(t, "Mixed.Case@Example.COM", u.GetSpec().GetCreatedBy().GetConnector().GetIdentity())
		}},
		{name: "fullwidth NameID refreshes the SCIM user", a: assertion("ＳＣＩＭ@example.com", "admins"), outcome: saml.OutcomeSCIMRefreshed, check: func(t *testing.T, u *typesv1.User) {
			require.Equal(t, "scim@example.com", u.GetMetadata().GetName())
		}},
		{name: "look-alike of a local user is refused", a: assertion("LOCAL", "admins"), errMsg: "local user"},
		{name: "look-alike of a locked user is refused", a: assertion("Locked@Example.com", "admins"), errMsg: "deactivated in Okta"},
		{name: "built-in identity is refused", a: assertion("@admin", "admins"), errMsg: "built-in identity"},
		{name: "fullwidth built-in identity is refused", a: assertion("＠ＡＤＭＩＮ", "admins"), errMsg: "built-in identity"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := f.svc.GetUser(ctx, saml.Username(tc.a), true)
			res, err := saml.Login(ctx, f.login, f.connector, tc.a, now)
			last := f.rec.events[len(f.rec.events)-1]
			require.Equal(t, saml.EventLogin, last.Type)
			if tc.errMsg != "" {
				require.Error(t, err)
				require.True(t, trace.IsAccessDenied(err), "%v", err)
				require.Contains(t, trace.UserMessage(err), tc.errMsg)
				require.Error(t, last.Err)
				after, _ := f.svc.GetUser(ctx, saml.Username(tc.a), true)
				if before == nil {
					require.Nil(t, after, "a refused login creates no user")
				} else {
					require.Equal(t, before.GetMetadata().GetRevision(), after.GetMetadata().GetRevision(), "a refused login changes nothing")
				}
				return
			}
			require.NoError(t, err)
			require.NoError(t, last.Err)
			require.Equal(t, tc.outcome, res.Outcome)
			require.Equal(t, saml.Username(tc.a), last.User, "audited under the username")
			u, err := f.svc.GetUser(ctx, saml.Username(tc.a), false)
			require.NoError(t, err)
			tc.check(t, u)
			if tc.ttl != 0 {
				require.Equal(t, tc.ttl, res.SessionTTL)
			}
			if tc.unchanged {
				require.Equal(t, before.GetMetadata().GetRevision(), u.GetMetadata().GetRevision(), "the login wrote the user")
			}
			// A login that creates the user starts a new incarnation; one
			// that refreshes it keeps the incarnation, so the user's
			// credentials keep working.
			require.NotEmpty(t, u.GetSpec().GetIncarnation())
			require.Equal(t, u.GetSpec().GetIncarnation(), res.User.GetSpec().GetIncarnation())
			if before != nil {
				require.Equal(t, before.GetSpec().GetIncarnation(), u.GetSpec().GetIncarnation())
			}
		})
	}
}

// TestSCIMUserRoleLocks: a SCIM-managed user's session carries its stored
// roles only, so a lock on a role the assertion maps to (but the account
// does not hold) does not refuse it, and a lock on a role it holds does.
// A temporary user is refused by a lock on a role its mapping gives.
func TestSCIMUserRoleLocks(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	_, err := f.svc.CreateUser(ctx, &typesv1.User{Metadata: &typesv1.Metadata{Name: "scim@example.com", Labels: map[string]string{services.LabelOrigin: "okta", services.LabelSCIMID: "00u1"}}, Spec: &typesv1.UserSpec{
		Roles:     []string{"ops"},
		CreatedBy: &typesv1.CreatedBy{Connector: &typesv1.ConnectorRef{Type: "saml", Id: "okta", Identity: "scim@example.com"}},
	}})
	require.NoError(t, err)
	lock := func(name, role string) {
		_, err := f.svc.CreateLock(ctx, &typesv1.Lock{Metadata: &typesv1.Metadata{Name: name}, Spec: &typesv1.LockSpec{
			Target: &typesv1.LockTarget{Role: role}, Message: "role " + role + " locked",
		}})
		require.NoError(t, err)
	}
	lock("dev", "dev") // mapped from "admins", not held by the SCIM user
	_, err = saml.Login(ctx, f.login, f.connector, assertion("scim@example.com", "admins"), f.clock.Now())
	require.NoError(t, err, "a lock on a role the SCIM user only maps to does not refuse it")
	_, err = saml.Login(ctx, f.login, f.connector, assertion("temp@example.com", "admins"), f.clock.Now())
	require.True(t, trace.IsAccessDenied(err), "%v", err)
	require.Contains(t, trace.UserMessage(err), "role dev locked", "a temporary user gets the mapped roles, so their locks apply")
	lock("ops", "ops")
	_, err = saml.Login(ctx, f.login, f.connector, assertion("scim@example.com", "sales"), f.clock.Now())
	require.True(t, trace.IsAccessDenied(err), "%v", err)
	require.Contains(t, trace.UserMessage(err), "role ops locked")
}

// TestLoginAfterExpiryIsANewIncarnation: a temporary SAML user that expired
// and logs in again is a new account, so credentials of the expired one
// stay dead.
func TestLoginAfterExpiryIsANewIncarnation(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	res, err := saml.Login(ctx, f.login, f.connector, assertion("new@example.com", "admins"), f.clock.Now())
	require.NoError(t, err)
	first := res.User.GetSpec().GetIncarnation()
	require.NotEmpty(t, first)
	f.clock.Advance(3 * time.Hour)
	res, err = saml.Login(ctx, f.login, f.connector, assertion("new@example.com", "admins"), f.clock.Now())
	require.NoError(t, err)
	require.Equal(t, saml.OutcomeCreated, res.Outcome)
	require.NotEmpty(t, res.User.GetSpec().GetIncarnation())
	require.NotEqual(t, first, res.User.GetSpec().GetIncarnation())
}

func TestSessionTTL(t *testing.T) {
	t.Parallel()
	role := func(ttl string) *typesv1.Role {
		return &typesv1.Role{Spec: &typesv1.RoleSpec{Options: &typesv1.RoleOptions{MaxSessionTtl: ttl}}}
	}
	require.Equal(t, services.DefaultSessionTTL, saml.SessionTTL(nil))
	require.Equal(t, services.DefaultSessionTTL, saml.SessionTTL([]*typesv1.Role{role("")}))
	require.Equal(t, time.Hour, saml.SessionTTL([]*typesv1.Role{role("30h"), role("1h"), role("")}))
	require.Equal(t, services.MaxSessionTTL, saml.SessionTTL([]*typesv1.Role{role("30h")}))
	require.Equal(t, services.DefaultSessionTTL, saml.SessionTTL([]*typesv1.Role{role("999h")}), "an invalid TTL falls back to the default")
}

// FuzzParseResponse feeds arbitrary bytes to the ACS parser: it must refuse
// them with a ResponseError, never panic or accept.
func FuzzParseResponse(f *testing.F) {
	f.Add([]byte(`<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="x" Version="2.0"/>`))
	f.Add([]byte(`<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>`))
	f.Add([]byte("\x00\xff<"))
	clock := clockwork.NewFakeClock()
	bk, err := memory.New(context.Background(), memory.Config{Clock: clock})
	require.NoError(f, err)
	f.Cleanup(func() { bk.Close() })
	p, err := saml.New(saml.Config{Backend: bk, Clock: clock})
	require.NoError(f, err)
	idp := samltest.NewIdP(f, samltest.Options{})
	c := &typesv1.SAMLConnector{Metadata: &typesv1.Metadata{Name: "okta"}, Spec: &typesv1.SAMLConnectorSpec{EntityDescriptor: idp.MetadataXML(f), Acs: acsURL, Audience: acsURL}}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := p.ParseResponse(context.Background(), c, base64.StdEncoding.EncodeToString(data), "", "")
		require.Error(t, err)
		require.Nil(t, a)
	})
}

// withIdPInitiatedDisabled returns a copy of c with disable_idp_initiated
// set to disabled.
func withIdPInitiatedDisabled(c *typesv1.SAMLConnector, disabled bool) *typesv1.SAMLConnector {
	out := proto.CloneOf(c)
	out.Spec.DisableIdpInitiated = disabled
	return out
}

// TestDisableIdPInitiated: IdP-initiated logins are accepted by default
// and refused, with a message naming the connector, when the connector
// sets disable_idp_initiated; SP-initiated logins work either way.
func TestDisableIdPInitiated(t *testing.T) {
	ctx := context.Background()
	for _, disabled := range []bool{false, true} {
		t.Run(fmt.Sprintf("disable_idp_initiated=%v", disabled), func(t *testing.T) {
			f := newFixture(t)
			c := withIdPInitiatedDisabled(f.connector, disabled)
			spID := c.GetSpec().GetAudience()

			t.Run("service provider", func(t *testing.T) {
				sp, err := saml.ServiceProvider(c, f.clock)
				require.NoError(t, err)
				require.Equal(t, !disabled, sp.AllowIDPInitiated)
			})

			requireDisabled := func(t *testing.T, err error) {
				t.Helper()
				require.ErrorIs(t, err, saml.ErrIdPInitiatedDisabled)
				var re *saml.ResponseError
				require.ErrorAs(t, err, &re)
				require.Contains(t, re.Reason, `IdP-initiated login is disabled for connector "okta"`)
				require.Contains(t, re.Reason, "Gatehouse's login page")
			}

			t.Run("SP-initiated is accepted", func(t *testing.T) {
				form := f.spInitiated(t)
				a, err := f.provider.ParseResponse(ctx, c, form.SAMLResponse, form.RelayState, f.binding)
				require.NoError(t, err)
				require.False(t, a.IdPInitiated)
				require.Equal(t, "alice@example.com", a.NameID)
				require.Equal(t, "/after", a.RedirectURL)

				// The request is answered: the same post again is
				// unsolicited, and refused either way.
				_, err = f.provider.ParseResponse(ctx, c, form.SAMLResponse, form.RelayState, f.binding)
				if disabled {
					requireDisabled(t, err)
				} else {
					requireReason(t, err, saml.ReasonRequest)
				}
			})

			t.Run("IdP-initiated", func(t *testing.T) {
				f.idp.Login(t, "alice", "alice-password")
				form := f.idp.IdPInitiated(t, spID)
				a, err := f.provider.ParseResponse(ctx, c, form.SAMLResponse, form.RelayState, f.binding)
				if disabled {
					requireDisabled(t, err)
					require.Nil(t, a)
					return
				}
				require.NoError(t, err)
				require.True(t, a.IdPInitiated)
				require.Equal(t, "alice@example.com", a.NameID)
				_, err = f.provider.ParseResponse(ctx, c, form.SAMLResponse, form.RelayState, f.binding)
				requireReason(t, err, saml.ReasonReplayed)
			})

			t.Run("IdP-initiated with an unknown relay state", func(t *testing.T) {
				// Okta sends the app's "Default RelayState" on dashboard
				// logins: still unsolicited.
				f.idp.Login(t, "alice", "alice-password")
				form := f.idp.IdPInitiated(t, spID)
				a, err := f.provider.ParseResponse(ctx, c, form.SAMLResponse, "/web/", f.binding)
				if disabled {
					requireDisabled(t, err)
					return
				}
				require.NoError(t, err)
				require.True(t, a.IdPInitiated)
			})

			t.Run("IdP-initiated with another connector's relay state", func(t *testing.T) {
				other := connector(t, "other", f.idp.MetadataXML(t), "https://other.example.com/sp")
				u, err := f.provider.AuthnRequest(ctx, other, "", f.binding)
				require.NoError(t, err)
				relayState := u.Query().Get("RelayState")
				require.NotEmpty(t, relayState)
				f.idp.Login(t, "alice", "alice-password")
				form := f.idp.IdPInitiated(t, spID)
				a, err := f.provider.ParseResponse(ctx, c, form.SAMLResponse, relayState, f.binding)
				if disabled {
					requireDisabled(t, err)
					return
				}
				require.NoError(t, err)
				require.True(t, a.IdPInitiated)
			})

			t.Run("SP-initiated response without InResponseTo", func(t *testing.T) {
				// A response stripped of its InResponseTo, posted with a
				// live relay state: with IdP-initiated logins off it must
				// answer the request, so it is refused.
				form := f.spInitiated(t)
				doc := decodeDoc(t, form.SAMLResponse)
				require.NotNil(t, doc.Root().RemoveAttr("InResponseTo"), "the response has an InResponseTo")
				// Drop the Response's own signature; the assertion, which
				// names the request in its SubjectConfirmationData, stays
				// signed.
				sig := doc.Root().SelectElement("Signature")
				require.NotNil(t, sig, "the IdP signs the Response")
				doc.Root().RemoveChild(sig)
				require.NotNil(t, doc.FindElement("//Assertion/Signature"), "the IdP signs the assertion")
				_, err := f.provider.ParseResponse(ctx, c, encodeDoc(t, doc), form.RelayState, f.binding)
				if disabled {
					requireReason(t, err, saml.ReasonRequest)
					require.NotErrorIs(t, err, saml.ErrIdPInitiatedDisabled)
					return
				}
				require.NoError(t, err)
			})
		})
	}
}

// TestUnsafeTraitsDropped: an attribute name or value with a control
// character or a bidirectional override never becomes a trait (traits become
// SSH logins, and the UI and gatectl show them); the rest stay.
func TestUnsafeTraitsDropped(t *testing.T) {
	t.Parallel()
	a := &saml.Assertion{NameID: "alice@example.com", Traits: map[string][]string{
		"logins":         {"alice", "root\x1b[8m", "ops\nroot", "adm\u202enimda", "bob"},
		"groups":         {"Eng", "Ops\x00"},
		"evil\x1b]52;c;": {"x"},
		"only\u009b":     {"y"},
		"display":        {"Zoë <b>&amp;</b>"},
	}}
	u, created, _, err := saml.Decide(nil, "okta", a, []string{"access"}, time.Hour, time.Unix(1e9, 0))
	require.NoError(t, err)
	require.True(t, created)
	got := map[string][]string{}
	for k := range u.GetSpec().GetTraits() {
		got[k] = services.TraitValues(u, k)
	}
	require.Equal(t, map[string][]string{
		"logins":  {"alice", "bob"},
		"groups":  {"Eng"},
		"display": {"Zoë <b>&amp;</b>"},
	}, got)
}
