package web

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"

	"github.com/gatehouse/gatehouse/lib/atomicfile"
)

// Self-signed certificate file names inside TLSConfig.SelfSignedDir.
const (
	SelfSignedCertName = "web.crt"
	SelfSignedKeyName  = "web.key"
	// selfSignedValidity is how long a generated certificate is valid.
	selfSignedValidity = 365 * 24 * time.Hour
	// selfSignedRenewBefore regenerates a kept certificate this close to
	// its expiry, so a restart never serves an expired one.
	selfSignedRenewBefore = 30 * 24 * time.Hour
)

// TLSConfig says where the web certificate comes from: CertFile and KeyFile
// (PEM) when the operator configured them, otherwise a self-signed
// certificate kept in SelfSignedDir and reused across restarts.
type TLSConfig struct {
	// CertFile and KeyFile are PEM files; set both or neither.
	CertFile string
	KeyFile  string
	// SelfSignedDir keeps the generated certificate (web.crt, web.key).
	SelfSignedDir string
	// Hosts are the DNS names and IPs the self-signed certificate covers;
	// "localhost", 127.0.0.1 and ::1 are always added.
	Hosts []string
}

func (c *TLSConfig) check() error {
	if (c.CertFile == "") != (c.KeyFile == "") {
		return trace.BadParameter("web: set both the TLS certificate and key files, or neither")
	}
	if c.CertFile == "" && c.SelfSignedDir == "" {
		return trace.BadParameter("web: no TLS certificate configured and no directory for a self-signed one")
	}
	return nil
}

// load returns the certificate to serve and the file it came from.
func (c *TLSConfig) load(clock clockwork.Clock, log *slog.Logger) (tls.Certificate, string, error) {
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return tls.Certificate{}, "", trace.BadParameter("web: loading TLS certificate %s: %v", c.CertFile, err)
		}
		return cert, c.CertFile, nil
	}
	certPath := filepath.Join(c.SelfSignedDir, SelfSignedCertName)
	keyPath := filepath.Join(c.SelfSignedDir, SelfSignedKeyName)
	hosts := c.allHosts()
	if cert, err := tls.LoadX509KeyPair(certPath, keyPath); err == nil {
		if reusable(cert, hosts, clock.Now()) {
			return cert, certPath, nil
		}
		log.Info("Regenerating the self-signed web certificate (expiring or missing hosts).", "path", certPath)
	} else if !errors.Is(err, fs.ErrNotExist) {
		log.Warn("Kept self-signed web certificate is unreadable; generating a new one.", "path", certPath, "error", err)
	}
	certPEM, keyPEM, err := GenerateSelfSigned(hosts, clock.Now(), selfSignedValidity)
	if err != nil {
		return tls.Certificate{}, "", trace.Wrap(err)
	}
	if err := os.MkdirAll(c.SelfSignedDir, 0o700); err != nil {
		return tls.Certificate{}, "", trace.ConvertSystemError(err)
	}
	if err := atomicfile.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		return tls.Certificate{}, "", trace.Wrap(err)
	}
	if err := atomicfile.WriteFile(certPath, certPEM, 0o644); err != nil {
		return tls.Certificate{}, "", trace.Wrap(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, "", trace.Wrap(err)
	}
	log.Info("Generated a self-signed web certificate.", "path", certPath, "hosts", hosts)
	return cert, certPath, nil
}

func (c *TLSConfig) allHosts() []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	for _, h := range c.Hosts {
		if h != "" && !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

// reusable reports whether a kept certificate is still good for hosts.
func reusable(cert tls.Certificate, hosts []string, now time.Time) bool {
	if len(cert.Certificate) == 0 {
		return false
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return false
	}
	if now.Before(leaf.NotBefore) || now.Add(selfSignedRenewBefore).After(leaf.NotAfter) {
		return false
	}
	for _, h := range hosts {
		if leaf.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

// GenerateSelfSigned makes a P-256 certificate and key (PEM) valid for hosts
// from now for validity.
func GenerateSelfSigned(hosts []string, now time.Time, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, trace.Wrap(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, trace.Wrap(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"Gatehouse"}, CommonName: "gatehouse web (self-signed)"},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, trace.Wrap(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, trace.Wrap(err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return certPEM, keyPEM, nil
}
