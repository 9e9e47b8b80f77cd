package userv1_test

import (
	"context"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gatehouse/gatehouse/lib/auth/authtest"
	"github.com/gatehouse/gatehouse/lib/auth/client"
	"github.com/gatehouse/gatehouse/lib/services"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
	userpb "github.com/gatehouse/gatehouse/proto/gatehouse/user/v1"
)

func user(name string) *typesv1.User {
	return &typesv1.User{Metadata: &typesv1.Metadata{Name: name}, Spec: &typesv1.UserSpec{Roles: []string{"access"}}}
}

func existing(t *testing.T, s *authtest.Server, name string) {
	s.CreateUser(t, name, "access")
}

func TestEveryRPC(t *testing.T) {
	t.Parallel()
	authtest.RunRPCCases(t, userpb.UserService_ServiceDesc, services.KindUser, map[string]authtest.RPCCase{
		"GetUser": {
			Verbs: []string{services.VerbReadNoSecrets},
			Setup: existing,
			Call: func(ctx context.Context, s *authtest.Server, c *client.Client, name string) error {
				_, err := c.Users.GetUser(ctx, &userpb.GetUserRequest{Name: name})
				return err
			},
		},
		"ListUsers": {
			Verbs: []string{services.VerbList, services.VerbReadNoSecrets},
			Call: func(ctx context.Context, s *authtest.Server, c *client.Client, name string) error {
				_, err := c.Users.ListUsers(ctx, &userpb.ListUsersRequest{})
				return err
			},
		},
		"CreateUser": {
			Verbs: []string{services.VerbCreate},
			Call: func(ctx context.Context, s *authtest.Server, c *client.Client, name string) error {
				_, err := c.Users.CreateUser(ctx, &userpb.CreateUserRequest{User: user(name)})
				return err
			},
		},
		"UpdateUser": {
			Verbs: []string{services.VerbUpdate},
			Setup: existing,
			Call: func(ctx context.Context, s *authtest.Server, c *client.Client, name string) error {
				// The caller may not be able to read: the revision comes
				// from the server's own service.
				cur, err := s.Auth.Services().Users.GetUser(ctx, name, false)
				if err != nil {
					return err
				}
				cur.Spec.Roles = []string{"auditor"}
				_, err = c.Users.UpdateUser(ctx, &userpb.UpdateUserRequest{User: cur})
				return err
			},
		},
		"UpsertUser": {
			Verbs: []string{services.VerbCreate, services.VerbUpdate},
			Call: func(ctx context.Context, s *authtest.Server, c *client.Client, name string) error {
				_, err := c.Users.UpsertUser(ctx, &userpb.UpsertUserRequest{User: user(name)})
				return err
			},
		},
		"DeleteUser": {
			Verbs: []string{services.VerbDelete},
			Setup: existing,
			Call: func(ctx context.Context, s *authtest.Server, c *client.Client, name string) error {
				_, err := c.Users.DeleteUser(ctx, &userpb.DeleteUserRequest{Name: name})
				return err
			},
		},
	})
}

// TestAdminFieldsKept checks that created_by and metadata.expires set by an
// admin survive creation, and that created_by defaults to the caller.
func TestAdminFieldsKept(t *testing.T) {
	t.Parallel()
	s := authtest.NewServer(t, authtest.Options{})
	c := s.UserWith(t, "admin", services.KindUser, services.VerbCreate, services.VerbReadNoSecrets)
	ctx := context.Background()
	exp := timestamppb.New(s.Clock.Now().Add(48 * time.Hour))
	created := timestamppb.New(s.Clock.Now().Add(-time.Hour))
	u := user("temp")
	u.Metadata.Expires = exp
	u.Spec.CreatedBy = &typesv1.CreatedBy{Time: created, Connector: &typesv1.ConnectorRef{Type: "saml", Id: "okta", Identity: "temp@example.com"}}
	_, err := c.Users.CreateUser(ctx, &userpb.CreateUserRequest{User: u})
	require.NoError(t, err)
	got, err := c.Users.GetUser(ctx, &userpb.GetUserRequest{Name: "temp"})
	require.NoError(t, err)
	require.True(t, got.GetUser().GetMetadata().GetExpires().AsTime().Equal(exp.AsTime()))
	require.Equal(t, "okta", got.GetUser().GetSpec().GetCreatedBy().GetConnector().GetId())
	require.True(t, got.GetUser().GetSpec().GetCreatedBy().GetTime().AsTime().Equal(created.AsTime()))

	_, err = c.Users.CreateUser(ctx, &userpb.CreateUserRequest{User: user("plain")})
	require.NoError(t, err)
	got, err = c.Users.GetUser(ctx, &userpb.GetUserRequest{Name: "plain"})
	require.NoError(t, err)
	require.Equal(t, "admin", got.GetUser().GetSpec().GetCreatedBy().GetUser().GetName())
	authtest.RequireEvent(t, s, "user.create", "admin")
}

func TestCreateCanonicalName(t *testing.T) {
	t.Parallel()
	s := authtest.NewServer(t, authtest.Options{})
	c := s.UserWith(t, "ed", services.KindUser, services.VerbCreate, services.VerbUpdate)
	ctx := context.Background()

	// A create stores the canonical spelling and says so in the response.
	resp, err := c.Users.CreateUser(ctx, &userpb.CreateUserRequest{User: user("Bob")})
	require.NoError(t, err)
	require.Equal(t, "bob", resp.GetUser().GetMetadata().GetName())
	_, err = s.Auth.Services().Users.GetUser(ctx, "bob", false)
	require.NoError(t, err)

	// Look-alikes of an existing account are that account: refused, naming
	// both spellings.
	for _, name := range []string{"bob", "BOB", "ｂｏｂ"} {
		_, err = c.Users.CreateUser(ctx, &userpb.CreateUserRequest{User: user(name)})
		require.True(t, trace.IsAlreadyExists(err), "%s: %v", name, err)
		require.Contains(t, err.Error(), `"bob" already exists`)
		if name != "bob" {
			require.Contains(t, err.Error(), name)
		}
	}

	// Reserved names are refused as asked, not folded first.
	_, err = c.Users.CreateUser(ctx, &userpb.CreateUserRequest{User: user("＠admin")})
	require.True(t, trace.IsBadParameter(err), "%v", err)
	require.Contains(t, err.Error(), `"＠admin" is reserved`)

	// An update or upsert does not rename: a non-canonical name is refused
	// with the canonical spelling.
	_, err = c.Users.UpsertUser(ctx, &userpb.UpsertUserRequest{User: user("Carol")})
	require.True(t, trace.IsBadParameter(err), "%v", err)
	require.Contains(t, err.Error(), `Gatehouse stores it as "carol"`)
}

// TestRolesMustExist: a write through the API may not give a user a role that does not exist
// (a role created later under that name would be granted unnoticed). The refusal names the role,
// writes nothing and is audited as a failure; a caller who may not write users learns nothing
// of which roles exist; an account still holding a role deleted since can be updated and keeps
// it.
func TestRolesMustExist(t *testing.T) {
	t.Parallel()
	s := authtest.NewServer(t, authtest.Options{})
	c := s.UserWith(t, "ed", services.KindUser, services.VerbCreate, services.VerbUpdate, services.VerbReadNoSecrets)
	ctx := context.Background()
	withRoles := func(name string, roles ...string) *typesv1.User {
		return &typesv1.User{Metadata: &typesv1.Metadata{Name: name}, Spec: &typesv1.UserSpec{Roles: roles}}
	}
	requireRefused := func(err error, role string) {
		t.Helper()
		require.True(t, trace.IsBadParameter(err), "%v", err)
		require.Contains(t, err.Error(), `role "`+role+`" does not exist`)
	}

	_, err := c.Users.CreateUser(ctx, &userpb.CreateUserRequest{User: withRoles("bob", "access", "acess")})
	requireRefused(err, "acess")
	_, err = s.Auth.Services().Users.GetUser(ctx, "bob", false)
	require.True(t, trace.IsNotFound(err), "nothing written: %v", err)
	ev := authtest.RequireEvent(t, s, "user.create", "ed")
	require.NotEqual(t, "success", ev.GetOutcome(), "the refusal is audited: %v", ev)
	require.Contains(t, ev.GetMessage(), "acess", "%v", ev)
	_, err = c.Users.UpsertUser(ctx, &userpb.UpsertUserRequest{User: withRoles("bob", "nosuch")})
	requireRefused(err, "nosuch")

	_, err = c.Users.CreateUser(ctx, &userpb.CreateUserRequest{User: withRoles("bob", "access")})
	require.NoError(t, err)
	cur, err := s.Auth.Services().Users.GetUser(ctx, "bob", false)
	require.NoError(t, err)
	cur.Spec.Roles = []string{"access", "nosuch"}
	_, err = c.Users.UpdateUser(ctx, &userpb.UpdateUserRequest{User: cur})
	requireRefused(err, "nosuch")
	_, err = c.Users.UpsertUser(ctx, &userpb.UpsertUserRequest{User: withRoles("bob", "access", "nosuch")})
	requireRefused(err, "nosuch")

	// A role the account holds and that was deleted since: kept on an update that does not add
	// one.
	s.CreateRole(t, "gone", []string{services.KindRole}, []string{services.VerbList})
	s.CreateUser(t, "carol", "access", "gone")
	require.NoError(t, s.Auth.Services().Roles.DeleteRole(ctx, "gone"))
	cur, err = s.Auth.Services().Users.GetUser(ctx, "carol", false)
	require.NoError(t, err)
	cur.Spec.Traits = nil
	_, err = c.Users.UpdateUser(ctx, &userpb.UpdateUserRequest{User: cur})
	require.NoError(t, err)
	_, err = c.Users.UpsertUser(ctx, &userpb.UpsertUserRequest{User: withRoles("carol", "gone")})
	require.NoError(t, err)

	// Without the right to write users: denied before any role is looked at.
	reader := s.UserWith(t, "rita", services.KindUser, services.VerbReadNoSecrets)
	_, err = reader.Users.CreateUser(ctx, &userpb.CreateUserRequest{User: withRoles("dave", "nosuch")})
	require.True(t, trace.IsAccessDenied(err), "%v", err)
	require.NotContains(t, err.Error(), "nosuch")
}
