package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRouteSplit holds route's path parsing to the split it replaced: the same plugin, id,
// operation and refusal for paths of every length and shape.
func TestRouteSplit(t *testing.T) {
	t.Parallel()
	srv := newLookupServer(t)
	// splitRoute is how route read plugin/resource[/id] before.
	splitRoute := func(path string) (plugin, resource, id string, found bool) {
		rest, ok := strings.CutPrefix(path, MountPrefix)
		if !ok {
			return "", "", "", false
		}
		parts := strings.Split(strings.TrimSuffix(rest, "/"), "/")
		plugin = parts[0]
		if len(parts) < 2 || len(parts) > 3 {
			return plugin, "", "", false
		}
		if len(parts) == 3 {
			if parts[2] == "" {
				return plugin, "", "", false
			}
			id = parts[2]
		}
		return plugin, canonicalEndpoint(parts[1]), id, true
	}
	for _, rest := range []string{
		"", "/", "okta", "okta/", "okta/Users", "okta/Users/", "okta/Users/abc", "okta/Users/abc/",
		"okta/Users/abc/def", "okta/Users//", "okta//", "okta//abc", "/Users", "//", "///", "okta/users/x",
		"okta/Groups/g1", "okta/.search", "okta/.search/x", "okta/Users/.search", "okta/Schemas/urn:x",
		"okta/ResourceTypes", "okta/ServiceProviderConfig", "okta/ServiceProviderConfig/x", "okta/Nope",
		"okta/Users/a/b/c", "okta/Users/abc//",
	} {
		for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
			path := MountPrefix + rest
			r := httptest.NewRequest(method, "/", nil)
			r.URL.Path = path
			req, err := srv.route(r)
			plugin, resource, id, found := splitRoute(path)
			require.Equal(t, plugin, req.plugin, "%s %s", method, path)
			if !found {
				require.Error(t, err, "%s %s", method, path)
				require.Equal(t, opUnknown, req.op)
				continue
			}
			if err == nil {
				require.Equal(t, id, req.id, "%s %s", method, path)
			}
			switch resource {
			case "Users", "Groups", searchPath, "ServiceProviderConfig", "ResourceTypes", "Schemas":
			default:
				require.Error(t, err, "%s %s", method, path)
			}
		}
	}
}
