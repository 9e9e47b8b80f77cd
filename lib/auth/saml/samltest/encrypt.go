package samltest

import (
	"crypto/x509"
	"testing"

	"github.com/beevik/etree"
	"github.com/crewjam/saml/xmlenc"
	"github.com/stretchr/testify/require"
)

// EncryptAssertion replaces the Assertion of the Response doc with an
// EncryptedAssertion of it for cert (RSA-OAEP, AES-128-CBC), as an IdP that
// encrypts assertions sends it: what the tests that Gatehouse decrypts
// nothing post.
func EncryptAssertion(t testing.TB, doc *etree.Document, cert *x509.Certificate) {
	t.Helper()
	as := doc.FindElement("./Response/Assertion")
	require.NotNil(t, as, "the response holds no Assertion")
	plain := etree.NewDocument()
	plain.SetRoot(as.Copy())
	raw, err := plain.WriteToBytes()
	require.NoError(t, err)
	enc := xmlenc.OAEP()
	enc.BlockCipher = xmlenc.AES128CBC
	data, err := enc.Encrypt(cert, raw, nil)
	require.NoError(t, err)
	data.CreateAttr("Type", "http://www.w3.org/2001/04/xmlenc#Element")
	encrypted := etree.NewElement("saml:EncryptedAssertion")
	encrypted.AddChild(data)
	i := as.Index()
	doc.Root().RemoveChildAt(i)
	doc.Root().InsertChildAt(i, encrypted)
}
