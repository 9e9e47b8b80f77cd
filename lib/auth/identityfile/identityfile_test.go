package identityfile

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"
)

func selfSigned(t *testing.T, cn string) (certPEM, keyPEM []byte) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd})
}

func TestWriteRead(t *testing.T) {
	t.Parallel()
	cert, key := selfSigned(t, "alice")
	ca, _ := selfSigned(t, "ca")
	id := &Identity{Username: "alice", CertPEM: cert, KeyPEM: key, CACertsPEM: [][]byte{ca}, SSHCert: []byte("ssh-ed25519-cert-v01@openssh.com AAAA")}
	path := filepath.Join(t.TempDir(), "id")
	require.NoError(t, Write(path, id))
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	back, err := Read(path)
	require.NoError(t, err)
	require.Equal(t, id.Username, back.Username)
	require.Equal(t, id.CertPEM, back.CertPEM)
	require.Equal(t, id.KeyPEM, back.KeyPEM)
	require.Equal(t, id.CACertsPEM, back.CACertsPEM)
	require.Equal(t, id.SSHCert, back.SSHCert)

	require.NoError(t, os.Chmod(path, 0o644))
	_, err = Read(path)
	require.True(t, trace.IsAccessDenied(err), "got %v", err)
}

func TestDecodeRefusesBadFiles(t *testing.T) {
	t.Parallel()
	cert, key := selfSigned(t, "alice")
	_, otherKey := selfSigned(t, "bob")
	ca, _ := selfSigned(t, "ca")
	good, err := Encode(&Identity{CertPEM: cert, KeyPEM: key, CACertsPEM: [][]byte{ca}})
	require.NoError(t, err)
	_, err = Decode(good)
	require.NoError(t, err)
	for name, data := range map[string][]byte{
		"empty":        nil,
		"no ca":        append(append([]byte{}, key...), cert...),
		"wrong key":    mustEncodeRaw(otherKey, cert, ca),
		"trailing":     append(append([]byte{}, good...), []byte("junk")...),
		"unknown type": append(append([]byte{}, good...), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: []byte{1}})...),
	} {
		_, err := Decode(data)
		require.Error(t, err, name)
	}
}

func mustEncodeRaw(key, cert, ca []byte) []byte {
	b, _ := pem.Decode(ca)
	out := append(append([]byte{}, key...), cert...)
	return append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Headers: map[string]string{headerPurpose: purposeCA}, Bytes: b.Bytes})...)
}
