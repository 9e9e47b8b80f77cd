package discovery

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/plugins/scim/schema"
)

func TestServiceProviderConfig(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(NewServiceProviderConfig("https://gh.example/v1/webapi/scim/okta/"))
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	require.Equal(t, true, m["patch"].(map[string]any)["supported"])
	require.Equal(t, false, m["bulk"].(map[string]any)["supported"])
	require.Equal(t, true, m["filter"].(map[string]any)["supported"])
	require.EqualValues(t, 1000, m["filter"].(map[string]any)["maxResults"])
	require.Equal(t, true, m["sort"].(map[string]any)["supported"])
	require.Equal(t, false, m["changePassword"].(map[string]any)["supported"])
	require.Equal(t, true, m["etag"].(map[string]any)["supported"])
	require.Equal(t, "oauthbearertoken", m["authenticationSchemes"].([]any)[0].(map[string]any)["type"])
	require.Equal(t, "https://gh.example/v1/webapi/scim/okta/ServiceProviderConfig", m["meta"].(map[string]any)["location"])
}

func TestSchemasTellTheTruth(t *testing.T) {
	t.Parallel()
	s, ok := SchemaByID("", schema.UserSchema)
	require.True(t, ok)
	b, err := json.Marshal(s)
	require.NoError(t, err)
	var doc struct {
		Attributes []map[string]any `json:"attributes"`
	}
	require.NoError(t, json.Unmarshal(b, &doc))
	byName := map[string]map[string]any{}
	for _, a := range doc.Attributes {
		byName[a["name"].(string)] = a
	}
	require.Equal(t, "never", byName["password"]["returned"])
	require.Equal(t, "writeOnly", byName["password"]["mutability"])
	require.Equal(t, false, byName["userName"]["caseExact"])
	require.Equal(t, true, byName["userName"]["required"])
	require.Equal(t, "server", byName["userName"]["uniqueness"])
	require.Equal(t, "readOnly", byName["groups"]["mutability"])
	require.NotEmpty(t, byName["emails"]["subAttributes"])

	// A group's displayName is unique per plugin (409 uniqueness), and says so.
	g, ok := SchemaByID("", schema.GroupSchema)
	require.True(t, ok)
	b, err = json.Marshal(g)
	require.NoError(t, err)
	var group struct {
		Attributes []map[string]any `json:"attributes"`
	}
	require.NoError(t, json.Unmarshal(b, &group))
	require.Equal(t, "displayName", group.Attributes[0]["name"])
	require.Equal(t, "server", group.Attributes[0]["uniqueness"])

	rt, ok := ResourceTypeByID("https://h/scim", "user")
	require.True(t, ok)
	require.Equal(t, "/Users", rt.Endpoint)
	require.Equal(t, []SchemaExtension{{Schema: schema.EnterpriseSchema}}, rt.SchemaExtensions)
	require.Len(t, ResourceTypes(""), 2)
	require.Len(t, Schemas(""), 3)
	_, ok = SchemaByID("", "urn:nope")
	require.False(t, ok)
	l := List(Schemas(""))
	require.Equal(t, 3, l["totalResults"])
}
