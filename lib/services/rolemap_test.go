package services

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

func TestRolesFromAttributes(t *testing.T) {
	t.Parallel()
	conn := &typesv1.SAMLConnector{Spec: &typesv1.SAMLConnectorSpec{AttributesToRoles: []*typesv1.AttributeMapping{
		{Name: "groups", Value: "Eng", Roles: []string{"eng", "access"}},
		{Name: "groups", Value: "*", Roles: []string{"member"}},
		{Name: "dept", Value: "ops", Roles: []string{"ops", "access"}},
	}}}
	for _, tc := range []struct {
		name  string
		attrs map[string][]string
		want  []string
	}{
		{"none", nil, nil},
		{"exact and wildcard", map[string][]string{"groups": {"Eng"}}, []string{"access", "eng", "member"}},
		{"case-sensitive value", map[string][]string{"groups": {"eng"}}, []string{"member"}},
		{"wildcard needs a value", map[string][]string{"groups": {""}}, nil},
		{"several attributes, deduplicated", map[string][]string{"groups": {"Eng"}, "dept": {"ops"}}, []string{"access", "eng", "member", "ops"}},
		{"other attribute name", map[string][]string{"Groups": {"Eng"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, RolesFromAttributes(conn, tc.attrs))
		})
	}
	require.Nil(t, RolesFromAttributes(nil, map[string][]string{"groups": {"Eng"}}))
}

func TestSCIMAttributesLabelLimit(t *testing.T) {
	t.Parallel()
	u := &typesv1.User{Metadata: &typesv1.Metadata{Name: "jane", Labels: map[string]string{LabelSCIMAttributes: strings.Repeat("x", 50<<10)}}}
	require.NoError(t, ValidateUser(u))
	u.Metadata.Labels[LabelSCIMAttributes] = strings.Repeat("x", MaxSCIMAttributesBytes+1)
	require.Error(t, ValidateUser(u))
	u.Metadata.Labels = map[string]string{"other": strings.Repeat("x", 50<<10)}
	require.Error(t, ValidateUser(u), "other labels keep the usual limit")
}
