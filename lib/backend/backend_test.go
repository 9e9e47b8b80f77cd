package backend_test

import (
	"context"
	"errors"
	"testing"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/backend"
)

func TestCompareFailed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		err     error
		wantMsg string
	}{
		{name: "default message", err: backend.CompareFailed(""), wantMsg: "the item was changed or removed since it was read"},
		{
			name:    "formatted",
			err:     backend.CompareFailed("condition on key %q does not hold: %s", "a/b", backend.ErrIncorrectRevision),
			wantMsg: `condition on key "a/b" does not hold: the item was changed or removed since it was read`,
		},
		{name: "wrapped by a caller", err: trace.Wrap(backend.CompareFailed("")), wantMsg: "the item was changed or removed since it was read"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.True(t, trace.IsCompareFailed(tc.err))
			require.ErrorIs(t, tc.err, backend.ErrIncorrectRevision)
			require.Equal(t, tc.wantMsg, tc.err.Error())
			require.False(t, trace.IsNotFound(tc.err))
		})
	}
	// Other CompareFailed errors are not the sentinel.
	require.False(t, errors.Is(trace.CompareFailed("other"), backend.ErrIncorrectRevision))
}

func TestPrepareWatch(t *testing.T) {
	t.Parallel()
	prefix := backend.Key("users/")
	got, err := backend.PrepareWatch(t.Context(), backend.Watch{Name: "w", Prefixes: []backend.Key{prefix, {}}})
	require.NoError(t, err)
	require.Equal(t, backend.DefaultWatchQueueSize, got.QueueSize)
	require.Equal(t, []backend.Key{backend.Key("users/"), {}}, got.Prefixes, "the empty prefix is accepted")
	prefix[0] = 'X'
	require.Equal(t, backend.Key("users/"), got.Prefixes[0], "prefixes are copied")

	got, err = backend.PrepareWatch(t.Context(), backend.Watch{Name: "w", QueueSize: 3})
	require.NoError(t, err)
	require.Equal(t, 3, got.QueueSize)
	require.Empty(t, got.Prefixes)

	for _, tc := range []struct {
		name string
		w    backend.Watch
	}{
		{name: "negative queue", w: backend.Watch{Name: "w", QueueSize: -1}},
		{name: "oversized prefix", w: backend.Watch{Name: "w", Prefixes: []backend.Key{make(backend.Key, backend.MaxKeySize+1)}}},
	} {
		_, err := backend.PrepareWatch(t.Context(), tc.w)
		require.True(t, trace.IsBadParameter(err), "%s: %v", tc.name, err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = backend.PrepareWatch(ctx, backend.Watch{Name: "w"})
	require.ErrorIs(t, err, context.Canceled)
}
