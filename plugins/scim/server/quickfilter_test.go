package server

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/plugins/scim/filter"
	"github.com/gatehouse/gatehouse/plugins/scim/schema"
)

func TestQuickEquality(t *testing.T) {
	t.Parallel()
	indexed := map[string]bool{"userName": true, "externalId": true, "id": true}
	cases := []struct {
		raw         string
		attr, value string
		ok          bool
	}{
		{`userName eq "jane@example.com"`, "userName", "jane@example.com", true},
		{`USERNAME EQ "Jane@Example.com"`, "userName", "Jane@Example.com", true},
		{`  userName  eq  "x" `, "", "", false},
		{`externalId eq "00u1"`, "externalId", "00u1", true},
		{`id eq "abc"`, "id", "abc", true},
		{`userName eq ""`, "userName", "", true},
		{`displayName eq "x"`, "", "", false},
		{`userName ne "x"`, "", "", false},
		{`userName eq "a" or userName eq "b"`, "", "", false},
		{`userName eq "a\"b"`, "", "", false},
		{`userName eq "a\u0041"`, "", "", false},
		{`urn:ietf:params:scim:schemas:core:2.0:User:userName eq "x"`, "", "", false},
		{`userName eq x`, "", "", false},
		{`userName eq "x`, "", "", false},
		{`userName eq`, "", "", false},
		{`userName pr`, "", "", false},
		{`(userName eq "x")`, "", "", false},
		{``, "", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.raw, func(t *testing.T) {
			attr, value, ok := quickEquality(tc.raw, indexed)
			require.Equal(t, tc.ok, ok)
			require.Equal(t, tc.attr, attr)
			require.Equal(t, tc.value, value)
			if ok {
				// Whatever the shortcut accepts, the full grammar reads the same way.
				f, err := filter.Parse(tc.raw, schema.UserResourceType)
				require.NoError(t, err)
				fa, fv, fok := filter.EqualityLookup(f)
				require.True(t, fok)
				require.Equal(t, attr, fa)
				require.Equal(t, value, fv)
			}
		})
	}
}

func FuzzQuickEquality(f *testing.F) {
	for _, s := range []string{`userName eq "a"`, `id eq "x" and id eq "y"`, `externalId EQ "00u"`, `userName eq "\""`} {
		f.Add(s)
	}
	indexed := map[string]bool{"userName": true, "externalId": true, "id": true}
	f.Fuzz(func(t *testing.T, raw string) {
		attr, value, ok := quickEquality(raw, indexed)
		if !ok {
			return
		}
		flt, err := filter.Parse(raw, schema.UserResourceType)
		if err != nil {
			t.Fatalf("shortcut accepted %q that the parser refuses: %v", raw, err)
		}
		fa, fv, fok := filter.EqualityLookup(flt)
		if !fok || fa != attr || fv != value {
			t.Fatalf("shortcut read %q as %s=%q, parser as %v %s=%q", raw, attr, value, fok, fa, fv)
		}
	})
}
