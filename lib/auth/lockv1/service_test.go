package lockv1_test

import (
	"context"
	"testing"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/auth/audit"

	"github.com/gatehouse/gatehouse/lib/auth/authtest"
	"github.com/gatehouse/gatehouse/lib/auth/client"
	"github.com/gatehouse/gatehouse/lib/services"
	lockpb "github.com/gatehouse/gatehouse/proto/gatehouse/lock/v1"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

func newRes(name string) *typesv1.Lock {
	return &typesv1.Lock{Metadata: &typesv1.Metadata{Name: name}, Spec: &typesv1.LockSpec{Target: &typesv1.LockTarget{User: "target-" + name}, Message: "test"}}
}

func existing(t *testing.T, s *authtest.Server, name string) {
	_, err := s.Auth.Services().Locks.CreateLock(context.Background(), newRes(name))
	if err != nil {
		t.Fatal(err)
	}
}

type call = func(ctx context.Context, s *authtest.Server, c *client.Client, name string) error

func TestEveryRPC(t *testing.T) {
	t.Parallel()
	authtest.RunRPCCases(t, lockpb.LockService_ServiceDesc, services.KindLock, map[string]authtest.RPCCase{
		"GetLock": {
			Verbs: []string{services.VerbReadNoSecrets},
			Setup: existing,
			Call: call(func(ctx context.Context, s *authtest.Server, c *client.Client, name string) error {
				_, err := c.Locks.GetLock(ctx, &lockpb.GetLockRequest{Name: name})
				return err
			}),
		},
		"ListLocks": {
			Verbs: []string{services.VerbList, services.VerbReadNoSecrets},
			Call: call(func(ctx context.Context, s *authtest.Server, c *client.Client, name string) error {
				_, err := c.Locks.ListLocks(ctx, &lockpb.ListLocksRequest{})
				return err
			}),
		},
		"CreateLock": {
			Verbs: []string{services.VerbCreate},
			Call: call(func(ctx context.Context, s *authtest.Server, c *client.Client, name string) error {
				_, err := c.Locks.CreateLock(ctx, &lockpb.CreateLockRequest{Lock: newRes(name)})
				return err
			}),
		},
		"UpdateLock": {
			Verbs: []string{services.VerbUpdate},
			Setup: existing,
			Call: call(func(ctx context.Context, s *authtest.Server, c *client.Client, name string) error {
				cur, err := s.Auth.Services().Locks.GetLock(ctx, name)
				if err != nil {
					return err
				}
				cur.Metadata.Description = "updated"
				_, err = c.Locks.UpdateLock(ctx, &lockpb.UpdateLockRequest{Lock: cur})
				return err
			}),
		},
		"UpsertLock": {
			Verbs: []string{services.VerbCreate, services.VerbUpdate},
			Call: call(func(ctx context.Context, s *authtest.Server, c *client.Client, name string) error {
				_, err := c.Locks.UpsertLock(ctx, &lockpb.UpsertLockRequest{Lock: newRes(name)})
				return err
			}),
		},
		"DeleteLock": {
			Verbs: []string{services.VerbDelete},
			Setup: existing,
			Call: call(func(ctx context.Context, s *authtest.Server, c *client.Client, name string) error {
				_, err := c.Locks.DeleteLock(ctx, &lockpb.DeleteLockRequest{Name: name})
				return err
			}),
		},
	})
}

// TestDeleteLockAudit: lifting a lock is audited under who lifted it, with
// what the lock targeted, its message and its writer (a SCIM lock's name is
// a hash that says nothing); a refused lift is audited as denied and lifts
// nothing.
func TestDeleteLockAudit(t *testing.T) {
	t.Parallel()
	s := authtest.NewServer(t, authtest.Options{})
	ctx := context.Background()
	_, err := s.Auth.Services().Locks.CreateLock(ctx, &typesv1.Lock{
		Metadata: &typesv1.Metadata{Name: "scim-okta-0123", Labels: map[string]string{services.LabelOrigin: "okta"}},
		Spec:     &typesv1.LockSpec{Target: &typesv1.LockTarget{User: "jane@example.com"}, Message: "deactivated in Okta", CreatedBy: "plugin:okta"},
	})
	require.NoError(t, err)

	reader := s.UserWith(t, "reader", services.KindLock, services.VerbReadNoSecrets)
	_, err = reader.Locks.DeleteLock(ctx, &lockpb.DeleteLockRequest{Name: "scim-okta-0123"})
	require.True(t, trace.IsAccessDenied(err), "%v", err)
	_, err = s.Auth.Services().Locks.GetLock(ctx, "scim-okta-0123")
	require.NoError(t, err, "a refused lift lifts nothing")
	authtest.RequireEvent(t, s, "access.denied", "reader")

	lifter := s.UserWith(t, "carol", services.KindLock, services.VerbDelete)
	_, err = lifter.Locks.DeleteLock(ctx, &lockpb.DeleteLockRequest{Name: "scim-okta-0123"})
	require.NoError(t, err)
	ev := authtest.RequireEvent(t, s, audit.EventLockDelete, "carol")
	require.Equal(t, "lock/scim-okta-0123", ev.GetResource())
	require.Equal(t, "lock lifted on user=jane@example.com", ev.GetMessage())
	require.Equal(t, map[string]string{
		"target": "user=jane@example.com", "lock_message": "deactivated in Okta", "lock_created_by": "plugin:okta", "lock_origin": "okta",
	}, ev.GetFields())

	_, err = lifter.Locks.DeleteLock(ctx, &lockpb.DeleteLockRequest{Name: "scim-okta-0123"})
	require.True(t, trace.IsNotFound(err), "%v", err)
}

// TestOnlyUnrestrictedLocksTheOperator: a caller who may write locks but whose roles do not
// allow everything cannot lock the built-in operator identity (which would leave only gatehouse
// recover, with the server stopped), under any spelling; it may lock users and roles. An editor
// may lock @admin.
func TestOnlyUnrestrictedLocksTheOperator(t *testing.T) {
	t.Parallel()
	s := authtest.NewServer(t, authtest.Options{})
	ctx := context.Background()
	sec := s.UserWith(t, "security", services.KindLock, services.VerbCreate, services.VerbUpdate)
	lock := func(name, user string) *typesv1.Lock {
		return &typesv1.Lock{Metadata: &typesv1.Metadata{Name: name}, Spec: &typesv1.LockSpec{Target: &typesv1.LockTarget{User: user}, Message: "bye"}}
	}
	for _, user := range []string{services.BuiltinAdmin, "＠ADMIN"} {
		_, err := sec.Locks.CreateLock(ctx, &lockpb.CreateLockRequest{Lock: lock("op", user)})
		require.True(t, trace.IsAccessDenied(err), "%s: %v", user, err)
		require.Contains(t, err.Error(), "only a caller whose roles allow every verb on every kind may lock @admin")
		_, err = sec.Locks.UpsertLock(ctx, &lockpb.UpsertLockRequest{Lock: lock("op", user)})
		require.True(t, trace.IsAccessDenied(err), "%s: %v", user, err)
	}
	_, err := s.Auth.Services().Locks.GetLock(ctx, "op")
	require.True(t, trace.IsNotFound(err), "nothing written: %v", err)
	authtest.RequireEvent(t, s, audit.EventLockCreate, "security")

	// Retargeting an existing lock at @admin is refused the same way.
	_, err = sec.Locks.CreateLock(ctx, &lockpb.CreateLockRequest{Lock: lock("l", "mallory")})
	require.NoError(t, err)
	cur, err := s.Auth.Services().Locks.GetLock(ctx, "l")
	require.NoError(t, err)
	cur.Spec.Target.User = services.BuiltinAdmin
	_, err = sec.Locks.UpdateLock(ctx, &lockpb.UpdateLockRequest{Lock: cur})
	require.True(t, trace.IsAccessDenied(err), "%v", err)

	s.CreateUser(t, "ed", "editor")
	_, err = s.Client(t, "ed").Locks.CreateLock(ctx, &lockpb.CreateLockRequest{Lock: lock("op", services.BuiltinAdmin)})
	require.NoError(t, err)
}
