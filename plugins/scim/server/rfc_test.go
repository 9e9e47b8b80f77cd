package server_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/auth/scimprov"
	"github.com/gatehouse/gatehouse/lib/scim/scimrecord"
	"github.com/gatehouse/gatehouse/lib/services/scimstore"
	"github.com/gatehouse/gatehouse/plugins/scim/server"
)

// Protocol tests of RFC 7643/7644 requirements, sent as a client written to the RFCs would send
// them, against the handler over the real provisioner.

// rfcClient is the handler over the real provisioner (memory backend, fake clock), with the
// provisioner's GetUser counted.
type rfcClient struct {
	t     *testing.T
	env   *realEnv
	clock *clockwork.FakeClock
	prov  *countingProvisioner
	h     *server.Server
}

// countingProvisioner counts the user reads a response costs.
type countingProvisioner struct {
	*scimprov.Provisioner
	gets atomic.Int64
}

func (c *countingProvisioner) GetUser(ctx context.Context, plugin, id string) (*scimrecord.UserRecord, error) {
	c.gets.Add(1)
	return c.Provisioner.GetUser(ctx, plugin, id)
}

func newRFCClient(t *testing.T) *rfcClient {
	t.Helper()
	clock := clockwork.NewFakeClockAt(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	env := newRealEnvAt(t, false, clock)
	c := &rfcClient{t: t, env: env, clock: clock, prov: &countingProvisioner{Provisioner: env.prov}}
	h, err := server.New(server.Config{Users: c.prov, Groups: c.prov, Tokens: c.prov, Status: c.prov, Clock: clock, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	c.h = h
	return c
}

const rfcPatchBody = `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":%s}`

// do sends one request to plugin okta; path is relative to its base URL.
func (c *rfcClient) do(method, path, body string) *httptest.ResponseRecorder {
	c.t.Helper()
	r := httptest.NewRequest(method, server.MountPrefix+"okta"+path, strings.NewReader(body))
	r.RemoteAddr = "192.0.2.10:5555"
	r.Header.Set("Authorization", "Bearer "+c.env.token)
	r.Header.Set("Accept", "application/scim+json")
	if body != "" {
		r.Header.Set("Content-Type", "application/scim+json")
	}
	w := httptest.NewRecorder()
	c.h.ServeHTTP(w, r)
	return w
}

// ok sends a request that must answer want and returns its body.
func (c *rfcClient) ok(want int, method, path, body string) map[string]any {
	c.t.Helper()
	w := c.do(method, path, body)
	require.Equal(c.t, want, w.Code, "%s %s: %s", method, path, w.Body.String())
	var m map[string]any
	require.NoError(c.t, json.Unmarshal(w.Body.Bytes(), &m))
	return m
}

// refused sends a request that must be a 400 of scimType whose detail names attr.
func (c *rfcClient) refused(scimType, attr, method, path, body string) {
	c.t.Helper()
	m := c.ok(http.StatusBadRequest, method, path, body)
	require.Equal(c.t, scimType, m["scimType"])
	require.Contains(c.t, m["detail"], attr)
}

// version returns what tells a write happened: meta.version, meta.lastModified, and the
// revision of the stored record.
func (c *rfcClient) version(kind, id string) (string, string, string) {
	c.t.Helper()
	m := c.ok(http.StatusOK, http.MethodGet, "/"+kind+"/"+id, "")
	meta := m["meta"].(map[string]any)
	key := scimstore.UserKey("okta", id)
	if kind == "Groups" {
		key = scimstore.GroupKey("okta", id)
	}
	item, err := c.env.bk.Get(context.Background(), key)
	require.NoError(c.t, err)
	return meta["version"].(string), meta["lastModified"].(string), item.Revision
}

// TestRFC7643PrimaryAtMostOnce: "the primary attribute value true MUST appear no more than once"
// and the same (type, value) pair is not returned twice, on POST, PUT and PATCH.
func TestRFC7643PrimaryAtMostOnce(t *testing.T) {
	t.Parallel()
	c := newRFCClient(t)

	// POST with two primary emails: refused, nothing created.
	c.refused("invalidValue", "emails", http.MethodPost, "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
		"userName":"jane@example.com","emails":[{"value":"jane@example.com","type":"work","primary":true},
		{"value":"jane@home.example","type":"home","primary":true}]}`)
	list := c.ok(http.StatusOK, http.MethodGet, "/Users?filter="+url.QueryEscape(`userName eq "jane@example.com"`), "")
	require.Equal(t, 0.0, list["totalResults"])

	// The same (type, value) pair twice is stored and returned once.
	u := c.ok(http.StatusCreated, http.MethodPost, "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
		"userName":"jane@example.com","emails":[{"value":"jane@example.com","type":"work","primary":true},
		{"value":"Jane@Example.com","type":"work"},{"value":"jane@example.com","type":"home"}],
		"phoneNumbers":[{"value":"+1 555 0100","type":"work"},{"value":"+1 555 0100","type":"work"}]}`)
	id := u["id"].(string)
	require.Len(t, u["emails"], 2)
	require.Len(t, u["phoneNumbers"], 1)
	got := c.ok(http.StatusOK, http.MethodGet, "/Users/"+id, "")
	require.Equal(t, u["emails"], got["emails"])

	// PUT with two primary phone numbers: refused, the user is unchanged.
	c.refused("invalidValue", "phoneNumbers", http.MethodPut, "/Users/"+id, `{"userName":"jane@example.com",
		"phoneNumbers":[{"value":"1","primary":true},{"value":"2","primary":true}]}`)
	require.Equal(t, got, c.ok(http.StatusOK, http.MethodGet, "/Users/"+id, ""))

	// PATCH replacing emails with two primaries: refused.
	c.refused("invalidValue", "emails", http.MethodPatch, "/Users/"+id, strings.ReplaceAll(rfcPatchBody, "%s",
		`[{"op":"replace","path":"emails","value":[{"value":"a@example.com","primary":true},{"value":"b@example.com","primary":true}]}]`))

	// PATCH making another value primary demotes the first (RFC 7644 §3.5.2): one primary.
	p := c.ok(http.StatusOK, http.MethodPatch, "/Users/"+id, strings.ReplaceAll(rfcPatchBody, "%s",
		`[{"op":"add","path":"emails","value":[{"value":"jane@home.example","type":"home","primary":true}]}]`))
	primaries := 0
	for _, e := range p["emails"].([]any) {
		if e.(map[string]any)["primary"] == true {
			primaries++
			require.Equal(t, "jane@home.example", e.(map[string]any)["value"])
		}
	}
	require.Equal(t, 1, primaries)
}

// TestRFC7644NoOpPatchWritesNothing: "If the target location already contains the value
// specified, no changes SHOULD be made to the resource ... this operation SHALL NOT change the
// modify timestamp of the resource" (RFC 7644 §3.5.2.1). The version (ETag) stays too, and
// nothing is written. A PUT of what a GET returned is the same.
func TestRFC7644NoOpPatchWritesNothing(t *testing.T) {
	t.Parallel()
	c := newRFCClient(t)
	u := c.ok(http.StatusCreated, http.MethodPost, "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
		"userName":"jane@example.com","externalId":"00u1","displayName":"Jane Doe","name":{"givenName":"Jane","familyName":"Doe"},
		"emails":[{"value":"jane@example.com","type":"work","primary":true}],"active":true}`)
	id := u["id"].(string)
	bob := c.ok(http.StatusCreated, http.MethodPost, "/Users", `{"userName":"bob@example.com"}`)["id"].(string)
	g := c.ok(http.StatusCreated, http.MethodPost, "/Groups", `{"displayName":"Eng","members":[{"value":"`+id+`"}]}`)
	gid := g["id"].(string)

	c.clock.Advance(time.Hour)
	userV, userMod, userRev := c.version("Users", id)
	groupV, groupMod, groupRev := c.version("Groups", gid)
	get := c.do(http.MethodGet, "/Users/"+id, "").Body.String()

	for _, tc := range []struct {
		name, kind, body string
	}{
		{"add of an email already there (other case)", "Users", strings.ReplaceAll(rfcPatchBody, "%s",
			`[{"op":"add","path":"emails","value":[{"value":"JANE@example.com","type":"work"}]}]`)},
		{"replace with the same value", "Users", strings.ReplaceAll(rfcPatchBody, "%s",
			`[{"op":"replace","path":"displayName","value":"Jane Doe"}]`)},
		{"path-less replace with the same values, read-only id included", "Users", strings.ReplaceAll(rfcPatchBody, "%s",
			`[{"op":"replace","value":{"id":"`+id+`","active":true,"name":{"givenName":"Jane"},"externalId":"00u1"}}]`)},
		{"remove of a value that is not there", "Users", strings.ReplaceAll(rfcPatchBody, "%s",
			`[{"op":"remove","path":"emails[type eq \"home\"]"}]`)},
		{"add of a member already there", "Groups", strings.ReplaceAll(rfcPatchBody, "%s",
			`[{"op":"add","path":"members","value":[{"value":"`+id+`","display":"jane"}]}]`)},
		{"Okta's rename to the same name", "Groups", strings.ReplaceAll(rfcPatchBody, "%s",
			`[{"op":"replace","value":{"id":"`+gid+`","displayName":"Eng"}}]`)},
	} {
		target, v, mod, rev := id, userV, userMod, userRev
		if tc.kind == "Groups" {
			target, v, mod, rev = gid, groupV, groupMod, groupRev
		}
		w := c.do(http.MethodPatch, "/"+tc.kind+"/"+target, tc.body)
		require.Equal(t, http.StatusOK, w.Code, "%s: %s", tc.name, w.Body.String())
		require.Equal(t, v, w.Header().Get("ETag"), tc.name)
		gv, gmod, grev := c.version(tc.kind, target)
		require.Equal(t, []string{v, mod, rev}, []string{gv, gmod, grev}, "%s wrote", tc.name)
	}

	// PUT of the body a GET returned (Okta's profile update with nothing edited).
	w := c.do(http.MethodPut, "/Users/"+id, get)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	gv, gmod, grev := c.version("Users", id)
	require.Equal(t, []string{userV, userMod, userRev}, []string{gv, gmod, grev}, "PUT of the same body wrote")

	// A real change is written: new version, new lastModified.
	w = c.do(http.MethodPatch, "/Users/"+id, strings.ReplaceAll(rfcPatchBody, "%s", `[{"op":"replace","path":"displayName","value":"Jane D."}]`))
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	gv, gmod, _ = c.version("Users", id)
	require.NotEqual(t, userV, gv)
	require.NotEqual(t, userMod, gmod)
	w = c.do(http.MethodPatch, "/Groups/"+gid, strings.ReplaceAll(rfcPatchBody, "%s", `[{"op":"add","path":"members","value":[{"value":"`+bob+`"}]}]`))
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	gv, _, _ = c.version("Groups", gid)
	require.NotEqual(t, groupV, gv)

	// The account drifted from the record (deleted out of band): the same PUT is not a no-op,
	// it brings the account back in step.
	ctx := context.Background()
	require.NoError(t, c.env.svc.DeleteUser(ctx, "jane@example.com"))
	userV, _, _ = c.version("Users", id)
	get = c.do(http.MethodGet, "/Users/"+id, "").Body.String()
	w = c.do(http.MethodPut, "/Users/"+id, get)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.NotEqual(t, userV, w.Header().Get("ETag"))
	_, err := c.env.svc.GetUser(ctx, "jane@example.com", false)
	require.NoError(t, err)
}

// TestGroupMembersDisplay: members come back with value, display (the member's userName, from
// the user record), $ref and type; excludedAttributes=members, or attributes without members,
// leaves them out without reading a single user.
func TestGroupMembersDisplay(t *testing.T) {
	t.Parallel()
	c := newRFCClient(t)
	jane := c.ok(http.StatusCreated, http.MethodPost, "/Users", `{"userName":"jane@example.com"}`)["id"].(string)
	bob := c.ok(http.StatusCreated, http.MethodPost, "/Users", `{"userName":"bob@example.com"}`)["id"].(string)
	// Members sent without display, and with a display that is not the userName.
	gid := c.ok(http.StatusCreated, http.MethodPost, "/Groups",
		`{"displayName":"Eng","members":[{"value":"`+jane+`"},{"value":"`+bob+`","display":"Bobby"}]}`)["id"].(string)
	// Bob is renamed after he was added.
	c.ok(http.StatusOK, http.MethodPatch, "/Users/"+bob, strings.ReplaceAll(rfcPatchBody, "%s",
		`[{"op":"replace","path":"userName","value":"robert@example.com"}]`))

	want := []any{
		map[string]any{"value": jane, "display": "jane@example.com", "type": "User", "$ref": "https://example.com/v1/webapi/scim/okta/Users/" + jane},
		map[string]any{"value": bob, "display": "robert@example.com", "type": "User", "$ref": "https://example.com/v1/webapi/scim/okta/Users/" + bob},
	}
	require.ElementsMatch(t, want, c.ok(http.StatusOK, http.MethodGet, "/Groups/"+gid, "")["members"])
	list := c.ok(http.StatusOK, http.MethodGet, "/Groups?startIndex=1&count=100", "")
	require.ElementsMatch(t, want, list["Resources"].([]any)[0].(map[string]any)["members"])
	found := c.ok(http.StatusOK, http.MethodGet, "/Groups?filter="+url.QueryEscape(`displayName eq "Eng"`), "")
	require.ElementsMatch(t, want, found["Resources"].([]any)[0].(map[string]any)["members"])

	for _, query := range []string{"excludedAttributes=members", "attributes=displayName", "excludedAttributes=members.display"} {
		for _, path := range []string{"/Groups/" + gid + "?" + query, "/Groups?" + query,
			"/Groups?" + query + "&filter=" + url.QueryEscape(`displayName eq "Eng"`)} {
			before := c.prov.gets.Load()
			res := c.ok(http.StatusOK, http.MethodGet, path, "")
			if rs, ok := res["Resources"].([]any); ok {
				require.Len(t, rs, 1, path)
				res = rs[0].(map[string]any)
			}
			require.Equal(t, "Eng", res["displayName"], path)
			require.Equal(t, before, c.prov.gets.Load(), "%s read users", path)
			if strings.HasSuffix(query, "members.display") {
				for _, m := range res["members"].([]any) {
					require.NotContains(t, m, "display", path)
				}
				continue
			}
			require.NotContains(t, res, "members", path)
		}
	}
	// Asked for: members and their displays, each member read once.
	before := c.prov.gets.Load()
	res := c.ok(http.StatusOK, http.MethodGet, "/Groups/"+gid+"?attributes=members", "")
	require.ElementsMatch(t, want, res["members"])
	require.Equal(t, before+2, c.prov.gets.Load())
}

// TestLegacyDuplicatePrimariesNeverBlockDeactivation: a record stored before two primaries were
// refused is shown with its first primary only, so that Okta's deactivations (a wizard app's
// PUT of what GET returned, or the path-less PATCH) go through.
func TestLegacyDuplicatePrimariesNeverBlockDeactivation(t *testing.T) {
	t.Parallel()
	c := newRFCClient(t)
	for _, name := range []string{"put", "patch"} {
		rec, err := c.env.prov.CreateUser(context.Background(), "okta", &scimrecord.UserRecord{
			UserName: name + "@example.com", Active: true,
			Attributes: json.RawMessage(`{"userName":"` + name + `@example.com","emails":[{"value":"a@example.com","primary":true},{"value":"b@example.com","primary":true}]}`),
		})
		require.NoError(t, err)
		got := c.ok(http.StatusOK, http.MethodGet, "/Users/"+rec.ID, "")
		require.Equal(t, []any{
			map[string]any{"value": "a@example.com", "primary": true},
			map[string]any{"value": "b@example.com"},
		}, got["emails"])
		var out map[string]any
		if name == "put" {
			got["active"] = false
			body, err := json.Marshal(got)
			require.NoError(t, err)
			out = c.ok(http.StatusOK, http.MethodPut, "/Users/"+rec.ID, string(body))
		} else {
			out = c.ok(http.StatusOK, http.MethodPatch, "/Users/"+rec.ID, strings.ReplaceAll(rfcPatchBody, "%s",
				`[{"op":"replace","value":{"active":false}}]`))
		}
		require.Equal(t, false, out["active"], name)
	}
}
