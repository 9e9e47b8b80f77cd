package protocol

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/plugins/scim/schema"
	"github.com/gatehouse/gatehouse/plugins/scim/scimerr"
)

func TestContentType(t *testing.T) {
	t.Parallel()
	for ct, ok := range map[string]bool{
		"": true, "application/scim+json": true, "application/scim+json; charset=utf-8": true,
		"application/json": true, "Application/JSON; charset=UTF-8": true,
		"text/plain": false, "application/xml": false, "garbage;;": false,
	} {
		r := httptest.NewRequest(http.MethodPost, "/Users", strings.NewReader("{}"))
		if ct != "" {
			r.Header.Set("Content-Type", ct)
		}
		err := CheckContentType(r)
		require.Equal(t, ok, err == nil, ct)
		if !ok {
			require.Equal(t, http.StatusUnsupportedMediaType, scimerr.From(err).Status)
		}
	}
}

func TestReadBodyLimit(t *testing.T) {
	t.Parallel()
	r := httptest.NewRequest(http.MethodPost, "/Users", strings.NewReader(strings.Repeat("a", MaxBodyBytes+1)))
	_, err := ReadBody(httptest.NewRecorder(), r)
	require.Equal(t, http.StatusRequestEntityTooLarge, scimerr.From(err).Status)
	r = httptest.NewRequest(http.MethodPost, "/Users", strings.NewReader(strings.Repeat("a", MaxBodyBytes)))
	b, err := ReadBody(httptest.NewRecorder(), r)
	require.NoError(t, err)
	require.Len(t, b, MaxBodyBytes)
}

func TestParsePage(t *testing.T) {
	t.Parallel()
	for q, want := range map[string]Page{
		"":                                {1, DefaultCount},
		"startIndex=1&count=2":            {1, 2},
		"startIndex=0&count=-5":           {1, 0},
		"startIndex=-3":                   {1, DefaultCount},
		"count=100000":                    {1, MaxResults},
		"startIndex=99999999999999999999": {int(^uint(0)>>1) / 2, DefaultCount},
	} {
		v, _ := url.ParseQuery(q)
		got, err := ParsePage(v)
		require.NoError(t, err, q)
		require.Equal(t, want, got, q)
	}
	for _, q := range []string{"count=abc", "startIndex=1.5"} {
		v, _ := url.ParseQuery(q)
		_, err := ParsePage(v)
		require.Equal(t, scimerr.InvalidValue, scimerr.From(err).ScimType, q)
	}
	items := []int{1, 2, 3, 4, 5}
	require.Equal(t, []int{3, 4}, Slice(items, Page{3, 2}))
	require.Empty(t, Slice(items, Page{6, 2}))
	require.Empty(t, Slice(items, Page{1, 0}))
	require.Equal(t, []int{5}, Slice(items, Page{5, 10}))
}

func TestListResponse(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(NewListResponse(0, Page{1, 100}, nil))
	require.NoError(t, err)
	require.JSONEq(t, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
		"totalResults":0,"startIndex":1,"itemsPerPage":0,"Resources":[]}`, string(b))
}

func TestProjection(t *testing.T) {
	t.Parallel()
	rt := schema.UserResourceType
	r, err := schema.Decode([]byte(`{"id":"u1","userName":"jane","password":"secret","active":true,
		"name":{"givenName":"Jane","familyName":"Doe"},
		"emails":[{"value":"a@x","type":"work"},{"value":"b@x","type":"home"}],
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Eng","employeeNumber":"7"},
		"meta":{"resourceType":"User"}}`))
	require.NoError(t, err)
	require.NoError(t, rt.Normalize(r))
	for _, tc := range []struct{ q, want string }{
		{"", `{"id":"u1","userName":"jane","active":true,"name":{"givenName":"Jane","familyName":"Doe"},
			"emails":[{"value":"a@x","type":"work"},{"value":"b@x","type":"home"}],
			"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Eng","employeeNumber":"7"},
			"meta":{"resourceType":"User"},
			"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]}`},
		{"attributes=userName,name.givenName,emails.value,password", `{"id":"u1","userName":"jane","name":{"givenName":"Jane"},
			"emails":[{"value":"a@x"},{"value":"b@x"}],"meta":{"resourceType":"User"},
			"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]}`},
		{"attributes=urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", `{"id":"u1",
			"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Eng"},"meta":{"resourceType":"User"},
			"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]}`},
		{"excludedAttributes=emails,name.familyName,id,meta,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
			`{"id":"u1","userName":"jane","active":true,"name":{"givenName":"Jane"},"meta":{"resourceType":"User"},
			"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]}`},
	} {
		v, _ := url.ParseQuery(tc.q)
		p, err := ParseProjection(rt, v)
		require.NoError(t, err, tc.q)
		b, err := json.Marshal(p.Apply(rt, r))
		require.NoError(t, err)
		require.JSONEq(t, tc.want, string(b), tc.q)
	}
	_, err = ParseProjection(rt, url.Values{"attributes": {"emails[type"}})
	require.Equal(t, scimerr.InvalidValue, scimerr.From(err).ScimType)
}

// TestProjectionReturns: Returns agrees with what Apply outputs for a group's members.display.
func TestProjectionReturns(t *testing.T) {
	t.Parallel()
	for query, want := range map[string]bool{
		"":                                   true,
		"attributes=members":                 true,
		"attributes=MEMBERS.display":         true,
		"attributes=displayName,members":     true,
		"excludedAttributes=displayName":     true,
		"attributes=displayName":             false,
		"attributes=members.value":           false,
		"excludedAttributes=members":         false,
		"excludedAttributes=members.display": false,
		"excludedAttributes=members.value":   true,
		"attributes=urn:ietf:params:scim:schemas:core:2.0:Group:members": true,
	} {
		q, err := url.ParseQuery(query)
		require.NoError(t, err)
		p, err := ParseProjection(schema.GroupResourceType, q)
		require.NoError(t, err)
		require.Equal(t, want, p.Returns(schema.GroupResourceType, "members", "display"), query)
		out := p.Apply(schema.GroupResourceType, schema.Resource{"id": "g", "displayName": "Eng",
			"members": []any{map[string]any{"value": "u", "display": "jane"}}})
		members, _ := out["members"].([]any)
		shown := len(members) == 1 && members[0].(map[string]any)["display"] == "jane"
		require.Equal(t, shown, want, "Apply and Returns disagree on %q", query)
	}
}
