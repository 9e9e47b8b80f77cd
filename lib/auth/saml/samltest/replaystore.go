package samltest

import (
	"context"
	"sync/atomic"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/services"
)

// ReplayStoreDown is a backend whose writes to the SAML replay cache (the
// record of used assertion IDs) fail while Down is set, as a storage outage
// at the ACS would: the tests that a valid response is then not refused as
// the client's mistake use it.
type ReplayStoreDown struct {
	backend.Backend
	Down atomic.Bool
}

// Create fails a replay-cache write while Down is set.
func (b *ReplayStoreDown) Create(ctx context.Context, i backend.Item) (*backend.Lease, error) {
	if b.Down.Load() && i.Key.HasPrefix(services.PrefixKey(services.SAMLAssertionsPrefix)) {
		return nil, trace.ConnectionProblem(nil, "storage unavailable")
	}
	return b.Backend.Create(ctx, i)
}
