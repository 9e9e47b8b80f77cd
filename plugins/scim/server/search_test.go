package server_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/backend/memory"
	"github.com/gatehouse/gatehouse/lib/services"
	"github.com/gatehouse/gatehouse/plugins/scim/server"
)

// Protocol tests of RFC 7644 §3.4.3 (POST .search) and §3.4.2.3 (sortBy/sortOrder), sent as an
// RFC client sends them, through the handler over the real provisioner.

const searchRequestSchema = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"

// searchEnv is the handler over the real provisioner (memory backend) with a fake clock, so that
// meta.created and meta.lastModified differ from one write to the next.
type searchEnv struct {
	t     *testing.T
	h     *server.Server
	token string
	clock *clockwork.FakeClock
}

func newSearchEnv(t *testing.T, mutate ...func(*server.Config)) *searchEnv {
	t.Helper()
	ctx := context.Background()
	clock := clockwork.NewFakeClockAt(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	bk, err := memory.New(ctx, memory.Config{Clock: clock})
	require.NoError(t, err)
	t.Cleanup(func() { bk.Close() })
	svc, err := services.New(services.Config{Backend: bk})
	require.NoError(t, err)
	token := installPlugin(t, svc, "okta", true, false)
	prov := newRealProvisioner(t, bk, svc, clock)
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := server.Config{Users: prov, Groups: prov, Tokens: prov, Status: prov, Logger: discard, Clock: clock, PublicURL: "https://gatehouse.example.com"}
	for _, m := range mutate {
		m(&cfg)
	}
	h, err := server.New(cfg)
	require.NoError(t, err)
	return &searchEnv{t: t, h: h, token: token, clock: clock}
}

func (e *searchEnv) do(method, path, body string) *httptest.ResponseRecorder {
	e.t.Helper()
	r := httptest.NewRequest(method, server.MountPrefix+"okta"+path, strings.NewReader(body))
	r.RemoteAddr = "192.0.2.1:40000"
	r.Header.Set("Authorization", "Bearer "+e.token)
	if body != "" {
		r.Header.Set("Content-Type", "application/scim+json; charset=utf-8")
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w
}

// create POSTs a resource and returns its id; the clock moves a minute first, so that every
// resource has its own meta.created.
func (e *searchEnv) create(path, body string) string {
	e.t.Helper()
	e.clock.Advance(time.Minute)
	w := e.do(http.MethodPost, path, body)
	require.Equal(e.t, http.StatusCreated, w.Code, w.Body.String())
	var m map[string]any
	require.NoError(e.t, json.Unmarshal(w.Body.Bytes(), &m))
	return m["id"].(string)
}

type listResponse struct {
	Schemas      []string         `json:"schemas"`
	TotalResults int              `json:"totalResults"`
	StartIndex   int              `json:"startIndex"`
	ItemsPerPage int              `json:"itemsPerPage"`
	Resources    []map[string]any `json:"Resources"`
}

// list sends a GET (body "") or a POST search and requires a 200 ListResponse.
func (e *searchEnv) list(method, path, body string) listResponse {
	e.t.Helper()
	w := e.do(method, path, body)
	require.Equal(e.t, http.StatusOK, w.Code, "%s %s %s: %s", method, path, body, w.Body.String())
	require.Equal(e.t, "application/scim+json", w.Header().Get("Content-Type"))
	var lr listResponse
	require.NoError(e.t, json.Unmarshal(w.Body.Bytes(), &lr))
	require.Equal(e.t, []string{"urn:ietf:params:scim:api:messages:2.0:ListResponse"}, lr.Schemas)
	require.Len(e.t, lr.Resources, lr.ItemsPerPage)
	return lr
}

// requireError checks a SCIM error answer.
func requireError(t *testing.T, w *httptest.ResponseRecorder, status int, scimType string) {
	t.Helper()
	require.Equal(t, status, w.Code, w.Body.String())
	var m map[string]any
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &m), w.Body.String())
	require.Equal(t, []any{"urn:ietf:params:scim:api:messages:2.0:Error"}, m["schemas"])
	require.Equal(t, strconv.Itoa(status), m["status"])
	require.Equal(t, scimType, m["scimType"], w.Body.String())
	require.NotEmpty(t, m["detail"])
}

// fixtureUser is one user of the fixture, with the values the sort tests order by.
type fixtureUser struct {
	id, userName, displayName, familyName string
	created, modified                     time.Time
}

type fixture struct {
	users  []fixtureUser
	groups map[string]string // id → displayName
}

// newFixture creates five users, with mixed case, equal values (two "Bob Xavier"s, familyName
// "Xavier" and "xavier") and one user with neither displayName nor name, then four groups, and
// finally updates one user so that lastModified order differs from created order.
func newFixture(e *searchEnv) *fixture {
	e.t.Helper()
	f := &fixture{groups: map[string]string{}}
	for _, u := range []fixtureUser{
		{userName: "carol@example.com", displayName: "Carol Zed", familyName: "Zed"},
		{userName: "Alice@example.com", displayName: "alice Young", familyName: "young"},
		{userName: "bob@example.com", displayName: "Bob Xavier", familyName: "Xavier"},
		{userName: "dave@example.com"},
		{userName: "erin@example.com", displayName: "Bob Xavier", familyName: "xavier"},
	} {
		body := map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"}, "userName": u.userName, "active": true}
		if u.displayName != "" {
			body["displayName"] = u.displayName
			body["name"] = map[string]any{"givenName": "G", "familyName": u.familyName}
		}
		raw, err := json.Marshal(body)
		require.NoError(e.t, err)
		u.id = e.create("/Users", string(raw))
		u.created, u.modified = e.clock.Now(), e.clock.Now()
		f.users = append(f.users, u)
	}
	for _, name := range []string{"eng", "Admins", "Sales", "beta"} {
		f.groups[e.create("/Groups", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"`+name+`"}`)] = name
	}
	// carol (created first) is modified last.
	e.clock.Advance(time.Minute)
	w := e.do(http.MethodPatch, "/Users/"+f.users[0].id,
		`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"locale","value":"fr-FR"}]}`)
	require.Equal(e.t, http.StatusOK, w.Code, w.Body.String())
	f.users[0].modified = e.clock.Now()
	return f
}

// sortedIDs is the order RFC 7644 §3.4.2.3 asks for, computed independently of the server:
// case-insensitive strings or instants, missing values last, ties by id; descending reverses it.
func sortedIDs(users []fixtureUser, key func(fixtureUser) (string, bool), desc bool) []string {
	s := slices.Clone(users)
	slices.SortFunc(s, func(a, b fixtureUser) int {
		ka, oka := key(a)
		kb, okb := key(b)
		switch {
		case oka != okb && oka:
			return -1
		case oka != okb:
			return 1
		case ka != kb:
			return strings.Compare(ka, kb)
		}
		return strings.Compare(a.id, b.id)
	})
	ids := make([]string, 0, len(s))
	for _, u := range s {
		ids = append(ids, u.id)
	}
	if desc {
		slices.Reverse(ids)
	}
	return ids
}

func lowerKey(get func(fixtureUser) string) func(fixtureUser) (string, bool) {
	return func(u fixtureUser) (string, bool) { return strings.ToLower(get(u)), get(u) != "" }
}

func timeKey(get func(fixtureUser) time.Time) func(fixtureUser) (string, bool) {
	return func(u fixtureUser) (string, bool) { return get(u).UTC().Format(time.RFC3339Nano), true }
}

func ids(resources []map[string]any) []string {
	out := make([]string, 0, len(resources))
	for _, r := range resources {
		out = append(out, r["id"].(string))
	}
	return out
}

// pageAll reads every page of size count of a GET query and returns the ids in order, checking
// totalResults, startIndex and itemsPerPage on each page.
func (e *searchEnv) pageAll(path string, count, want int) []string {
	e.t.Helper()
	var out []string
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	for start := 1; start <= want; start += count {
		lr := e.list(http.MethodGet, path+sep+"startIndex="+strconv.Itoa(start)+"&count="+strconv.Itoa(count), "")
		require.Equal(e.t, want, lr.TotalResults)
		require.Equal(e.t, start, lr.StartIndex)
		require.Equal(e.t, min(count, want-start+1), lr.ItemsPerPage)
		out = append(out, ids(lr.Resources)...)
	}
	return out
}

// TestSortUsers: sortBy on each sortable User attribute, both orders, read two at a time: every
// user exactly once (no duplicate, no gap), in the RFC order, the same on a second read.
func TestSortUsers(t *testing.T) {
	t.Parallel()
	e := newSearchEnv(t)
	f := newFixture(e)
	keys := map[string]func(fixtureUser) (string, bool){
		"userName":          lowerKey(func(u fixtureUser) string { return u.userName }),
		"displayName":       lowerKey(func(u fixtureUser) string { return u.displayName }),
		"name.familyName":   lowerKey(func(u fixtureUser) string { return u.familyName }),
		"meta.created":      timeKey(func(u fixtureUser) time.Time { return u.created }),
		"meta.lastModified": timeKey(func(u fixtureUser) time.Time { return u.modified }),
	}
	for attr, key := range keys {
		for _, order := range []string{"", "ascending", "descending"} {
			t.Run(attr+" "+order, func(t *testing.T) {
				path := "/Users?sortBy=" + url.QueryEscape(attr)
				if order != "" {
					path += "&sortOrder=" + order
				}
				want := sortedIDs(f.users, key, order == "descending")
				got := e.pageAll(path, 2, len(f.users))
				require.Equal(t, want, got)
				require.Equal(t, got, e.pageAll(path, 3, len(f.users)), "a different page size gives the same order")
			})
		}
	}
	// The user without displayName sorts last ascending, first descending.
	dave := f.users[3].id
	require.Equal(t, dave, e.pageAll("/Users?sortBy=displayName", 5, 5)[4])
	require.Equal(t, dave, e.pageAll("/Users?sortBy=displayName&sortOrder=descending", 5, 5)[0])
}

// TestSortWithFilter: sortBy applies to the matches of the filter only; totalResults counts them.
func TestSortWithFilter(t *testing.T) {
	t.Parallel()
	e := newSearchEnv(t)
	f := newFixture(e)
	lr := e.list(http.MethodGet, "/Users?filter="+url.QueryEscape(`displayName sw "b" or userName sw "c"`)+"&sortBy=userName&sortOrder=descending", "")
	require.Equal(t, 3, lr.TotalResults)
	require.Equal(t, []string{f.users[4].id, f.users[0].id, f.users[2].id}, ids(lr.Resources)) // erin, carol, bob
	// An indexed equality is answered by key, sorted or not.
	lr = e.list(http.MethodGet, "/Users?filter="+url.QueryEscape(`userName eq "ALICE@example.com"`)+"&sortBy=displayName", "")
	require.Equal(t, []string{f.users[1].id}, ids(lr.Resources))
}

// TestSortGroups: displayName (case-insensitive) and the meta times on Groups, paged.
func TestSortGroups(t *testing.T) {
	t.Parallel()
	e := newSearchEnv(t)
	f := newFixture(e)
	byName := map[string]string{}
	for id, name := range f.groups {
		byName[name] = id
	}
	asc := []string{byName["Admins"], byName["beta"], byName["eng"], byName["Sales"]}
	require.Equal(t, asc, e.pageAll("/Groups?sortBy=displayName", 3, 4))
	require.Equal(t, asc, e.pageAll("/Groups?sortBy=DisplayName&sortOrder=ascending", 1, 4))
	desc := slices.Clone(asc)
	slices.Reverse(desc)
	require.Equal(t, desc, e.pageAll("/Groups?sortBy=displayName&sortOrder=descending", 3, 4))
	created := []string{byName["eng"], byName["Admins"], byName["Sales"], byName["beta"]}
	require.Equal(t, created, e.pageAll("/Groups?sortBy=meta.created", 2, 4))
}

// TestSortByForms: attribute names are case-insensitive and may carry the core schema URN;
// sortOrder is matched without case.
func TestSortByForms(t *testing.T) {
	t.Parallel()
	e := newSearchEnv(t)
	f := newFixture(e)
	byUserName := sortedIDs(f.users, lowerKey(func(u fixtureUser) string { return u.userName }), false)
	byFamily := sortedIDs(f.users, lowerKey(func(u fixtureUser) string { return u.familyName }), true)
	byModified := sortedIDs(f.users, timeKey(func(u fixtureUser) time.Time { return u.modified }), false)
	for _, tc := range []struct {
		sortBy, sortOrder string
		want              []string
	}{
		{"USERNAME", "", byUserName},
		{"urn:ietf:params:scim:schemas:core:2.0:User:userName", "", byUserName},
		{"Name.FamilyName", "Descending", byFamily},
		{"urn:ietf:params:scim:schemas:core:2.0:User:name.familyName", "DESCENDING", byFamily},
		{"META.lastmodified", "Ascending", byModified},
		{"urn:ietf:params:scim:schemas:core:2.0:User:meta.lastModified", "", byModified},
	} {
		t.Run(tc.sortBy, func(t *testing.T) {
			path := "/Users?sortBy=" + url.QueryEscape(tc.sortBy) + "&sortOrder=" + tc.sortOrder
			require.Equal(t, tc.want, ids(e.list(http.MethodGet, path, "").Resources))
		})
	}
}

// TestBadSort: a sortBy the server cannot sort by is 400 invalidValue, not an unsorted answer the
// client would take for sorted; so is a sortOrder other than ascending/descending.
func TestBadSort(t *testing.T) {
	t.Parallel()
	e := newSearchEnv(t)
	newFixture(e)
	for _, tc := range []struct{ path, query string }{
		{"/Users", "sortBy=emails"},
		{"/Users", "sortBy=nickName"},
		{"/Users", "sortBy=name"},
		{"/Users", "sortBy=name.givenName"},
		{"/Users", "sortBy=meta"},
		{"/Users", "sortBy=id"},
		{"/Users", "sortBy=urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"},
		{"/Users", "sortBy=urn:ietf:params:scim:schemas:core:2.0:Group:displayName"},
		{"/Users", "sortBy=" + url.QueryEscape(`userName eq "x"`)},
		{"/Users", "sortBy=" + url.QueryEscape("[")},
		{"/Users", "sortBy=userName&sortOrder=up"},
		{"/Users", "sortBy=userName&sortOrder=desc"},
		{"/Users", "sortOrder=sideways"},
		{"/Groups", "sortBy=userName"},
		{"/Groups", "sortBy=members"},
		{"/Groups", "sortBy=urn:ietf:params:scim:schemas:core:2.0:User:displayName"},
		{"/Users", "filter=" + url.QueryEscape(`userName eq "bob@example.com"`) + "&sortBy=emails"},
	} {
		t.Run(tc.path+"?"+tc.query, func(t *testing.T) {
			requireError(t, e.do(http.MethodGet, tc.path+"?"+tc.query, ""), http.StatusBadRequest, "invalidValue")
		})
	}
}

// TestSortBound: a sorted query matching more than MaxSortResults is 400 tooMany; a narrower
// filter, or no sorting, still answers.
func TestSortBound(t *testing.T) {
	t.Parallel()
	e := newSearchEnv(t, func(c *server.Config) { c.MaxSortResults = 3 })
	newFixture(e)
	requireError(t, e.do(http.MethodGet, "/Users?sortBy=userName", ""), http.StatusBadRequest, "tooMany")
	require.Equal(t, 2, e.list(http.MethodGet, "/Users?sortBy=userName&filter="+url.QueryEscape(`displayName eq "Bob Xavier"`), "").TotalResults)
	require.Equal(t, 5, e.list(http.MethodGet, "/Users", "").TotalResults)
}

func searchBody(t *testing.T, fields map[string]any) string {
	t.Helper()
	m := map[string]any{"schemas": []string{searchRequestSchema}}
	for k, v := range fields {
		m[k] = v
	}
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return string(b)
}

// TestSearchUsersAndGroups: POST /Users/.search and /Groups/.search with each SearchRequest
// attribute answer exactly what the GET query form answers.
func TestSearchUsersAndGroups(t *testing.T) {
	t.Parallel()
	e := newSearchEnv(t)
	newFixture(e)
	for _, tc := range []struct {
		name     string
		resource string
		fields   map[string]any
		query    string
		total    int
		items    int
	}{
		{"no parameters", "/Users", nil, "", 5, 5},
		{"filter", "/Users", map[string]any{"filter": `userName sw "b" or userName sw "A"`},
			"filter=" + url.QueryEscape(`userName sw "b" or userName sw "A"`), 2, 2},
		{"attributes", "/Users", map[string]any{"attributes": []string{"userName", "name.familyName"}},
			"attributes=userName,name.familyName", 5, 5},
		{"excludedAttributes", "/Users", map[string]any{"excludedAttributes": []string{"name", "displayName"}},
			"excludedAttributes=name,displayName", 5, 5},
		{"startIndex and count", "/Users", map[string]any{"startIndex": 2, "count": 2}, "startIndex=2&count=2", 5, 2},
		{"count 0", "/Users", map[string]any{"count": 0}, "count=0", 5, 0},
		{"negative count and startIndex", "/Users", map[string]any{"count": -3, "startIndex": -1}, "count=-3&startIndex=-1", 5, 0},
		{"sortBy", "/Users", map[string]any{"sortBy": "name.familyName"}, "sortBy=name.familyName", 5, 5},
		{"sortBy and sortOrder", "/Users", map[string]any{"sortBy": "meta.lastModified", "sortOrder": "descending"},
			"sortBy=meta.lastModified&sortOrder=descending", 5, 5},
		{"null parameters", "/Users", map[string]any{"filter": nil, "sortBy": nil, "count": nil}, "", 5, 5},
		{"every parameter", "/Users", map[string]any{
			"filter": `displayName pr`, "attributes": []string{"userName", "displayName"}, "excludedAttributes": []string{"displayName"},
			"sortBy": "displayName", "sortOrder": "descending", "startIndex": 2, "count": 2,
		}, "filter=" + url.QueryEscape("displayName pr") + "&attributes=userName,displayName&excludedAttributes=displayName" +
			"&sortBy=displayName&sortOrder=descending&startIndex=2&count=2", 4, 2},
		{"groups filter", "/Groups", map[string]any{"filter": `displayName eq "SALES"`}, "filter=" + url.QueryEscape(`displayName eq "SALES"`), 1, 1},
		{"groups sorted page", "/Groups", map[string]any{"sortBy": "displayName", "sortOrder": "descending", "startIndex": 2, "count": 2,
			"attributes": []string{"displayName"}}, "sortBy=displayName&sortOrder=descending&startIndex=2&count=2&attributes=displayName", 4, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			post := e.list(http.MethodPost, tc.resource+"/.search", searchBody(t, tc.fields))
			get := e.list(http.MethodGet, tc.resource+"?"+tc.query, "")
			require.Equal(t, get, post)
			require.Equal(t, tc.total, post.TotalResults)
			require.Len(t, post.Resources, tc.items)
		})
	}

	// Projection, as RFC 7644 §3.9 defines it, through the body.
	lr := e.list(http.MethodPost, "/Users/.search", searchBody(t, map[string]any{"attributes": []string{"userName"}}))
	for _, r := range lr.Resources {
		require.ElementsMatch(t, []string{"id", "userName", "schemas", "meta"}, keys(r))
	}
	lr = e.list(http.MethodPost, "/Users/.search", searchBody(t, map[string]any{"excludedAttributes": []string{"name", "active", "id"}}))
	for _, r := range lr.Resources {
		require.NotContains(t, r, "name")
		require.NotContains(t, r, "active")
		require.Contains(t, r, "id", "id is returned always")
	}
	// SearchRequest attribute names are case-insensitive, like every SCIM attribute name.
	lr = e.list(http.MethodPost, "/Users/.search", `{"Schemas":["`+searchRequestSchema+`"],"Filter":"userName eq \"dave@example.com\"","StartIndex":1,"COUNT":10}`)
	require.Equal(t, 1, lr.TotalResults)
	// application/json is accepted as for every other body.
	r := httptest.NewRequest(http.MethodPost, server.MountPrefix+"okta/Users/.search", strings.NewReader(searchBody(t, nil)))
	r.Header.Set("Authorization", "Bearer "+e.token)
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestRootSearch: POST /.search spans Users and Groups: every User (id order) then every Group
// (id order), paged across the boundary, each resource with its own schemas and
// meta.resourceType; filter and attributes apply per type; sortBy sorts both together.
func TestRootSearch(t *testing.T) {
	t.Parallel()
	e := newSearchEnv(t)
	f := newFixture(e)
	var userIDs, groupIDs []string
	for _, u := range f.users {
		userIDs = append(userIDs, u.id)
	}
	for id := range f.groups {
		groupIDs = append(groupIDs, id)
	}
	slices.Sort(userIDs)
	slices.Sort(groupIDs)
	all := append(slices.Clone(userIDs), groupIDs...)

	t.Run("paging Users then Groups", func(t *testing.T) {
		for _, count := range []int{1, 2, 4, 9, 20} {
			var got []string
			for start := 1; start <= len(all); start += count {
				lr := e.list(http.MethodPost, "/.search", searchBody(t, map[string]any{"startIndex": start, "count": count}))
				require.Equal(t, len(all), lr.TotalResults)
				require.Equal(t, start, lr.StartIndex)
				require.Equal(t, min(count, len(all)-start+1), lr.ItemsPerPage)
				for _, r := range lr.Resources {
					meta := r["meta"].(map[string]any)
					if _, isGroup := f.groups[r["id"].(string)]; isGroup {
						require.Equal(t, "Group", meta["resourceType"])
						require.Equal(t, []any{"urn:ietf:params:scim:schemas:core:2.0:Group"}, r["schemas"])
						require.Equal(t, "https://gatehouse.example.com/v1/webapi/scim/okta/Groups/"+r["id"].(string), meta["location"])
					} else {
						require.Equal(t, "User", meta["resourceType"])
						require.Equal(t, []any{"urn:ietf:params:scim:schemas:core:2.0:User"}, r["schemas"])
					}
				}
				got = append(got, ids(lr.Resources)...)
			}
			require.Equal(t, all, got, "count %d", count)
		}
		lr := e.list(http.MethodPost, "/.search", searchBody(t, map[string]any{"startIndex": 100}))
		require.Equal(t, len(all), lr.TotalResults)
		require.Empty(t, lr.Resources)
	})

	t.Run("filter per type", func(t *testing.T) {
		lr := e.list(http.MethodPost, "/.search", searchBody(t, map[string]any{"filter": `displayName sw "b"`}))
		require.Equal(t, 3, lr.TotalResults) // two "Bob Xavier" users and the group "beta"
		lr = e.list(http.MethodPost, "/.search", searchBody(t, map[string]any{"filter": `userName sw "a"`}))
		require.Equal(t, []string{f.users[1].id}, ids(lr.Resources), "a filter on userName matches no Group")
		lr = e.list(http.MethodPost, "/.search", searchBody(t, map[string]any{"filter": `meta.resourceType eq "Group"`}))
		require.Equal(t, groupIDs, ids(lr.Resources))
	})

	t.Run("attributes per type", func(t *testing.T) {
		lr := e.list(http.MethodPost, "/.search", searchBody(t, map[string]any{"attributes": []string{"userName", "displayName"}}))
		require.Len(t, lr.Resources, len(all))
		for _, r := range lr.Resources {
			if _, isGroup := f.groups[r["id"].(string)]; isGroup {
				require.ElementsMatch(t, []string{"id", "displayName", "schemas", "meta"}, keys(r))
			} else {
				require.NotContains(t, r, "name")
				require.Contains(t, r, "userName")
			}
		}
	})

	t.Run("sorted together", func(t *testing.T) {
		byName := map[string]string{}
		for id, name := range f.groups {
			byName[name] = id
		}
		bobs := []string{f.users[2].id, f.users[4].id}
		slices.Sort(bobs)
		want := []string{byName["Admins"], f.users[1].id, byName["beta"], bobs[0], bobs[1], f.users[0].id, byName["eng"], byName["Sales"], f.users[3].id}
		var got []string
		for start := 1; start <= len(want); start += 4 {
			lr := e.list(http.MethodPost, "/.search", searchBody(t, map[string]any{"sortBy": "displayName", "startIndex": start, "count": 4}))
			require.Equal(t, len(want), lr.TotalResults)
			got = append(got, ids(lr.Resources)...)
		}
		require.Equal(t, want, got)
		desc := e.list(http.MethodPost, "/.search", searchBody(t, map[string]any{"sortBy": "displayName", "sortOrder": "descending"}))
		slices.Reverse(want)
		require.Equal(t, want, ids(desc.Resources))
		// userName exists on Users only: the Groups sort as missing, after every User.
		lr := e.list(http.MethodPost, "/.search", searchBody(t, map[string]any{"sortBy": "userName"}))
		require.Equal(t, append(sortedIDs(f.users, lowerKey(func(u fixtureUser) string { return u.userName }), false), groupIDs...), ids(lr.Resources))
	})

	t.Run("bad sortBy", func(t *testing.T) {
		requireError(t, e.do(http.MethodPost, "/.search", searchBody(t, map[string]any{"sortBy": "emails"})), http.StatusBadRequest, "invalidValue")
	})
}

// TestBadSearchRequest: a body that is not a SearchRequest is 400 invalidSyntax; a parameter of
// the wrong type or value is 400 invalidValue (invalidFilter for a bad filter), on every search
// endpoint.
func TestBadSearchRequest(t *testing.T) {
	t.Parallel()
	e := newSearchEnv(t)
	newFixture(e)
	sr := `"schemas":["` + searchRequestSchema + `"]`
	for _, tc := range []struct {
		name, body, scimType string
	}{
		{"not JSON", `filter=userName`, "invalidSyntax"},
		{"array", `[{` + sr + `}]`, "invalidSyntax"},
		{"empty body", ``, "invalidSyntax"},
		{"no schemas", `{"filter":"userName pr"}`, "invalidSyntax"},
		{"PatchOp schema", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"]}`, "invalidSyntax"},
		{"User schema", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"]}`, "invalidSyntax"},
		{"two schemas", `{"schemas":["` + searchRequestSchema + `","urn:ietf:params:scim:schemas:core:2.0:User"]}`, "invalidSyntax"},
		{"schemas not a list", `{"schemas":"` + searchRequestSchema + `"}`, "invalidSyntax"},
		{"unknown attribute", `{` + sr + `,"sort":"userName"}`, "invalidSyntax"},
		{"attribute twice", `{` + sr + `,"count":1,"Count":2}`, "invalidSyntax"},
		{"data after the object", `{` + sr + `} {}`, "invalidSyntax"},
		{"count as a string", `{` + sr + `,"count":"10"}`, "invalidValue"},
		{"count not an integer", `{` + sr + `,"count":2.5}`, "invalidValue"},
		{"startIndex as a boolean", `{` + sr + `,"startIndex":true}`, "invalidValue"},
		{"startIndex not an integer", `{` + sr + `,"startIndex":1e3}`, "invalidValue"},
		{"attributes as a string", `{` + sr + `,"attributes":"userName"}`, "invalidValue"},
		{"attributes with a comma", `{` + sr + `,"attributes":["userName,id"]}`, "invalidValue"},
		{"excludedAttributes not strings", `{` + sr + `,"excludedAttributes":[1]}`, "invalidValue"},
		{"filter not a string", `{` + sr + `,"filter":{"userName":"x"}}`, "invalidValue"},
		{"sortBy not a string", `{` + sr + `,"sortBy":["userName"]}`, "invalidValue"},
		{"bad filter", `{` + sr + `,"filter":"userName zz \"x\""}`, "invalidFilter"},
		{"unknown sortBy", `{` + sr + `,"sortBy":"nickName"}`, "invalidValue"},
		{"bad sortOrder", `{` + sr + `,"sortBy":"meta.created","sortOrder":"newest"}`, "invalidValue"},
	} {
		for _, path := range []string{"/Users/.search", "/Groups/.search", "/.search"} {
			t.Run(tc.name+" "+path, func(t *testing.T) {
				requireError(t, e.do(http.MethodPost, path, tc.body), http.StatusBadRequest, tc.scimType)
			})
		}
	}

	// .search answers POST only; it is not a resource id.
	w := e.do(http.MethodGet, "/Users/.search", "")
	require.Equal(t, http.StatusMethodNotAllowed, w.Code)
	require.Equal(t, "POST", w.Header().Get("Allow"))
	w = e.do(http.MethodDelete, "/.search", "")
	require.Equal(t, http.StatusMethodNotAllowed, w.Code)
	require.Equal(t, http.StatusNotFound, e.do(http.MethodPost, "/.search/x", searchBody(t, nil)).Code)
	// The body rules of every request hold: a Content-Type that is not JSON is 415.
	r := httptest.NewRequest(http.MethodPost, server.MountPrefix+"okta/Users/.search", strings.NewReader(searchBody(t, nil)))
	r.Header.Set("Authorization", "Bearer "+e.token)
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w = httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	require.Equal(t, http.StatusUnsupportedMediaType, w.Code)
}

// TestServiceProviderConfigAdvertisesSort: sort.supported is true now that sortBy works.
func TestServiceProviderConfigAdvertisesSort(t *testing.T) {
	t.Parallel()
	e := newSearchEnv(t)
	w := e.do(http.MethodGet, "/ServiceProviderConfig", "")
	require.Equal(t, http.StatusOK, w.Code)
	var m map[string]any
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &m))
	require.Equal(t, true, m["sort"].(map[string]any)["supported"])
}

// TestSortSeesWrites: a write through the endpoint between two pages of a sorted list is seen by
// the next page (the sorted-list snapshot is dropped), in its sorted place.
func TestSortSeesWrites(t *testing.T) {
	t.Parallel()
	e := newSearchEnv(t)
	f := newFixture(e)
	first := e.list(http.MethodGet, "/Users?sortBy=userName&count=2", "")
	require.Equal(t, 5, first.TotalResults)
	require.Equal(t, f.users[1].id, first.Resources[0]["id"]) // Alice
	aaron := e.create("/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"aaron@example.com"}`)
	again := e.list(http.MethodGet, "/Users?sortBy=userName&count=2", "")
	require.Equal(t, 6, again.TotalResults)
	require.Equal(t, aaron, again.Resources[0]["id"])
	w := e.do(http.MethodDelete, "/Users/"+aaron, "")
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	require.Equal(t, first, e.list(http.MethodGet, "/Users?sortBy=userName&count=2", ""))
}

// TestSortSharedExternalID: an externalId may name several users; a filter on it is answered by
// the index and still sorted as sortBy asks, and paged.
func TestSortSharedExternalID(t *testing.T) {
	t.Parallel()
	e := newSearchEnv(t)
	b := e.create("/Users", `{"userName":"bob@example.com","externalId":"shared","active":true}`)
	a := e.create("/Users", `{"userName":"alice@example.com","externalId":"shared","active":true}`)
	c := e.create("/Users", `{"userName":"carol@example.com","externalId":"shared","active":true}`)
	e.create("/Users", `{"userName":"dave@example.com","externalId":"other","active":true}`)
	q := "/Users?filter=" + url.QueryEscape(`externalId eq "shared"`)
	lr := e.list(http.MethodGet, q+"&sortBy=userName", "")
	require.Equal(t, 3, lr.TotalResults)
	require.Equal(t, []string{a, b, c}, ids(lr.Resources))
	lr = e.list(http.MethodGet, q+"&sortBy=userName&sortOrder=descending&startIndex=2&count=1", "")
	require.Equal(t, 3, lr.TotalResults)
	require.Equal(t, []string{b}, ids(lr.Resources))
}
