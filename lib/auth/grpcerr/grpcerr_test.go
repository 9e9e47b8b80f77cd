package grpcerr

import (
	"errors"
	"testing"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		code codes.Code
		is   func(error) bool
	}{
		{"not found", trace.NotFound(`user "alice" not found`), codes.NotFound, trace.IsNotFound},
		{"already exists", trace.AlreadyExists("x"), codes.AlreadyExists, trace.IsAlreadyExists},
		{"access denied", trace.AccessDenied("no"), codes.PermissionDenied, trace.IsAccessDenied},
		{"compare failed", trace.CompareFailed("stale"), codes.FailedPrecondition, trace.IsCompareFailed},
		{"bad parameter", trace.BadParameter("bad"), codes.InvalidArgument, trace.IsBadParameter},
		{"limit", trace.LimitExceeded("slow down"), codes.ResourceExhausted, trace.IsLimitExceeded},
		{"wrapped", trace.Wrap(trace.NotFound("gone")), codes.NotFound, trace.IsNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := ToGRPC(tc.err)
			require.Equal(t, tc.code, status.Code(g))
			back := FromGRPC(g)
			require.True(t, tc.is(back), "kind lost: %v", back)
			require.Equal(t, trace.UserMessage(tc.err), trace.UserMessage(back))
		})
	}
	require.Equal(t, codes.Unknown, status.Code(ToGRPC(errors.New("boom"))))
	require.NoError(t, ToGRPC(nil))
	require.NoError(t, FromGRPC(nil))
}
