package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/scim/scimrecord"
	"github.com/gatehouse/gatehouse/plugins/scim/filter"
	"github.com/gatehouse/gatehouse/plugins/scim/protocol"
	"github.com/gatehouse/gatehouse/plugins/scim/schema"
	"github.com/gatehouse/gatehouse/plugins/scim/scimerr"
)

// SearchRequestSchema is the schema URN of a POST .search body (RFC 7644 §3.4.3).
const SearchRequestSchema = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"

// searchPath is the last path segment of a search: /Users/.search, /Groups/.search, /.search.
const searchPath = ".search"

// searchParams maps the SearchRequest attributes (lower-cased: SCIM attribute names are
// case-insensitive) to the query parameter of the GET form they stand for.
var searchParams = map[string]string{
	"filter":             "filter",
	"sortby":             "sortBy",
	"sortorder":          "sortOrder",
	"startindex":         "startIndex",
	"count":              "count",
	"attributes":         "attributes",
	"excludedattributes": "excludedAttributes",
}

// parseSearchRequest reads a SearchRequest body into the query parameters of the equivalent GET,
// so that a POST search is answered by exactly the code that answers the query form.
//
// The structure must be the RFC's: one JSON object, schemas exactly [SearchRequest], no other
// members than the seven parameters (each at most once, ignoring case), else 400 invalidSyntax.
// A parameter of the wrong JSON type (a string count, attributes not a list of strings) is 400
// invalidValue, as a non-integer count is in the query form. null is the same as absent.
func parseSearchRequest(body []byte) (url.Values, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var m map[string]json.RawMessage
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, scimerr.BadRequest(scimerr.InvalidSyntax, "the body is not a SearchRequest JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, scimerr.BadRequest(scimerr.InvalidSyntax, "the body has data after the JSON object")
	}
	q := url.Values{}
	hasSchemas := false
	seen := make(map[string]bool, len(m))
	for k, raw := range m {
		lk := strings.ToLower(k)
		if seen[lk] {
			return nil, scimerr.BadRequest(scimerr.InvalidSyntax, "SearchRequest attribute %q appears twice", truncate(k, 64))
		}
		seen[lk] = true
		if lk == "schemas" {
			var schemas []string
			if err := json.Unmarshal(raw, &schemas); err != nil || len(schemas) != 1 || !strings.EqualFold(schemas[0], SearchRequestSchema) {
				return nil, scimerr.BadRequest(scimerr.InvalidSyntax, "schemas must be [%q]", SearchRequestSchema)
			}
			hasSchemas = true
			continue
		}
		param, ok := searchParams[lk]
		if !ok {
			return nil, scimerr.BadRequest(scimerr.InvalidSyntax, "%q is not a SearchRequest attribute", truncate(k, 64))
		}
		if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
			continue
		}
		v, err := searchValue(lk, raw)
		if err != nil {
			return nil, err
		}
		q.Set(param, v)
	}
	if !hasSchemas {
		return nil, scimerr.BadRequest(scimerr.InvalidSyntax, "schemas must be [%q]", SearchRequestSchema)
	}
	return q, nil
}

// searchValue turns one SearchRequest parameter into its query-string form.
func searchValue(name string, raw json.RawMessage) (string, error) {
	switch name {
	case "startindex", "count":
		// Decoded as any: a json.Number target would also take a quoted "10".
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var v any
		err := dec.Decode(&v)
		n, isNum := v.(json.Number)
		if err != nil || !isNum {
			return "", scimerr.BadRequest(scimerr.InvalidValue, "%s must be an integer", searchParams[name])
		}
		// ParsePage refuses what is not an integer ("1.5", "1e3").
		return n.String(), nil
	case "attributes", "excludedattributes":
		var list []string
		if err := json.Unmarshal(raw, &list); err != nil {
			return "", scimerr.BadRequest(scimerr.InvalidValue, "%s must be a list of attribute names", searchParams[name])
		}
		for _, a := range list {
			if strings.Contains(a, ",") {
				return "", scimerr.BadRequest(scimerr.InvalidValue, "%q is not an attribute name", truncate(a, 256))
			}
		}
		return strings.Join(list, ","), nil
	default:
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", scimerr.BadRequest(scimerr.InvalidValue, "%s must be a string", searchParams[name])
		}
		return s, nil
	}
}

// readSearch reads and parses the body of a POST .search.
func readSearch(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	body, err := protocol.ReadBody(w, r)
	if err != nil {
		return nil, err
	}
	return parseSearchRequest(body)
}

// searchAll is POST /.search: a search over Users and Groups together (RFC 7644 §3.4.3). Each
// resource comes with its own schemas and meta.resourceType, and the filter, attributes and
// excludedAttributes apply to each type with that type's schema (a filter on userName matches no
// Group). The result list is every matching User, then every matching Group, each in id order,
// paged by startIndex/count across the whole list (totalResults counts both); with sortBy, Users
// and Groups are sorted together (sort.go: a type without the attribute sorts as missing, and
// Users come before Groups between equal values).
func (s *Server) searchAll(ctx context.Context, w http.ResponseWriter, r *http.Request, req *request) error {
	q, err := readSearch(w, r)
	if err != nil {
		return err
	}
	page, err := protocol.ParsePage(q)
	if err != nil {
		return err
	}
	spec, err := parseSort(q, userRT, groupRT)
	if err != nil {
		return err
	}
	users, groups := s.users.lister(req.plugin, req.base), s.groups.lister(req.plugin, req.base)
	uproj, err := protocol.ParseProjection(userRT, q)
	if err != nil {
		return err
	}
	gproj, err := protocol.ParseProjection(groupRT, q)
	if err != nil {
		return err
	}
	var uf, gf *filter.Filter
	if raw := q.Get("filter"); strings.TrimSpace(raw) != "" {
		if uf, err = parseFilter(raw, userRT); err != nil {
			return err
		}
		if gf, err = parseFilter(raw, groupRT); err != nil {
			return err
		}
	}
	var (
		total     int
		resources []schema.Resource
	)
	if spec.attr != "" {
		total, resources, err = sortedSearchAll(ctx, s, users, groups, uf, gf, spec, page)
	} else {
		total, resources, err = searchAllByID(ctx, users, groups, uf, gf, page)
	}
	if err != nil {
		return err
	}
	// Groups on the page get their members' displays, as on /Groups.
	var groupItems []schema.Resource
	for _, res := range resources {
		if isGroup(res) {
			groupItems = append(groupItems, res)
		}
	}
	if err := groups.complete(ctx, groupItems, gproj); err != nil {
		return err
	}
	out := make([]map[string]any, 0, len(resources))
	for _, res := range resources {
		if isGroup(res) {
			out = append(out, gproj.Apply(groupRT, res))
		} else {
			out = append(out, uproj.Apply(userRT, res))
		}
	}
	return writeJSON(w, http.StatusOK, protocol.NewListResponse(total, page, out))
}

func isGroup(res schema.Resource) bool {
	m, _ := res["meta"].(map[string]any)
	return m["resourceType"] == "Group"
}

// searchAllByID pages through Users then Groups: the Users' page first, then as many Groups as
// the page has room for, starting where the Users left off.
func searchAllByID(ctx context.Context, users lister[*scimrecord.UserRecord], groups lister[*scimrecord.GroupRecord], uf, gf *filter.Filter, page protocol.Page) (int, []schema.Resource, error) {
	utotal, uitems, err := query(ctx, users, uf, page)
	if err != nil {
		return 0, nil, trace.Wrap(err)
	}
	gpage := protocol.Page{StartIndex: max(1, page.StartIndex-utotal), Count: page.Count - len(uitems)}
	gtotal, gitems, err := query(ctx, groups, gf, gpage)
	if err != nil {
		return 0, nil, trace.Wrap(err)
	}
	return utotal + gtotal, append(uitems, gitems...), nil
}

// sortedSearchAll sorts the matching Users and Groups together.
func sortedSearchAll(ctx context.Context, s *Server, users lister[*scimrecord.UserRecord], groups lister[*scimrecord.GroupRecord], uf, gf *filter.Filter, spec sortSpec, page protocol.Page) (int, []schema.Resource, error) {
	k := snapshotKey{plugin: users.plugin, filter: uf.String(), attr: spec.attr, desc: spec.desc}
	entries, err := s.sortedEntries(ctx, k, func() ([]sortEntry, error) {
		entries, err := collectSorted(ctx, users, uf, spec.attr, 0, s.cfg.MaxSortResults, nil)
		if err != nil {
			return nil, err
		}
		return collectSorted(ctx, groups, gf, spec.attr, 1, s.cfg.MaxSortResults, entries)
	})
	if err != nil {
		return 0, nil, err
	}
	var out []schema.Resource
	for _, e := range protocol.Slice(entries, page) {
		var (
			res schema.Resource
			ok  bool
		)
		if e.kind == 0 {
			res, ok, err = fetchSorted(ctx, users, uf, e.id)
		} else {
			res, ok, err = fetchSorted(ctx, groups, gf, e.id)
		}
		if err != nil {
			return 0, nil, err
		}
		if ok {
			out = append(out, res)
		}
	}
	return len(entries), out, nil
}
