package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"time"

	"github.com/gravitational/trace"
	"golang.org/x/crypto/ssh"

	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// CA types: the names of the cluster's CertAuthority resources.
const (
	// UserCA signs user certificates: TLS client certificates for the auth
	// API and SSH user certificates for nodes.
	UserCA = "user"
	// HostCA signs server certificates: the auth listener's TLS certificate
	// and SSH host certificates.
	HostCA = "host"
)

// caValidity is how long a CA certificate is valid. CA rotation is not
// implemented yet; ten years keeps a cluster working meanwhile.
const caValidity = 10 * 365 * 24 * time.Hour

// certAuthority is a CA resource with its keys parsed.
type certAuthority struct {
	typ       string
	tlsCert   *x509.Certificate
	tlsCertPE []byte
	tlsKey    crypto.Signer
	sshSigner ssh.Signer
}

// newCertAuthorityResource generates the keys of a new CA of type typ.
func newCertAuthorityResource(clusterName, typ string, now time.Time) (*typesv1.CertAuthority, error) {
	_, sshKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	sshPEM, err := ssh.MarshalPrivateKey(sshKey, "gatehouse "+typ+" CA")
	if err != nil {
		return nil, trace.Wrap(err)
	}
	sshSigner, err := ssh.NewSignerFromSigner(sshKey)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	tlsKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, trace.Wrap(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:   clusterName,
			Organization: []string{"Gatehouse " + typ + " CA"},
		},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &tlsKey.PublicKey, tlsKey)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(tlsKey)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return &typesv1.CertAuthority{
		Kind:     "cert_authority",
		Version:  "v1",
		Metadata: &typesv1.Metadata{Name: typ},
		Spec: &typesv1.CertAuthoritySpec{
			ClusterName:   clusterName,
			SshPrivateKey: pem.EncodeToMemory(sshPEM),
			SshPublicKey:  ssh.MarshalAuthorizedKey(sshSigner.PublicKey()),
			TlsPrivateKey: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
			TlsCert:       pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		},
	}, nil
}

// parseCertAuthority parses a stored CA read with its secrets.
func parseCertAuthority(ca *typesv1.CertAuthority) (*certAuthority, error) {
	name := ca.GetMetadata().GetName()
	spec := ca.GetSpec()
	if len(spec.GetTlsPrivateKey()) == 0 || len(spec.GetSshPrivateKey()) == 0 {
		return nil, trace.BadParameter("%s CA was read without its private keys", name)
	}
	certBlock, _ := pem.Decode(spec.GetTlsCert())
	if certBlock == nil {
		return nil, trace.BadParameter("%s CA: bad TLS certificate PEM", name)
	}
	cert, err := x509.ParseCertificate(certBlock.Bytes)
	if err != nil {
		return nil, trace.BadParameter("%s CA: %v", name, err)
	}
	keyBlock, _ := pem.Decode(spec.GetTlsPrivateKey())
	if keyBlock == nil {
		return nil, trace.BadParameter("%s CA: bad TLS key PEM", name)
	}
	key, err := x509.ParsePKCS8PrivateKey(keyBlock.Bytes)
	if err != nil {
		return nil, trace.BadParameter("%s CA: %v", name, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, trace.BadParameter("%s CA: TLS key cannot sign", name)
	}
	sshSigner, err := ssh.ParsePrivateKey(spec.GetSshPrivateKey())
	if err != nil {
		return nil, trace.BadParameter("%s CA: SSH key: %v", name, err)
	}
	return &certAuthority{
		typ:       name,
		tlsCert:   cert,
		tlsCertPE: spec.GetTlsCert(),
		tlsKey:    signer,
		sshSigner: sshSigner,
	}, nil
}

// randomSerial returns a random 128-bit certificate serial number.
func randomSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	return serial, trace.Wrap(err)
}

// signTLS issues a certificate for pub from tmpl, signed by the CA.
func (ca *certAuthority) signTLS(tmpl *x509.Certificate, pub crypto.PublicKey) ([]byte, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, trace.Wrap(err)
	}
	tmpl.SerialNumber = serial
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.tlsCert, pub, ca.tlsKey)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

var _ = context.Background
