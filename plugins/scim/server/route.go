package server

import (
	"context"
	"net/http"
	"strings"

	"github.com/gatehouse/gatehouse/plugins/scim/discovery"
	"github.com/gatehouse/gatehouse/plugins/scim/protocol"
	"github.com/gatehouse/gatehouse/plugins/scim/scimerr"
)

// Operation names, the "operation" label of the metrics.
const (
	opListUsers             = "list_users"
	opGetUser               = "get_user"
	opCreateUser            = "create_user"
	opReplaceUser           = "replace_user"
	opPatchUser             = "patch_user"
	opDeleteUser            = "delete_user"
	opListGroups            = "list_groups"
	opGetGroup              = "get_group"
	opCreateGroup           = "create_group"
	opReplaceGroup          = "replace_group"
	opPatchGroup            = "patch_group"
	opDeleteGroup           = "delete_group"
	opSearchUsers           = "search_users"
	opSearchGroups          = "search_groups"
	opSearch                = "search"
	opServiceProviderConfig = "service_provider_config"
	opResourceTypes         = "resource_types"
	opSchemas               = "schemas"
	opUnknown               = "unknown"
)

// writeOps are the operations that may write; each drops the plugin's sorted-list snapshots.
var writeOps = map[string]bool{
	opCreateUser: true, opReplaceUser: true, opPatchUser: true, opDeleteUser: true,
	opCreateGroup: true, opReplaceGroup: true, opPatchGroup: true, opDeleteGroup: true,
}

type handlerFunc = func(ctx context.Context, w http.ResponseWriter, r *http.Request, req *request) error

// routeEntry is what one method on one path does.
type routeEntry struct {
	op string
	h  handlerFunc
}

// routeTable maps the methods served on a path to their entries.
type routeTable map[string]routeEntry

// routeTables are the method tables of every path shape, built once by New rather than on every
// request.
type routeTables struct {
	users, groups                                 resourceRoutes
	serviceProviderConfig, resourceTypes, schemas routeTable
	// search is POST /.search.
	search routeTable
}

// resourceRoutes are the tables of one resource kind: /Users, /Users/{id} and /Users/.search.
type resourceRoutes struct {
	collection, item, search routeTable
}

// forID picks the table of a path under the kind: the collection when there is no id.
func (rr resourceRoutes) forID(id string) routeTable {
	switch id {
	case "":
		return rr.collection
	case searchPath:
		// ".search" is never a resource id: ids are server-assigned UUIDs.
		return rr.search
	default:
		return rr.item
	}
}

func newRouteTables(s *Server) routeTables {
	resourceTypes := discoveryEndpoint(discovery.ResourceTypes, discovery.ResourceTypeByID, "resource type", 128)
	schemas := discoveryEndpoint(discovery.Schemas, discovery.SchemaByID, "schema", 256)
	return routeTables{
		users:                 s.users.routes(),
		groups:                s.groups.routes(),
		search:                routeTable{http.MethodPost: {opSearch, s.searchAll}},
		serviceProviderConfig: routeTable{http.MethodGet: {opServiceProviderConfig, serviceProviderConfig}},
		resourceTypes:         routeTable{http.MethodGet: {opResourceTypes, resourceTypes}},
		schemas:               routeTable{http.MethodGet: {opSchemas, schemas}},
	}
}

// route reads the plugin, the operation and the resource id from the path. The request it returns
// always carries the plugin and an operation name (opUnknown when the path or method is not
// served, with the error to answer once the caller is authenticated).
func (s *Server) route(r *http.Request) (*request, error) {
	req := new(request)
	return req, s.routeInto(r, req)
}

// routeInto is route into the caller's req (ServeHTTP's exchange), which it overwrites.
func (s *Server) routeInto(r *http.Request, req *request) error {
	*req = request{op: opUnknown}
	rest, ok := strings.CutPrefix(r.URL.Path, MountPrefix)
	if !ok {
		return scimerr.NotFound("no such SCIM endpoint")
	}
	rest = strings.TrimSuffix(rest, "/")
	// plugin/resource[/id], cut rather than split: no slice to allocate on every request.
	plugin, rest, ok := strings.Cut(rest, "/")
	req.plugin = plugin
	if !ok || strings.Count(rest, "/") > 1 {
		return scimerr.NotFound("no such SCIM endpoint")
	}
	endpoint, id, hasID := strings.Cut(rest, "/")
	resource := canonicalEndpoint(endpoint)
	if hasID && id == "" {
		return scimerr.NotFound("no such SCIM endpoint")
	}
	req.id = id
	var table routeTable
	switch resource {
	case "Users":
		table = s.routes.users.forID(id)
	case "Groups":
		table = s.routes.groups.forID(id)
	case searchPath:
		if id != "" {
			return scimerr.NotFound("no such SCIM endpoint")
		}
		table = s.routes.search
	case "ServiceProviderConfig":
		if id != "" {
			return scimerr.NotFound("no such SCIM endpoint")
		}
		table = s.routes.serviceProviderConfig
	case "ResourceTypes":
		table = s.routes.resourceTypes
	case "Schemas":
		table = s.routes.schemas
	default:
		if strings.EqualFold(endpoint, "Me") {
			// RFC 7644 §3.11: "A service provider that does NOT support this feature SHOULD
			// respond with HTTP status code 501 (Not Implemented)." A 404 reads as a wrong base
			// URL to a client probing for /Me.
			return scimerr.New(http.StatusNotImplemented, "",
				"/Me is not supported: the bearer token belongs to the identity provider, not to a SCIM user")
		}
		return scimerr.NotFound("no such SCIM endpoint")
	}
	e, ok := table[r.Method]
	if !ok {
		allowed := make([]string, 0, len(table))
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
			if _, ok := table[m]; ok {
				allowed = append(allowed, m)
			}
		}
		req.handler = func(_ context.Context, w http.ResponseWriter, _ *http.Request, _ *request) error {
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			return scimerr.New(http.StatusMethodNotAllowed, "", "method %s is not allowed here", r.Method)
		}
		return nil
	}
	req.op, req.handler = e.op, e.h
	return nil
}

func serviceProviderConfig(_ context.Context, w http.ResponseWriter, r *http.Request, req *request) error {
	if err := refuseDiscoveryFilter(r); err != nil {
		return err
	}
	return protocol.WriteJSON(w, http.StatusOK, discovery.NewServiceProviderConfig(req.base))
}

// discoveryEndpoint serves a discovery collection (/ResourceTypes, /Schemas) and its documents by
// id; what names a document in the 404, which quotes at most maxID bytes of the id asked for.
func discoveryEndpoint[T any](all func(base string) []T, byID func(base, id string) (T, bool), what string, maxID int) handlerFunc {
	return func(_ context.Context, w http.ResponseWriter, r *http.Request, req *request) error {
		if err := refuseDiscoveryFilter(r); err != nil {
			return err
		}
		if req.id == "" {
			return protocol.WriteJSON(w, http.StatusOK, discovery.List(all(req.base)))
		}
		doc, ok := byID(req.base, req.id)
		if !ok {
			return scimerr.NotFound("%s %q not found", what, truncate(req.id, maxID))
		}
		return protocol.WriteJSON(w, http.StatusOK, doc)
	}
}

// refuseDiscoveryFilter answers a filter on /ServiceProviderConfig, /ResourceTypes or /Schemas,
// which are not filtered. RFC 7644 §4: "If a "filter" is provided, the service provider SHOULD
// respond with HTTP status code 403 (Forbidden) to ensure that clients cannot incorrectly assume
// that any matching conditions specified in a filter are true." Answering the whole list with a
// 200 would let a client read it as the filtered result.
func refuseDiscoveryFilter(r *http.Request) error {
	if strings.TrimSpace(protocol.Query(r.URL).Get("filter")) == "" {
		return nil
	}
	return scimerr.New(http.StatusForbidden, "",
		"the discovery endpoints (ServiceProviderConfig, ResourceTypes, Schemas) do not support filter")
}
