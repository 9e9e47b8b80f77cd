package server

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestResourceRoutes: each kind's generic handler is routed under its own operation names (the
// metrics label, and what marks a write that drops the sorted-list snapshots).
func TestResourceRoutes(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for _, tc := range []struct {
		method, path, op string
		write            bool
	}{
		{http.MethodGet, "/Users", opListUsers, false},
		{http.MethodPost, "/Users", opCreateUser, true},
		{http.MethodPost, "/Users/.search", opSearchUsers, false},
		{http.MethodGet, "/Users/u1", opGetUser, false},
		{http.MethodPut, "/Users/u1", opReplaceUser, true},
		{http.MethodPatch, "/Users/u1", opPatchUser, true},
		{http.MethodDelete, "/Users/u1", opDeleteUser, true},
		{http.MethodGet, "/Groups", opListGroups, false},
		{http.MethodPost, "/Groups", opCreateGroup, true},
		{http.MethodPost, "/Groups/.search", opSearchGroups, false},
		{http.MethodGet, "/Groups/g1", opGetGroup, false},
		{http.MethodPut, "/Groups/g1", opReplaceGroup, true},
		{http.MethodPatch, "/Groups/g1", opPatchGroup, true},
		{http.MethodDelete, "/Groups/g1", opDeleteGroup, true},
		{http.MethodPost, "/.search", opSearch, false},
	} {
		req, err := h.srv.route(httptest.NewRequest(tc.method, base+tc.path, nil))
		require.NoError(t, err, "%s %s", tc.method, tc.path)
		require.Equal(t, tc.op, req.op, "%s %s", tc.method, tc.path)
		require.Equal(t, tc.write, writeOps[req.op], "%s %s", tc.method, tc.path)
	}
	for _, tc := range []struct{ method, path string }{
		{http.MethodGet, "/Users/.search"},
		{http.MethodDelete, "/Groups"},
		{http.MethodPost, "/Groups/g1"},
	} {
		// Answered 405 with Allow (TestRoutingAndContentTypes), under no operation.
		req, err := h.srv.route(httptest.NewRequest(tc.method, base+tc.path, nil))
		require.NoError(t, err, "%s %s", tc.method, tc.path)
		require.Equal(t, opUnknown, req.op, "%s %s", tc.method, tc.path)
	}
}
