package integration

import (
	"encoding/json"
	"net/http"
	"net/url"
	"path"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSCIMHandWrittenParsersOnTheRealServer sends the real server the inputs that the hand-written
// fast paths of issue #13 decline (request bodies: schema.decodeSimple; PATCH bodies: patch.scan;
// queries: protocol.Query) or could read differently from encoding/json and net/url, and checks
// the answers are those of the general parsers: escapes decoded, the last of duplicate keys
// kept, field names matched as encoding/json matches them, data after the object refused,
// duplicate query parameters read as url.Values.Get reads them. The differential fuzzers hold
// each fast path to its general parser in process; this holds the wiring, over HTTPS.
func TestSCIMHandWrittenParsersOnTheRealServer(t *testing.T) {
	c := startOktaOnSQLite(t).scim
	const userSchema = "urn:ietf:params:scim:schemas:core:2.0:User"

	create := func(body string) scimResponse {
		t.Helper()
		return c.do(http.MethodPost, "/Users", body)
	}

	// Escapes in strings (declined by the fast decoder) are decoded, keys included.
	r := create(`{"schemas":["` + userSchema + `"],"userName":"Esc\u0041pe@Example.com","externalId":"00esc",` +
		`"active":true,"name":{"givenName":"A\"B\\C","familyN\u0061me":"D\u00f6e"}}`)
	require.Equal(t, http.StatusCreated, r.status, string(r.raw))
	require.Equal(t, "EscApe@Example.com", r.body["userName"])
	name, _ := r.body["name"].(map[string]any)
	require.Equal(t, map[string]any{"givenName": `A"B\C`, "familyName": "Döe"}, name)

	// Duplicate keys: the last one counts, as with encoding/json, on both paths (whitespace and
	// no escape: the fast decoder's own input).
	r = create("{ \"schemas\" : [\"" + userSchema + "\"],\n\t\"userName\": \"first@example.com\", \"userName\": \"dup@example.com\",\r\n" +
		` "externalId": "00dup", "active": true }`)
	require.Equal(t, http.StatusCreated, r.status, string(r.raw))
	require.Equal(t, "dup@example.com", r.body["userName"])
	dupID, _ := r.body["id"].(string)
	require.NotEmpty(t, dupID)

	// Not one JSON object: refused as invalid syntax, never a 500 nor a created user.
	for _, body := range []string{
		`{"schemas":["` + userSchema + `"],"userName":"trail@example.com"} {}`,
		`{"schemas":["` + userSchema + `"],"userName":"trail@example.com"`,
		`{"schemas":["` + userSchema + `"],"userName":"bad` + "\xff" + `@example.com"} x`,
		`[{"userName":"array@example.com"}]`,
		`{"userName":"num@example.com","title":01}`,
		"{\"userName\":\"ctl\x01@example.com\"}",
	} {
		r := create(body)
		require.Equal(t, http.StatusBadRequest, r.status, "%q: %s", body, r.raw)
		require.Equal(t, "invalidSyntax", r.body["scimType"], "%q: %s", body, r.raw)
	}

	// PATCH: field names as encoding/json matches them (any case), escapes, duplicate keys.
	patch := func(body string) scimResponse {
		t.Helper()
		return c.do(http.MethodPatch, "/Users/"+dupID, body)
	}
	r = patch(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],` +
		`"operations":[{"OP":"Replace","PATH":"title","VALUE":"Lead \u0045ngineer"}]}`)
	require.Equal(t, http.StatusOK, r.status, string(r.raw))
	require.Equal(t, "Lead Engineer", r.body["title"])
	r = patch(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],` +
		`"Operations":[{"op":"replace","value":{"active":true}}],` +
		`"Operations":[{"op":"replace","value":{"active":false}}]}`)
	require.Equal(t, http.StatusOK, r.status, string(r.raw))
	require.Equal(t, false, r.body["active"], "the last Operations counts")
	r = patch(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":true}}]} x`)
	require.Equal(t, http.StatusBadRequest, r.status, string(r.raw))
	require.Equal(t, "invalidSyntax", r.body["scimType"], string(r.raw))

	// Queries: the first of duplicate parameters, as url.Values.Get; a bad escape drops its pair
	// and a semicolon is refused by net/url's rules, whatever parser reads them.
	lookup := func(rawQuery string) scimResponse {
		t.Helper()
		return c.do(http.MethodGet, "/Users?"+rawQuery, nil)
	}
	q := "filter=" + url.QueryEscape(`userName eq "dup@example.com"`) + "&filter=" + url.QueryEscape(`userName eq "escape@example.com"`)
	r = lookup(q)
	require.Equal(t, http.StatusOK, r.status, string(r.raw))
	require.Equal(t, 1.0, r.body["totalResults"])
	found, _ := r.body["Resources"].([]any)
	require.Len(t, found, 1)
	require.Equal(t, "dup@example.com", found[0].(map[string]any)["userName"])
	r = lookup("count=%zz&" + filterQuery(`userName eq "dup@example.com"`))
	require.Equal(t, http.StatusOK, r.status, string(r.raw))
	require.Equal(t, 1.0, r.body["totalResults"], "the pair with a bad escape is dropped, the rest read")
	r = lookup(filterQuery(`userName eq "dup@example.com"`) + ";count=1")
	require.NotEqual(t, http.StatusInternalServerError, r.status, string(r.raw))
	require.False(t, strings.Contains(string(r.raw), "panic"), string(r.raw))
}

// TestSCIMStaleTokenRefusedOnTheRealServer: the token check now answers from a cache of the
// settings view (the plugin and the credentials it selects, per plugin), and requests are
// routed to the SCIM endpoint without the mux. A token that was just accepted, and so is in
// every cache, is refused on the very next request once it is rotated out or its plugin is
// removed; a path that climbs out of the plugin's base URL is not served under that plugin.
func TestSCIMStaleTokenRefusedOnTheRealServer(t *testing.T) {
	o := startOktaOnSQLite(t)
	srv, admin, old := o.srv, o.admin, o.scim
	for range 3 {
		require.Equal(t, http.StatusOK, old.do(http.MethodGet, "/Users?count=1", nil).status, "the token works, and is cached")
	}

	// A path that leaves the base URL is the mux's to clean (a redirect), never served here.
	noFollow := *old.http
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for _, p := range []string{"/../other/Users", "/Users/../../other/Users", "//Users", "/./Users"} {
		req, err := http.NewRequest(http.MethodGet, old.base+p, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+old.token)
		resp, err := noFollow.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Contains(t, []int{http.StatusMovedPermanently, http.StatusTemporaryRedirect}, resp.StatusCode,
			"%s is redirected to its clean form, not served", p)
		require.Equal(t, path.Clean("/v1/webapi/scim/okta"+p), resp.Header.Get("Location"), p)
	}

	r := admin("plugins", "rotate-token", "okta", "--format", "json")
	var rotated struct {
		Token string `json:"token"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rotated), r.stdout)
	got := old.do(http.MethodGet, "/Users?count=1", nil)
	require.Equal(t, http.StatusUnauthorized, got.status, "the rotated-out token, on the very next request: %s", got.raw)
	fresh := newSCIMClient(t, srv, "okta", rotated.Token, 2)
	require.Equal(t, http.StatusOK, fresh.do(http.MethodGet, "/Users?count=1", nil).status)
	require.Equal(t, http.StatusUnauthorized, old.do(http.MethodGet, "/Users?count=1", nil).status, "still refused once the cache is rebuilt")

	admin("rm", "plugin/okta")
	got = fresh.do(http.MethodGet, "/Users?count=1", nil)
	require.Contains(t, []int{http.StatusUnauthorized, http.StatusNotFound}, got.status, "the removed plugin's token, on the very next request: %s", got.raw)
}
