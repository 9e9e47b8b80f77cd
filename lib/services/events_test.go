package services

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

func TestAuditLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, b, clock := newServices(t)
	log, err := NewAuditLog(AuditLogConfig{Backend: b, Retention: 48 * time.Hour})
	require.NoError(t, err)
	start := clock.Now()

	// Emitted out of time order; read back in time order.
	types := []string{"user.create", "scim.user.deactivate", "user.create", "plugin.create"}
	for i, offset := range []int{3, 1, 2, 0} {
		require.NoError(t, log.Emit(ctx, &typesv1.AuditEvent{
			Id:      fmt.Sprintf("e%d", offset),
			Type:    types[i],
			Time:    timestamppb.New(start.Add(time.Duration(offset) * time.Minute)),
			User:    "okta",
			Outcome: OutcomeSuccess,
		}))
	}
	// Defaults: a random id and the clock's time.
	clock.Advance(10 * time.Minute)
	in := &typesv1.AuditEvent{Type: "user.delete"}
	require.NoError(t, log.Emit(ctx, in))
	require.Empty(t, in.GetId(), "the caller's event is not modified")

	all, err := log.Search(ctx, start, start.Add(time.Hour), nil, 0)
	require.NoError(t, err)
	var ids []string
	for _, e := range all {
		ids = append(ids, e.GetId())
	}
	require.Len(t, ids, 5)
	require.Equal(t, []string{"e0", "e1", "e2", "e3"}, ids[:4])
	require.NotEmpty(t, ids[4])
	require.True(t, all[4].GetTime().AsTime().Equal(clock.Now()))

	// Time bounds: from inclusive, to exclusive.
	got, err := log.Search(ctx, start.Add(time.Minute), start.Add(3*time.Minute), nil, 0)
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, "e1", got[0].GetId())
	require.Equal(t, "e2", got[1].GetId())

	// Type filter.
	got, err = log.Search(ctx, start, start.Add(time.Hour), []string{"user.create"}, 0)
	require.NoError(t, err)
	require.Len(t, got, 2)
	for _, e := range got {
		require.Equal(t, "user.create", e.GetType())
	}

	// Paging.
	var paged []string
	token := ""
	for range 10 {
		page, next, err := log.SearchEvents(ctx, SearchEventsRequest{From: start, To: start.Add(time.Hour), Limit: 2, PageToken: token})
		require.NoError(t, err)
		require.LessOrEqual(t, len(page), 2)
		for _, e := range page {
			paged = append(paged, e.GetId())
		}
		if next == "" {
			break
		}
		token = next
	}
	require.Equal(t, ids, paged)

	// Bad arguments.
	for name, req := range map[string]SearchEventsRequest{
		"negative limit": {From: start, To: start.Add(time.Hour), Limit: -1},
		"huge limit":     {From: start, To: start.Add(time.Hour), Limit: MaxSearchLimit + 1},
		"reversed":       {From: start.Add(time.Hour), To: start},
		"bad token":      {From: start, To: start.Add(time.Hour), PageToken: "%%%"},
		"foreign token":  {From: start, To: start.Add(time.Hour), PageToken: "ZXYx"},
		"out of range":   {From: start.Add(2 * time.Hour), To: start.Add(3 * time.Hour), PageToken: token},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := log.SearchEvents(ctx, req)
			require.True(t, trace.IsBadParameter(err), "%v", err)
		})
	}

	// Duplicates and invalid events are refused.
	err = log.Emit(ctx, &typesv1.AuditEvent{Id: "e0", Type: "x", Time: timestamppb.New(start)})
	require.True(t, trace.IsAlreadyExists(err), "%v", err)
	for _, bad := range []*typesv1.AuditEvent{nil, {}, {Type: "x", Id: "a/b"}, {Type: "x", Message: string(make([]byte, 5000))}} {
		require.True(t, trace.IsBadParameter(log.Emit(ctx, bad)))
	}

	// Retention: events expire from the backend.
	clock.Advance(48 * time.Hour)
	got, err = log.Search(ctx, start, start.Add(time.Hour), nil, 0)
	require.NoError(t, err)
	require.Empty(t, got)
}

func TestAuditLogDefaultRetention(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, b, clock := newServices(t)
	log, err := NewAuditLog(AuditLogConfig{Backend: b})
	require.NoError(t, err)
	require.NoError(t, log.Emit(ctx, &typesv1.AuditEvent{Id: "a", Type: "x"}))
	item, err := b.Get(ctx, EventKey(clock.Now(), "a"))
	require.NoError(t, err)
	require.True(t, item.Expires.Equal(clock.Now().Add(DefaultAuditRetention)))
	_, err = NewAuditLog(AuditLogConfig{Backend: b, Retention: -time.Hour})
	require.True(t, trace.IsBadParameter(err))
}
