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

// adminIncarnation is the stored incarnation of the built-in identity; ""
// means none is stored.
type adminIncarnation string

func (a adminIncarnation) GetBuiltinAdminIncarnation(context.Context) (string, error) {
	if a == "" {
		return "", trace.NotFound("none stored")
	}
	return string(a), nil
}

const currentAdmin adminIncarnation = "000000000000000000000000000000ad"

func (l fixedLocks) GetLocksInForce(context.Context) ([]*typesv1.Lock, error) { return l, nil }

func TestAuthorizeBuiltinAdmin(t *testing.T) {
	t.Parallel()
	editor := role("editor", []*typesv1.Rule{rule([]string{services.Wildcard}, services.Wildcard)}, nil)
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
			a, err := New(Config{Users: noUsers{t}, Roles: noUsers{t}, Locks: tc.locks, BuiltinAdmin: currentAdmin, BuiltinAdminRoles: []*typesv1.Role{editor}})
			require.NoError(t, err)
			ctx := ContextWithIdentity(context.Background(), Identity{Username: services.BuiltinAdmin, Incarnation: string(currentAdmin)})
			actx, err := a.Authorize(ctx)
			if tc.denied {
				require.True(t, trace.IsAccessDenied(err), "%v", err)
				require.Contains(t, err.Error(), "stop")
				return
			}
			require.NoError(t, err)
			require.Equal(t, services.BuiltinAdmin, actx.Username())
			require.NoError(t, actx.Checker.CheckAccess(services.KindRole, services.VerbDelete))
			// The roles handed out are copies: a caller cannot edit the set.
			actx.Roles[0].Spec.Allow = nil
			require.NotNil(t, editor.GetSpec().GetAllow())
		})
	}
	_, err := New(Config{Users: noUsers{t}, Roles: noUsers{t}, Locks: fixedLocks{}, BuiltinAdmin: currentAdmin})
	require.True(t, trace.IsBadParameter(err), "the built-in role set is required: %v", err)
	_, err = New(Config{Users: noUsers{t}, Roles: noUsers{t}, Locks: fixedLocks{}, BuiltinAdminRoles: []*typesv1.Role{editor}})
	require.True(t, trace.IsBadParameter(err), "the built-in identity's incarnation is required: %v", err)
}

// TestAuthorizeBuiltinAdminIncarnation: a credential of the built-in
// identity works only with the stored incarnation, which gatehouse recover
// replaces, so a leaked admin.identity dies with the recovery.
func TestAuthorizeBuiltinAdminIncarnation(t *testing.T) {
	t.Parallel()
	editor := role("editor", []*typesv1.Rule{rule([]string{services.Wildcard}, services.Wildcard)}, nil)
	for _, tc := range []struct {
		name    string
		stored  adminIncarnation
		cert    string
		message string // "" means allowed
	}{
		{"current", currentAdmin, string(currentAdmin), ""},
		{"replaced by recover", currentAdmin, "000000000000000000000000000000ac", "this admin identity was replaced by gatehouse recover; use the new admin.identity"},
		{"issued before incarnations", currentAdmin, "", "issued by an earlier version of Gatehouse"},
		{"none stored", "", string(currentAdmin), "has no incarnation stored yet"},
		{"none stored, none carried", "", "", "has no incarnation stored yet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, err := New(Config{Users: noUsers{t}, Roles: noUsers{t}, Locks: fixedLocks{}, BuiltinAdmin: tc.stored, BuiltinAdminRoles: []*typesv1.Role{editor}})
			require.NoError(t, err)
			ctx := ContextWithIdentity(context.Background(), Identity{Username: services.BuiltinAdmin, Incarnation: tc.cert})
			actx, err := a.Authorize(ctx)
			if tc.message == "" {
				require.NoError(t, err)
				require.Equal(t, services.BuiltinAdmin, actx.Username())
				return
			}
			require.True(t, trace.IsAccessDenied(err), "%v", err)
			require.ErrorContains(t, err, tc.message)
		})
	}
}

type fakeUsers map[string]*typesv1.User

func (f fakeUsers) GetUser(_ context.Context, name string, _ bool) (*typesv1.User, error) {
	u, ok := f[name]
	if !ok {
		return nil, trace.NotFound("user %q not found", name)
	}
	return u, nil
}

type fakeRoles struct{}

func (fakeRoles) GetRole(_ context.Context, name string) (*typesv1.Role, error) {
	return role(name, []*typesv1.Rule{rule([]string{"*"}, "*")}, nil), nil
}

type noLocks struct{}

func (noLocks) GetLocksInForce(context.Context) ([]*typesv1.Lock, error) { return nil, nil }

func TestAuthorizeRefusesAnotherIncarnation(t *testing.T) {
	t.Parallel()
	const current = "0000000000000000000000000000000a"
	user := func(incarnation string) *typesv1.User {
		return &typesv1.User{
			Metadata: &typesv1.Metadata{Name: "alice"},
			Spec:     &typesv1.UserSpec{Roles: []string{"editor"}, Incarnation: incarnation},
		}
	}
	tests := []struct {
		name   string
		stored *typesv1.User
		cert   string
		allow  bool
	}{
		{"same incarnation", user(current), current, true},
		{"earlier incarnation", user(current), "0000000000000000000000000000000b", false},
		{"certificate without one", user(current), "", false},
		{"user without one", user(""), current, false},
		{"neither has one", user(""), "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, err := New(Config{Users: fakeUsers{"alice": tc.stored}, Roles: fakeRoles{}, Locks: noLocks{}, BuiltinAdmin: currentAdmin, BuiltinAdminRoles: []*typesv1.Role{role("editor", nil, nil)}})
			require.NoError(t, err)
			ctx := ContextWithIdentity(context.Background(), Identity{Username: "alice", Incarnation: tc.cert})
			got, err := a.Authorize(ctx)
			if tc.allow {
				require.NoError(t, err)
				require.Equal(t, "alice", got.Username())
				return
			}
			require.True(t, trace.IsAccessDenied(err), "got %v", err)
			require.ErrorContains(t, err, `credentials were issued to an earlier incarnation of user "alice"`)
		})
	}
}
