package server_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/plugins/scim/protocol"
	"github.com/gatehouse/gatehouse/plugins/scim/server"
)

// TestStoredAttributesAreCanonical: the attributes that POST, PUT and PATCH store through the
// real provisioner are canonical JSON, which the response fast path needs to copy them (a store
// that re-encoded them otherwise would quietly send every lookup down the slow path).
func TestStoredAttributesAreCanonical(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, prov, token := newLiteProvisioner(t)
	h, err := server.New(server.Config{Users: prov, Groups: prov, Tokens: prov, Status: prov})
	require.NoError(t, err)
	do := func(method, path, body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, server.MountPrefix+"okta"+path, strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+token)
		r.Header.Set("Content-Type", "application/scim+json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	w := do(http.MethodPost, "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
		"userName":"jane@example.com","name":{"givenName":"Jane","familyName":"Doe <&>"},"emails":[{"primary":true,"value":"jane@example.com","type":"work"}],
		"displayName":"Jane \u2028 Doe","locale":"en-US","externalId":"00u1abcd","groups":[],"password":"Pl@ceholder-1","active":true,
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"employeeNumber":"42","department":"R&D"}}`)
	require.Equal(t, http.StatusCreated, w.Code, w.Body.String())
	location := w.Header().Get("Location")
	id := location[strings.LastIndexByte(location, '/')+1:]
	check := func() {
		t.Helper()
		recs, err := prov.LookupUsers(ctx, "okta", "userName", "jane@example.com")
		require.NoError(t, err)
		require.Len(t, recs, 1)
		require.True(t, protocol.IsCanonicalObject(string(recs[0].Attributes)), "%s", recs[0].Attributes)
	}
	check()
	w = do(http.MethodPut, "/Users/"+id, `{"userName":"jane@example.com","name":{"givenName":"J","familyName":"D"},"title":"<VP>","addresses":[{"locality":"Zürich","type":"work"}]}`)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	check()
	w = do(http.MethodPatch, "/Users/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"nickName","value":"\"jj\""}]}`)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	check()
}
