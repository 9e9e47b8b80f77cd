package services

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// An old incarnation is what an attacker holding a credential of a deleted
// account would send back, to make that credential work again.
const oldIncarnation = "0123456789abcdef0123456789abcdef"

func incarnationOf(t *testing.T, s *Services, name string) string {
	t.Helper()
	u, err := s.GetUser(context.Background(), name, false)
	require.NoError(t, err)
	return u.GetSpec().GetIncarnation()
}

func TestUserIncarnationIsServerOwned(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	withOld := func() *typesv1.User {
		u := validUser()
		u.Spec.Incarnation = oldIncarnation
		return u
	}
	tests := []struct {
		name string
		// write changes the stored user alice@example.com (which exists,
		// at incarnation before) and returns what it wrote.
		write func(t *testing.T, s *Services) *typesv1.User
		// same is whether the incarnation must be the one before.
		same bool
	}{
		{"update keeps it and ignores the caller's", func(t *testing.T, s *Services) *typesv1.User {
			u, err := s.GetUser(ctx, "alice@example.com", false)
			require.NoError(t, err)
			u.Spec.Roles = []string{"editor"}
			u.Spec.Incarnation = oldIncarnation
			out, err := s.UpdateUser(ctx, u)
			require.NoError(t, err)
			return out
		}, true},
		{"update without an incarnation keeps it", func(t *testing.T, s *Services) *typesv1.User {
			u, err := s.GetUser(ctx, "alice@example.com", false)
			require.NoError(t, err)
			u.Spec.Incarnation = ""
			out, err := s.UpdateUser(ctx, u)
			require.NoError(t, err)
			return out
		}, true},
		{"upsert of an existing user keeps it", func(t *testing.T, s *Services) *typesv1.User {
			out, err := s.UpsertUser(ctx, withOld())
			require.NoError(t, err)
			return out
		}, true},
		{"upsert with secrets keeps it", func(t *testing.T, s *Services) *typesv1.User {
			u := withOld()
			u.Spec.LocalAuth = &typesv1.LocalAuthSecrets{PasswordHash: []byte("$2a$x")}
			out, err := s.UpsertUser(ctx, u)
			require.NoError(t, err)
			return out
		}, true},
		{"update-and-swap keeps it", func(t *testing.T, s *Services) *typesv1.User {
			out, err := s.UpdateAndSwapUser(ctx, "alice@example.com", func(u *typesv1.User) error {
				u.Spec = &typesv1.UserSpec{Roles: []string{"auditor"}, Incarnation: oldIncarnation}
				return nil
			})
			require.NoError(t, err)
			return out
		}, true},
		{"delete and create changes it", func(t *testing.T, s *Services) *typesv1.User {
			require.NoError(t, s.DeleteUser(ctx, "alice@example.com"))
			out, err := s.CreateUser(ctx, withOld())
			require.NoError(t, err)
			return out
		}, false},
		{"delete and upsert changes it", func(t *testing.T, s *Services) *typesv1.User {
			require.NoError(t, s.DeleteUser(ctx, "alice@example.com"))
			out, err := s.UpsertUser(ctx, withOld())
			require.NoError(t, err)
			return out
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, _, _ := newServices(t)
			created, err := s.CreateUser(ctx, withOld())
			require.NoError(t, err)
			before := created.GetSpec().GetIncarnation()
			require.Len(t, before, 32)
			require.NotEqual(t, oldIncarnation, before, "create ignores the caller's incarnation")

			out := tc.write(t, s)
			stored := incarnationOf(t, s, "alice@example.com")
			require.Equal(t, stored, out.GetSpec().GetIncarnation(), "the returned user is what was stored")
			require.NotEqual(t, oldIncarnation, stored)
			require.NotEmpty(t, stored)
			if tc.same {
				require.Equal(t, before, stored)
			} else {
				require.NotEqual(t, before, stored)
			}
		})
	}
}

func TestAssignMissingIncarnations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, b, _ := newServices(t)
	// Two users as stored before incarnations existed, one as stored now.
	for _, name := range []string{"legacy1", "legacy2"} {
		u := validUser()
		u.Metadata.Name = name
		item, err := MarshalUser(u)
		require.NoError(t, err)
		_, err = b.Put(ctx, item)
		require.NoError(t, err)
		require.Empty(t, incarnationOf(t, s, name))
	}
	current, err := s.CreateUser(ctx, validUser())
	require.NoError(t, err)

	n, errs := s.AssignMissingIncarnations(ctx)
	require.Empty(t, errs)
	require.Equal(t, 2, n)
	a, c := incarnationOf(t, s, "legacy1"), incarnationOf(t, s, "legacy2")
	require.NotEmpty(t, a)
	require.NotEmpty(t, c)
	require.NotEqual(t, a, c)
	require.Equal(t, current.GetSpec().GetIncarnation(), incarnationOf(t, s, "alice@example.com"), "a user with one keeps it")

	n, errs = s.AssignMissingIncarnations(ctx)
	require.Empty(t, errs)
	require.Zero(t, n, "a second run changes nothing")
	require.Equal(t, a, incarnationOf(t, s, "legacy1"))
}

func TestLegacyUserGetsIncarnationOnUpdate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, b, _ := newServices(t)
	item, err := MarshalUser(validUser())
	require.NoError(t, err)
	_, err = b.Put(ctx, item)
	require.NoError(t, err)
	out, err := s.UpdateAndSwapUser(ctx, "alice@example.com", func(*typesv1.User) error { return nil })
	require.NoError(t, err)
	require.Len(t, out.GetSpec().GetIncarnation(), 32)
}

func TestValidateUserIncarnationBound(t *testing.T) {
	t.Parallel()
	u := validUser()
	u.Spec.Incarnation = string(make([]byte, maxIncarnationLen+1))
	require.ErrorContains(t, ValidateUser(u), "incarnation is over")
}
