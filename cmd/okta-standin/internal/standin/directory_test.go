package standin

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// fakeGatehouse records the SCIM requests it gets and answers as Gatehouse
// would, with fixed ids; fail makes it answer 500 to a method.
type fakeGatehouse struct {
	mu       sync.Mutex
	requests []recorded
	fail     string
	// existing is the id the userName lookup finds ("" = none).
	existing string
}

type recorded struct {
	Method, URI string
	Header      http.Header
	Body        map[string]any
}

func (f *fakeGatehouse) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	rec := recorded{Method: r.Method, URI: strings.TrimPrefix(r.URL.RequestURI(), "/scim"), Header: r.Header.Clone()}
	if len(raw) > 0 {
		_ = json.Unmarshal(raw, &rec.Body)
	}
	f.mu.Lock()
	f.requests = append(f.requests, rec)
	fail, existing := f.fail, f.existing
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/scim+json")
	if r.Method == fail {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"500","detail":"boom"}`)
		return
	}
	switch {
	case r.Method == http.MethodGet && strings.HasPrefix(rec.URI, "/Users?"):
		if existing != "" {
			_, _ = io.WriteString(w, `{"totalResults":1,"Resources":[{"id":"`+existing+`"}]}`)
			return
		}
		_, _ = io.WriteString(w, `{"totalResults":0,"Resources":[]}`)
	case r.Method == http.MethodGet && strings.HasPrefix(rec.URI, "/Groups?"):
		_, _ = io.WriteString(w, `{"totalResults":0,"Resources":[]}`)
	case r.Method == http.MethodGet:
		_, _ = io.WriteString(w, `{"schemas":["`+schemaUser+`"],"id":"u-1","userName":"ada@example.com","active":false,"meta":{"resourceType":"User"},"groups":[]}`)
	case r.Method == http.MethodPost && rec.URI == "/Users":
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"id":"u-1"}`)
	case r.Method == http.MethodPost && rec.URI == "/Groups":
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"id":"g-`+rec.Body["displayName"].(string)+`"}`)
	case r.Method == http.MethodPatch && strings.HasPrefix(rec.URI, "/Groups/"):
		w.WriteHeader(http.StatusNoContent)
	default:
		_, _ = io.WriteString(w, `{"id":"u-1"}`)
	}
}

func (f *fakeGatehouse) take() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.requests
	f.requests = nil
	return out
}

func newTestDirectory(t *testing.T) (*Directory, *fakeGatehouse, *[]Call) {
	t.Helper()
	fake := &fakeGatehouse{}
	srv := httptest.NewTLSServer(fake)
	t.Cleanup(srv.Close)
	var calls []Call
	scim, err := NewSCIMClient(SCIMConfig{BaseURL: srv.URL + "/scim", Token: "secret-token", HTTPClient: srv.Client(), OnCall: func(c Call) { calls = append(calls, c) }})
	require.NoError(t, err)
	d := NewDirectory(scim, DemoPeople)
	require.NoError(t, d.PushGroups(context.Background()))
	fake.take()
	calls = nil
	return d, fake, &calls
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

func TestSCIMRequestsAreOktas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, fake, calls := newTestDirectory(t)

	// Assign: lookup before create, then POST /Users.
	require.NoError(t, d.Assign(ctx, "ada"))
	reqs := fake.take()
	require.Len(t, reqs, 2)
	require.Equal(t, http.MethodGet, reqs[0].Method)
	require.Equal(t, `/Users?filter=userName%20eq%20%22ada%40example.com%22&startIndex=1&count=100`, reqs[0].URI)
	for _, r := range reqs {
		require.Equal(t, "Bearer secret-token", r.Header.Get("Authorization"))
		require.Equal(t, "Okta SCIM Client 1.0.0", r.Header.Get("User-Agent"))
		require.Equal(t, "application/scim+json", r.Header.Get("Accept"))
	}
	require.Empty(t, reqs[0].Header.Get("Content-Type"), "no body, no content type")
	create := reqs[1]
	require.Equal(t, http.MethodPost, create.Method)
	require.Equal(t, "/Users", create.URI)
	require.Equal(t, "application/scim+json; charset=utf-8", create.Header.Get("Content-Type"))
	require.Equal(t, []any{schemaUser}, create.Body["schemas"])
	require.Equal(t, "ada@example.com", create.Body["userName"])
	require.Equal(t, map[string]any{"givenName": "Ada", "familyName": "Lovelace"}, create.Body["name"])
	require.Equal(t, []any{map[string]any{"primary": true, "value": "ada@example.com", "type": "work"}}, create.Body["emails"])
	require.Equal(t, "Ada Lovelace", create.Body["displayName"])
	require.Equal(t, "en-US", create.Body["locale"])
	require.Equal(t, "00udemoada0000000001", create.Body["externalId"])
	require.Equal(t, []any{}, create.Body["groups"])
	require.Equal(t, true, create.Body["active"])
	require.NotEmpty(t, create.Body["password"], "Okta sends a placeholder password")
	p, err := d.Get("ada")
	require.NoError(t, err)
	require.Equal(t, "u-1", p.SCIMID)
	require.True(t, p.CanSignIn())

	// The page's log never shows the token or the placeholder.
	for _, c := range *calls {
		require.NotContains(t, c.Body, "secret-token")
		require.NotContains(t, c.Body, create.Body["password"].(string))
	}

	// Deactivate: the path-less PATCH replacing active.
	require.NoError(t, d.SetActive(ctx, "ada", false))
	reqs = fake.take()
	require.Len(t, reqs, 1)
	require.Equal(t, http.MethodPatch, reqs[0].Method)
	require.Equal(t, "/Users/u-1", reqs[0].URI)
	require.JSONEq(t, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}`, jsonOf(t, reqs[0].Body))
	p, _ = d.Get("ada")
	require.False(t, p.CanSignIn())

	// Assigning a deactivated person is refused, with nothing sent.
	require.NoError(t, d.Unassign(ctx, "ada"))
	require.Error(t, d.Assign(ctx, "ada"))
	require.Empty(t, fake.take(), "an unassign of a deactivated user and a refused assign send nothing")

	// Reactivate (not assigned: nothing sent), then reassign: GET then PUT
	// of the whole user with active true.
	require.NoError(t, d.SetActive(ctx, "ada", true))
	require.Empty(t, fake.take())
	require.NoError(t, d.Assign(ctx, "ada"))
	reqs = fake.take()
	require.Len(t, reqs, 2)
	require.Equal(t, http.MethodGet, reqs[0].Method)
	require.Equal(t, "/Users/u-1", reqs[0].URI)
	require.Equal(t, http.MethodPut, reqs[1].Method)
	require.Equal(t, "/Users/u-1", reqs[1].URI)
	put := reqs[1].Body
	require.Equal(t, true, put["active"])
	require.Equal(t, "u-1", put["id"], "Okta PUTs back what it read, id and meta included")
	require.Equal(t, map[string]any{"resourceType": "User"}, put["meta"])
	require.Equal(t, "Ada Lovelace", put["displayName"])

	// Reactivation of an assigned person: PATCH active true.
	require.NoError(t, d.SetActive(ctx, "ada", false))
	fake.take()
	require.NoError(t, d.SetActive(ctx, "ada", true))
	reqs = fake.take()
	require.Len(t, reqs, 1)
	require.JSONEq(t, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":true}}]}`, jsonOf(t, reqs[0].Body))
}

func TestGroupPushesAreOktas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, fake, _ := newTestDirectory(t)

	// Not assigned: kept in Okta, pushed with the assignment.
	require.NoError(t, d.SetGroup(ctx, "grace", GroupAuditors, true))
	require.Empty(t, fake.take())
	require.NoError(t, d.Assign(ctx, "grace"))
	reqs := fake.take()
	require.Len(t, reqs, 3, "lookup, create, membership")
	add := reqs[2]
	require.Equal(t, http.MethodPatch, add.Method)
	require.Equal(t, "/Groups/g-Auditors", add.URI)
	require.JSONEq(t, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
		{"op":"add","path":"members","value":[{"value":"u-1","display":"grace@example.com"}]},
		{"op":"replace","value":{"id":"g-Auditors","displayName":"Auditors"}}]}`, jsonOf(t, add.Body))

	// Removal: by value filter, with the rename.
	require.NoError(t, d.SetGroup(ctx, "grace", GroupAuditors, false))
	reqs = fake.take()
	require.Len(t, reqs, 1)
	require.JSONEq(t, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
		{"op":"remove","path":"members[value eq \"u-1\"]"},
		{"op":"replace","value":{"id":"g-Auditors","displayName":"Auditors"}}]}`, jsonOf(t, reqs[0].Body))
	p, _ := d.Get("grace")
	require.Empty(t, p.Groups)

	require.Error(t, d.SetGroup(ctx, "grace", "Nope", true))
}

// A change Gatehouse refused is not kept: the page shows the state
// Gatehouse has.
func TestRefusedChangeIsNotKept(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, fake, calls := newTestDirectory(t)
	require.NoError(t, d.Assign(ctx, "alan"))
	fake.mu.Lock()
	fake.fail = http.MethodPatch
	fake.mu.Unlock()
	err := d.SetActive(ctx, "alan", false)
	require.ErrorContains(t, err, "HTTP 500: boom")
	p, _ := d.Get("alan")
	require.True(t, p.Active)
	last := (*calls)[len(*calls)-1]
	require.Equal(t, http.StatusInternalServerError, last.Status)
	require.Equal(t, "boom", last.Err)
}

// Gatehouse already has the user (a demo restarted on the same data dir):
// the lookup finds it and Okta reassigns instead of creating.
func TestAssignFindsExistingUser(t *testing.T) {
	t.Parallel()
	d, fake, _ := newTestDirectory(t)
	fake.mu.Lock()
	fake.existing = "u-1"
	fake.mu.Unlock()
	require.NoError(t, d.Assign(context.Background(), "katherine"))
	var methods []string
	for _, r := range fake.take() {
		methods = append(methods, r.Method+" "+strings.SplitN(r.URI, "?", 2)[0])
	}
	require.Equal(t, []string{"GET /Users", "GET /Users/u-1", "PUT /Users/u-1"}, methods)
}

func TestSCIMConfigRefusesPlainHTTP(t *testing.T) {
	t.Parallel()
	_, err := NewSCIMClient(SCIMConfig{BaseURL: "http://localhost:3080/v1/webapi/scim/okta", Token: "t", HTTPClient: http.DefaultClient})
	require.ErrorContains(t, err, "https")
}
