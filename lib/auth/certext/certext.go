// Package certext defines what Gatehouse writes into its user certificates
// beyond the standard fields, and reads it back: the incarnation of the
// account a certificate was issued to (TLS and SSH) and, in SSH
// certificates, the roles it was issued with. The issuer (lib/auth) and
// every checker (the auth gRPC server, the SSH node service) share these
// definitions; they are part of the certificate format and must not change
// once certificates carrying them exist.
package certext

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"unicode/utf8"

	"github.com/gravitational/trace"
)

// IncarnationOID identifies the X.509 extension that carries the
// incarnation in TLS client certificates, as an ASN.1 UTF8String. Gatehouse
// has no IANA private enterprise number, so the OID sits in the
// unregistered arc 1.3.9999 (as Teleport's do), under a branch of its own
// (7262) so that it cannot be read as another product's extension. The
// extension is not critical: verifiers that do not know it still accept the
// certificate, and Gatehouse's own checks require it themselves.
var IncarnationOID = asn1.ObjectIdentifier{1, 3, 9999, 7262, 1}

// SSH certificate extensions. OpenSSH ignores extensions it does not know,
// so they cost nothing to other SSH servers.
const (
	// SSHExtIncarnation carries the incarnation.
	SSHExtIncarnation = "incarnation@gatehouse.dev"
	// SSHExtRoles carries the roles the certificate was issued with, as a
	// JSON array of strings: a live session ends when its user loses one.
	SSHExtRoles = "roles@gatehouse.dev"
)

// maxValueLen bounds what is read from a certificate extension.
const maxValueLen = 64 * 1024

// IncarnationExtension returns the X.509 extension carrying incarnation.
func IncarnationExtension(incarnation string) (pkix.Extension, error) {
	if incarnation == "" {
		return pkix.Extension{}, trace.BadParameter("a certificate needs the incarnation of its user")
	}
	value, err := asn1.MarshalWithParams(incarnation, "utf8")
	if err != nil {
		return pkix.Extension{}, trace.Wrap(err)
	}
	return pkix.Extension{Id: IncarnationOID, Value: value}, nil
}

// IncarnationFromX509 returns the incarnation a TLS certificate carries,
// "" when it carries none (issued before incarnations existed, which no
// check accepts), or an error if the extension is malformed. (A repeated
// extension never gets here: crypto/x509 refuses to parse such a
// certificate.)
func IncarnationFromX509(cert *x509.Certificate) (string, error) {
	for _, ext := range cert.Extensions {
		if !ext.Id.Equal(IncarnationOID) {
			continue
		}
		if len(ext.Value) > maxValueLen {
			return "", trace.BadParameter("the certificate's incarnation is too long")
		}
		var s string
		rest, err := asn1.UnmarshalWithParams(ext.Value, &s, "utf8")
		if err != nil || len(rest) != 0 || s == "" {
			return "", trace.BadParameter("the certificate's incarnation is malformed")
		}
		return s, nil
	}
	return "", nil
}

// EncodeRoles renders roles for SSHExtRoles.
func EncodeRoles(roles []string) (string, error) {
	if roles == nil {
		roles = []string{}
	}
	b, err := json.Marshal(roles)
	return string(b), trace.Wrap(err)
}

// DecodeRoles reads SSHExtRoles.
func DecodeRoles(value string) ([]string, error) {
	if len(value) > maxValueLen || !utf8.ValidString(value) {
		return nil, trace.BadParameter("the certificate's roles are malformed")
	}
	var roles []string
	if err := json.Unmarshal([]byte(value), &roles); err != nil || roles == nil {
		return nil, trace.BadParameter("the certificate's roles are malformed")
	}
	return roles, nil
}
