package lite

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/backend/backendtest"
)

// TestCompliance runs the shared backend compliance suite against lite, one
// fresh database per sub-test.
func TestCompliance(t *testing.T) {
	t.Parallel()
	backendtest.RunSuite(t, func(t *testing.T, clock *clockwork.FakeClock) backend.Backend {
		b, err := New(t.Context(), Config{
			Path:          filepath.Join(t.TempDir(), "db", "gatehouse.db"),
			Clock:         clock,
			PurgeInterval: time.Second,
		})
		require.NoError(t, err)
		return b
	})
}
