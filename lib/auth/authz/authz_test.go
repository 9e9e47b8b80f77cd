package authz

import (
	"context"
	"testing"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/services"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// noUsers fails the test if the authorizer reads a user or a role: the
// built-in identity must not depend on stored records.
type noUsers struct{ t *testing.T }

func (n noUsers) GetUser(context.Context, string, bool) (*typesv1.User, error) {
	n.t.Error("the built-in identity was looked up as a user")
	return nil, trace.NotFound("no users")
}

func (n noUsers) GetRole(context.Context, string) (*typesv1.Role, error) {
	n.t.Error("the built-in identity's roles were read from storage")
	return nil, trace.NotFound("no roles")
}

type fixedLocks []*typesv1.Lock

func (l fixedLocks) GetLocksInForce(context.Context) ([]*typesv1.Lock, error) { return l, nil }

func TestAuthorizeBuiltinAdmin(t *testing.T) {
	t.Parallel()
	editor := role("editor", []*typesv1.Rule{rule([]string{Wildcard}, Wildcard)}, nil)
	lock := func(target *typesv1.LockTarget) *typesv1.Lock {
		return &typesv1.Lock{Metadata: &typesv1.Metadata{Name: "l"}, Spec: &typesv1.LockSpec{Target: target, Message: "stop"}}
	}
	for _, tc := range []struct {
		name   string
		locks  fixedLocks
		denied bool
	}{
		{"no lock", nil, false},
		{"user admin", fixedLocks{lock(&typesv1.LockTarget{User: "admin"})}, false},
		{"user Admin", fixedLocks{lock(&typesv1.LockTarget{User: "Admin"})}, false},
		{"role editor", fixedLocks{lock(&typesv1.LockTarget{Role: "editor"})}, false},
		{"login", fixedLocks{lock(&typesv1.LockTarget{Login: "root"})}, false},
		{"built-in identity on a node only", fixedLocks{lock(&typesv1.LockTarget{User: services.BuiltinAdmin, Node: "n1"})}, false},
		{"built-in identity", fixedLocks{lock(&typesv1.LockTarget{User: services.BuiltinAdmin})}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, err := New(Config{Users: noUsers{t}, Roles: noUsers{t}, Locks: tc.locks, BuiltinAdminRoles: []*typesv1.Role{editor}})
			require.NoError(t, err)
			ctx := ContextWithIdentity(context.Background(), Identity{Username: services.BuiltinAdmin})
			actx, err := a.Authorize(ctx)
			if tc.denied {
				require.True(t, trace.IsAccessDenied(err), "%v", err)
				require.Contains(t, err.Error(), "stop")
				return
			}
			require.NoError(t, err)
			require.Equal(t, services.BuiltinAdmin, actx.Username())
			require.NoError(t, actx.Checker.CheckAccess(KindRole, VerbDelete))
			// The roles handed out are copies: a caller cannot edit the set.
			actx.Roles[0].Spec.Allow = nil
			require.NotNil(t, editor.GetSpec().GetAllow())
		})
	}
	_, err := New(Config{Users: noUsers{t}, Roles: noUsers{t}, Locks: fixedLocks{}})
	require.True(t, trace.IsBadParameter(err), "the built-in role set is required: %v", err)
}
