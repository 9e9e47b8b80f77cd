// Package canonical is the one spelling of an identity that Gatehouse
// compares. Two usernames name the same account exactly when their canonical
// forms are equal: "Admin", "ADMIN" and the fullwidth "ａｄｍｉｎ" are all
// "admin". Every place that matches an identity (users, locks, SAML NameIDs,
// SCIM userNames, certificates) compares canonical forms, never the bytes an
// identity provider or a person typed.
package canonical

import (
	"strings"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Username returns the canonical form of name: Unicode NFKC, then full case
// folding, then NFKC again (case folding can leave a string that is no
// longer NFKC-normalized, e.g. U+0345). The result is idempotent:
// Username(Username(s)) == Username(s).
func Username(name string) string {
	// Nearly every name (SCIM userNames, emails) is ASCII, and the full
	// pipeline costs a SCIM lookup more than the rest of its key: for ASCII
	// it is exactly A-Z to a-z (ASCII is NFKC-stable, and full case folding
	// maps no other ASCII byte). TestUsernameASCIIMatchesFull and
	// FuzzUsernameFastPath hold the two paths equal.
	if s, ok := asciiUsername(name); ok {
		return s
	}
	return fullUsername(name)
}

// asciiUsername is Username for an all-ASCII name; ok is false otherwise. A
// name with no capital is returned as it is, without a copy.
func asciiUsername(name string) (s string, ok bool) {
	upper := false
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= utf8.RuneSelf {
			return "", false
		}
		upper = upper || ('A' <= c && c <= 'Z')
	}
	if !upper {
		return name, true
	}
	return strings.ToLower(name), true
}

// fullUsername is Username through the whole Unicode pipeline, for any name.
func fullUsername(name string) string {
	// cases.Caser is not safe for concurrent use; Fold is cheap to build.
	s := norm.NFKC.String(name)
	s = cases.Fold().String(s)
	return norm.NFKC.String(s)
}

// IsCanonical reports whether name is already in canonical form.
func IsCanonical(name string) bool { return Username(name) == name }

// Equal reports whether a and b name the same identity.
func Equal(a, b string) bool { return a == b || Username(a) == Username(b) }
