package patch

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/plugins/scim/schema"
	"github.com/gatehouse/gatehouse/plugins/scim/scimerr"
)

const userJSON = `{
  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
  "id": "u-1", "externalId": "00u1",
  "userName": "jane@example.com",
  "name": {"givenName": "Jane", "familyName": "Doe"},
  "active": true,
  "emails": [{"value": "jane@example.com", "type": "work", "primary": true}],
  "meta": {"resourceType": "User", "version": "W/\"1\""}
}`

const groupJSON = `{"id": "g-1", "displayName": "Eng", "meta": {"resourceType": "Group"}}`

func load(t testing.TB, rt *schema.ResourceType, s string) schema.Resource {
	r, err := schema.Decode([]byte(s))
	require.NoError(t, err)
	require.NoError(t, rt.Normalize(r))
	return r
}

func body(ops string) string {
	return `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":` + ops + `}`
}

func run(t testing.TB, rt *schema.ResourceType, start schema.Resource, ops string) (schema.Resource, error) {
	req, err := Parse([]byte(body(ops)))
	if err != nil {
		return nil, err
	}
	return Apply(rt, start, req.Operations)
}

func asJSON(t testing.TB, v any) string {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

type patchCase struct {
	name  string
	rt    *schema.ResourceType
	start string
	ops   string
	// check inspects the result; scimType/status describe the expected error instead.
	check    func(t *testing.T, r schema.Resource)
	scimType string
	status   int
}

var patchCases = []patchCase{
	{
		name: "okta deactivate", rt: schema.UserResourceType, start: userJSON,
		ops: `[{"op":"replace","value":{"active":false}}]`,
		check: func(t *testing.T, r schema.Resource) {
			v, ok := r.Bool("active")
			require.True(t, ok)
			require.False(t, v)
			require.Equal(t, "u-1", r.String("id"))
		},
	},
	{
		name: "okta reactivate, op case-insensitive", rt: schema.UserResourceType,
		start: `{"id":"u-1","userName":"jane@example.com","active":false}`,
		ops:   `[{"op":"Replace","value":{"active":true}}]`,
		check: func(t *testing.T, r schema.Resource) {
			v, _ := r.Bool("active")
			require.True(t, v)
		},
	},
	{
		name: "okta add member to group without members", rt: schema.GroupResourceType, start: groupJSON,
		ops: `[{"op":"add","path":"members","value":[{"value":"u-1","display":"jane@example.com"}]}]`,
		check: func(t *testing.T, r schema.Resource) {
			require.JSONEq(t, `[{"value":"u-1","display":"jane@example.com"}]`, asJSON(t, r["members"]))
		},
	},
	{
		name: "okta remove member by filter and add another", rt: schema.GroupResourceType,
		start: `{"id":"g-1","displayName":"Eng","members":[{"value":"u-1"},{"value":"u-2"}]}`,
		ops: `[{"op":"remove","path":"members[value eq \"u-1\"]"},
		       {"op":"add","path":"members","value":[{"value":"u-3","display":"c@example.com"}]}]`,
		check: func(t *testing.T, r schema.Resource) {
			require.JSONEq(t, `[{"value":"u-2"},{"value":"u-3","display":"c@example.com"}]`, asJSON(t, r["members"]))
		},
	},
	{
		name: "remove member that is not there succeeds", rt: schema.GroupResourceType,
		start: `{"id":"g-1","displayName":"Eng","members":[{"value":"u-2"}]}`,
		ops:   `[{"op":"remove","path":"members[value eq \"u-9\"]"}]`,
		check: func(t *testing.T, r schema.Resource) {
			require.JSONEq(t, `[{"value":"u-2"}]`, asJSON(t, r["members"]))
		},
	},
	{
		name: "remove member from group without members succeeds", rt: schema.GroupResourceType, start: groupJSON,
		ops: `[{"op":"remove","path":"members[value eq \"u-9\"]"}]`,
		check: func(t *testing.T, r schema.Resource) {
			_, ok := r["members"]
			require.False(t, ok)
		},
	},
	{
		name: "add existing member does not duplicate", rt: schema.GroupResourceType,
		start: `{"id":"g-1","displayName":"Eng","members":[{"value":"u-1"}]}`,
		ops:   `[{"op":"add","path":"members","value":[{"value":"u-1","display":"jane"}]}]`,
		check: func(t *testing.T, r schema.Resource) {
			require.JSONEq(t, `[{"value":"u-1","display":"jane"}]`, asJSON(t, r["members"]))
		},
	},
	{
		name: "okta push empty group: replace members []", rt: schema.GroupResourceType,
		start: `{"id":"g-1","displayName":"Eng","members":[{"value":"u-1"}]}`,
		ops:   `[{"op":"replace","path":"members","value":[]}]`,
		check: func(t *testing.T, r schema.Resource) {
			_, ok := r["members"]
			require.False(t, ok)
		},
	},
	{
		name: "okta path-less rename carrying id", rt: schema.GroupResourceType, start: groupJSON,
		ops: `[{"op":"replace","value":{"id":"g-1","displayName":"Engineering"}}]`,
		check: func(t *testing.T, r schema.Resource) {
			require.Equal(t, "Engineering", r.String("displayName"))
			require.Equal(t, "g-1", r.String("id"))
		},
	},
	{
		name: "path-less replace ignores a different id and meta", rt: schema.GroupResourceType, start: groupJSON,
		ops: `[{"op":"replace","value":{"id":"other","meta":{"version":"x"},"schemas":["x"],"displayName":"Ops"}}]`,
		check: func(t *testing.T, r schema.Resource) {
			require.Equal(t, "g-1", r.String("id"))
			require.Equal(t, "Ops", r.String("displayName"))
			require.JSONEq(t, `{"resourceType":"Group"}`, asJSON(t, r["meta"]))
			require.Equal(t, []any{schema.GroupSchema}, r["schemas"])
		},
	},
	{
		name: "replace emails[type eq work].value", rt: schema.UserResourceType, start: userJSON,
		ops: `[{"op":"replace","path":"emails[type eq \"work\"].value","value":"j@corp.example.com"}]`,
		check: func(t *testing.T, r schema.Resource) {
			require.JSONEq(t, `[{"value":"j@corp.example.com","type":"work","primary":true}]`, asJSON(t, r["emails"]))
		},
	},
	{
		name: "replace with a filter that matches nothing is noTarget", rt: schema.UserResourceType, start: userJSON,
		ops:      `[{"op":"replace","path":"emails[type eq \"home\"].value","value":"j@home.example"}]`,
		scimType: scimerr.NoTarget, status: http.StatusBadRequest,
	},
	{
		name: "add through an equality filter creates the element", rt: schema.UserResourceType, start: userJSON,
		ops: `[{"op":"add","path":"emails[type eq \"home\"].value","value":"j@home.example"}]`,
		check: func(t *testing.T, r schema.Resource) {
			require.JSONEq(t, `[{"value":"jane@example.com","type":"work","primary":true},{"type":"home","value":"j@home.example"}]`,
				asJSON(t, r["emails"]))
		},
	},
	{
		name: "sub-attribute path", rt: schema.UserResourceType, start: userJSON,
		ops: `[{"op":"replace","path":"name.givenName","value":"Janet"},{"op":"add","path":"NAME.middleName","value":"Q"}]`,
		check: func(t *testing.T, r schema.Resource) {
			require.JSONEq(t, `{"givenName":"Janet","familyName":"Doe","middleName":"Q"}`, asJSON(t, r["name"]))
		},
	},
	{
		name: "replace complex keeps unspecified sub-attributes", rt: schema.UserResourceType, start: userJSON,
		ops: `[{"op":"replace","value":{"name":{"familyName":"Smith"}}}]`,
		check: func(t *testing.T, r schema.Resource) {
			require.JSONEq(t, `{"givenName":"Jane","familyName":"Smith"}`, asJSON(t, r["name"]))
		},
	},
	{
		name: "URN-qualified extension path on a user without the extension", rt: schema.UserResourceType, start: userJSON,
		ops: `[{"op":"add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber","value":"701984"},
		       {"op":"replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value","value":"u-2"}]`,
		check: func(t *testing.T, r schema.Resource) {
			require.JSONEq(t, `{"employeeNumber":"701984","manager":{"value":"u-2"}}`, asJSON(t, r[schema.EnterpriseSchema]))
			require.Equal(t, []any{schema.UserSchema, schema.EnterpriseSchema}, r["schemas"])
		},
	},
	{
		name: "Entra ID's manager as a bare id", rt: schema.UserResourceType, start: userJSON,
		ops: `[{"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":"u-2"},
		       {"op":"Replace","value":{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department":"Eng"}}]`,
		check: func(t *testing.T, r schema.Resource) {
			require.JSONEq(t, `{"department":"Eng","manager":{"value":"u-2"}}`, asJSON(t, r[schema.EnterpriseSchema]))
		},
	},
	{
		name: "Entra ID's manager as a bare id, path-less", rt: schema.UserResourceType, start: userJSON,
		ops: `[{"op":"Replace","value":{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager":"u-3"}}]`,
		check: func(t *testing.T, r schema.Resource) {
			require.JSONEq(t, `{"manager":{"value":"u-3"}}`, asJSON(t, r[schema.EnterpriseSchema]))
		},
	},
	{
		name: "path-less value with an extension object", rt: schema.UserResourceType, start: userJSON,
		ops: `[{"op":"replace","value":{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Eng","manager":{"value":"u-2","displayName":"ignored"}}}}]`,
		check: func(t *testing.T, r schema.Resource) {
			require.JSONEq(t, `{"department":"Eng","manager":{"value":"u-2"}}`, asJSON(t, r[schema.EnterpriseSchema]))
		},
	},
	{
		name: "path-less value keeps an unknown extension's object", rt: schema.UserResourceType, start: userJSON,
		ops: `[{"op":"add","value":{"urn:example:custom:1.0:User":{"badge":"7"},"urn:example:other:1.0:User:floor":"3"}}]`,
		check: func(t *testing.T, r schema.Resource) {
			require.JSONEq(t, `{"badge":"7"}`, asJSON(t, r["urn:example:custom:1.0:User"]))
			require.JSONEq(t, `{"floor":"3"}`, asJSON(t, r["urn:example:other:1.0:User"]))
		},
	},
	{
		name: "path-less dotted keys set sub-attributes; read-only ones are ignored", rt: schema.UserResourceType, start: userJSON,
		ops: `[{"op":"replace","value":{"name.familyName":"King","meta.version":"W/\"9\"","id":"other"}}]`,
		check: func(t *testing.T, r schema.Resource) {
			require.JSONEq(t, `{"givenName":"Jane","familyName":"King"}`, asJSON(t, r["name"]))
			require.Equal(t, "u-1", r["id"])
			require.NotContains(t, r, "name.familyName")
		},
	},
	{
		name: "remove the whole extension", rt: schema.UserResourceType,
		start: `{"userName":"a","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Eng"}}`,
		ops:   `[{"op":"remove","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"}]`,
		check: func(t *testing.T, r schema.Resource) {
			require.Equal(t, []any{schema.UserSchema}, r["schemas"])
			_, ok := r[schema.EnterpriseSchema]
			require.False(t, ok)
		},
	},
	{
		name: "new primary email clears the old one", rt: schema.UserResourceType, start: userJSON,
		ops: `[{"op":"add","path":"emails","value":[{"value":"b@example.com","type":"other","primary":true}]}]`,
		check: func(t *testing.T, r schema.Resource) {
			require.JSONEq(t, `[{"value":"jane@example.com","type":"work"},{"value":"b@example.com","type":"other","primary":true}]`,
				asJSON(t, r["emails"]))
		},
	},
	{
		name: "boolean as string is accepted", rt: schema.UserResourceType, start: userJSON,
		ops: `[{"op":"replace","path":"active","value":"False"}]`,
		check: func(t *testing.T, r schema.Resource) {
			v, ok := r.Bool("active")
			require.True(t, ok)
			require.False(t, v)
		},
	},
	{
		name: "remove an attribute", rt: schema.UserResourceType, start: userJSON,
		ops: `[{"op":"remove","path":"emails"},{"op":"remove","path":"nickName"}]`,
		check: func(t *testing.T, r schema.Resource) {
			_, ok := r["emails"]
			require.False(t, ok)
		},
	},
	{
		name: "remove members by value list", rt: schema.GroupResourceType,
		start: `{"displayName":"Eng","members":[{"value":"u-1"},{"value":"u-2"}]}`,
		ops:   `[{"op":"remove","path":"members","value":[{"value":"u-1"}]}]`,
		check: func(t *testing.T, r schema.Resource) {
			require.JSONEq(t, `[{"value":"u-2"}]`, asJSON(t, r["members"]))
		},
	},
	// Errors.
	{name: "change id", rt: schema.UserResourceType, start: userJSON,
		ops: `[{"op":"replace","path":"id","value":"x"}]`, scimType: scimerr.Mutability, status: 400},
	{name: "change meta.version", rt: schema.UserResourceType, start: userJSON,
		ops: `[{"op":"replace","path":"meta.version","value":"x"}]`, scimType: scimerr.Mutability, status: 400},
	{name: "add groups on a user", rt: schema.UserResourceType, start: userJSON,
		ops: `[{"op":"add","path":"groups","value":[{"value":"g"}]}]`, scimType: scimerr.Mutability, status: 400},
	{name: "remove required userName", rt: schema.UserResourceType, start: userJSON,
		ops: `[{"op":"remove","path":"userName"}]`, scimType: scimerr.Mutability, status: 400},
	{name: "change a member's value", rt: schema.GroupResourceType,
		start:    `{"displayName":"Eng","members":[{"value":"u-1"}]}`,
		ops:      `[{"op":"replace","path":"members[value eq \"u-1\"].value","value":"u-2"}]`,
		scimType: scimerr.Mutability, status: 400},
	{name: "remove without path", rt: schema.UserResourceType, start: userJSON,
		ops: `[{"op":"remove"}]`, scimType: scimerr.NoTarget, status: 400},
	{name: "bad path", rt: schema.UserResourceType, start: userJSON,
		ops: `[{"op":"replace","path":"emails[type eq","value":"x"}]`, scimType: scimerr.InvalidPath, status: 400},
	{name: "filter on a single-valued attribute", rt: schema.UserResourceType, start: userJSON,
		ops: `[{"op":"replace","path":"name[givenName eq \"Jane\"]","value":{}}]`, scimType: scimerr.InvalidPath, status: 400},
	{name: "wrong type", rt: schema.UserResourceType, start: userJSON,
		ops: `[{"op":"replace","value":{"active":"yes"}}]`, scimType: scimerr.InvalidValue, status: 400},
	{name: "path-less dotted key under an unknown schema", rt: schema.UserResourceType, start: userJSON,
		ops: `[{"op":"replace","value":{"urn:example:custom:1.0:User:badge.number":"7"}}]`, scimType: scimerr.InvalidPath, status: 400},
	{name: "path-less filtered key naming no sub-attribute", rt: schema.UserResourceType, start: userJSON,
		ops: `[{"op":"add","value":{"emails[type eq \"work\"].shoe":"x"}}]`, scimType: scimerr.InvalidPath, status: 400},
	{name: "manager as a number", rt: schema.UserResourceType, start: userJSON,
		ops: `[{"op":"add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":7}]`, scimType: scimerr.InvalidValue, status: 400},
	{name: "name as a bare string", rt: schema.UserResourceType, start: userJSON,
		ops: `[{"op":"replace","path":"name","value":"Jane"}]`, scimType: scimerr.InvalidValue, status: 400},
	{name: "path naming no sub-attribute of a known attribute", rt: schema.UserResourceType, start: userJSON,
		ops: `[{"op":"add","path":"name.middle","value":"x"}]`, scimType: scimerr.InvalidPath, status: 400},
	{name: "filtered path naming no sub-attribute", rt: schema.UserResourceType, start: userJSON,
		ops: `[{"op":"replace","path":"emails[type eq \"work\"].shoe","value":"x"}]`, scimType: scimerr.InvalidPath, status: 400},
	{name: "path-less key that is not a path", rt: schema.UserResourceType, start: userJSON,
		ops: `[{"op":"replace","value":{"emails[type eq":"x"}}]`, scimType: scimerr.InvalidPath, status: 400},
	{name: "path-less value not an object", rt: schema.UserResourceType, start: userJSON,
		ops: `[{"op":"replace","value":false}]`, scimType: scimerr.InvalidValue, status: 400},
	{name: "unknown op", rt: schema.UserResourceType, start: userJSON,
		ops: `[{"op":"move","path":"active"}]`, scimType: scimerr.InvalidSyntax, status: 400},
	{name: "no operations (Entra ID's empty PATCH) changes nothing", rt: schema.UserResourceType, start: userJSON,
		ops: `[]`,
		check: func(t *testing.T, r schema.Resource) {
			require.JSONEq(t, asJSON(t, load(t, schema.UserResourceType, userJSON)), asJSON(t, r))
		},
	},
	{name: "replace without value", rt: schema.UserResourceType, start: userJSON,
		ops: `[{"op":"replace","path":"active"}]`, scimType: scimerr.InvalidValue, status: 400},
	{
		name: "a value made primary demotes the others (RFC 7644 §3.5.2)", rt: schema.UserResourceType, start: userJSON,
		ops: `[{"op":"add","path":"emails","value":[{"value":"j@home.example","type":"home","primary":true}]}]`,
		check: func(t *testing.T, r schema.Resource) {
			require.JSONEq(t, `[{"value":"jane@example.com","type":"work"},{"value":"j@home.example","type":"home","primary":true}]`,
				asJSON(t, r["emails"]))
		},
	},
	{
		name: "add of an existing email changes nothing", rt: schema.UserResourceType, start: userJSON,
		ops: `[{"op":"add","path":"emails","value":[{"value":"JANE@example.com","type":"work","primary":true}]}]`,
		check: func(t *testing.T, r schema.Resource) {
			require.Len(t, r["emails"], 1)
		},
	},
	{name: "a value with two primaries is refused (RFC 7643 §2.4)", rt: schema.UserResourceType, start: userJSON,
		ops:      `[{"op":"replace","path":"emails","value":[{"value":"a@example.com","primary":true},{"value":"b@example.com","primary":true}]}]`,
		scimType: scimerr.InvalidValue, status: 400},
	{name: "a failing operation leaves nothing applied", rt: schema.UserResourceType, start: userJSON,
		ops:      `[{"op":"replace","value":{"active":false}},{"op":"replace","path":"id","value":"x"}]`,
		scimType: scimerr.Mutability, status: 400},
}

func TestApply(t *testing.T) {
	t.Parallel()
	for _, tc := range patchCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			start := load(t, tc.rt, tc.start)
			before := asJSON(t, start)
			got, err := run(t, tc.rt, start, tc.ops)
			// Apply never touches its input, whatever the outcome.
			require.Equal(t, before, asJSON(t, start))
			if tc.scimType != "" {
				require.Error(t, err)
				e := scimerr.From(err)
				require.Equal(t, tc.status, e.Status)
				require.Equal(t, tc.scimType, e.ScimType)
				return
			}
			require.NoError(t, err)
			tc.check(t, got)
		})
	}
}

func TestParseSchemaRequired(t *testing.T) {
	t.Parallel()
	_, err := Parse([]byte(`{"Operations":[{"op":"add","path":"x","value":1}]}`))
	require.Equal(t, scimerr.InvalidSyntax, scimerr.From(err).ScimType)
	_, err = Parse([]byte(`not json`))
	require.Equal(t, scimerr.InvalidSyntax, scimerr.From(err).ScimType)
	// Operations absent or null is malformed; an empty list is a PATCH that changes nothing,
	// on the fast scanner's path and on encoding/json's (an escape in a key declines the scanner).
	for _, b := range []string{
		`{"schemas":["` + PatchOpSchema + `"]}`,
		`{"schemas":["` + PatchOpSchema + `"],"Operations":null}`,
		`{"schemas":["` + PatchOpSchema + `"],"operations":null}`,
	} {
		_, err = Parse([]byte(b))
		require.Equal(t, scimerr.InvalidSyntax, scimerr.From(err).ScimType, b)
	}
	for _, b := range []string{
		`{"schemas":["` + PatchOpSchema + `"],"Operations":[]}`,
		`{"schemas":["` + PatchOpSchema + `"],"Operation\u0073":[]}`,
	} {
		req, err := Parse([]byte(b))
		require.NoError(t, err, b)
		require.Empty(t, req.Operations, b)
	}
}

func FuzzPatch(f *testing.F) {
	for _, tc := range patchCases {
		f.Add([]byte(body(tc.ops)))
	}
	user := load(f, schema.UserResourceType, userJSON)
	group := load(f, schema.GroupResourceType, `{"id":"g","displayName":"Eng","members":[{"value":"u-1"},{"value":"u-2"}]}`)
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := Parse(data)
		if err != nil {
			if scimerr.From(err).Status != http.StatusBadRequest {
				t.Fatalf("parse error is not a 400: %v", err)
			}
			return
		}
		for _, c := range []struct {
			rt *schema.ResourceType
			r  schema.Resource
		}{{schema.UserResourceType, user}, {schema.GroupResourceType, group}} {
			before := asJSON(t, c.r)
			out, err := Apply(c.rt, c.r, req.Operations)
			if asJSON(t, c.r) != before {
				t.Fatalf("Apply modified its input")
			}
			if err != nil {
				if e := scimerr.From(err); e.Status != http.StatusBadRequest || e.ScimType == "" {
					t.Fatalf("apply error is not a 400 with scimType: %v", err)
				}
				continue
			}
			// The result must be a stable, normalized resource.
			again := out.Clone()
			if err := c.rt.Normalize(again); err != nil {
				t.Fatalf("result does not normalize: %v", err)
			}
			if asJSON(t, again) != asJSON(t, out) {
				t.Fatalf("result is not normalized")
			}
		}
	})
}

// TestApplyToLegacyDuplicatePrimaries: a record stored before two primaries were refused can
// still be patched (Okta's deactivation must not fail for what it did not send); the first
// primary is kept.
func TestApplyToLegacyDuplicatePrimaries(t *testing.T) {
	t.Parallel()
	start, err := schema.Decode([]byte(`{"id":"u-1","userName":"jane","active":true,
		"emails":[{"value":"a@example.com","primary":true},{"value":"b@example.com","primary":true}]}`))
	require.NoError(t, err)
	got, err := run(t, schema.UserResourceType, start, `[{"op":"replace","value":{"active":false}}]`)
	require.NoError(t, err)
	require.JSONEq(t, `[{"value":"a@example.com","primary":true},{"value":"b@example.com"}]`, asJSON(t, got["emails"]))
}
