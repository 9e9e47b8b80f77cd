package certext

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func certWith(t *testing.T, exts ...pkix.Extension) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:    big.NewInt(1),
		Subject:         pkix.Name{CommonName: "alice"},
		NotBefore:       time.Now().Add(-time.Minute),
		NotAfter:        time.Now().Add(time.Hour),
		ExtraExtensions: exts,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return cert
}

func TestIncarnationRoundTrip(t *testing.T) {
	t.Parallel()
	ext, err := IncarnationExtension("abc123")
	require.NoError(t, err)
	require.False(t, ext.Critical)
	got, err := IncarnationFromX509(certWith(t, ext))
	require.NoError(t, err)
	require.Equal(t, "abc123", got)

	got, err = IncarnationFromX509(certWith(t))
	require.NoError(t, err)
	require.Empty(t, got, "a certificate without the extension carries no incarnation")

	_, err = IncarnationExtension("")
	require.Error(t, err)
}

func TestIncarnationMalformed(t *testing.T) {
	t.Parallel()
	ok, err := IncarnationExtension("abc")
	require.NoError(t, err)
	notString, err := asn1.Marshal(42)
	require.NoError(t, err)
	empty, err := asn1.MarshalWithParams("", "utf8")
	require.NoError(t, err)
	for name, exts := range map[string][]pkix.Extension{
		"not string": {{Id: IncarnationOID, Value: notString}},
		"empty":      {{Id: IncarnationOID, Value: empty}},
		"trailing":   {{Id: IncarnationOID, Value: append(append([]byte{}, ok.Value...), 0)}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := IncarnationFromX509(certWith(t, exts...))
			require.Error(t, err)
		})
	}
}

func TestRoles(t *testing.T) {
	t.Parallel()
	s, err := EncodeRoles([]string{"access", "a,b"})
	require.NoError(t, err)
	got, err := DecodeRoles(s)
	require.NoError(t, err)
	require.Equal(t, []string{"access", "a,b"}, got)
	s, err = EncodeRoles(nil)
	require.NoError(t, err)
	got, err = DecodeRoles(s)
	require.NoError(t, err)
	require.Empty(t, got)
	for _, bad := range []string{"", "null", "access", `{"a":1}`, `[1]`} {
		_, err := DecodeRoles(bad)
		require.Error(t, err, bad)
	}
}
