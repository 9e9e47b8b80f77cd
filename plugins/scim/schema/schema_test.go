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

// TestMultiValuedUniqueness: RFC 7643 §2.4 on every multi-valued complex attribute.
func TestMultiValuedUniqueness(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in string
		rt       *ResourceType
		attr     string
		want     string // JSON of attr after Normalize; "" means invalidValue naming attr
	}{
		{name: "same type and value once, sub-attributes merged, case-insensitive value", rt: UserResourceType, attr: "emails",
			in:   `{"userName":"a","emails":[{"value":"a@x","type":"work"},{"value":"b@x"},{"value":"A@X","type":"Work","primary":true,"display":"A"}]}`,
			want: `[{"value":"a@x","type":"Work","primary":true,"display":"A"},{"value":"b@x"}]`},
		{name: "other type is another value", rt: UserResourceType, attr: "emails",
			in:   `{"userName":"a","emails":[{"value":"a@x","type":"work"},{"value":"a@x","type":"home"}]}`,
			want: `[{"value":"a@x","type":"work"},{"value":"a@x","type":"home"}]`},
		{name: "primary kept when a duplicate says false", rt: UserResourceType, attr: "phoneNumbers",
			in:   `{"userName":"a","phoneNumbers":[{"value":"1","primary":true},{"value":"1","primary":false}]}`,
			want: `[{"value":"1","primary":true}]`},
		{name: "duplicate of the primary is one primary", rt: UserResourceType, attr: "emails",
			in:   `{"userName":"a","emails":[{"value":"a@x","primary":true},{"value":"a@x","primary":"true"}]}`,
			want: `[{"value":"a@x","primary":true}]`},
		{name: "addresses compare whole", rt: UserResourceType, attr: "addresses",
			in:   `{"userName":"a","addresses":[{"locality":"Paris"},{"locality":"Paris"},{"locality":"Lyon"}]}`,
			want: `[{"locality":"Paris"},{"locality":"Lyon"}]`},
		{name: "two primary emails", rt: UserResourceType, attr: "emails",
			in: `{"userName":"a","emails":[{"value":"a@x","primary":true},{"value":"b@x","primary":true}]}`},
		{name: "two primary x509Certificates", rt: UserResourceType, attr: "x509Certificates",
			in: `{"userName":"a","x509Certificates":[{"value":"MII1","primary":true},{"value":"MII2","primary":"True"}]}`},
		{name: "two primary addresses", rt: UserResourceType, attr: "addresses",
			in: `{"userName":"a","addresses":[{"locality":"Paris","primary":true},{"locality":"Lyon","primary":true}]}`},
		{name: "group members once per value", rt: GroupResourceType, attr: "members",
			in:   `{"displayName":"g","members":[{"value":"u1"},{"value":"u2"},{"value":"u1","display":"one"}]}`,
			want: `[{"value":"u1","display":"one"},{"value":"u2"}]`},
		{name: "member ids are case-exact", rt: GroupResourceType, attr: "members",
			in:   `{"displayName":"g","members":[{"value":"u1"},{"value":"U1"}]}`,
			want: `[{"value":"u1"},{"value":"U1"}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, err := Decode([]byte(tc.in))
			require.NoError(t, err)
			err = tc.rt.Normalize(r)
			if tc.want == "" {
				e := scimerr.From(err)
				require.Equal(t, scimerr.InvalidValue, e.ScimType)
				require.Contains(t, e.Detail, tc.attr)
				return
			}
			require.NoError(t, err)
			b, _ := json.Marshal(r[tc.attr])
			require.JSONEq(t, tc.want, string(b))
		})
	}
}
