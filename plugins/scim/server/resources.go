package server

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/plugins/scim/filter"
	"github.com/gatehouse/gatehouse/plugins/scim/protocol"
	"github.com/gatehouse/gatehouse/plugins/scim/schema"
	"github.com/gatehouse/gatehouse/plugins/scim/scimerr"
)

// scanBatch is how many records one ListUsers/ListGroups call asks for while scanning.
const scanBatch = 500

// lister is what listing needs from one resource kind.
type lister[T any] struct {
	rt    *schema.ResourceType
	list  func(ctx context.Context, after string, limit int) ([]T, error)
	count func(ctx context.Context) (int, error)
	// lookup returns every record whose indexed attr equals value (none: an empty list).
	lookup  func(ctx context.Context, attr, value string) ([]T, error)
	indexed map[string]bool
	id      func(T) string
	toRes   func(T) schema.Resource
}

// serveList answers a list/query request (RFC 7644 §3.4.2): a filter that is one equality on an
// indexed attribute is answered by key; any other filter pages through every record in id order
// and evaluates it; no filter is counted by the store and paged by id.
func serveList[T any](ctx context.Context, w http.ResponseWriter, r *http.Request, l lister[T]) error {
	q := r.URL.Query()
	page, err := protocol.ParsePage(q)
	if err != nil {
		return err
	}
	proj, err := protocol.ParseProjection(l.rt, q)
	if err != nil {
		return err
	}
	var (
		f     *filter.Filter
		total int
		items []schema.Resource
	)
	raw := q.Get("filter")
	if attr, value, ok := quickEquality(raw, l.indexed); ok {
		total, items, err = lookupOne(ctx, l, attr, value, nil, page)
	} else {
		if strings.TrimSpace(raw) != "" {
			if f, err = filter.Parse(raw, l.rt); err != nil {
				return err
			}
		}
		total, items, err = query(ctx, l, f, page)
	}
	if err != nil {
		return err
	}
	out := make([]map[string]any, 0, len(items))
	for _, res := range items {
		out = append(out, proj.Apply(l.rt, res))
	}
	return writeJSON(w, http.StatusOK, protocol.NewListResponse(total, page, out))
}

func query[T any](ctx context.Context, l lister[T], f *filter.Filter, page protocol.Page) (int, []schema.Resource, error) {
	offset, count := page.Offset(), page.Count
	if f != nil {
		if attr, value, ok := filter.EqualityLookup(f); ok && l.indexed[attr] {
			return lookupOne(ctx, l, attr, value, f, page)
		}
		total := 0
		var out []schema.Resource
		err := scan(ctx, l, "", func(item T) bool {
			res := l.toRes(item)
			if f.Match(res) {
				if total >= offset && len(out) < count {
					out = append(out, res)
				}
				total++
			}
			return true
		})
		return total, out, trace.Wrap(err)
	}
	total, err := l.count(ctx)
	if err != nil {
		return 0, nil, trace.Wrap(err)
	}
	if count == 0 || offset >= total {
		return total, nil, nil
	}
	var out []schema.Resource
	seen := 0
	err = scan(ctx, l, "", func(item T) bool {
		if seen >= offset {
			out = append(out, l.toRes(item))
		}
		seen++
		return len(out) < count
	})
	return max(total, seen), out, trace.Wrap(err)
}

// lookupOne answers an equality filter on an indexed attribute by key: usually one record, any
// number for a user's externalId (not unique), in id order like a scan. f, when set, is checked
// against each found resource too (it is the filter the equality came from).
func lookupOne[T any](ctx context.Context, l lister[T], attr, value string, f *filter.Filter, page protocol.Page) (int, []schema.Resource, error) {
	items, err := l.lookup(ctx, attr, value)
	if err != nil {
		return 0, nil, trace.Wrap(err)
	}
	total := 0
	var out []schema.Resource
	for _, item := range items {
		res := l.toRes(item)
		if f != nil && !f.Match(res) {
			continue
		}
		if total >= page.Offset() && len(out) < page.Count {
			out = append(out, res)
		}
		total++
	}
	return total, out, nil
}

// scan visits every record after `after` in id order until visit returns false.
func scan[T any](ctx context.Context, l lister[T], after string, visit func(T) bool) error {
	for {
		if err := ctx.Err(); err != nil {
			return trace.Wrap(err)
		}
		batch, err := l.list(ctx, after, scanBatch)
		if err != nil {
			return trace.Wrap(err)
		}
		for _, item := range batch {
			if !visit(item) {
				return nil
			}
		}
		if len(batch) < scanBatch {
			return nil
		}
		after = l.id(batch[len(batch)-1])
	}
}

// preconditionFailed is the answer to an If-Match that does not match.
func preconditionFailed() error {
	return scimerr.New(http.StatusPreconditionFailed, "", "the resource has changed (If-Match does not match its version)")
}

// contended is the answer when a read-modify-write without If-Match kept losing races.
func contended() error {
	e := scimerr.New(http.StatusServiceUnavailable, "", "the resource is being modified concurrently; retry")
	e.RetryAfter = time.Second
	return e
}

func parseProjection(rt *schema.ResourceType, r *http.Request) (protocol.Projection, error) {
	q := r.URL.Query()
	if q.Get("attributes") == "" && q.Get("excludedAttributes") == "" {
		return protocol.Projection{}, nil
	}
	return protocol.ParseProjection(rt, q)
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Cache-Control", "no-store")
	return trace.Wrap(protocol.WriteJSON(w, status, v))
}

// notModified answers a GET whose If-None-Match matches.
func notModified(w http.ResponseWriter, rev string) error {
	w.Header().Set("ETag", etag(rev))
	w.WriteHeader(http.StatusNotModified)
	return nil
}

func noContent(w http.ResponseWriter) error {
	w.WriteHeader(http.StatusNoContent)
	return nil
}
