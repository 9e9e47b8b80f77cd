package authz

import (
	"testing"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/services"
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
		{"no roles", nil, services.KindUser, services.VerbList, false},
		{"wildcards", []*typesv1.Role{role("editor", []*typesv1.Rule{all}, nil)}, services.KindPlugin, services.VerbDelete, true},
		{"other kind", []*typesv1.Role{role("r", []*typesv1.Rule{rule([]string{services.KindUser}, "*")}, nil)}, services.KindPlugin, services.VerbList, false},
		{"other verb", []*typesv1.Role{role("r", []*typesv1.Rule{rule([]string{services.KindUser}, services.VerbList)}, nil)}, services.KindUser, services.VerbDelete, false},
		{"read implies readnosecrets", []*typesv1.Role{role("r", []*typesv1.Rule{rule([]string{services.KindUser}, services.VerbRead)}, nil)}, services.KindUser, services.VerbReadNoSecrets, true},
		{"readnosecrets does not imply read", []*typesv1.Role{role("r", []*typesv1.Rule{rule([]string{services.KindUser}, services.VerbReadNoSecrets)}, nil)}, services.KindUser, services.VerbRead, false},
		{"deny wins in the same role", []*typesv1.Role{role("r", []*typesv1.Rule{all}, []*typesv1.Rule{rule([]string{services.KindPlugin}, services.VerbDelete)})}, services.KindPlugin, services.VerbDelete, false},
		{"deny wins across roles", []*typesv1.Role{role("a", []*typesv1.Rule{all}, nil), role("d", nil, []*typesv1.Rule{rule([]string{"*"}, "*")})}, services.KindUser, services.VerbList, false},
		{"deny of another verb", []*typesv1.Role{role("r", []*typesv1.Rule{all}, []*typesv1.Rule{rule([]string{services.KindPlugin}, services.VerbDelete)})}, services.KindPlugin, services.VerbList, true},
		{"deny of readnosecrets denies read", []*typesv1.Role{role("r", []*typesv1.Rule{all}, []*typesv1.Rule{rule([]string{services.KindPlugin}, services.VerbReadNoSecrets)})}, services.KindPlugin, services.VerbRead, false},
		{"deny of read leaves readnosecrets", []*typesv1.Role{role("r", []*typesv1.Rule{all}, []*typesv1.Rule{rule([]string{services.KindPlugin}, services.VerbRead)})}, services.KindPlugin, services.VerbReadNoSecrets, true},
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
		{"read everything", role("auditor", []*typesv1.Rule{rule([]string{services.Wildcard}, services.VerbRead, services.VerbList)}, nil), false},
		{"wildcard verbs on users", role("u", []*typesv1.Rule{rule([]string{services.KindUser}, services.Wildcard)}, nil), true},
		{"create locks", role("l", []*typesv1.Rule{rule([]string{services.KindLock}, services.VerbCreate)}, nil), true},
		{"delete roles", role("r", []*typesv1.Rule{rule([]string{services.KindRole}, services.VerbDelete)}, nil), true},
		{"update plugins", role("p", []*typesv1.Rule{rule([]string{services.KindPlugin}, services.VerbUpdate)}, nil), true},
		{"create certs", role("c", []*typesv1.Rule{rule([]string{KindCert}, services.VerbCreate)}, nil), true},
		{"update saml", role("s", []*typesv1.Rule{rule([]string{services.KindSAMLConnector}, services.VerbUpdate)}, nil), true},
		{"everything", role("all", []*typesv1.Rule{rule([]string{services.Wildcard}, services.Wildcard)}, nil), true},
		{"everything but writes denied", role("ro",
			[]*typesv1.Rule{rule([]string{services.Wildcard}, services.Wildcard)},
			[]*typesv1.Rule{rule([]string{services.Wildcard}, services.VerbCreate, services.VerbUpdate, services.VerbDelete)}), false},
		{"write events only", role("ev", []*typesv1.Rule{rule([]string{KindEvent}, services.VerbCreate)}, nil), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, IsAdministrative(tc.role))
		})
	}
}
