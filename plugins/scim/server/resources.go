package server

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/canonical"
	"github.com/gatehouse/gatehouse/plugins/scim/filter"
	"github.com/gatehouse/gatehouse/plugins/scim/protocol"
	"github.com/gatehouse/gatehouse/plugins/scim/schema"
	"github.com/gatehouse/gatehouse/plugins/scim/scimerr"
)

// scanBatch is how many records one ListUsers/ListGroups call asks for while scanning.
const scanBatch = 500

// lister is what listing needs from one resource kind.
type lister[T any] struct {
	plugin string
	rt     *schema.ResourceType
	// The kind's store calls and mapping, unbound: the methods below pass plugin and base, so
	// that making a lister, on every list request, allocates no closures.
	listFn   func(ctx context.Context, plugin, after string, limit int) ([]T, error)
	countFn  func(ctx context.Context, plugin string) (int, error)
	lookupFn func(ctx context.Context, plugin, attr, value string) ([]T, error)
	indexed  map[string]bool
	// sortKeys are the attributes sortBy accepts (lower-case paths, see sort.go).
	sortKeys map[string]sortKeyFunc[T]
	id       func(T) string
	toResFn  func(base string, rec T) schema.Resource
	// base is the plugin's SCIM URL; render, when set, encodes a record's default-projection
	// representation from base and the record, or declines (render.go).
	base   string
	render renderFunc[T]
	// completeFn, when set, fills in what a response shows but the records do not hold (a
	// group member's display), on the resources of the page only, once they are picked.
	completeFn func(ctx context.Context, plugin string, items []schema.Resource, proj protocol.Projection) error
}

func (l lister[T]) list(ctx context.Context, after string, limit int) ([]T, error) {
	return l.listFn(ctx, l.plugin, after, limit)
}

func (l lister[T]) count(ctx context.Context) (int, error) { return l.countFn(ctx, l.plugin) }

// lookup returns every record whose indexed attr equals value (none: an empty list).
func (l lister[T]) lookup(ctx context.Context, attr, value string) ([]T, error) {
	return l.lookupFn(ctx, l.plugin, attr, value)
}

func (l lister[T]) toRes(rec T) schema.Resource { return l.toResFn(l.base, rec) }

// complete runs completeFn, if the kind has one, on items.
func (l lister[T]) complete(ctx context.Context, items []schema.Resource, proj protocol.Projection) error {
	if l.completeFn == nil || len(items) == 0 {
		return nil
	}
	return l.completeFn(ctx, l.plugin, items, proj)
}

// serveList answers a list/query request (RFC 7644 §3.4.2), from the query string of a GET or
// the SearchRequest of a POST .search (§3.4.3), which are given the same url.Values form: a
// filter that is one equality on an indexed attribute is answered by key; any other filter pages
// through every record in id order and evaluates it; no filter is counted by the store and paged
// by id. With sortBy, the matches are sorted first (sort.go).
func serveList[T any](ctx context.Context, s *Server, w http.ResponseWriter, q url.Values, l lister[T]) error {
	page, err := protocol.ParsePage(q)
	if err != nil {
		return err
	}
	proj, err := protocol.ParseProjection(l.rt, q)
	if err != nil {
		return err
	}
	spec, err := parseSort(q, l.rt)
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
		recs, lookupErr := l.lookup(ctx, attr, value)
		if lookupErr != nil {
			return trace.Wrap(lookupErr)
		}
		// Okta's lookup: no sortBy, no complete, the default projection.
		if l.render != nil && l.completeFn == nil && spec.attr == "" && proj.IsDefault() {
			if written, err := writeRenderedList(w, l.render, l.base, len(recs), page, protocol.Slice(recs, page)); written {
				return err
			}
		}
		total, items = pageIndexed(l, recs, nil, spec, page)
	} else {
		if strings.TrimSpace(raw) != "" {
			if f, err = parseFilter(raw, l.rt); err != nil {
				return err
			}
		}
		if spec.attr != "" {
			total, items, err = sortedQuery(ctx, s, l, f, spec, page)
		} else {
			total, items, err = query(ctx, l, f, page)
		}
	}
	if err != nil {
		return err
	}
	if err := l.complete(ctx, items, proj); err != nil {
		return err
	}
	out := make([]map[string]any, 0, len(items))
	for _, res := range items {
		out = append(out, proj.Apply(l.rt, res))
	}
	return writeJSON(w, http.StatusOK, protocol.NewListResponse(total, page, out))
}

// sortedQuery answers a sorted query over one kind.
func sortedQuery[T any](ctx context.Context, s *Server, l lister[T], f *filter.Filter, spec sortSpec, page protocol.Page) (int, []schema.Resource, error) {
	if attr, value, ok := filter.EqualityLookup(f); ok && l.indexed[attr] {
		return lookupIndexed(ctx, l, attr, value, f, spec, page)
	}
	k := snapshotKey{plugin: l.plugin, scope: l.rt.Name, filter: f.String(), attr: spec.attr, desc: spec.desc}
	entries, err := s.sortedEntries(ctx, k, func() ([]sortEntry, error) {
		return collectSorted(ctx, l, f, spec.attr, 0, s.cfg.MaxSortResults, nil)
	})
	if err != nil {
		return 0, nil, err
	}
	var out []schema.Resource
	for _, e := range protocol.Slice(entries, page) {
		res, ok, err := fetchSorted(ctx, l, f, e.id)
		if err != nil {
			return 0, nil, err
		}
		if ok {
			out = append(out, res)
		}
	}
	return len(entries), out, nil
}

func query[T any](ctx context.Context, l lister[T], f *filter.Filter, page protocol.Page) (int, []schema.Resource, error) {
	offset, count := page.Offset(), page.Count
	if f != nil {
		if attr, value, ok := filter.EqualityLookup(f); ok && l.indexed[attr] {
			return lookupIndexed(ctx, l, attr, value, f, sortSpec{}, page)
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
	// The total may lag behind the records: a count is cached for a few
	// seconds and another server's creates are not in it yet. The page is
	// therefore what the scan finds, not what the total says: a page past a
	// total that is too low must still return the records there, or a client
	// paging to the end (Okta's import) would miss them.
	if count == 0 {
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

// lookupIndexed answers a filter that is one equality on an indexed attribute by key: every record
// the index names (in id order; an externalId may name several), those matching f, sorted by spec
// when it names an attribute, then paged.
func lookupIndexed[T any](ctx context.Context, l lister[T], attr, value string, f *filter.Filter, spec sortSpec, page protocol.Page) (int, []schema.Resource, error) {
	items, err := l.lookup(ctx, attr, value)
	if err != nil {
		return 0, nil, trace.Wrap(err)
	}
	total, out := pageIndexed(l, items, f, spec, page)
	return total, out, nil
}

// pageIndexed is lookupIndexed once the records are read.
func pageIndexed[T any](l lister[T], items []T, f *filter.Filter, spec sortSpec, page protocol.Page) (int, []schema.Resource) {
	type match struct {
		res   schema.Resource
		entry sortEntry
	}
	var matches []match
	key := l.sortKeys[spec.attr]
	for _, item := range items {
		res := l.toRes(item)
		if f != nil && !f.Match(res) {
			continue
		}
		e := sortEntry{id: l.id(item)}
		if key != nil {
			e.v = key(item)
		}
		matches = append(matches, match{res, e})
	}
	if spec.attr != "" {
		slices.SortStableFunc(matches, func(a, b match) int {
			if spec.desc {
				return compareEntries(b.entry, a.entry)
			}
			return compareEntries(a.entry, b.entry)
		})
	}
	var out []schema.Resource
	for _, m := range protocol.Slice(matches, page) {
		out = append(out, m.res)
	}
	return len(matches), out
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
	q := protocol.Query(r.URL)
	if q.Get("attributes") == "" && q.Get("excludedAttributes") == "" {
		return protocol.Projection{}, nil
	}
	return protocol.ParseProjection(rt, q)
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	protocol.SetNoStore(w.Header())
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

// parseFilter parses a query's filter for rt, comparing userName in its canonical form (NFKC plus
// case folding), the form the userName index is keyed by and every account name is compared in:
// `userName eq "ＡＤＡ@example.com"` then finds the same account whether the index answers it
// alone or a scan evaluates it inside a larger filter.
func parseFilter(raw string, rt *schema.ResourceType) (*filter.Filter, error) {
	return filter.Parse(raw, rt, filter.FoldUserName(canonical.Username))
}
