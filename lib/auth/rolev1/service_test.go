package rolev1_test

import (
	"context"
	"testing"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/auth/authtest"
	"github.com/gatehouse/gatehouse/lib/auth/client"
	"github.com/gatehouse/gatehouse/lib/services"
	rolepb "github.com/gatehouse/gatehouse/proto/gatehouse/role/v1"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// newRes is a role that grants and denies nothing, which the coverage
// test's callers (holding only the verbs of the RPC) may write
// (authz.Checker.CheckRoleWrite).
func newRes(name string) *typesv1.Role {
	return &typesv1.Role{Metadata: &typesv1.Metadata{Name: name}, Spec: &typesv1.RoleSpec{Options: &typesv1.RoleOptions{MaxSessionTtl: "1h"}}}
}

func existing(t *testing.T, s *authtest.Server, name string) {
	_, err := s.Auth.Services().Roles.CreateRole(context.Background(), newRes(name))
	if err != nil {
		t.Fatal(err)
	}
}

type call = func(ctx context.Context, s *authtest.Server, c *client.Client, name string) error

func TestEveryRPC(t *testing.T) {
	t.Parallel()
	authtest.RunRPCCases(t, rolepb.RoleService_ServiceDesc, services.KindRole, map[string]authtest.RPCCase{
		"GetRole": {
			Verbs: []string{services.VerbReadNoSecrets},
			Setup: existing,
			Call: call(func(ctx context.Context, s *authtest.Server, c *client.Client, name string) error {
				_, err := c.Roles.GetRole(ctx, &rolepb.GetRoleRequest{Name: name})
				return err
			}),
		},
		"ListRoles": {
			Verbs: []string{services.VerbList, services.VerbReadNoSecrets},
			Call: call(func(ctx context.Context, s *authtest.Server, c *client.Client, name string) error {
				_, err := c.Roles.ListRoles(ctx, &rolepb.ListRolesRequest{})
				return err
			}),
		},
		"CreateRole": {
			Verbs: []string{services.VerbCreate},
			Call: call(func(ctx context.Context, s *authtest.Server, c *client.Client, name string) error {
				_, err := c.Roles.CreateRole(ctx, &rolepb.CreateRoleRequest{Role: newRes(name)})
				return err
			}),
		},
		"UpdateRole": {
			Verbs: []string{services.VerbUpdate},
			Setup: existing,
			Call: call(func(ctx context.Context, s *authtest.Server, c *client.Client, name string) error {
				cur, err := s.Auth.Services().Roles.GetRole(ctx, name)
				if err != nil {
					return err
				}
				cur.Metadata.Description = "updated"
				_, err = c.Roles.UpdateRole(ctx, &rolepb.UpdateRoleRequest{Role: cur})
				return err
			}),
		},
		"UpsertRole": {
			Verbs: []string{services.VerbCreate, services.VerbUpdate},
			Call: call(func(ctx context.Context, s *authtest.Server, c *client.Client, name string) error {
				_, err := c.Roles.UpsertRole(ctx, &rolepb.UpsertRoleRequest{Role: newRes(name)})
				return err
			}),
		},
		"DeleteRole": {
			Verbs: []string{services.VerbDelete},
			Setup: existing,
			Call: call(func(ctx context.Context, s *authtest.Server, c *client.Client, name string) error {
				_, err := c.Roles.DeleteRole(ctx, &rolepb.DeleteRoleRequest{Name: name})
				return err
			}),
		},
	})
}

// TestRoleWriteCeiling: a caller who may write roles but whose roles do not allow everything
// cannot write a role granting more than it has (its own role included), edit or delete a role
// stronger than itself, or lift a deny; each refusal is AccessDenied, writes nothing and is
// audited. An editor may.
func TestRoleWriteCeiling(t *testing.T) {
	t.Parallel()
	s := authtest.NewServer(t, authtest.Options{})
	ctx := context.Background()
	s.CreateRole(t, "role-writer", []string{services.KindRole}, []string{"*"})
	_, err := s.Auth.Services().Roles.UpsertRole(ctx, &typesv1.Role{
		Metadata: &typesv1.Metadata{Name: "no-delete"},
		Spec:     &typesv1.RoleSpec{Deny: &typesv1.RoleConditions{Rules: []*typesv1.Rule{{Resources: []string{services.KindUser}, Verbs: []string{services.VerbDelete}}}}},
	})
	require.NoError(t, err)
	s.CreateUser(t, "rw", "role-writer", "no-delete")
	rw := s.Client(t, "rw")
	s.CreateUser(t, "ed", "editor")
	ed := s.Client(t, "ed")
	everything := &typesv1.RoleSpec{Allow: &typesv1.RoleConditions{Rules: []*typesv1.Rule{{Resources: []string{"*"}, Verbs: []string{"*"}}}}}
	update := func(c *client.Client, name string, modify func(r *typesv1.Role)) error {
		cur, err := s.Auth.Services().Roles.GetRole(ctx, name)
		require.NoError(t, err)
		modify(cur)
		_, err = c.Roles.UpdateRole(ctx, &rolepb.UpdateRoleRequest{Role: cur})
		return err
	}
	for _, tc := range []struct {
		name, role, wantErr string
		write               func(c *client.Client) error
	}{
		{"create a role allowing everything", "mine", `allows "list" on "plugin"`, func(c *client.Client) error {
			_, err := c.Roles.CreateRole(ctx, &rolepb.CreateRoleRequest{Role: &typesv1.Role{Metadata: &typesv1.Metadata{Name: "mine"}, Spec: everything}})
			return err
		}},
		{"widen one's own role", "role-writer", `allows "list" on "plugin"`, func(c *client.Client) error {
			return update(c, "role-writer", func(r *typesv1.Role) { r.Spec.Allow.Rules[0].Resources = []string{"*"} })
		}},
		{"give one's own role a login", "role-writer", `allows login "root"`, func(c *client.Client) error {
			return update(c, "role-writer", func(r *typesv1.Role) { r.Spec.Allow.Logins = []string{"root"} })
		}},
		{"upsert over the editor role", "editor", `allows "list" on "plugin"`, func(c *client.Client) error {
			_, err := c.Roles.UpsertRole(ctx, &rolepb.UpsertRoleRequest{Role: &typesv1.Role{Metadata: &typesv1.Metadata{Name: "editor"}, Spec: &typesv1.RoleSpec{}}})
			return err
		}},
		{"lift one's own deny", "no-delete", `denies "delete" on "user"`, func(c *client.Client) error {
			return update(c, "no-delete", func(r *typesv1.Role) { r.Spec.Deny = nil })
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := s.Auth.Services().Roles.GetRole(ctx, tc.role)
			err := tc.write(rw)
			require.True(t, trace.IsAccessDenied(err), "%v", err)
			require.Contains(t, err.Error(), tc.wantErr)
			after, _ := s.Auth.Services().Roles.GetRole(ctx, tc.role)
			require.Equal(t, before.GetMetadata().GetRevision(), after.GetMetadata().GetRevision(), "nothing written")
		})
	}
	authtest.RequireEvent(t, s, "role.update", "rw")

	// Deleting the editor role, or the role that denies the caller, is refused too.
	for _, name := range []string{"editor", "no-delete"} {
		_, err := rw.Roles.DeleteRole(ctx, &rolepb.DeleteRoleRequest{Name: name})
		require.True(t, trace.IsAccessDenied(err), "%s: %v", name, err)
		_, err = s.Auth.Services().Roles.GetRole(ctx, name)
		require.NoError(t, err, "%s is still there", name)
	}

	// Within the ceiling, and an editor.
	_, err = rw.Roles.CreateRole(ctx, &rolepb.CreateRoleRequest{Role: &typesv1.Role{Metadata: &typesv1.Metadata{Name: "role-reader"}, Spec: &typesv1.RoleSpec{
		Allow: &typesv1.RoleConditions{Rules: []*typesv1.Rule{{Resources: []string{services.KindRole}, Verbs: []string{services.VerbList, services.VerbReadNoSecrets}}}},
	}}})
	require.NoError(t, err)
	require.NoError(t, update(ed, "role-writer", func(r *typesv1.Role) { r.Spec.Allow.Logins = []string{"root"} }))
	_, err = ed.Roles.DeleteRole(ctx, &rolepb.DeleteRoleRequest{Name: "no-delete"})
	require.NoError(t, err)
}
