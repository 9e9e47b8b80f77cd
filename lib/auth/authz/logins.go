package authz

import (
	"slices"

	"github.com/gatehouse/gatehouse/lib/services"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// LoginsTraitTemplate in a role's logins stands for the values of the
// user's LoginsTrait.
const LoginsTraitTemplate = "{{internal.logins}}"

// LoginsTrait is the user trait LoginsTraitTemplate expands to.
const LoginsTrait = "logins"

// LoginsFor returns the node logins roles allow user, with
// LoginsTraitTemplate expanded to the user's LoginsTrait, minus the logins
// any role denies and those that are not an OS login (ValidLogin); sorted
// and without duplicates. What a certificate names as principals and what
// the SSH node lets the user log in as; the user API also asks it what a
// restricted caller has, since a caller gives only logins it has.
func LoginsFor(user *typesv1.User, roles []*typesv1.Role) []string {
	expand := func(in []string) []string {
		var out []string
		for _, l := range in {
			if l == LoginsTraitTemplate {
				out = append(out, services.TraitValues(user, LoginsTrait)...)
				continue
			}
			out = append(out, l)
		}
		return out
	}
	var allow, deny []string
	for _, r := range roles {
		allow = append(allow, expand(r.GetSpec().GetAllow().GetLogins())...)
		deny = append(deny, expand(r.GetSpec().GetDeny().GetLogins())...)
	}
	allow = slices.DeleteFunc(allow, func(l string) bool {
		return !ValidLogin(l) || slices.Contains(deny, l) || slices.Contains(deny, "*")
	})
	slices.Sort(allow)
	return slices.Compact(allow)
}

// maxLoginLen bounds a login: 32 is Linux's, and a directory login with a
// domain ("alice@corp.example.com") may need more.
const maxLoginLen = 64

// ValidLogin reports whether l can be an OS login and so a certificate
// principal. The "logins" trait comes from an identity provider (a SAML
// attribute a person may edit in their own profile), so it may say anything:
// a comma would make one principal read as several by OpenSSH's
// principals="..." option (match_list splits it), "*" or a space is no
// login, a leading "-" reads as an option to the commands a login reaches, a
// control character reaches terminals and logs. Allowed: letters, digits,
// "_", "." and "-", "@" after the first character, and a trailing "$"
// (Samba machine accounts); not "." or "..".
func ValidLogin(l string) bool {
	if l == "" || len(l) > maxLoginLen || l == "." || l == ".." {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_':
		case c == '.' || c == '@' || c == '-':
			if i == 0 {
				return false
			}
		case c == '$':
			if i == 0 || i != len(l)-1 {
				return false
			}
		default:
			return false
		}
	}
	return true
}
