package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const patchSchema = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

// oktaUser is the body Okta POSTs to create a user.
func oktaUser(userName, externalID string) map[string]any {
	local := strings.SplitN(userName, "@", 2)[0]
	return map[string]any{
		"schemas":     []string{"urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"},
		"userName":    userName,
		"name":        map[string]any{"givenName": local, "familyName": "Doe"},
		"emails":      []any{map[string]any{"primary": true, "value": userName, "type": "work"}},
		"displayName": local + " Doe",
		"locale":      "en-US",
		"externalId":  externalID,
		"groups":      []any{},
		"password":    "Okta-Placeholder-1!",
		"active":      true,
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": map[string]any{"department": "Eng"},
	}
}

func patchBody(ops ...map[string]any) map[string]any {
	return map[string]any{"schemas": []string{patchSchema}, "Operations": ops}
}

func filterQuery(f string) string { return "filter=" + url.QueryEscape(f) }

// TestSCIMOktaEndToEnd replays every Okta sequence of OKTA-SCIM.md against a real gatehouse over
// HTTPS and checks the Gatehouse side with gatectl after each step.
func TestSCIMOktaEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs binaries")
	}
	started := time.Now()
	gatehouseBin, gatectlBin := buildBinaries(t)
	dataDir, work := t.TempDir(), t.TempDir()
	logs := &syncBuffer{}
	srv := startGatehouse(t, gatehouseBin, dataDir, logs, "--diag-addr", "127.0.0.1:0")
	admin, _ := gatectlOn(t, gatectlBin, dataDir)
	token := installOkta(t, admin, work)
	c := newSCIMClient(t, srv, "okta", token, 64)

	// getUser reads a Gatehouse user with gatectl; nil when it does not exist.
	getUser := func(name string) map[string]any {
		t.Helper()
		r := admin("get", "user/"+name, "--format", "json")
		if r.code != 0 {
			require.Contains(t, r.stderr, "not found", r.String())
			return nil
		}
		var u map[string]any
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &u), r.stdout)
		return u
	}
	// locksFor lists the locks targeting user.
	locksFor := func(user string) []map[string]any {
		t.Helper()
		r := admin("get", "locks", "--format", "json")
		require.Equal(t, 0, r.code, r.String())
		var locks []map[string]any
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &locks), r.stdout)
		var out []map[string]any
		for _, l := range locks {
			spec, _ := l["spec"].(map[string]any)
			target, _ := spec["target"].(map[string]any)
			if target["user"] == user {
				out = append(out, l)
			}
		}
		return out
	}
	roles := func(u map[string]any) []any {
		spec, _ := u["spec"].(map[string]any)
		r, _ := spec["roles"].([]any)
		return r
	}

	// Authentication: missing and bad tokens, unknown plugin: 401 with WWW-Authenticate.
	for _, tc := range []struct {
		path  string
		token string
	}{{"/Users", ""}, {"/Users", "not-the-token"}} {
		cc := *c
		cc.token = tc.token
		r := cc.do(http.MethodGet, tc.path, nil).expect(t, http.StatusUnauthorized)
		require.Contains(t, r.header.Get("WWW-Authenticate"), "Bearer")
		require.Equal(t, "401", r.body["status"])
	}
	other := newSCIMClient(t, srv, "nosuch", token, 1)
	other.do(http.MethodGet, "/Users", nil).expect(t, http.StatusUnauthorized)

	// Test API Credentials.
	r := c.do(http.MethodGet, "/Users?startIndex=1&count=2", nil).expect(t, http.StatusOK)
	require.Equal(t, 0.0, r.body["totalResults"])
	require.Equal(t, []any{}, r.body["Resources"])
	for _, p := range []string{"/ServiceProviderConfig", "/ResourceTypes", "/ResourceTypes/User", "/Schemas", "/Schemas/urn:ietf:params:scim:schemas:core:2.0:Group"} {
		c.do(http.MethodGet, p, nil).expect(t, http.StatusOK)
	}

	// Lookup → create → GET → PUT profile change.
	jane := "jane@example.com"
	r = c.do(http.MethodGet, "/Users?"+filterQuery(`userName eq "`+jane+`"`)+"&startIndex=1&count=100", nil).expect(t, http.StatusOK)
	require.Equal(t, 0.0, r.body["totalResults"])
	r = c.do(http.MethodPost, "/Users", oktaUser(jane, "00ujane")).expect(t, http.StatusCreated)
	janeID, _ := r.body["id"].(string)
	require.NotEmpty(t, janeID)
	require.True(t, strings.HasSuffix(r.header.Get("Location"), "/v1/webapi/scim/okta/Users/"+janeID), r.header.Get("Location"))
	require.Equal(t, r.header.Get("Location"), r.body["meta"].(map[string]any)["location"])
	require.NotContains(t, string(r.raw), "Okta-Placeholder")
	require.Equal(t, true, r.body["active"])
	u := getUser(jane)
	require.NotNil(t, u, "the Gatehouse user exists")
	require.Contains(t, roles(u), "access", "default role")
	require.Nil(t, u["metadata"].(map[string]any)["expires"])
	c.do(http.MethodPost, "/Users", oktaUser(strings.ToUpper(jane), "00uother")).expect(t, http.StatusConflict)

	r = c.do(http.MethodGet, "/Users/"+janeID, nil).expect(t, http.StatusOK)
	etag := r.header.Get("ETag")
	require.Regexp(t, `^W/".+"$`, etag)
	require.Equal(t, http.StatusNotModified, c.do(http.MethodGet, "/Users/"+janeID, nil, "If-None-Match", etag).status)
	got := r.body
	got["displayName"] = "Jane Q. Doe"
	got["name"] = map[string]any{"givenName": "Jane", "familyName": "Q. Doe"}
	got["password"] = "Okta-Placeholder-2!"
	r = c.do(http.MethodPut, "/Users/"+janeID, got, "Content-Type", "application/json").expect(t, http.StatusOK)
	require.Equal(t, "Jane Q. Doe", r.body["displayName"])
	require.NotContains(t, string(r.raw), "Placeholder")
	c.do(http.MethodPut, "/Users/"+janeID, got, "If-Match", etag).expect(t, http.StatusPreconditionFailed)

	// PATCH deactivate: user gone, lock present; GET and the filter still answer, inactive.
	deactivate := patchBody(map[string]any{"op": "replace", "value": map[string]any{"active": false}})
	r = c.do(http.MethodPatch, "/Users/"+janeID, deactivate).expect(t, http.StatusOK)
	require.Equal(t, false, r.body["active"])
	require.Nil(t, getUser(jane), "deactivation deletes the Gatehouse user")
	locks := locksFor(jane)
	require.Len(t, locks, 1, "deactivation locks the user")
	r = c.do(http.MethodGet, "/Users/"+janeID, nil).expect(t, http.StatusOK)
	require.Equal(t, false, r.body["active"])
	require.Equal(t, "Jane Q. Doe", r.body["displayName"])
	r = c.do(http.MethodGet, "/Users?"+filterQuery(`userName eq "JANE@EXAMPLE.COM"`)+"&startIndex=1&count=100", nil).expect(t, http.StatusOK)
	require.Equal(t, 1.0, r.body["totalResults"])
	require.Equal(t, false, r.body["Resources"].([]any)[0].(map[string]any)["active"])
	// Deactivating again changes nothing and does not fail.
	c.do(http.MethodPatch, "/Users/"+janeID, deactivate).expect(t, http.StatusOK)
	require.Len(t, locksFor(jane), 1)

	// PATCH reactivate: user back, lock gone.
	reactivate := patchBody(map[string]any{"op": "Replace", "value": map[string]any{"active": true}})
	r = c.do(http.MethodPatch, "/Users/"+janeID, reactivate).expect(t, http.StatusOK)
	require.Equal(t, true, r.body["active"])
	require.NotNil(t, getUser(jane))
	require.Empty(t, locksFor(jane))

	// An admin's own lock on the user survives a SCIM reactivation.
	adminLock := filepath.Join(work, "lock.yaml")
	require.NoError(t, os.WriteFile(adminLock, []byte(`{"kind":"lock","version":"v1","metadata":{"name":"by-admin"},"spec":{"target":{"user":"`+jane+`"},"message":"investigation"}}`), 0o600))

	// Wizard-style PUT active:false, then PUT active:true.
	got = c.do(http.MethodGet, "/Users/"+janeID, nil).expect(t, http.StatusOK).body
	got["active"] = false
	c.do(http.MethodPut, "/Users/"+janeID, got).expect(t, http.StatusOK)
	require.Nil(t, getUser(jane))
	require.Len(t, locksFor(jane), 1)
	rr := admin("create", "-f", adminLock)
	require.Equal(t, 0, rr.code, rr.String())
	got["active"] = true
	c.do(http.MethodPut, "/Users/"+janeID, got).expect(t, http.StatusOK)
	require.NotNil(t, getUser(jane))
	remaining := locksFor(jane)
	require.Len(t, remaining, 1, "only the plugin's lock is removed")
	require.Equal(t, "by-admin", remaining[0]["metadata"].(map[string]any)["name"])
	rr = admin("rm", "lock/by-admin")
	require.Equal(t, 0, rr.code, rr.String())

	// Groups (Push Groups).
	bob := "bob.smith@example.com"
	bobID := c.do(http.MethodPost, "/Users", oktaUser(bob, "00ubob")).expect(t, http.StatusCreated).body["id"].(string)
	r = c.do(http.MethodGet, "/Groups?startIndex=1&count=100", nil).expect(t, http.StatusOK)
	require.Equal(t, 0.0, r.body["totalResults"])
	r = c.do(http.MethodGet, "/Groups?"+filterQuery(`displayName eq "admins"`)+"&startIndex=1&count=100", nil).expect(t, http.StatusOK)
	require.Equal(t, 0.0, r.body["totalResults"])
	r = c.do(http.MethodPost, "/Groups", map[string]any{
		"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"}, "displayName": "admins", "members": []any{},
	}).expect(t, http.StatusCreated)
	gid := r.body["id"].(string)
	require.True(t, strings.HasSuffix(r.header.Get("Location"), "/Groups/"+gid))
	// A group created already filled.
	r = c.do(http.MethodPost, "/Groups", map[string]any{
		"displayName": "readers", "members": []any{map[string]any{"value": bobID, "display": bob}},
	}).expect(t, http.StatusCreated)
	readersID := r.body["id"].(string)
	require.Len(t, r.body["members"], 1)

	// Push: rename (path-less, with id) + add jane to the empty group → jane gains auditor
	// through the connector's groups=admins mapping, and her SCIM groups show it.
	c.do(http.MethodPatch, "/Groups/"+gid, patchBody(
		map[string]any{"op": "replace", "value": map[string]any{"id": gid, "displayName": "admins"}},
		map[string]any{"op": "add", "path": "members", "value": []any{map[string]any{"value": janeID, "display": jane}}},
	)).expect(t, http.StatusOK)
	require.Contains(t, roles(getUser(jane)), "auditor")
	r = c.do(http.MethodGet, "/Users/"+janeID, nil).expect(t, http.StatusOK)
	require.Equal(t, gid, r.body["groups"].([]any)[0].(map[string]any)["value"])

	// Remove jane by filter + add bob.
	r = c.do(http.MethodPatch, "/Groups/"+gid, patchBody(
		map[string]any{"op": "remove", "path": `members[value eq "` + janeID + `"]`},
		map[string]any{"op": "add", "path": "members", "value": []any{map[string]any{"value": bobID, "display": bob}}},
	)).expect(t, http.StatusOK)
	require.Len(t, r.body["members"], 1)
	require.NotContains(t, roles(getUser(jane)), "auditor")
	require.Contains(t, roles(getUser(bob)), "auditor")

	// Rename: the mapping no longer matches.
	r = c.do(http.MethodPatch, "/Groups/"+gid, patchBody(
		map[string]any{"op": "replace", "value": map[string]any{"id": gid, "displayName": "former-admins"}},
	)).expect(t, http.StatusOK)
	require.Equal(t, "former-admins", r.body["displayName"])
	require.NotContains(t, roles(getUser(bob)), "auditor")
	c.do(http.MethodPatch, "/Groups/"+gid, patchBody(
		map[string]any{"op": "replace", "value": map[string]any{"id": gid, "displayName": "admins"}},
	)).expect(t, http.StatusOK)
	require.Contains(t, roles(getUser(bob)), "auditor")

	// Push now on an emptied group: replace members [].
	r = c.do(http.MethodPatch, "/Groups/"+gid, patchBody(
		map[string]any{"op": "replace", "path": "members", "value": []any{}},
	)).expect(t, http.StatusOK)
	require.NotContains(t, r.body, "members")
	require.NotContains(t, roles(getUser(bob)), "auditor")

	// Wizard apps: PUT the whole group with the full member list.
	g := c.do(http.MethodGet, "/Groups/"+gid, nil).expect(t, http.StatusOK).body
	g["members"] = []any{map[string]any{"value": janeID, "display": jane}, map[string]any{"value": bobID, "display": bob}}
	r = c.do(http.MethodPut, "/Groups/"+gid, g).expect(t, http.StatusOK)
	require.Len(t, r.body["members"], 2)
	require.Contains(t, roles(getUser(jane)), "auditor")
	require.Contains(t, roles(getUser(bob)), "auditor")
	r = c.do(http.MethodGet, "/Groups?"+filterQuery(`displayName eq "ADMINS"`), nil).expect(t, http.StatusOK)
	require.Equal(t, 1.0, r.body["totalResults"])

	// The owner narrows what SCIM may grant: members of the mapped group lose the role within
	// seconds, though Okta sends nothing (the reconcile looks every 2 s), and get it back once the
	// ceiling allows it again.
	hasAuditor := func(name string) bool { return slices.Contains(roles(getUser(name)), any("auditor")) }
	rr = admin("plugins", "update", "okta", "--grantable-roles", "access")
	require.Equal(t, 0, rr.code, rr.String())
	narrowed := time.Now()
	require.Eventually(t, func() bool { return !hasAuditor(jane) && !hasAuditor(bob) }, 10*time.Second, 100*time.Millisecond,
		"a role the plugin may no longer grant stayed on existing SCIM users")
	t.Logf("narrowed grant reached existing users in %s", time.Since(narrowed).Round(time.Millisecond))
	require.Contains(t, roles(getUser(jane)), "access", "the roles still allowed stay")
	rr = admin("plugins", "update", "okta", "--grantable-roles", "")
	require.Equal(t, 0, rr.code, rr.String())
	require.Eventually(t, func() bool { return hasAuditor(jane) && hasAuditor(bob) }, 10*time.Second, 100*time.Millisecond)

	// Unlink: DELETE → 204; members lose the mapped role.
	require.Equal(t, http.StatusNoContent, c.do(http.MethodDelete, "/Groups/"+gid, nil).status)
	c.do(http.MethodGet, "/Groups/"+gid, nil).expect(t, http.StatusNotFound)
	require.NotContains(t, roles(getUser(jane)), "auditor")
	require.Equal(t, http.StatusNoContent, c.do(http.MethodDelete, "/Groups/"+readersID, nil).status)

	// Adoption: a temporary SAML user of the plugin's connector becomes SCIM-managed, no expiry.
	temp := "temp.user@example.com"
	tempFile := filepath.Join(work, "temp.json")
	require.NoError(t, os.WriteFile(tempFile, []byte(fmt.Sprintf(`{"kind":"user","version":"v1",
		"metadata":{"name":%q,"expires":%q},
		"spec":{"roles":["access"],"created_by":{"connector":{"type":"saml","id":"okta","identity":%q}}}}`,
		temp, time.Now().Add(8*time.Hour).UTC().Format(time.RFC3339), temp)), 0o600))
	rr = admin("create", "-f", tempFile)
	require.Equal(t, 0, rr.code, rr.String())
	require.NotNil(t, getUser(temp)["metadata"].(map[string]any)["expires"])
	r = c.do(http.MethodPost, "/Users", oktaUser(temp, "00utemp")).expect(t, http.StatusCreated)
	adopted := getUser(temp)
	require.NotNil(t, adopted)
	require.Nil(t, adopted["metadata"].(map[string]any)["expires"], "the adopted user has no expiry")

	// A local user is never taken over: 409 uniqueness and untouched.
	localFile := filepath.Join(work, "local.json")
	require.NoError(t, os.WriteFile(localFile, []byte(`{"kind":"user","version":"v1","metadata":{"name":"local.admin@example.com"},"spec":{"roles":["auditor"]}}`), 0o600))
	rr = admin("create", "-f", localFile)
	require.Equal(t, 0, rr.code, rr.String())
	r = c.do(http.MethodPost, "/Users", oktaUser("local.admin@example.com", "00ulocal")).expect(t, http.StatusConflict)
	require.Equal(t, "uniqueness", r.body["scimType"])
	require.Equal(t, []any{"auditor"}, roles(getUser("local.admin@example.com")))

	// 50 concurrent POSTs of one userName: exactly one 201, 49 × 409.
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		codes = map[int]int{}
	)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.try(http.MethodPost, "/Users", oktaUser("race@example.com", fmt.Sprintf("00urace%d", i)))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				codes[-1]++
				return
			}
			codes[resp.status]++
		}()
	}
	wg.Wait()
	require.Equal(t, map[int]int{http.StatusCreated: 1, http.StatusConflict: 49}, codes)

	// DELETE /Users/{id}: 204, then 404; the user is gone and locked.
	require.Equal(t, http.StatusNoContent, c.do(http.MethodDelete, "/Users/"+bobID, nil).status)
	c.do(http.MethodGet, "/Users/"+bobID, nil).expect(t, http.StatusNotFound)
	require.Nil(t, getUser(bob))
	require.Len(t, locksFor(bob), 1)

	// Limits and shapes: a body over 1 MiB is 413; a bad filter is invalidFilter; text/plain 415.
	big := oktaUser("big@example.com", "00ubig")
	big["displayName"] = strings.Repeat("x", 1<<20)
	c.do(http.MethodPost, "/Users", big).expect(t, http.StatusRequestEntityTooLarge)
	r = c.do(http.MethodGet, "/Users?"+filterQuery(`userName eq`), nil).expect(t, http.StatusBadRequest)
	require.Equal(t, "invalidFilter", r.body["scimType"])
	c.do(http.MethodPost, "/Users", "{}", "Content-Type", "text/plain").expect(t, http.StatusUnsupportedMediaType)

	// Listing pages are stable and complete.
	total := int(c.do(http.MethodGet, "/Users?count=0", nil).expect(t, http.StatusOK).body["totalResults"].(float64))
	require.Equal(t, 3, total, "jane, temp, race (bob deleted)")
	var seen []string
	for start := 1; start <= total; start += 2 {
		r = c.do(http.MethodGet, fmt.Sprintf("/Users?startIndex=%d&count=2", start), nil).expect(t, http.StatusOK)
		for _, res := range r.body["Resources"].([]any) {
			seen = append(seen, res.(map[string]any)["id"].(string))
		}
	}
	require.Len(t, seen, total)
	require.IsIncreasing(t, seen)

	// Prometheus: the SCIM series are on the diagnostics listener's /metrics (address from the
	// startup banner).
	m := regexp.MustCompile(`metrics: +(http://\S+/metrics)`).FindStringSubmatch(logs.String())
	require.NotNil(t, m, "banner names the metrics URL")
	resp, err := http.Get(m[1])
	require.NoError(t, err)
	metricsText, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Contains(t, string(metricsText), `gatehouse_scim_requests_total{code="201",operation="create_user",plugin="okta"}`)
	require.Contains(t, string(metricsText), `gatehouse_scim_requests_total{code="401",operation="list_users",plugin="-"}`)
	require.Contains(t, string(metricsText), `gatehouse_scim_request_duration_seconds_bucket{operation="patch_user",plugin="okta"`)

	// Nothing leaked the placeholder passwords or the token.
	require.NotContains(t, logs.String(), token)
	require.NotContains(t, logs.String(), "Okta-Placeholder")
	require.Empty(t, filesContaining(t, dataDir, "Okta-Placeholder"))

	srv.stop(t)
	t.Logf("SCIM end to end in %s", time.Since(started).Round(time.Millisecond))
}
