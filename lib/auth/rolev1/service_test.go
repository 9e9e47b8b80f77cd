package rolev1_test

import (
	"context"
	"testing"

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
