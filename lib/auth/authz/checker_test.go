package authz

import (
	"testing"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"

	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

func role(name string, allow, deny []*typesv1.Rule) *typesv1.Role {
	return &typesv1.Role{
		Metadata: &typesv1.Metadata{Name: name},
		Spec:     &typesv1.RoleSpec{Allow: &typesv1.RoleConditions{Rules: allow}, Deny: &typesv1.RoleConditions{Rules: deny}},
	}
}

func rule(kinds []string, verbs ...string) *typesv1.Rule {
	return &typesv1.Rule{Resources: kinds, Verbs: verbs}
}

func TestCheckAccess(t *testing.T) {
	t.Parallel()
	all := rule([]string{"*"}, "*")
	tests := []struct {
		name  string
		roles []*typesv1.Role
		kind  string
		verb  string
		allow bool
	}{
		{"no roles", nil, KindUser, VerbList, false},
		{"wildcards", []*typesv1.Role{role("editor", []*typesv1.Rule{all}, nil)}, KindPlugin, VerbDelete, true},
		{"other kind", []*typesv1.Role{role("r", []*typesv1.Rule{rule([]string{KindUser}, "*")}, nil)}, KindPlugin, VerbList, false},
		{"other verb", []*typesv1.Role{role("r", []*typesv1.Rule{rule([]string{KindUser}, VerbList)}, nil)}, KindUser, VerbDelete, false},
		{"read implies readnosecrets", []*typesv1.Role{role("r", []*typesv1.Rule{rule([]string{KindUser}, VerbRead)}, nil)}, KindUser, VerbReadNoSecrets, true},
		{"readnosecrets does not imply read", []*typesv1.Role{role("r", []*typesv1.Rule{rule([]string{KindUser}, VerbReadNoSecrets)}, nil)}, KindUser, VerbRead, false},
		{"deny wins in the same role", []*typesv1.Role{role("r", []*typesv1.Rule{all}, []*typesv1.Rule{rule([]string{KindPlugin}, VerbDelete)})}, KindPlugin, VerbDelete, false},
		{"deny wins across roles", []*typesv1.Role{role("a", []*typesv1.Rule{all}, nil), role("d", nil, []*typesv1.Rule{rule([]string{"*"}, "*")})}, KindUser, VerbList, false},
		{"deny of another verb", []*typesv1.Role{role("r", []*typesv1.Rule{all}, []*typesv1.Rule{rule([]string{KindPlugin}, VerbDelete)})}, KindPlugin, VerbList, true},
		{"deny of readnosecrets denies read", []*typesv1.Role{role("r", []*typesv1.Rule{all}, []*typesv1.Rule{rule([]string{KindPlugin}, VerbReadNoSecrets)})}, KindPlugin, VerbRead, false},
		{"deny of read leaves readnosecrets", []*typesv1.Role{role("r", []*typesv1.Rule{all}, []*typesv1.Rule{rule([]string{KindPlugin}, VerbRead)})}, KindPlugin, VerbReadNoSecrets, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := NewChecker(tc.roles).CheckAccess(tc.kind, tc.verb)
			if tc.allow {
				require.NoError(t, err)
				return
			}
			require.True(t, trace.IsAccessDenied(err), "got %v", err)
			require.Contains(t, err.Error(), tc.verb)
		})
	}
}

func TestIsAdministrative(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		role *typesv1.Role
		want bool
	}{
		{"no rules", role("none", nil, nil), false},
		{"read everything", role("auditor", []*typesv1.Rule{rule([]string{Wildcard}, VerbRead, VerbList)}, nil), false},
		{"wildcard verbs on users", role("u", []*typesv1.Rule{rule([]string{KindUser}, Wildcard)}, nil), true},
		{"create locks", role("l", []*typesv1.Rule{rule([]string{KindLock}, VerbCreate)}, nil), true},
		{"delete roles", role("r", []*typesv1.Rule{rule([]string{KindRole}, VerbDelete)}, nil), true},
		{"update plugins", role("p", []*typesv1.Rule{rule([]string{KindPlugin}, VerbUpdate)}, nil), true},
		{"create certs", role("c", []*typesv1.Rule{rule([]string{KindCert}, VerbCreate)}, nil), true},
		{"update saml", role("s", []*typesv1.Rule{rule([]string{KindSAMLConnector}, VerbUpdate)}, nil), true},
		{"everything", role("all", []*typesv1.Rule{rule([]string{Wildcard}, Wildcard)}, nil), true},
		{"everything but writes denied", role("ro",
			[]*typesv1.Rule{rule([]string{Wildcard}, Wildcard)},
			[]*typesv1.Rule{rule([]string{Wildcard}, VerbCreate, VerbUpdate, VerbDelete)}), false},
		{"write events only", role("ev", []*typesv1.Rule{rule([]string{KindEvent}, VerbCreate)}, nil), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, IsAdministrative(tc.role))
		})
	}
}
