package memory

import (
	"testing"

	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/backend/backendtest"
)

func TestCompliance(t *testing.T) {
	backendtest.RunSuite(t, func(t *testing.T, clock *clockwork.FakeClock) backend.Backend {
		b, err := New(t.Context(), Config{Clock: clock})
		require.NoError(t, err)
		return b
	})
}
