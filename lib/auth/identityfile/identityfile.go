// Package identityfile reads and writes identity files: everything a client
// such as gatectl needs to call the auth server over mTLS, in one PEM file.
//
// Format (all PEM, in this order; unknown block types are refused):
//
//	-----BEGIN PRIVATE KEY-----        the client's private key, PKCS#8
//	-----BEGIN CERTIFICATE-----        the client's TLS certificate (user CA)
//	-----BEGIN CERTIFICATE-----        one or more CA certificates that the
//	Gatehouse-Purpose: ca              client trusts for the auth server
//	-----BEGIN SSH CERTIFICATE-----    optional: the user's SSH certificate,
//	                                   authorized_keys format, same key
//
// The file holds a private key: Write creates it with mode 0600 and Read
// refuses a file that group or others may read.
package identityfile

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/atomicfile"
)

// PEM block types and headers of an identity file.
const (
	blockPrivateKey = "PRIVATE KEY"
	blockCert       = "CERTIFICATE"
	blockSSHCert    = "SSH CERTIFICATE"
	headerPurpose   = "Gatehouse-Purpose"
	purposeCA       = "ca"
)

// Identity is a user's credentials for the auth server.
type Identity struct {
	// Username is the certificate's subject common name.
	Username string
	// KeyPEM is the PKCS#8 private key, PEM-encoded. A secret.
	KeyPEM []byte
	// CertPEM is the client TLS certificate, PEM-encoded.
	CertPEM []byte
	// CACertsPEM are the CA certificates the client trusts for the server,
	// each PEM-encoded.
	CACertsPEM [][]byte
	// SSHCert is the user's SSH certificate in authorized_keys format, if
	// one was issued.
	SSHCert []byte
}

// TLSCertificate returns the client key pair.
func (id *Identity) TLSCertificate() (tls.Certificate, error) {
	cert, err := tls.X509KeyPair(id.CertPEM, id.KeyPEM)
	if err != nil {
		return tls.Certificate{}, trace.BadParameter("identity has an unusable key pair: %v", err)
	}
	return cert, nil
}

// CAPool returns the CAs the client trusts.
func (id *Identity) CAPool() (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	for _, c := range id.CACertsPEM {
		if !pool.AppendCertsFromPEM(c) {
			return nil, trace.BadParameter("identity has an unparsable CA certificate")
		}
	}
	if len(id.CACertsPEM) == 0 {
		return nil, trace.BadParameter("identity has no CA certificate")
	}
	return pool, nil
}

// Check validates the identity: the key matches the certificate, whose common
// name is Username, and there is at least one CA.
func (id *Identity) Check() error {
	cert, err := id.TLSCertificate()
	if err != nil {
		return trace.Wrap(err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return trace.BadParameter("identity certificate: %v", err)
	}
	if id.Username == "" {
		id.Username = leaf.Subject.CommonName
	}
	if leaf.Subject.CommonName != id.Username {
		return trace.BadParameter("identity is for %q but its certificate names %q", id.Username, leaf.Subject.CommonName)
	}
	_, err = id.CAPool()
	return trace.Wrap(err)
}

// Encode returns the identity in the identity file format.
func Encode(id *Identity) ([]byte, error) {
	if err := id.Check(); err != nil {
		return nil, trace.Wrap(err)
	}
	var buf bytes.Buffer
	key, err := onlyBlock(id.KeyPEM, blockPrivateKey)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	cert, err := onlyBlock(id.CertPEM, blockCert)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	_ = pem.Encode(&buf, key)
	_ = pem.Encode(&buf, cert)
	for _, c := range id.CACertsPEM {
		ca, err := onlyBlock(c, blockCert)
		if err != nil {
			return nil, trace.Wrap(err)
		}
		_ = pem.Encode(&buf, &pem.Block{Type: blockCert, Headers: map[string]string{headerPurpose: purposeCA}, Bytes: ca.Bytes})
	}
	if len(id.SSHCert) > 0 {
		_ = pem.Encode(&buf, &pem.Block{Type: blockSSHCert, Bytes: bytes.TrimSpace(id.SSHCert)})
	}
	return buf.Bytes(), nil
}

// Decode parses the identity file format.
func Decode(data []byte) (*Identity, error) {
	id := &Identity{}
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		switch {
		case b.Type == blockPrivateKey:
			if id.KeyPEM != nil {
				return nil, trace.BadParameter("identity file has more than one private key")
			}
			id.KeyPEM = pem.EncodeToMemory(&pem.Block{Type: blockPrivateKey, Bytes: b.Bytes})
		case b.Type == blockCert && b.Headers[headerPurpose] == purposeCA:
			id.CACertsPEM = append(id.CACertsPEM, pem.EncodeToMemory(&pem.Block{Type: blockCert, Bytes: b.Bytes}))
		case b.Type == blockCert:
			if id.CertPEM != nil {
				return nil, trace.BadParameter("identity file has more than one client certificate")
			}
			id.CertPEM = pem.EncodeToMemory(&pem.Block{Type: blockCert, Bytes: b.Bytes})
		case b.Type == blockSSHCert:
			id.SSHCert = append([]byte(nil), b.Bytes...)
		default:
			return nil, trace.BadParameter("identity file has an unexpected %q block", b.Type)
		}
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, trace.BadParameter("identity file has trailing data that is not PEM")
	}
	if id.KeyPEM == nil || id.CertPEM == nil {
		return nil, trace.BadParameter("identity file needs a private key and a certificate")
	}
	if err := id.Check(); err != nil {
		return nil, trace.Wrap(err)
	}
	return id, nil
}

// Write stores the identity at path with mode 0600, replacing any file there
// atomically (atomicfile.WriteFile).
func Write(path string, id *Identity) error {
	data, err := Encode(id)
	if err != nil {
		return trace.Wrap(err)
	}
	return trace.Wrap(atomicfile.WriteFile(path, data, 0o600))
}

// Read loads the identity at path. It refuses a file that group or others
// may read or write, since it holds a private key.
func Read(path string) (*Identity, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, trace.ConvertSystemError(err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, trace.AccessDenied("identity file %s has mode %04o; it holds a private key and must not be readable by others (chmod 600)", path, fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, trace.ConvertSystemError(err)
	}
	id, err := Decode(data)
	if err != nil {
		return nil, trace.Wrap(err, "reading identity file %s", path)
	}
	return id, nil
}

// onlyBlock decodes a PEM input holding exactly one block of type typ.
func onlyBlock(data []byte, typ string) (*pem.Block, error) {
	b, rest := pem.Decode(data)
	if b == nil || b.Type != typ || len(bytes.TrimSpace(rest)) != 0 {
		return nil, trace.BadParameter("expected one PEM %q block", typ)
	}
	return b, nil
}
