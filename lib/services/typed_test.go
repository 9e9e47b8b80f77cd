package services

import (
	"context"
	"testing"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/backend/memory"
	"github.com/gatehouse/gatehouse/lib/services/generic"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

func TestNewGenericEncodingAndUnmarshalStored(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, err := memory.New(ctx, memory.Config{Clock: clockwork.NewFakeClock()})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })

	_, err = newGeneric(Config{}, generic.Config[*typesv1.Role]{Kind: KindRole, KeyPrefix: RolesPrefix, Validate: ValidateRole})
	require.True(t, trace.IsBadParameter(err), "got %v", err)

	tests := []struct {
		name     string
		prefix   string
		wantJSON bool
	}{
		{name: "locks are stored binary", prefix: LocksPrefix, wantJSON: false},
		{name: "other kinds are stored as protojson", prefix: "widgets", wantJSON: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			svc, err := newGeneric(Config{Backend: b}, generic.Config[*typesv1.Lock]{Kind: KindLock, KeyPrefix: tt.prefix, Validate: ValidateLock})
			require.NoError(t, err)
			l := &typesv1.Lock{Metadata: &typesv1.Metadata{Name: "l1"}, Spec: &typesv1.LockSpec{Target: &typesv1.LockTarget{User: "alice"}}}
			item, err := svc.MarshalItem(l)
			require.NoError(t, err)
			require.Equal(t, tt.wantJSON, generic.IsJSON(item.Value))
			got, err := unmarshalStored[*typesv1.Lock](item)
			require.NoError(t, err)
			require.Equal(t, "alice", got.GetSpec().GetTarget().GetUser())
		})
	}
}
