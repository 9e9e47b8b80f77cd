package services

import (
	"context"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/backend"
)

func TestSAMLLogins(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, b, clock := newServices(t)
	_, err := NewSAMLLogins(nil)
	require.True(t, trace.IsBadParameter(err))
	s, err := NewSAMLLogins(b)
	require.NoError(t, err)

	_, err = s.GetRequest(ctx, "rs")
	require.True(t, trace.IsNotFound(err), "%v", err)
	require.NoError(t, s.CreateRequest(ctx, "rs", []byte(`{"id":"1"}`), clock.Now().Add(time.Minute)))
	require.True(t, trace.IsAlreadyExists(s.CreateRequest(ctx, "rs", []byte(`{}`), clock.Now().Add(time.Minute))))
	v, err := s.GetRequest(ctx, "rs")
	require.NoError(t, err)
	require.Equal(t, `{"id":"1"}`, string(v))
	item, err := b.Get(ctx, backend.NewKey(SAMLRequestsPrefix, "rs"))
	require.NoError(t, err)
	require.Equal(t, clock.Now().Add(time.Minute), item.Expires)
	require.NoError(t, s.DeleteRequest(ctx, "rs"))
	_, err = s.GetRequest(ctx, "rs")
	require.True(t, trace.IsNotFound(err))

	require.NoError(t, s.ConsumeAssertion(ctx, "assertion-1", clock.Now().Add(time.Hour)))
	require.True(t, trace.IsAlreadyExists(s.ConsumeAssertion(ctx, "assertion-1", clock.Now().Add(time.Hour))), "a replay")
	require.NoError(t, s.ConsumeAssertion(ctx, "assertion-2", clock.Now().Add(time.Hour)))
	res, err := b.GetRange(ctx, PrefixKey(SAMLAssertionsPrefix), backend.RangeEnd(PrefixKey(SAMLAssertionsPrefix)), 10)
	require.NoError(t, err)
	require.Len(t, res.Items, 2)
	for _, it := range res.Items {
		require.NotContains(t, it.Key.String(), "assertion-", "only a hash of the id is stored")
	}
}
