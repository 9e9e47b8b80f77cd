package auth_test

import (
	"context"
	"crypto/x509"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/gatehouse/gatehouse/lib/auth"
	"github.com/gatehouse/gatehouse/lib/auth/authtest"
	"github.com/gatehouse/gatehouse/lib/auth/certext"
	"github.com/gatehouse/gatehouse/lib/auth/client"
	"github.com/gatehouse/gatehouse/lib/services"
	credentialspb "github.com/gatehouse/gatehouse/proto/gatehouse/credentials/v1"
	lockpb "github.com/gatehouse/gatehouse/proto/gatehouse/lock/v1"
	pluginpb "github.com/gatehouse/gatehouse/proto/gatehouse/plugin/v1"
	rolepb "github.com/gatehouse/gatehouse/proto/gatehouse/role/v1"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
	userpb "github.com/gatehouse/gatehouse/proto/gatehouse/user/v1"
)

// adminClient issues the built-in operator identity and dials with it.
func adminClient(t *testing.T, s *authtest.Server) *client.Client {
	t.Helper()
	id, err := s.Auth.GenerateUserIdentity(context.Background(), services.BuiltinAdmin, time.Hour)
	require.NoError(t, err)
	c, err := client.New(context.Background(), client.Config{Addr: s.Addr, Identity: id})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestBuiltinAdminIdentity(t *testing.T) {
	t.Parallel()
	s := authtest.NewServer(t, authtest.Options{})
	ctx := context.Background()

	id, err := s.Auth.GenerateUserIdentity(ctx, services.BuiltinAdmin, 0)
	require.NoError(t, err)
	require.Equal(t, services.BuiltinAdmin, id.Username)
	cert, err := id.TLSCertificate()
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	require.NoError(t, err)
	require.Equal(t, services.BuiltinAdmin, leaf.Subject.CommonName)
	require.Equal(t, []string{auth.PresetEditorRole}, leaf.Subject.Organization)
	require.LessOrEqual(t, leaf.NotAfter.Sub(s.Clock.Now()), services.MaxSessionTTL, "TTL bounded as for users")
	_, err = s.Auth.Services().Users.GetUser(ctx, services.BuiltinAdmin, false)
	require.True(t, trace.IsNotFound(err), "no user record: %v", err)
	ev := authtest.RequireEvent(t, s, "cert.issue", services.BuiltinAdmin)
	require.Equal(t, "user/"+services.BuiltinAdmin, ev.GetResource())

	c := adminClient(t, s)
	_, err = c.Plugins.ListPlugins(ctx, &pluginpb.ListPluginsRequest{})
	require.NoError(t, err)

	// The stored editor role does not define the operator's rights: editing
	// it to deny everything, or deleting it, takes nothing away.
	_, err = c.Roles.UpsertRole(ctx, &rolepb.UpsertRoleRequest{Role: &typesv1.Role{
		Metadata: &typesv1.Metadata{Name: auth.PresetEditorRole},
		Spec:     &typesv1.RoleSpec{Deny: &typesv1.RoleConditions{Rules: []*typesv1.Rule{{Resources: []string{"*"}, Verbs: []string{"*"}}}}},
	}})
	require.NoError(t, err)
	_, err = c.Roles.ListRoles(ctx, &rolepb.ListRolesRequest{})
	require.NoError(t, err, "an edited editor role does not bind the built-in identity")
	_, err = c.Roles.DeleteRole(ctx, &rolepb.DeleteRoleRequest{Name: auth.PresetEditorRole})
	require.NoError(t, err)
	_, err = c.Users.ListUsers(ctx, &userpb.ListUsersRequest{})
	require.NoError(t, err, "a deleted editor role does not bind the built-in identity")

	// Nobody can become it: no user record may carry a reserved name, and
	// the API does not issue its credentials, not even to itself.
	for _, name := range []string{services.BuiltinAdmin, "＠admin", "@Admin", "@other"} {
		_, err = c.Users.CreateUser(ctx, &userpb.CreateUserRequest{User: &typesv1.User{Metadata: &typesv1.Metadata{Name: name}}})
		require.True(t, trace.IsBadParameter(err), "%s: %v", name, err)
		require.Contains(t, err.Error(), "reserved")
		_, err = c.Credentials.CreateUserIdentity(ctx, &credentialspb.CreateUserIdentityRequest{User: name, Ttl: durationpb.New(time.Hour)})
		require.True(t, trace.IsAccessDenied(err), "%s: %v", name, err)
	}

	// Locks an integration or a user lock can write do not affect it.
	lock := func(name string, target *typesv1.LockTarget, labels map[string]string) error {
		_, err := s.Auth.Services().Locks.CreateLock(ctx, &typesv1.Lock{
			Metadata: &typesv1.Metadata{Name: name, Labels: labels},
			Spec:     &typesv1.LockSpec{Target: target, Message: "locked " + name},
		})
		return err
	}
	s.CreateUser(t, "admin", "access")
	require.NoError(t, lock("user-admin", &typesv1.LockTarget{User: "admin"}, map[string]string{services.LabelOrigin: "okta"}))
	require.NoError(t, lock("user-Admin", &typesv1.LockTarget{User: "ＡＤＭＩＮ"}, nil))
	require.NoError(t, lock("role-editor", &typesv1.LockTarget{Role: auth.PresetEditorRole}, nil))
	require.NoError(t, lock("login-root", &typesv1.LockTarget{Login: "root"}, nil))
	_, err = c.Locks.ListLocks(ctx, &lockpb.ListLocksRequest{})
	require.NoError(t, err, "user, role and login locks leave the built-in identity alone")
	_, err = s.Auth.GenerateUserIdentity(ctx, services.BuiltinAdmin, time.Hour)
	require.NoError(t, err)
	// An integration cannot write a lock on it at all.
	err = lock("scim-builtin", &typesv1.LockTarget{User: services.BuiltinAdmin}, map[string]string{services.LabelOrigin: "okta"})
	require.True(t, trace.IsBadParameter(err), "%v", err)

	// An editor's explicit lock on @admin does, on every call and for new
	// credentials; removing it restores access.
	_, err = c.Locks.CreateLock(ctx, &lockpb.CreateLockRequest{Lock: &typesv1.Lock{
		Metadata: &typesv1.Metadata{Name: "operator"},
		Spec:     &typesv1.LockSpec{Target: &typesv1.LockTarget{User: services.BuiltinAdmin}, Message: "operator key leaked"},
	}})
	require.NoError(t, err)
	_, err = c.Plugins.ListPlugins(ctx, &pluginpb.ListPluginsRequest{})
	require.True(t, trace.IsAccessDenied(err), "%v", err)
	require.Contains(t, err.Error(), "operator key leaked")
	require.Contains(t, err.Error(), "gatehouse recover")
	_, err = s.Auth.GenerateUserIdentity(ctx, services.BuiltinAdmin, time.Hour)
	require.True(t, trace.IsAccessDenied(err), "%v", err)
	authtest.RequireEvent(t, s, "access.denied", services.BuiltinAdmin)
	require.NoError(t, s.Auth.Services().Locks.DeleteLock(ctx, "operator"))
	_, err = c.Plugins.ListPlugins(ctx, &pluginpb.ListPluginsRequest{})
	require.NoError(t, err)
}

// TestStartupNeverGrantsRoles: an auth server starting on a backend with a
// user "admin" (as an earlier version left it) changes nothing about it.
func TestStartupNeverGrantsRoles(t *testing.T) {
	t.Parallel()
	s := authtest.NewServer(t, authtest.Options{})
	ctx := context.Background()
	s.CreateUser(t, "admin", auth.PresetAccessRole)
	before, err := s.Auth.Services().Users.GetUser(ctx, "admin", false)
	require.NoError(t, err)
	_, err = auth.New(ctx, auth.Config{Backend: s.Backend, ClusterName: "test.example", Clock: s.Clock})
	require.NoError(t, err)
	after, err := s.Auth.Services().Users.GetUser(ctx, "admin", false)
	require.NoError(t, err)
	require.Equal(t, before.GetMetadata().GetRevision(), after.GetMetadata().GetRevision())
	require.Equal(t, []string{auth.PresetAccessRole}, after.GetSpec().GetRoles())
}

// TestBuiltinAdminIncarnation: credentials of the built-in identity carry
// its stored incarnation, and rotating it (gatehouse recover) voids every
// one issued before at once, on its next call.
func TestBuiltinAdminIncarnation(t *testing.T) {
	t.Parallel()
	s := authtest.NewServer(t, authtest.Options{})
	ctx := context.Background()

	stored, err := s.Auth.Services().BuiltinAdmin.GetBuiltinAdminIncarnation(ctx)
	require.NoError(t, err, "startup stores one")
	id, err := s.Auth.GenerateUserIdentity(ctx, services.BuiltinAdmin, time.Hour)
	require.NoError(t, err)
	cert, err := id.TLSCertificate()
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	require.NoError(t, err)
	carried, err := certext.IncarnationFromX509(leaf)
	require.NoError(t, err)
	require.Equal(t, stored, carried)

	// A restart keeps it: the files the servers wrote stay good.
	_, err = auth.New(ctx, auth.Config{Backend: s.Backend, ClusterName: "test.example", Clock: s.Clock})
	require.NoError(t, err)
	again, err := s.Auth.Services().BuiltinAdmin.GetBuiltinAdminIncarnation(ctx)
	require.NoError(t, err)
	require.Equal(t, stored, again)

	old := adminClient(t, s)
	_, err = old.Plugins.ListPlugins(ctx, &pluginpb.ListPluginsRequest{})
	require.NoError(t, err)

	require.NoError(t, s.Auth.RotateBuiltinAdminIncarnation(ctx, "gatehouse recover"))
	ev := authtest.RequireEvent(t, s, "builtin_admin.rotate", "gatehouse recover")
	require.Equal(t, "user/"+services.BuiltinAdmin, ev.GetResource())
	_, err = old.Plugins.ListPlugins(ctx, &pluginpb.ListPluginsRequest{})
	require.True(t, trace.IsAccessDenied(err), "%v", err)
	require.ErrorContains(t, err, "this admin identity was replaced by gatehouse recover; use the new admin.identity")

	fresh := adminClient(t, s)
	_, err = fresh.Plugins.ListPlugins(ctx, &pluginpb.ListPluginsRequest{})
	require.NoError(t, err, "identities issued after the rotation work")
}
