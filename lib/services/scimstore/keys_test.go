package scimstore

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/backend"
)

// TestPluginKeyMatchesNewKey holds the one-allocation key builder to backend.NewKey.
func TestPluginKeyMatchesNewKey(t *testing.T) {
	t.Parallel()
	for _, parts := range [][]string{
		nil, {""}, {usersPart, ""}, {usersPart, "id"}, {userNamesPart, "a%2Fb"},
		{userExternalIDsPart, "x", "id"}, {"", "", ""}, {strings.Repeat("p", 300)}, {"a", "b/c", "é", ""},
	} {
		for _, plugin := range []string{"okta", "", "a-b.c", "p%2F"} {
			want := backend.NewKey(append([]string{Prefix, plugin}, parts...)...)
			got := pluginKey(plugin, parts...)
			require.Equal(t, want, got, "plugin %q parts %q", plugin, parts)
			require.Equal(t, len(got), cap(got), "built in one exact allocation")
		}
	}
}

// TestValidIDMatchesRule holds validID, on strings and on key bytes, to the id rule it replaced:
// not empty, at most MaxNameLength bytes, no separator.
func TestValidIDMatchesRule(t *testing.T) {
	t.Parallel()
	old := func(id string) bool {
		return !(id == "" || len(id) > 253 || strings.ContainsRune(id, backend.Separator))
	}
	for _, id := range []string{"", "a", "0b7c1f5e-1d2a-4c8e-9f00-123456789abc", "a/b", "/", "a/",
		"\xff/", "\xff", "é", strings.Repeat("x", 253), strings.Repeat("x", 254), strings.Repeat("é", 127)} {
		require.Equal(t, old(id), validID(id), "%q", id)
		require.Equal(t, old(id), validID(backend.Key(id)), "%q as key bytes", id)
		require.Equal(t, old(id), checkID(id) == nil, "%q", id)
	}
}

// BenchmarkLookupKeys is the key work of one userName lookup: the index key and the users prefix.
func BenchmarkLookupKeys(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		k, err := userIndexKey("okta", AttrUserName, "jane.doe@example.com")
		if err != nil || k == nil {
			b.Fatal(err)
		}
		_ = UsersPrefix("okta")
	}
}
