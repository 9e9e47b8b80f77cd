package etcdtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TLSFiles are PEM files for a TLS test cluster: a CA, a server certificate
// for 127.0.0.1 and a client certificate, both signed by the CA, and a
// second CA that signed neither (to test refusals).
type TLSFiles struct {
	CA, OtherCA               string
	ServerCert, ServerKey     string
	ClientCert, ClientKey     string
	StrangerCert, StrangerKey string
}

// NewTLSFiles writes a fresh set of TLS files into t.TempDir().
func NewTLSFiles(t testing.TB) TLSFiles {
	t.Helper()
	dir := t.TempDir()
	caCert, caKey := newCA(t, "gatehouse test CA")
	otherCert, otherKey := newCA(t, "unrelated CA")
	f := TLSFiles{
		CA:           writePEM(t, dir, "ca.pem", "CERTIFICATE", caCert.Raw),
		OtherCA:      writePEM(t, dir, "other-ca.pem", "CERTIFICATE", otherCert.Raw),
		ServerCert:   filepath.Join(dir, "server.pem"),
		ServerKey:    filepath.Join(dir, "server-key.pem"),
		ClientCert:   filepath.Join(dir, "client.pem"),
		ClientKey:    filepath.Join(dir, "client-key.pem"),
		StrangerCert: filepath.Join(dir, "stranger.pem"),
		StrangerKey:  filepath.Join(dir, "stranger-key.pem"),
	}
	issue(t, caCert, caKey, "etcd", true, f.ServerCert, f.ServerKey)
	issue(t, caCert, caKey, "gatehouse", false, f.ClientCert, f.ClientKey)
	issue(t, otherCert, otherKey, "stranger", false, f.StrangerCert, f.StrangerKey)
	return f
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("etcdtest: key: %v", err)
	}
	return k
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatalf("etcdtest: serial: %v", err)
	}
	return n
}

// template is what every test certificate shares: a fresh serial, the
// common name, and a day of validity that began an hour ago.
func template(t testing.TB, name string) *x509.Certificate {
	t.Helper()
	return &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
}

// sign signs tmpl's certificate for key with parent and parentKey (tmpl
// itself and key for a self-signed CA) and returns its DER; what names the
// certificate in a failure.
func sign(t testing.TB, what string, tmpl, parent *x509.Certificate, key, parentKey *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatalf("etcdtest: %s: %v", what, err)
	}
	return der
}

func newCA(t testing.TB, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key := newKey(t)
	tmpl := template(t, name)
	tmpl.IsCA, tmpl.KeyUsage, tmpl.BasicConstraintsValid = true, x509.KeyUsageCertSign, true
	cert, err := x509.ParseCertificate(sign(t, "CA", tmpl, tmpl, key, key))
	if err != nil {
		t.Fatalf("etcdtest: CA: %v", err)
	}
	return cert, key
}

// issue writes a certificate signed by ca and its key. Server certificates
// are for 127.0.0.1 and also allow client use (etcd uses them both ways).
func issue(t testing.TB, ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string, server bool, certPath, keyPath string) {
	t.Helper()
	key := newKey(t)
	tmpl := template(t, name)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	if server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der := sign(t, "certificate", tmpl, ca, key, caKey)
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatalf("etcdtest: key: %v", err)
	}
	writePEM(t, filepath.Dir(certPath), filepath.Base(certPath), "CERTIFICATE", der)
	writePEM(t, filepath.Dir(keyPath), filepath.Base(keyPath), "EC PRIVATE KEY", keyDER)
}

func writePEM(t testing.TB, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatalf("etcdtest: writing %s: %v", path, err)
	}
	return path
}
