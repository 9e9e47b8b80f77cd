package process

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestConnBudget: the listeners together hold at most half the process's
// descriptors, and never more than their caps.
func TestConnBudget(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		nofile         uint64
		web, ssh, auth int
	}{
		{nofile: 0, web: maxWebConns, ssh: maxSSHConns, auth: maxAuthConns},
		{nofile: 1024, web: 256, ssh: 128, auth: 128},
		{nofile: 20000, web: 5000, ssh: 2048, auth: 2048},
		{nofile: 1 << 20, web: maxWebConns, ssh: maxSSHConns, auth: maxAuthConns},
		{nofile: 4, web: 1, ssh: 1, auth: 1},
	} {
		web, ssh, auth := connBudget(tc.nofile)
		require.Equal(t, []int{tc.web, tc.ssh, tc.auth}, []int{web, ssh, auth}, "nofile %d", tc.nofile)
		if tc.nofile >= 16 {
			require.LessOrEqual(t, uint64(web+ssh+auth), tc.nofile/2)
		}
	}
}
