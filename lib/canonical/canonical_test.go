package canonical

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestUsername(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"admin", "admin"},
		{"Admin", "admin"},
		{"ADMIN", "admin"},
		{"ａｄｍｉｎ", "admin"},    // fullwidth
		{"Ａｄｍｉｎ", "admin"},    // fullwidth with a capital
		{"Straße", "strasse"}, // full folding, not just lowercasing
		{"ﬁle", "file"},       // compatibility ligature
		{"Bob@Example.COM", "bob@example.com"},
		{"e\u0301", "\u00e9"}, // composed
		{"K", "k"},            // Kelvin sign
		{"", ""},
	} {
		got := Username(tc.in)
		require.Equal(t, tc.want, got, "Username(%q)", tc.in)
		require.Equal(t, got, Username(got), "idempotent on %q", tc.in)
		require.True(t, IsCanonical(got))
	}
	require.True(t, Equal("admin", "ＡＤＭＩＮ"))
	require.False(t, Equal("admin", "admin2"))
	require.False(t, IsCanonical("Admin"))
}

func FuzzUsernameIdempotent(f *testing.F) {
	for _, s := range []string{"admin", "ａｄｍｉｎ", "Straße", "\u0345", "ΣΑΣ", "İstanbul"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c := Username(s)
		if Username(c) != c {
			t.Fatalf("not idempotent: %q -> %q -> %q", s, c, Username(c))
		}
	})
}
