package services

import (
	"strings"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/canonical"
)

// ReservedUsernamePrefix starts the names of built-in identities. No user
// record may carry such a name, so no identity provider (SCIM, SAML) and no
// administrator can create, rename onto, or take over a built-in identity.
const ReservedUsernamePrefix = "@"

// BuiltinAdmin is the operator's built-in identity: the one
// <data-dir>/admin.identity is issued to. It is not a user record. The auth
// server gives it a fixed role set defined in code, and only a lock whose
// target user is exactly BuiltinAdmin affects it.
const BuiltinAdmin = ReservedUsernamePrefix + "admin"

// IsReservedUsername reports whether name, once canonical, is reserved for a
// built-in identity (it starts with "@"; the fullwidth "＠" folds to it).
func IsReservedUsername(name string) bool {
	return strings.HasPrefix(canonical.Username(name), ReservedUsernamePrefix)
}

// IsBuiltinAdmin reports whether name is the built-in operator identity. It
// compares the exact bytes: certificates for BuiltinAdmin carry exactly that
// common name, and a look-alike spelling is no identity at all.
func IsBuiltinAdmin(name string) bool { return name == BuiltinAdmin }

// CheckUsername refuses a name that cannot be stored as an ordinary user's
// name: one that is not in canonical form (the error names the canonical
// spelling) or one reserved for a built-in identity.
func CheckUsername(name string) error {
	c := canonical.Username(name)
	if strings.HasPrefix(c, ReservedUsernamePrefix) {
		return trace.BadParameter("username %q is reserved: names starting with %q belong to Gatehouse's built-in identities", name, ReservedUsernamePrefix)
	}
	if c != name {
		return trace.BadParameter("username %q is not in canonical form; Gatehouse stores it as %q", name, c)
	}
	return nil
}
