package services

import (
	"context"

	"github.com/gravitational/trace"
	"google.golang.org/protobuf/proto"

	"github.com/gatehouse/gatehouse/lib/services/generic"
)

// secretsOf says where a kind keeps its secrets, so that a resource read
// without secrets can be written back without wiping them, and which of its
// fields the server owns, so that no caller can set them.
type secretsOf[T generic.Resource] struct {
	// has reports whether the resource carries its secrets.
	has func(T) bool
	// copy sets dst's secrets from src.
	copy func(dst, src T)
	// fresh, if set, sets the server-owned fields of a resource about to be
	// created, whatever the caller sent.
	fresh func(T)
	// carry, if set, sets the server-owned fields of dst, about to replace
	// stored, from stored.
	carry func(dst, stored T)
}

// updateKeepingSecrets is Update, except that a resource given without its
// secrets keeps the stored ones. The stored copy lends its secrets only when
// it is at the revision the caller gives: the conditional write fails anyway
// if it changed, so secrets never come from a version the caller did not see.
func updateKeepingSecrets[T generic.Resource](ctx context.Context, svc *generic.Service[T], r T, sec secretsOf[T]) (T, error) {
	var zero T
	if !r.ProtoReflect().IsValid() {
		return zero, trace.BadParameter("missing %s", svc.Kind())
	}
	rev := r.GetMetadata().GetRevision()
	if (!sec.has(r) || sec.carry != nil) && rev != "" {
		cur, err := svc.Get(ctx, r.GetMetadata().GetName())
		if err != nil {
			return zero, trace.Wrap(err)
		}
		r = proto.Clone(r).(T)
		if cur.GetMetadata().GetRevision() == rev && !sec.has(r) && sec.has(cur) {
			sec.copy(r, cur)
		}
		if sec.carry != nil {
			sec.carry(r, cur)
		}
	}
	out, err := svc.Update(ctx, r)
	return out, trace.Wrap(err)
}

// upsertKeepingSecrets is Upsert, except that a resource given without its
// secrets keeps the stored ones, and the server-owned fields are set as for
// a create or carried over as for an update. The read and the write are tied
// by a conditional write (or a create), retried when someone else wrote
// between.
func upsertKeepingSecrets[T generic.Resource](ctx context.Context, svc *generic.Service[T], r T, sec secretsOf[T]) (T, error) {
	var zero T
	if !r.ProtoReflect().IsValid() {
		return zero, trace.BadParameter("missing %s", svc.Kind())
	}
	if sec.has(r) && sec.fresh == nil && sec.carry == nil {
		out, err := svc.Upsert(ctx, r)
		return out, trace.Wrap(err)
	}
	name := r.GetMetadata().GetName()
	for attempt := 0; attempt < generic.DefaultMaxSwapAttempts; attempt++ {
		c := proto.Clone(r).(T)
		cur, err := svc.Get(ctx, name)
		switch {
		case trace.IsNotFound(err):
			if sec.fresh != nil {
				sec.fresh(c)
			}
			out, err := svc.Create(ctx, c)
			if trace.IsAlreadyExists(err) {
				continue
			}
			return out, trace.Wrap(err)
		case err != nil:
			return zero, trace.Wrap(err)
		}
		if !sec.has(c) {
			sec.copy(c, cur)
		}
		if sec.carry != nil {
			sec.carry(c, cur)
		}
		md := c.GetMetadata()
		if md == nil {
			// Unreachable: Get succeeded, so the name was valid.
			return zero, trace.BadParameter("%s: missing metadata", svc.Kind())
		}
		md.Revision = cur.GetMetadata().GetRevision()
		out, err := svc.Update(ctx, c)
		if trace.IsCompareFailed(err) || trace.IsNotFound(err) {
			continue
		}
		return out, trace.Wrap(err)
	}
	return zero, trace.CompareFailed("%s %q: gave up after %d concurrent modifications, try again", svc.Kind(), name, generic.DefaultMaxSwapAttempts)
}

// strippedResult returns r, or err wrapped, the way every read or write of
// a kind with secrets answers: without r's secrets (strip removes them)
// unless withSecrets. Writes pass false: a write never sends back the
// secrets it stored.
func strippedResult[T proto.Message](r T, err error, withSecrets bool, strip func(T)) (T, error) {
	if err != nil {
		var zero T
		return zero, trace.Wrap(err)
	}
	return stripped(r, withSecrets, strip), nil
}

// strippedPage is strippedResult for a page of resources and the next
// page's token.
func strippedPage[T proto.Message](rs []T, next string, err error, withSecrets bool, strip func(T)) ([]T, string, error) {
	if err != nil {
		return nil, "", trace.Wrap(err)
	}
	for _, r := range rs {
		stripped(r, withSecrets, strip)
	}
	return rs, next, nil
}
