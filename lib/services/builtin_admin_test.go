package services

import (
	"context"
	"testing"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/backend/memory"
)

func newBuiltinAdminService(t *testing.T) (*BuiltinAdminService, backend.Backend) {
	t.Helper()
	b, err := memory.New(context.Background(), memory.Config{Clock: clockwork.NewFakeClock()})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	s, err := NewBuiltinAdminService(Config{Backend: b})
	require.NoError(t, err)
	return s, b
}

func TestBuiltinAdminIncarnation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newBuiltinAdminService(t)

	_, err := s.GetBuiltinAdminIncarnation(ctx)
	require.True(t, trace.IsNotFound(err), "%v", err)

	created, how, err := s.EnsureBuiltinAdmin(ctx)
	require.NoError(t, err)
	require.Equal(t, BuiltinAdminCreated, how)
	require.Len(t, created.Incarnation, 32)
	require.NotEmpty(t, created.Revision)

	kept, how, err := s.EnsureBuiltinAdmin(ctx)
	require.NoError(t, err)
	require.Equal(t, BuiltinAdminKept, how)
	require.Equal(t, created.Incarnation, kept.Incarnation, "a restart keeps the incarnation")

	rotated, err := s.RotateBuiltinAdminIncarnation(ctx)
	require.NoError(t, err)
	require.NotEqual(t, created.Incarnation, rotated.Incarnation)
	got, err := s.GetBuiltinAdminIncarnation(ctx)
	require.NoError(t, err)
	require.Equal(t, rotated.Incarnation, got)
}

func TestBuiltinAdminUnreadableState(t *testing.T) {
	t.Parallel()
	for _, value := range []string{`not json`, `{}`, `{"incarnation":""}`, `{"incarnation":7}`} {
		t.Run(value, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s, b := newBuiltinAdminService(t)
			_, err := b.Put(ctx, backend.Item{Key: BuiltinAdminKey(), Value: []byte(value)})
			require.NoError(t, err)

			// Nothing matches an unreadable state: reads fail.
			_, err = s.GetBuiltinAdminIncarnation(ctx)
			require.True(t, trace.IsBadParameter(err), "%v", err)

			// Startup replaces it with a fresh one.
			st, how, err := s.EnsureBuiltinAdmin(ctx)
			require.NoError(t, err)
			require.Equal(t, BuiltinAdminReplaced, how)
			got, err := s.GetBuiltinAdminIncarnation(ctx)
			require.NoError(t, err)
			require.Equal(t, st.Incarnation, got)
		})
	}

	// A later version's extra fields do not make the state unreadable.
	ctx := context.Background()
	s, b := newBuiltinAdminService(t)
	_, err := b.Put(ctx, backend.Item{Key: BuiltinAdminKey(), Value: []byte(`{"incarnation":"abc","later":true}`)})
	require.NoError(t, err)
	_, how, err := s.EnsureBuiltinAdmin(ctx)
	require.NoError(t, err)
	require.Equal(t, BuiltinAdminKept, how)
}
