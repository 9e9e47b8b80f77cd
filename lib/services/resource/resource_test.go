package resource

import (
	"strings"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gatehouse/gatehouse/lib/services"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

const multiYAML = `
---
kind: user
version: v1
metadata:
  name: alice
  labels:
    gatehouse.dev/origin: scim
  expires: "2031-01-02T03:04:05Z"
spec:
  roles: [access]
  traits:
    logins: [alice, root]
---
kind: saml
version: v1
metadata:
  name: okta
spec:
  acs: https://gh.example.com/v1/webapi/saml/acs/okta
  entity_descriptor: |
    <EntityDescriptor>
    ---
    </EntityDescriptor>
  attributes_to_roles:
  - name: groups
    value: admins
    roles: [editor]
  disable_idp_initiated: true
---
kind: plugin
version: v1
metadata:
  name: okta
spec:
  okta:
    saml_connector: okta
    scim_enabled: true
    scim_rate_limit: 5
status:
  code: PLUGIN_STATUS_CODE_RUNNING
`

func TestParseYAML(t *testing.T) {
	t.Parallel()
	res, err := Parse([]byte(multiYAML))
	require.NoError(t, err)
	require.Len(t, res, 3)

	u, ok := res[0].(*typesv1.User)
	require.True(t, ok)
	require.Equal(t, "alice", u.GetMetadata().GetName())
	require.Equal(t, "scim", u.GetMetadata().GetLabels()[services.LabelOrigin])
	require.True(t, u.GetMetadata().GetExpires().AsTime().Equal(time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)))
	require.Equal(t, []string{"alice", "root"}, services.TraitValues(u, "logins"))
	require.NoError(t, services.ValidateUser(u))

	c, ok := res[1].(*typesv1.SAMLConnector)
	require.True(t, ok)
	require.Contains(t, c.GetSpec().GetEntityDescriptor(), "---", "a separator inside a block scalar is content")
	require.True(t, c.GetSpec().GetDisableIdpInitiated())
	require.NoError(t, services.ValidateSAMLConnector(c))

	p, ok := res[2].(*typesv1.Plugin)
	require.True(t, ok)
	require.Equal(t, int32(5), p.GetSpec().GetOkta().GetScimRateLimit())
	require.Equal(t, typesv1.PluginStatusCode_PLUGIN_STATUS_CODE_RUNNING, p.GetStatus().GetCode())
	require.Equal(t, services.KindPlugin, KindOf(p))
}

func TestParseJSON(t *testing.T) {
	t.Parallel()
	one := `{"kind":"role","version":"v1","metadata":{"name":"r"},"spec":{"allow":{"logins":["root"]}}}`
	for name, in := range map[string]string{
		"object":  one,
		"stream":  one + "\n" + strings.Replace(one, `"r"`, `"s"`, 1),
		"array":   "[" + one + "," + strings.Replace(one, `"r"`, `"s"`, 1) + "]",
		"as yaml": "kind: role\nversion: v1\nmetadata: {name: r}\nspec: {allow: {logins: [root]}}\n",
	} {
		t.Run(name, func(t *testing.T) {
			res, err := Parse([]byte(in))
			require.NoError(t, err)
			require.NotEmpty(t, res)
			r := res[0].(*typesv1.Role)
			require.Equal(t, "r", r.GetMetadata().GetName())
			require.Equal(t, []string{"root"}, r.GetSpec().GetAllow().GetLogins())
			if len(res) > 1 {
				require.Equal(t, "s", res[1].(*typesv1.Role).GetMetadata().GetName())
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	user := "kind: user\nversion: v1\nmetadata: {name: a}\n"
	for _, tc := range []struct {
		name, in string
		want     []string
	}{
		{"empty", "", []string{"no resources"}},
		{"only separators", "---\n---\n", []string{"no resources"}},
		{"unknown kind", "kind: widget\nversion: v1\n", []string{"document 1", `"widget"`, "unknown resource kind"}},
		{"missing kind", "version: v1\nmetadata: {name: a}\n", []string{"document 1", "missing kind"}},
		{"bad version", "kind: user\nversion: v2\nmetadata: {name: a}\n", []string{"document 1", `kind "user"`, `unsupported version "v2"`}},
		{"missing version", "kind: user\nmetadata: {name: a}\n", []string{"document 1", "unsupported version"}},
		{"typo in second doc", user + "---\n" + "kind: role\nversion: v1\nmetadata: {name: r}\nspec: {alow: {}}\n", []string{"document 2", `kind "role"`, "alow"}},
		{"typo in metadata", "kind: user\nversion: v1\nmetadata: {nmae: a}\n", []string{"document 1", "nmae"}},
		{"wrong type", "kind: plugin\nversion: v1\nmetadata: {name: p}\nspec: {okta: {scim_rate_limit: lots}}\n", []string{"document 1", `kind "plugin"`}},
		{"not a mapping", "- a\n- b\n", []string{"document 1", "mapping"}},
		{"bad yaml", "kind: [user\n", []string{"document 1", "invalid YAML"}},
		{"bad json", `{"kind": "user",`, []string{"document 1", "invalid JSON"}},
		{"json scalar in array", `[1]`, []string{"document 1", "not a resource object"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			require.Error(t, err)
			require.True(t, trace.IsBadParameter(err), "%v", err)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}

func sampleResources() []proto.Message {
	return []proto.Message{
		&typesv1.User{
			Kind: "user", Version: "v1",
			Metadata: &typesv1.Metadata{Name: "alice", Revision: "7", Expires: timestamppb.New(time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC))},
			Spec: &typesv1.UserSpec{
				Roles:     []string{"access"},
				Traits:    services.NewTraits(map[string][]string{"logins": {"alice"}}),
				CreatedBy: &typesv1.CreatedBy{Connector: &typesv1.ConnectorRef{Type: "saml", Id: "okta", Identity: "alice@example.com"}},
			},
		},
		&typesv1.Lock{
			Kind: "lock", Version: "v1", Metadata: &typesv1.Metadata{Name: "l"},
			Spec: &typesv1.LockSpec{Target: &typesv1.LockTarget{User: "alice"}, Message: "bye"},
		},
		&typesv1.PluginStaticCredentials{
			Kind: "plugin_static_credentials", Version: "v1", Metadata: &typesv1.Metadata{Name: "c"},
			Spec: &typesv1.PluginStaticCredentialsSpec{ScimTokenHash: []byte{0, 1, 2, 255}},
		},
		&typesv1.CertAuthority{
			Kind: "cert_authority", Version: "v1", Metadata: &typesv1.Metadata{Name: "host"},
			Spec: &typesv1.CertAuthoritySpec{ClusterName: "c", TlsCert: []byte("CERT")},
		},
		&typesv1.SAMLConnector{
			Kind: "saml", Version: "v1", Metadata: &typesv1.Metadata{Name: "okta"},
			Spec: &typesv1.SAMLConnectorSpec{Acs: "https://gh.example.com/v1/webapi/saml/acs/okta", DisableIdpInitiated: true},
		},
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	in := sampleResources()
	for _, format := range []Format{YAML, JSON} {
		t.Run(string(format), func(t *testing.T) {
			for _, set := range [][]proto.Message{in, in[:1]} {
				out, err := Marshal(format, set...)
				require.NoError(t, err)
				require.Contains(t, string(out), "created_by", "proto names in snake_case")
				back, err := Parse(out)
				require.NoError(t, err, "%s", out)
				require.Len(t, back, len(set))
				for i := range set {
					require.True(t, proto.Equal(set[i], back[i]), "%d: got %v want %v", i, back[i], set[i])
				}
			}
		})
	}

	single, err := Marshal(JSON, in[1])
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(single), "{"), "one resource prints as an object")
	multi, err := Marshal(YAML, in...)
	require.NoError(t, err)
	require.Equal(t, len(in)-1, strings.Count(string(multi), "\n---\n"))
	require.Contains(t, string(multi), "disable_idp_initiated: true")
	none, err := Marshal(JSON)
	require.NoError(t, err)
	require.Equal(t, "[]\n", string(none))

	_, err = Marshal("xml", in[0])
	require.True(t, trace.IsBadParameter(err))
	_, err = Marshal(YAML, (*typesv1.User)(nil))
	require.True(t, trace.IsBadParameter(err))

	var sb strings.Builder
	require.NoError(t, Write(&sb, YAML, in[1]))
	require.Contains(t, sb.String(), "kind: lock")
}

func TestNewKnowsEveryKind(t *testing.T) {
	t.Parallel()
	for _, k := range Kinds() {
		m, err := New(k)
		require.NoError(t, err)
		require.NotNil(t, m)
	}
	_, err := New("nope")
	require.True(t, trace.IsBadParameter(err))
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(multiYAML))
	f.Add([]byte(`[{"kind":"lock","version":"v1"}]`))
	f.Add([]byte("kind: user\nversion: v1\n---\n- x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := Parse(data)
		if err != nil {
			return
		}
		// Whatever parses prints and parses back to the same resources.
		out, err := Marshal(JSON, res...)
		require.NoError(t, err)
		back, err := Parse(out)
		require.NoError(t, err)
		require.Len(t, back, len(res))
		for i := range res {
			require.True(t, proto.Equal(res[i], back[i]))
		}
	})
}

// TestYAMLWithControlCharacters: a C1 control or DEL in a value (text from
// outside) neither fails printing as YAML nor changes on the way back.
func TestYAMLWithControlCharacters(t *testing.T) {
	t.Parallel()
	lock := &typesv1.Lock{
		Kind: services.KindLock, Version: services.V1,
		Metadata: &typesv1.Metadata{Name: "hold"},
		Spec:     &typesv1.LockSpec{Target: &typesv1.LockTarget{User: "eve"}, Message: "a\u009b2J b\x7f c\x1b]52;c;eA==\x07 d\u202e"},
	}
	out, err := Marshal(YAML, lock)
	require.NoError(t, err)
	require.NotContains(t, string(out), "\u009b")
	msgs, err := Parse(out)
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	require.True(t, proto.Equal(lock, msgs[0]), "%s", out)
}
