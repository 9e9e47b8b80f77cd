package scimrecord

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestIsLockReason(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		reason string
		want   bool
	}{
		{"scim-deactivation", true},
		{"scim-deletion", true},
		{"scim-", false},
		{"scim-other", false},
		{"deactivation", false},
		{"", false},
	} {
		require.Equal(t, tc.want, IsLockReason(tc.reason), "reason %q", tc.reason)
	}
	// Every reason SCIM writes starts with the prefix gatectl matches on.
	for _, r := range []string{ReasonDeactivation, ReasonDeletion} {
		require.True(t, strings.HasPrefix(r, ReasonPrefix), r)
	}
}
