package userv1_test

import (
	"context"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/structpb"
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

// plain is a user holding no role: the coverage test's callers hold only
// the verbs of the RPC, and may give no role (authz.Checker.CheckGrant).
func plain(name string) *typesv1.User {
	return &typesv1.User{Metadata: &typesv1.Metadata{Name: name}, Spec: &typesv1.UserSpec{}}
}

func existing(t *testing.T, s *authtest.Server, name string) {
	s.CreateUser(t, name)
}

// clientHolding returns a client for name, whose role allows verbs on users
// and who also holds the extra roles (which it may then give).
func clientHolding(t *testing.T, s *authtest.Server, name string, verbs []string, extra ...string) *client.Client {
	t.Helper()
	s.CreateRole(t, name+"-role", []string{services.KindUser}, verbs)
	s.CreateUser(t, name, append([]string{name + "-role"}, extra...)...)
	return s.Client(t, name)
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
				_, err := c.Users.CreateUser(ctx, &userpb.CreateUserRequest{User: plain(name)})
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
				cur.Metadata.Description = "updated"
				_, err = c.Users.UpdateUser(ctx, &userpb.UpdateUserRequest{User: cur})
				return err
			},
		},
		"UpsertUser": {
			Verbs: []string{services.VerbCreate, services.VerbUpdate},
			Call: func(ctx context.Context, s *authtest.Server, c *client.Client, name string) error {
				_, err := c.Users.UpsertUser(ctx, &userpb.UpsertUserRequest{User: plain(name)})
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
	// created_by.connector is trusted (a SAML connector signs in its own
	// users): only an unrestricted caller may set it.
	s.CreateUser(t, "admin", "editor")
	c := s.Client(t, "admin")
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
	c := clientHolding(t, s, "ed", []string{services.VerbCreate, services.VerbUpdate}, "access")
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
	// The caller may give every role (checked by TestGrantCeiling), so that
	// only existence decides here.
	s.CreateUser(t, "ed", "editor")
	c := s.Client(t, "ed")
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

// TestGrantCeiling: a caller who may write users but whose roles do not allow everything gives
// only roles it holds, touches no account stronger than itself, lifts no deny by taking a role
// away, and writes none of what other code trusts about an account (the gatehouse.dev/ labels,
// created_by.connector, the password hash, its own traits). Each refusal is AccessDenied, writes
// nothing and is audited; an editor may do all of it.
func TestGrantCeiling(t *testing.T) {
	t.Parallel()
	s := authtest.NewServer(t, authtest.Options{})
	ctx := context.Background()
	_, err := s.Auth.Services().Roles.UpsertRole(ctx, &typesv1.Role{
		Metadata: &typesv1.Metadata{Name: "restricted"},
		Spec:     &typesv1.RoleSpec{Deny: &typesv1.RoleConditions{Rules: []*typesv1.Rule{{Resources: []string{services.KindUser}, Verbs: []string{services.VerbDelete}}}}},
	})
	require.NoError(t, err)
	hd := clientHolding(t, s, "helpdesk", []string{services.VerbCreate, services.VerbUpdate, services.VerbReadNoSecrets}, "access", "restricted")
	// The helpdesk logs in to nodes as "friend" (through access and its logins trait), and so
	// may give that login, and no other.
	_, err = s.Auth.Services().Users.UpdateAndSwapUser(ctx, "helpdesk", func(u *typesv1.User) error {
		u.Spec.Traits = services.NewTraits(map[string][]string{"logins": {"friend"}})
		return nil
	})
	require.NoError(t, err)
	s.CreateUser(t, "ed", "editor")
	ed := s.Client(t, "ed")
	s.CreateUser(t, "friend", "access")
	s.CreateUser(t, "boss", "editor")
	s.CreateUser(t, "scimmed", "access")
	_, err = s.Auth.Services().Users.UpdateAndSwapUser(ctx, "scimmed", func(u *typesv1.User) error {
		u.Metadata.Labels = map[string]string{services.LabelOrigin: "okta"}
		return nil
	})
	require.NoError(t, err)

	update := func(c *client.Client, name string, modify func(u *typesv1.User)) error {
		cur, err := s.Auth.Services().Users.GetUser(ctx, name, false)
		require.NoError(t, err)
		modify(cur)
		_, err = c.Users.UpdateUser(ctx, &userpb.UpdateUserRequest{User: cur})
		return err
	}
	logins := func(l ...any) map[string]*structpb.ListValue {
		v, err := structpb.NewList(l)
		require.NoError(t, err)
		return map[string]*structpb.ListValue{"logins": v}
	}
	for _, tc := range []struct {
		name    string
		user    string
		write   func(c *client.Client) error
		wantErr string
	}{
		{"create an editor", "mallory", func(c *client.Client) error {
			_, err := c.Users.CreateUser(ctx, &userpb.CreateUserRequest{User: &typesv1.User{Metadata: &typesv1.Metadata{Name: "mallory"}, Spec: &typesv1.UserSpec{Roles: []string{"access", "editor"}}}})
			return err
		}, "you do not hold editor"},
		{"upsert a friend with a role not held", "friend", func(c *client.Client) error {
			_, err := c.Users.UpsertUser(ctx, &userpb.UpsertUserRequest{User: &typesv1.User{Metadata: &typesv1.Metadata{Name: "friend"}, Spec: &typesv1.UserSpec{Roles: []string{"access", "auditor"}}}})
			return err
		}, "you do not hold auditor"},
		{"give oneself editor", "helpdesk", func(c *client.Client) error {
			return update(c, "helpdesk", func(u *typesv1.User) { u.Spec.Roles = append(u.Spec.Roles, "editor") })
		}, "you do not hold editor"},
		{"take away one's own deny", "helpdesk", func(c *client.Client) error {
			return update(c, "helpdesk", func(u *typesv1.User) { u.Spec.Roles = []string{"helpdesk-role", "access"} })
		}, `taking role "restricted" away lifts what it denies`},
		{"change one's own logins", "helpdesk", func(c *client.Client) error {
			return update(c, "helpdesk", func(u *typesv1.User) { u.Spec.Traits = logins("root") })
		}, "traits of your own account"},
		{"give a friend a login one does not have", "friend", func(c *client.Client) error {
			return update(c, "friend", func(u *typesv1.User) { u.Spec.Traits = logins("friend", "root") })
		}, `login "root": you may give only logins you have yourself`},
		{"make a sock puppet with a login one does not have", "sock", func(c *client.Client) error {
			_, err := c.Users.CreateUser(ctx, &userpb.CreateUserRequest{User: &typesv1.User{Metadata: &typesv1.Metadata{Name: "sock"}, Spec: &typesv1.UserSpec{Roles: []string{"access"}, Traits: logins("root")}}})
			return err
		}, `login "root": you may give only logins you have yourself`},
		{"demote an editor", "boss", func(c *client.Client) error {
			return update(c, "boss", func(u *typesv1.User) { u.Spec.Roles = []string{"access"} })
		}, `user "boss" holds role "editor"`},
		{"give a local account to SCIM", "friend", func(c *client.Client) error {
			return update(c, "friend", func(u *typesv1.User) { u.Metadata.Labels = map[string]string{services.LabelOrigin: "okta"} })
		}, `label "gatehouse.dev/origin"`},
		{"take a SCIM account away from deprovisioning", "scimmed", func(c *client.Client) error {
			return update(c, "scimmed", func(u *typesv1.User) { u.Metadata.Labels = nil })
		}, `label "gatehouse.dev/origin"`},
		{"make an account a SAML connector's", "friend", func(c *client.Client) error {
			return update(c, "friend", func(u *typesv1.User) {
				u.Spec.CreatedBy = &typesv1.CreatedBy{Connector: &typesv1.ConnectorRef{Type: "saml", Id: "okta", Identity: "friend@example.com"}}
			})
		}, "created_by.connector"},
		{"write a password hash", "friend", func(c *client.Client) error {
			return update(c, "friend", func(u *typesv1.User) {
				u.Spec.LocalAuth = &typesv1.LocalAuthSecrets{PasswordHash: []byte("$2a$10$abcdefghijklmnopqrstuv")}
			})
		}, "SetPassword"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, beforeErr := s.Auth.Services().Users.GetUser(ctx, tc.user, true)
			err := tc.write(hd)
			require.True(t, trace.IsAccessDenied(err), "%v", err)
			require.Contains(t, err.Error(), tc.wantErr)
			after, afterErr := s.Auth.Services().Users.GetUser(ctx, tc.user, true)
			require.Equal(t, trace.IsNotFound(beforeErr), trace.IsNotFound(afterErr))
			require.Equal(t, before.GetMetadata().GetRevision(), after.GetMetadata().GetRevision(), "nothing written")
		})
	}
	ev := authtest.RequireEvent(t, s, "user.update", "helpdesk")
	require.NotEqual(t, "success", ev.GetOutcome(), "the refusal is audited: %v", ev)

	// Within the ceiling: roles the caller holds, a friend's logins.
	_, err = hd.Users.CreateUser(ctx, &userpb.CreateUserRequest{User: &typesv1.User{Metadata: &typesv1.Metadata{Name: "newbie"}, Spec: &typesv1.UserSpec{Roles: []string{"access"}}}})
	require.NoError(t, err)
	require.NoError(t, update(hd, "friend", func(u *typesv1.User) { u.Spec.Traits = logins("friend") }))
	// An editor may do what the helpdesk may not.
	require.NoError(t, update(ed, "helpdesk", func(u *typesv1.User) { u.Spec.Roles = []string{"helpdesk-role", "access"} }))
	require.NoError(t, update(ed, "friend", func(u *typesv1.User) { u.Spec.Roles = append(u.Spec.Roles, "editor") }))
	require.NoError(t, update(ed, "scimmed", func(u *typesv1.User) { u.Metadata.Labels = nil }))

	// Deleting: only accounts within the caller's roles.
	s.CreateRole(t, "deleter", []string{services.KindUser}, []string{services.VerbDelete})
	s.CreateUser(t, "del", "deleter", "access")
	del := s.Client(t, "del")
	_, err = del.Users.DeleteUser(ctx, &userpb.DeleteUserRequest{Name: "boss"})
	require.True(t, trace.IsAccessDenied(err), "%v", err)
	_, err = s.Auth.Services().Users.GetUser(ctx, "boss", false)
	require.NoError(t, err, "boss is still there")
	authtest.RequireEvent(t, s, "user.delete", "del")
	_, err = del.Users.DeleteUser(ctx, &userpb.DeleteUserRequest{Name: "newbie"})
	require.NoError(t, err)
}
