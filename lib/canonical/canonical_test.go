package canonical

import (
	"strings"
	"testing"
	"unicode/utf8"

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

// TestUsernameASCIIMatchesFull holds the ASCII fast path to the full Unicode pipeline: every
// ASCII byte alone, every pair, and names as identity providers send them.
func TestUsernameASCIIMatchesFull(t *testing.T) {
	t.Parallel()
	var names []string
	for a := range utf8.RuneSelf {
		names = append(names, string(rune(a)))
		for b := range utf8.RuneSelf {
			names = append(names, string([]byte{byte(a), byte(b)}))
		}
	}
	names = append(names, "Bob@Example.COM", "jane.doe@example.com", "u00042@example.com",
		"ADMIN", "x-Y_z+1~2!#$%&'*/=?^`{|}", "\x00\x7f", strings.Repeat("AbC", 100))
	for _, s := range names {
		got, ok := asciiUsername(s)
		require.True(t, ok, "%q is ASCII", s)
		require.Equal(t, fullUsername(s), got, "Username(%q)", s)
		require.Equal(t, fullUsername(s), Username(s), "Username(%q)", s)
	}
	for _, s := range []string{"é", "ａdmin", "adminＡ", "\u212a", "\xff", "a\x80"} {
		_, ok := asciiUsername(s)
		require.False(t, ok, "%q is not ASCII", s)
	}
}

// FuzzUsernameFastPath: Username, fast path or not, is the full Unicode pipeline for any input.
func FuzzUsernameFastPath(f *testing.F) {
	for _, s := range []string{"admin", "Admin", "Bob@Example.COM", "ａｄｍｉｎ", "\u212a", "\xff", "A\x80", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := Username(s), fullUsername(s); got != want {
			t.Fatalf("Username(%q) = %q, the full pipeline gives %q", s, got, want)
		}
	})
}

func BenchmarkUsername(b *testing.B) {
	for _, bc := range []struct{ name, in string }{
		{"lower", "jane.doe@example.com"},
		{"mixed", "Jane.Doe@Example.com"},
		{"unicode", "Ｊane.Doe@Example.com"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = Username(bc.in)
			}
		})
		// What every name cost before the ASCII fast path.
		b.Run(bc.name+"/full", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = fullUsername(bc.in)
			}
		})
	}
}
