package backend_test

import (
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
