// Package saml is Gatehouse's SAML 2.0 service provider, without HTTP: it
// prepares SAML connectors (SP signing key pair, IdP metadata fetched from
// entity_descriptor_url), builds authentication requests and tracks them in
// the backend, validates the IdP's responses (signature, issuer, audience,
// destination, time window, replay) and decides the login outcome (temporary
// SAML user, refreshed SCIM-managed user, or refusal). lib/web/sso speaks
// HTTP on top of it.
//
// SAML library: github.com/crewjam/saml, the maintained Go SAML
// implementation: it validates signatures through goxmldsig, checks
// conditions, subject confirmation and issuer, and accepts a pluggable
// replay cache, which here is the backend so that replays are caught across
// servers sharing it.
//
// Everything that must survive a restart or be shared between servers
// (outstanding requests, used assertion IDs) lives in the backend with an
// expiry; nothing is kept in process memory.
package saml

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"encoding/xml"
	"io"
	"math/big"
	"net/http"
	"strings"
	"time"

	crewjam "github.com/crewjam/saml"
	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"

	"github.com/gatehouse/gatehouse/lib/defaults"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// Connector preparation limits.
const (
	// MetadataFetchTimeout bounds fetching entity_descriptor_url.
	MetadataFetchTimeout = 15 * time.Second
	// MaxMetadataSize caps the fetched IdP metadata (the stored
	// entity_descriptor limit in lib/services is 512 KiB).
	MaxMetadataSize = 512 << 10
	// signingKeyBits is the SP signing key size. RSA, because IdPs (Okta
	// among them) expect RSA for SP signatures and encryption.
	signingKeyBits = 2048
	// signingCertValidity is the SP signing certificate's lifetime.
	signingCertValidity = 10 * 365 * 24 * time.Hour
)

// PrepareConfig configures PrepareConnector.
type PrepareConfig struct {
	// HTTPClient fetches entity_descriptor_url; a client with
	// MetadataFetchTimeout and no redirects to non-https if nil.
	HTTPClient *http.Client
	// Clock dates the generated certificate.
	Clock clockwork.Clock
}

// PrepareConnector completes a connector before it is stored: it fetches
// the IdP metadata from entity_descriptor_url when no entity_descriptor is
// given, checks that the metadata is an IdP EntityDescriptor with a signing
// certificate, and generates the SP signing key pair if the connector has
// none. It changes c in place.
func PrepareConnector(ctx context.Context, c *typesv1.SAMLConnector, cfg PrepareConfig) error {
	if c.GetSpec() == nil {
		return trace.BadParameter("saml connector: missing spec")
	}
	defaults.Clock(&cfg.Clock)
	spec := c.Spec
	name := c.GetMetadata().GetName()
	if spec.GetEntityDescriptor() == "" && spec.GetEntityDescriptorUrl() != "" {
		xmlText, err := fetchMetadata(ctx, cfg.HTTPClient, spec.GetEntityDescriptorUrl())
		if err != nil {
			return trace.Wrap(err, "saml %q: fetching entity_descriptor_url", name)
		}
		spec.EntityDescriptor = xmlText
	}
	if _, err := ParseIDPMetadata(spec.GetEntityDescriptor()); err != nil {
		return trace.Wrap(err, "saml %q", name)
	}
	if spec.GetSigningKeyPair().GetPrivateKey() == "" {
		kp, err := newSigningKeyPair(name, cfg.Clock.Now())
		if err != nil {
			return trace.Wrap(err)
		}
		spec.SigningKeyPair = kp
	}
	return nil
}

// fetchMetadata GETs url with a timeout, refusing redirects off https and
// bodies over MaxMetadataSize.
func fetchMetadata(ctx context.Context, client *http.Client, url string) (string, error) {
	if client == nil {
		client = &http.Client{
			Timeout:   MetadataFetchTimeout,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12}, Proxy: http.ProxyFromEnvironment},
			CheckRedirect: func(req *http.Request, via []*http.Request) error {
				if req.URL.Scheme != "https" {
					return trace.BadParameter("refusing redirect to non-https %s", req.URL.Redacted())
				}
				if len(via) >= 5 {
					return trace.LimitExceeded("too many redirects")
				}
				return nil
			},
		}
	}
	ctx, cancel := context.WithTimeout(ctx, MetadataFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", trace.BadParameter("bad URL: %v", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", trace.ConnectionProblem(err, "GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", trace.BadParameter("GET %s: HTTP %d", url, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxMetadataSize+1))
	if err != nil {
		return "", trace.ConnectionProblem(err, "reading %s: %v", url, err)
	}
	if len(body) > MaxMetadataSize {
		return "", trace.LimitExceeded("metadata at %s is over %d bytes", url, MaxMetadataSize)
	}
	return string(body), nil
}

// ParseIDPMetadata parses IdP metadata: an EntityDescriptor, or the first
// EntityDescriptor with an IDPSSODescriptor in an EntitiesDescriptor. It
// requires an IDPSSODescriptor with a signing certificate and a
// SingleSignOnService.
func ParseIDPMetadata(text string) (*crewjam.EntityDescriptor, error) {
	if strings.TrimSpace(text) == "" {
		return nil, trace.BadParameter("entity_descriptor is empty")
	}
	if len(text) > MaxMetadataSize {
		return nil, trace.BadParameter("entity_descriptor is over %d bytes", MaxMetadataSize)
	}
	var ed *crewjam.EntityDescriptor
	one := &crewjam.EntityDescriptor{}
	if err := xml.NewDecoder(bytes.NewReader([]byte(text))).Decode(one); err == nil {
		ed = one
	} else {
		var all crewjam.EntitiesDescriptor
		if err2 := xml.NewDecoder(bytes.NewReader([]byte(text))).Decode(&all); err2 != nil {
			return nil, trace.BadParameter("entity_descriptor is not SAML metadata: %v", err)
		}
		for i := range all.EntityDescriptors {
			if len(all.EntityDescriptors[i].IDPSSODescriptors) > 0 {
				ed = &all.EntityDescriptors[i]
				break
			}
		}
	}
	if ed == nil || len(ed.IDPSSODescriptors) == 0 {
		return nil, trace.BadParameter("entity_descriptor has no IDPSSODescriptor")
	}
	if ed.EntityID == "" {
		return nil, trace.BadParameter("entity_descriptor has no entityID")
	}
	hasCert, hasSSO := false, false
	for _, d := range ed.IDPSSODescriptors {
		for _, kd := range d.KeyDescriptors {
			if (kd.Use == "" || kd.Use == "signing") && len(kd.KeyInfo.X509Data.X509Certificates) > 0 {
				hasCert = true
			}
		}
		if len(d.SingleSignOnServices) > 0 {
			hasSSO = true
		}
	}
	if !hasCert {
		return nil, trace.BadParameter("entity_descriptor has no IdP signing certificate")
	}
	if !hasSSO {
		return nil, trace.BadParameter("entity_descriptor has no SingleSignOnService")
	}
	return ed, nil
}

// newSigningKeyPair generates the SP's RSA key and a self-signed
// certificate for it.
func newSigningKeyPair(name string, now time.Time) (*typesv1.AsymmetricKeyPair, error) {
	key, err := rsa.GenerateKey(rand.Reader, signingKeyBits)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, trace.Wrap(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "gatehouse saml " + name, Organization: []string{"Gatehouse"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(signingCertValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &typesv1.AsymmetricKeyPair{
		PrivateKey: string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})),
		Cert:       string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
	}, nil
}

// parseSigningKeyPair parses a connector's stored key pair.
func parseSigningKeyPair(kp *typesv1.AsymmetricKeyPair) (*rsa.PrivateKey, *x509.Certificate, error) {
	kb, _ := pem.Decode([]byte(kp.GetPrivateKey()))
	if kb == nil {
		return nil, nil, trace.BadParameter("signing key pair: bad private key PEM")
	}
	var key *rsa.PrivateKey
	if k, err := x509.ParsePKCS1PrivateKey(kb.Bytes); err == nil {
		key = k
	} else if k8, err8 := x509.ParsePKCS8PrivateKey(kb.Bytes); err8 == nil {
		rk, ok := k8.(*rsa.PrivateKey)
		if !ok {
			return nil, nil, trace.BadParameter("signing key pair: the private key must be RSA")
		}
		key = rk
	} else {
		return nil, nil, trace.BadParameter("signing key pair: %v", err)
	}
	cb, _ := pem.Decode([]byte(kp.GetCert()))
	if cb == nil {
		return nil, nil, trace.BadParameter("signing key pair: bad certificate PEM")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, trace.BadParameter("signing key pair: %v", err)
	}
	return key, cert, nil
}
