// Package grpcerr translates between trace errors and gRPC statuses, once
// per edge: the auth server's interceptor calls ToGRPC on every handler
// error, and the client's interceptor calls FromGRPC, so that both sides
// test errors with trace.IsNotFound and friends.
//
// github.com/gravitational/trace dropped its trail package (which did this)
// after v1.1; this is the small part of it Gatehouse needs. Only the error's
// user message crosses the wire, never its stack or wrapped causes.
package grpcerr

import (
	"context"
	"errors"

	"github.com/gravitational/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ToGRPC returns a gRPC status error for err, keeping its kind and message.
func ToGRPC(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok && !isTrace(err) {
		return err
	}
	if errors.Is(err, context.Canceled) {
		return status.Error(codes.Canceled, "request canceled")
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return status.Error(codes.DeadlineExceeded, "request deadline exceeded")
	}
	msg := trace.UserMessage(err)
	var code codes.Code
	switch {
	case trace.IsNotFound(err):
		code = codes.NotFound
	case trace.IsAlreadyExists(err):
		code = codes.AlreadyExists
	case trace.IsAccessDenied(err):
		code = codes.PermissionDenied
	case trace.IsCompareFailed(err):
		code = codes.FailedPrecondition
	case trace.IsBadParameter(err):
		code = codes.InvalidArgument
	case trace.IsLimitExceeded(err):
		code = codes.ResourceExhausted
	case trace.IsNotImplemented(err):
		code = codes.Unimplemented
	case trace.IsConnectionProblem(err):
		code = codes.Unavailable
	default:
		code = codes.Unknown
	}
	return status.Error(code, msg)
}

// isTrace reports whether err carries a trace kind (a trace error whose
// status conversion would otherwise lose it).
func isTrace(err error) bool {
	return trace.IsNotFound(err) || trace.IsAlreadyExists(err) || trace.IsAccessDenied(err) ||
		trace.IsCompareFailed(err) || trace.IsBadParameter(err) || trace.IsLimitExceeded(err) ||
		trace.IsNotImplemented(err) || trace.IsConnectionProblem(err)
}

// FromGRPC returns a trace error for a gRPC status error, keeping its kind
// and message. Other errors are returned wrapped.
func FromGRPC(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return trace.Wrap(err)
	}
	msg := st.Message()
	switch st.Code() {
	case codes.NotFound:
		return trace.NotFound("%s", msg)
	case codes.AlreadyExists:
		return trace.AlreadyExists("%s", msg)
	case codes.PermissionDenied, codes.Unauthenticated:
		return trace.AccessDenied("%s", msg)
	case codes.FailedPrecondition:
		return trace.CompareFailed("%s", msg)
	case codes.InvalidArgument, codes.OutOfRange:
		return trace.BadParameter("%s", msg)
	case codes.ResourceExhausted:
		return trace.LimitExceeded("%s", msg)
	case codes.Unimplemented:
		return trace.NotImplemented("%s", msg)
	case codes.Unavailable:
		return trace.ConnectionProblem(err, "%s", msg)
	default:
		return trace.Wrap(err)
	}
}
