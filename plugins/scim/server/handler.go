package server

import (
	"context"
	"net/http"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/plugins/scim/patch"
	"github.com/gatehouse/gatehouse/plugins/scim/protocol"
	"github.com/gatehouse/gatehouse/plugins/scim/schema"
)

// resourceHandler serves one resource kind (Users or Groups, R being its record type) from the
// kind's adapter: its schema, its record ↔ representation mapping and its store calls. Every
// protocol rule (ETags, If-Match, read-modify-write retries, PATCH, lists) is written once, here
// and in search.go; users.go and groups.go only say what differs.
type resourceHandler[R any] struct {
	s *Server
	// rt is the kind's resource type; name ("user", "group") appears in log messages.
	rt   *schema.ResourceType
	name string
	// ops are the operation names of the kind's routes (the metrics label).
	ops resourceOps

	// The store calls (Users or Groups methods).
	create func(ctx context.Context, plugin string, rec *R) (*R, error)
	get    func(ctx context.Context, plugin, id string) (*R, error)
	lookup func(ctx context.Context, plugin, attr, value string) ([]*R, error)
	list   func(ctx context.Context, plugin, startAfterID string, limit int) ([]*R, error)
	count  func(ctx context.Context, plugin string) (int, error)
	// update writes rec, read being the stored record it was built from (as get returned it).
	update func(ctx context.Context, plugin string, read, rec *R) (*R, error)
	del    func(ctx context.Context, plugin, id string) error

	// id and revision read a record's SCIM id and backend revision (its ETag).
	id       func(*R) string
	revision func(*R) string
	// toRes builds the full SCIM representation of a record, base being the plugin's SCIM URL.
	toRes func(base string, rec *R) schema.Resource
	// render, when set, encodes a record's default-projection representation straight from the
	// record, or declines (render.go); only for a kind without complete.
	render renderFunc[*R]
	// blank is a new record before the request's fields are set on it: its defaults.
	blank func() R
	// fields reads the client-writable fields of a cleaned resource (or refuses it, 400), and
	// returns what sets them on a record: on blank for a POST, on a copy of the stored record for
	// PUT and PATCH, so that what the client cannot write (id, revision, a user's groups) stays.
	fields func(res schema.Resource) (set func(rec *R), err error)
	// identifiers are the lower-case attribute paths whose values are one line of text
	// (checkText, text.go).
	identifiers map[string]bool
	// patchActive, when set, is the fast path of a PATCH that only sets active (patchactive.go):
	// what sets active on a copy of cur, or false when only patchFull can tell the result.
	patchActive func(cur *R, active bool) (set func(*R), ok bool)
	// indexed are the attributes an equality filter is answered on by key; sortKeys the sortBy
	// attributes (lower-case paths, see sort.go).
	indexed  map[string]bool
	sortKeys map[string]sortKeyFunc[*R]
	// complete, when set, fills in what a response shows but the records do not hold (a group
	// member's display), on the resources about to be written.
	complete func(ctx context.Context, plugin string, items []schema.Resource, proj protocol.Projection) error
}

// resourceOps are the operation names of one kind's routes.
type resourceOps struct {
	list, create, get, replace, patch, del, search string
}

// routes are the kind's method tables: the collection (/Users: list, create), an item
// (/Users/{id}: get, replace, patch, delete) and its POST .search.
func (h *resourceHandler[R]) routes() resourceRoutes {
	return resourceRoutes{
		collection: routeTable{
			http.MethodGet:  {h.ops.list, h.serveList},
			http.MethodPost: {h.ops.create, h.serveCreate},
		},
		item: routeTable{
			http.MethodGet:    {h.ops.get, h.serveGet},
			http.MethodPut:    {h.ops.replace, h.serveReplace},
			http.MethodPatch:  {h.ops.patch, h.servePatch},
			http.MethodDelete: {h.ops.del, h.serveDelete},
		},
		search: routeTable{http.MethodPost: {h.ops.search, h.serveSearch}},
	}
}

// lister is what listing (search.go) needs from the kind, for one plugin.
func (h *resourceHandler[R]) lister(plugin, base string) lister[*R] {
	return lister[*R]{
		plugin:     plugin,
		rt:         h.rt,
		listFn:     h.list,
		countFn:    h.count,
		lookupFn:   h.lookup,
		sortKeys:   h.sortKeys,
		indexed:    h.indexed,
		id:         h.id,
		toResFn:    h.toRes,
		base:       base,
		render:     h.render,
		completeFn: h.complete,
	}
}

// write answers with one record: its ETag header, Location when created, and the projection the
// query asks for, completed as the kind needs.
func (h *resourceHandler[R]) write(ctx context.Context, w http.ResponseWriter, r *http.Request, req *request, rec *R, status int) error {
	proj, err := parseProjection(h.rt, r)
	if err != nil {
		return err
	}
	if h.render != nil && h.complete == nil && proj.IsDefault() {
		location := req.base + h.rt.Endpoint + "/" + h.id(rec)
		if written, err := writeRendered(w, h.render, req.base, rec, h.revision(rec), location, status); written {
			return err
		}
	}
	res := h.toRes(req.base, rec)
	if h.complete != nil {
		if err := h.complete(ctx, req.plugin, []schema.Resource{res}, proj); err != nil {
			return err
		}
	}
	return writeProjected(w, h.rt, res, proj, h.revision(rec), status)
}

func (h *resourceHandler[R]) serveList(ctx context.Context, w http.ResponseWriter, r *http.Request, req *request) error {
	return serveList(ctx, h.s, w, protocol.Query(r.URL), h.lister(req.plugin, req.base))
}

func (h *resourceHandler[R]) serveSearch(ctx context.Context, w http.ResponseWriter, r *http.Request, req *request) error {
	q, err := readSearch(w, r)
	if err != nil {
		return err
	}
	return serveList(ctx, h.s, w, q, h.lister(req.plugin, req.base))
}

func (h *resourceHandler[R]) serveGet(ctx context.Context, w http.ResponseWriter, r *http.Request, req *request) error {
	rec, err := h.get(ctx, req.plugin, req.id)
	if err != nil {
		return trace.Wrap(err)
	}
	rev := h.revision(rec)
	if inm := r.Header.Get("If-None-Match"); inm != "" && rev != "" && etagMatches(inm, rev) {
		return notModified(w, rev)
	}
	return h.write(ctx, w, r, req, rec, http.StatusOK)
}

// readResource reads and cleans the body of a POST or PUT, and reads its fields. It returns the
// cleaned resource too, for checkText.
func (h *resourceHandler[R]) readResource(w http.ResponseWriter, r *http.Request) (func(*R), schema.Resource, error) {
	body, err := protocol.ReadBody(w, r)
	if err != nil {
		return nil, nil, err
	}
	res, err := decodeRequest(h.rt, body)
	if err != nil {
		return nil, nil, err
	}
	set, err := h.fields(res)
	return set, res, err
}

func (h *resourceHandler[R]) serveCreate(ctx context.Context, w http.ResponseWriter, r *http.Request, req *request) error {
	set, res, err := h.readResource(w, r)
	if err != nil {
		return err
	}
	if err := h.checkText(req.base, nil, res); err != nil {
		return err
	}
	rec := h.blank()
	set(&rec)
	out, err := h.create(ctx, req.plugin, &rec)
	if err != nil {
		return trace.Wrap(err)
	}
	return h.write(ctx, w, r, req, out, http.StatusCreated)
}

// serveReplace is PUT: the body replaces every client-writable attribute (what the kind's fields
// say). Read-only attributes in it (id, meta, a user's groups, as Okta echoes them) are ignored.
func (h *resourceHandler[R]) serveReplace(ctx context.Context, w http.ResponseWriter, r *http.Request, req *request) error {
	set, res, err := h.readResource(w, r)
	if err != nil {
		return err
	}
	return h.readModifyWrite(ctx, w, r, req, func(cur *R) (func(*R), error) {
		if err := h.checkText(req.base, cur, res); err != nil {
			return nil, err
		}
		return set, nil
	})
}

// servePatch is PATCH: the operations are applied to the record's full representation, and the
// result is stored like a PUT of it (Okta's path-less {"active": false} deactivates a user; its
// membership shapes and path-less rename apply to a group).
func (h *resourceHandler[R]) servePatch(ctx context.Context, w http.ResponseWriter, r *http.Request, req *request) error {
	body, err := protocol.ReadBody(w, r)
	if err != nil {
		return err
	}
	preq, err := patch.Parse(body)
	if err != nil {
		return err
	}
	full := func(cur *R) (func(*R), error) { return h.patchFull(req.base, cur, preq.Operations) }
	mutate := full
	if active, ok := activeOnly(preq.Operations); ok && h.patchActive != nil {
		mutate = func(cur *R) (func(*R), error) {
			if set, ok := h.patchActive(cur, active); ok {
				return set, nil
			}
			return full(cur)
		}
	}
	return h.readModifyWrite(ctx, w, r, req, mutate)
}

// patchFull applies ops to the full representation of cur and returns what sets the resulting
// fields on a copy of cur.
func (h *resourceHandler[R]) patchFull(base string, cur *R, ops []patch.Operation) (func(*R), error) {
	// toRes builds a new representation on every call: the patch may work on it in place.
	patched, err := patch.ApplyTo(h.rt, h.toRes(base, cur), ops)
	if err != nil {
		return nil, err
	}
	if h.rt == schema.UserResourceType {
		schema.Delete(patched, "password")
	}
	h.rt.StripReadOnly(patched)
	if err := h.checkText(base, cur, patched); err != nil {
		return nil, err
	}
	return h.fields(patched)
}

// readModifyWrite is the loop of PUT and PATCH: mutate says, from the stored record, which fields
// to set on a copy of it. With If-Match, a version mismatch (at the read or at the conditional
// write) is 412. Without it, a lost race re-reads and re-applies, up to UpdateRetries times: no
// update is lost and none overwrites a newer one blindly.
func (h *resourceHandler[R]) readModifyWrite(ctx context.Context, w http.ResponseWriter, r *http.Request, req *request,
	mutate func(cur *R) (set func(*R), err error),
) error {
	ifMatch := r.Header.Get("If-Match")
	for attempt := 0; ; attempt++ {
		cur, err := h.get(ctx, req.plugin, req.id)
		if err != nil {
			return trace.Wrap(err)
		}
		if ifMatch != "" && !etagMatches(ifMatch, h.revision(cur)) {
			return preconditionFailed()
		}
		set, err := mutate(cur)
		if err != nil {
			return err
		}
		next := *cur
		set(&next)
		out, err := h.update(ctx, req.plugin, cur, &next)
		switch {
		case err == nil:
			return h.write(ctx, w, r, req, out, http.StatusOK)
		case !trace.IsCompareFailed(err):
			return trace.Wrap(err)
		case ifMatch != "":
			return preconditionFailed()
		case attempt+1 >= h.s.cfg.UpdateRetries:
			h.s.log.WarnContext(ctx, "SCIM "+h.name+" update kept losing races.", "plugin", req.plugin, "id", req.id, "attempts", attempt+1)
			return contended()
		}
	}
}

func (h *resourceHandler[R]) serveDelete(ctx context.Context, w http.ResponseWriter, r *http.Request, req *request) error {
	if ifMatch := r.Header.Get("If-Match"); ifMatch != "" {
		cur, err := h.get(ctx, req.plugin, req.id)
		if err != nil {
			return trace.Wrap(err)
		}
		if !etagMatches(ifMatch, h.revision(cur)) {
			return preconditionFailed()
		}
	}
	if err := h.del(ctx, req.plugin, req.id); err != nil {
		return trace.Wrap(err)
	}
	return noContent(w)
}
