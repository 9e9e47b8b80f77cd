package schema

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/plugins/scim/scimerr"
)

func TestDecodeKeepsNumbersExact(t *testing.T) {
	t.Parallel()
	in := `{"userName":"a","x-custom":{"n":12345678901234567890,"f":0.1000000000000000055511151231257827}}`
	r, err := Decode([]byte(in))
	require.NoError(t, err)
	b, err := json.Marshal(r)
	require.NoError(t, err)
	require.JSONEq(t, in, string(b))
	require.Contains(t, string(b), "12345678901234567890")
	for _, bad := range []string{``, `[]`, `null`, `{} {}`, `{"a":`} {
		_, err := Decode([]byte(bad))
		require.Equal(t, scimerr.InvalidSyntax, scimerr.From(err).ScimType, bad)
	}
}

func TestNormalize(t *testing.T) {
	t.Parallel()
	r, err := Decode([]byte(`{"USERNAME":"jane","Name":{"GIVENNAME":"J"},"active":"TRUE","groups":[],
		"emails":{"Value":"a@x"},"password":null,"custom":"kept",
		"URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER":{"EmployeeNumber":"7"}}`))
	require.NoError(t, err)
	require.NoError(t, UserResourceType.Normalize(r))
	b, _ := json.Marshal(r)
	require.JSONEq(t, `{"userName":"jane","name":{"givenName":"J"},"active":true,"emails":[{"value":"a@x"}],
		"custom":"kept","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"employeeNumber":"7"},
		"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]}`, string(b))
	require.NoError(t, UserResourceType.Validate(r))

	for _, bad := range []string{`{"userName":"a","username":"b"}`, `{"userName":5}`, `{"active":"yes"}`,
		`{"meta":{"lastModified":"yesterday"}}`, `{"name":"x"}`} {
		r, err := Decode([]byte(bad))
		require.NoError(t, err)
		require.Error(t, UserResourceType.Normalize(r), bad)
	}
	r = Resource{"displayName": "x"}
	require.NoError(t, UserResourceType.Normalize(r))
	require.Equal(t, scimerr.InvalidValue, scimerr.From(UserResourceType.Validate(r)).ScimType)
}

func TestStripReadOnly(t *testing.T) {
	t.Parallel()
	r, err := Decode([]byte(`{"id":"x","meta":{},"userName":"a","groups":[{"value":"g"}],
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":{"value":"m","displayName":"M"}}}`))
	require.NoError(t, err)
	UserResourceType.StripReadOnly(r)
	b, _ := json.Marshal(r)
	require.JSONEq(t, `{"userName":"a","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":{"value":"m"}}}`, string(b))
}

func TestResolve(t *testing.T) {
	t.Parallel()
	rt := UserResourceType
	ref := rt.Resolve("", "EMAILS", "VALUE")
	require.Equal(t, "emails", ref.Name)
	require.Equal(t, "value", ref.SubName)
	ref = rt.Resolve("urn:ietf:params:scim:schemas:extension:enterprise:2.0", "User", "")
	require.True(t, ref.ExtRoot)
	require.Equal(t, EnterpriseSchema, ref.Ext)
	ref = rt.Resolve(EnterpriseSchema, "manager", "value")
	require.Equal(t, EnterpriseSchema, ref.Ext)
	require.True(t, ref.Sub.CaseExact)
	ref = rt.Resolve("", "department", "")
	require.Equal(t, EnterpriseSchema, ref.Ext)
	ref = rt.Resolve("urn:example:custom", "thing", "")
	require.Equal(t, "urn:example:custom", ref.Ext)
	require.Nil(t, ref.Attr)
}
