package scimprov

import (
	"crypto/sha256"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestTokenDigestMatchesSum256 holds tokenDigest to the conversion it
// replaces, for tokens shorter and longer than its stack buffer.
func TestTokenDigestMatchesSum256(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 31, 32, 33, 64, 255, 256, 257, 4096} {
		token := strings.Repeat("x", n)
		require.Equal(t, sha256.Sum256([]byte(token)), tokenDigest(token), "length %d", n)
	}
	// A token that is not ASCII is hashed as its bytes.
	require.Equal(t, sha256.Sum256([]byte("tøken\x00")), tokenDigest("tøken\x00"))
}
