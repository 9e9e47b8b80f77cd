package authz

import (
	"context"
	"testing"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"

	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

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
			a, err := New(Config{Users: fakeUsers{"alice": tc.stored}, Roles: fakeRoles{}, Locks: noLocks{}})
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
