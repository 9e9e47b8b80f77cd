package authz

import (
	"testing"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/services"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

func withLogins(r *typesv1.Role, allow, deny []string) *typesv1.Role {
	r.Spec.Allow.Logins, r.Spec.Deny.Logins = allow, deny
	return r
}

func withTTL(r *typesv1.Role, ttl string) *typesv1.Role {
	r.Spec.Options = &typesv1.RoleOptions{MaxSessionTtl: ttl}
	return r
}

func TestUnrestricted(t *testing.T) {
	t.Parallel()
	all := rule([]string{services.Wildcard}, services.Wildcard)
	for _, tc := range []struct {
		name  string
		roles []*typesv1.Role
		want  bool
	}{
		{"editor", []*typesv1.Role{role("editor", []*typesv1.Rule{all}, nil)}, true},
		{"every kind and verb spelled out", []*typesv1.Role{role("r", []*typesv1.Rule{rule(AllKinds, services.Verbs...)}, nil)}, true},
		{"editor with a deny", []*typesv1.Role{role("editor", []*typesv1.Rule{all}, nil), role("d", nil, []*typesv1.Rule{rule([]string{KindEvent}, services.VerbList)})}, false},
		{"every verb on users", []*typesv1.Role{role("u", []*typesv1.Rule{rule([]string{services.KindUser}, services.Wildcard)}, nil)}, false},
		{"no roles", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, NewChecker(tc.roles).Unrestricted())
		})
	}
}

func TestCheckGrant(t *testing.T) {
	t.Parallel()
	userWriter := role("user-writer", []*typesv1.Rule{rule([]string{services.KindUser}, services.Wildcard)}, nil)
	access := withLogins(role("access", nil, nil), []string{"{{internal.logins}}"}, nil)
	editor := role("editor", []*typesv1.Rule{rule([]string{services.Wildcard}, services.Wildcard)}, nil)

	c := NewChecker([]*typesv1.Role{userWriter, access})
	require.NoError(t, c.CheckGrant("user \"bob\"", []string{"access", "user-writer"}))
	require.NoError(t, c.CheckGrant("user \"bob\"", nil))
	for _, roles := range [][]string{{"editor"}, {"access", "auditor"}} {
		err := c.CheckGrant("user \"bob\"", roles)
		require.True(t, trace.IsAccessDenied(err), "%v: %v", roles, err)
		require.Contains(t, err.Error(), "you do not hold "+roles[len(roles)-1])
	}
	require.NoError(t, NewChecker([]*typesv1.Role{editor}).CheckGrant("user \"bob\"", []string{"auditor", "anything"}))

	// Holding a role is not enough when another role of the caller denies part of it: the new
	// holder would get what the caller is denied.
	noDelete := role("no-delete", nil, []*typesv1.Rule{rule([]string{services.KindUser}, services.VerbDelete)})
	err := NewChecker([]*typesv1.Role{userWriter, access, noDelete}).CheckGrant("user \"bob\"", []string{"user-writer"})
	require.True(t, trace.IsAccessDenied(err), "%v", err)
	require.Contains(t, err.Error(), `role "user-writer" allows "delete" on "user", which your roles do not allow (your other roles deny it)`)
	require.NoError(t, NewChecker([]*typesv1.Role{userWriter, access, noDelete}).CheckGrant("user \"bob\"", []string{"access", "no-delete"}))
}

func TestCheckManage(t *testing.T) {
	t.Parallel()
	userWriter := role("user-writer", []*typesv1.Rule{rule([]string{services.KindUser}, services.Wildcard)}, nil)
	c := NewChecker([]*typesv1.Role{userWriter, role("access", nil, nil)})
	u := func(roles ...string) *typesv1.User {
		return &typesv1.User{Metadata: &typesv1.Metadata{Name: "bob"}, Spec: &typesv1.UserSpec{Roles: roles}}
	}
	require.NoError(t, c.CheckManage(nil))
	require.NoError(t, c.CheckManage(u()))
	require.NoError(t, c.CheckManage(u("access")))
	err := c.CheckManage(u("access", "editor"))
	require.True(t, trace.IsAccessDenied(err), "%v", err)
	require.Contains(t, err.Error(), `user "bob" holds role "editor"`)
}

func TestCheckRoleWrite(t *testing.T) {
	t.Parallel()
	all := rule([]string{services.Wildcard}, services.Wildcard)
	roleWriter := withLogins(role("role-writer", []*typesv1.Rule{
		rule([]string{services.KindRole}, services.Wildcard),
		rule([]string{services.KindUser}, services.VerbList, services.VerbReadNoSecrets),
	}, nil), []string{"ops"}, nil)
	caller := NewChecker([]*typesv1.Role{roleWriter})
	deny := func(r *typesv1.Role, rules []*typesv1.Rule, logins ...string) *typesv1.Role {
		r.Spec.Deny = &typesv1.RoleConditions{Rules: rules, Logins: logins}
		return r
	}
	restricted := deny(role("restricted", nil, nil), []*typesv1.Rule{rule([]string{services.KindRole}, services.VerbDelete)}, "root")
	for _, tc := range []struct {
		name     string
		old, new *typesv1.Role
		wantErr  string
	}{
		{"within the caller's access", nil, withLogins(role("r", []*typesv1.Rule{rule([]string{services.KindUser}, services.VerbList)}, nil), []string{"ops"}, nil), ""},
		{"read implies readnosecrets, not the reverse", nil, role("r", []*typesv1.Rule{rule([]string{services.KindUser}, services.VerbRead)}, nil), `allows "read" on "user"`},
		{"wildcards", nil, role("r", []*typesv1.Rule{all}, nil), `allows "list" on "plugin"`},
		{"wildcard kinds on a verb the caller has for one kind", nil, role("r", []*typesv1.Rule{rule([]string{services.Wildcard}, services.VerbDelete)}, nil), `allows "delete" on "plugin"`},
		{"a login the caller lacks", nil, withLogins(role("r", nil, nil), []string{"root"}, nil), `allows login "root"`},
		{"the logins template the caller lacks", nil, withLogins(role("r", nil, nil), []string{"{{internal.logins}}"}, nil), `allows login "{{internal.logins}}"`},
		{"editing a stronger role, even to weaken it", role("editor", []*typesv1.Rule{all}, nil), role("editor", nil, nil), `allows "list" on "plugin"`},
		{"deleting a stronger role", role("editor", []*typesv1.Rule{all}, nil), nil, `allows "list" on "plugin"`},
		{"lifting a deny rule", restricted, deny(role("restricted", nil, nil), nil, "root"), `denies "delete" on "role"`},
		{"lifting a deny login", restricted, deny(role("restricted", nil, nil), []*typesv1.Rule{rule([]string{services.KindRole}, services.VerbDelete)}), `denies login "root"`},
		{"deleting a role that denies", restricted, nil, `denies "delete" on "role"`},
		{"narrowing a deny of readnosecrets to read", deny(role("r", nil, nil), []*typesv1.Rule{rule([]string{services.KindUser}, services.VerbReadNoSecrets)}),
			deny(role("r", nil, nil), []*typesv1.Rule{rule([]string{services.KindUser}, services.VerbRead)}), `denies "readnosecrets" on "user"`},
		{"widening a deny of read to readnosecrets", deny(role("r", nil, nil), []*typesv1.Rule{rule([]string{services.KindUser}, services.VerbRead)}),
			deny(role("r", nil, nil), []*typesv1.Rule{rule([]string{services.KindUser}, services.VerbReadNoSecrets)}), ""},
		{"adding a deny", role("r", nil, nil), deny(role("r", nil, nil), []*typesv1.Rule{all}, "ops"), ""},
		{"keeping a deny, in other words", restricted, deny(role("restricted", nil, nil), []*typesv1.Rule{rule([]string{services.KindRole}, services.VerbDelete, services.VerbUpdate)}, "root"), ""},
		{"deleting a role within the caller's access", role("r", []*typesv1.Rule{rule([]string{services.KindRole}, services.VerbList)}, nil), nil, ""},
		{"longer sessions than the caller's", nil, withTTL(role("r", nil, nil), "30h"), "max_session_ttl 30h0m0s is longer than your own sessions may last (12h0m0s)"},
		{"raising a role's session length", withTTL(role("r", nil, nil), "1h"), withTTL(role("r", nil, nil), "20h"), "max_session_ttl 20h0m0s"},
		{"keeping a long session length set by an editor", withTTL(role("r", nil, nil), "30h"), withTTL(role("r", []*typesv1.Rule{rule([]string{services.KindRole}, services.VerbList)}, nil), "30h"), ""},
		{"sessions as long as the caller's", nil, withTTL(role("r", nil, nil), "12h"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := caller.CheckRoleWrite(tc.old, tc.new)
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.True(t, trace.IsAccessDenied(err), "%v", err)
			require.Contains(t, err.Error(), tc.wantErr)
		})
	}
	// A caller denied every login gives none.
	noLogins := NewChecker([]*typesv1.Role{roleWriter, deny(role("nologin", nil, nil), nil, "*")})
	err := noLogins.CheckRoleWrite(nil, withLogins(role("r", nil, nil), []string{"ops"}, nil))
	require.True(t, trace.IsAccessDenied(err), "%v", err)
	// A caller whose roles allow everything writes anything.
	require.NoError(t, NewChecker([]*typesv1.Role{role("editor", []*typesv1.Rule{all}, nil)}).CheckRoleWrite(restricted, nil))
}
