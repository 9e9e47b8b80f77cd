package samlv1_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"math/big"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/auth/authtest"
	"github.com/gatehouse/gatehouse/lib/services"
	samlpb "github.com/gatehouse/gatehouse/proto/gatehouse/saml/v1"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// testIDPMetadata is valid IdP metadata: connectors are checked when they
// are created (lib/auth/saml.PrepareConnector).
var testIDPMetadata = func() string {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "idp"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	return `<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://idp.example.com/metadata">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>` +
		base64.StdEncoding.EncodeToString(der) + `</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example.com/sso"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>`
}()

func TestCreatePreparesConnector(t *testing.T) {
	t.Parallel()
	s := authtest.NewServer(t, authtest.Options{})
	c := s.Client(t, services.BuiltinAdmin)
	ctx := context.Background()

	// Metadata from entity_descriptor_url, key pair generated.
	mdServer := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(testIDPMetadata))
	}))
	defer mdServer.Close()
	res := &typesv1.SAMLConnector{Metadata: &typesv1.Metadata{Name: "fetched"}, Spec: &typesv1.SAMLConnectorSpec{
		EntityDescriptorUrl: mdServer.URL + "/metadata", Acs: "https://gatehouse.example.com/v1/webapi/saml/acs/fetched",
	}}
	_, err := c.SAML.CreateSAMLConnector(ctx, &samlpb.CreateSAMLConnectorRequest{SamlConnector: res})
	// The test server's certificate is not trusted by the default client:
	// the fetch is real and fails closed.
	require.Error(t, err)
	require.Contains(t, err.Error(), "entity_descriptor_url")

	res.Spec.EntityDescriptorUrl = ""
	res.Spec.EntityDescriptor = testIDPMetadata
	_, err = c.SAML.CreateSAMLConnector(ctx, &samlpb.CreateSAMLConnectorRequest{SamlConnector: res})
	require.NoError(t, err)
	stored, err := s.Auth.Services().SAMLConnectors.GetSAMLConnector(ctx, "fetched", true)
	require.NoError(t, err)
	kp := stored.GetSpec().GetSigningKeyPair()
	require.Contains(t, kp.GetPrivateKey(), "PRIVATE KEY")
	require.Contains(t, kp.GetCert(), "CERTIFICATE")

	// Upsert without a key keeps the stored one.
	res.Spec.SigningKeyPair = nil
	_, err = c.SAML.UpsertSAMLConnector(ctx, &samlpb.UpsertSAMLConnectorRequest{SamlConnector: res})
	require.NoError(t, err)
	again, err := s.Auth.Services().SAMLConnectors.GetSAMLConnector(ctx, "fetched", true)
	require.NoError(t, err)
	require.Equal(t, kp.GetCert(), again.GetSpec().GetSigningKeyPair().GetCert())

	// Not SAML metadata: refused.
	bad := &typesv1.SAMLConnector{Metadata: &typesv1.Metadata{Name: "bad"}, Spec: &typesv1.SAMLConnectorSpec{EntityDescriptor: "<html/>", Acs: "https://gatehouse.example.com/acs"}}
	_, err = c.SAML.CreateSAMLConnector(ctx, &samlpb.CreateSAMLConnectorRequest{SamlConnector: bad})
	require.True(t, trace.IsBadParameter(err), "%v", err)
}
