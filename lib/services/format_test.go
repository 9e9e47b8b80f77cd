package services

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/services/generic"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// TestDataWrittenAsProtojsonStillReads: users, locks and audit events are now stored in the
// protobuf binary encoding; what a data dir holds from before, in protojson, reads the same, and
// is rewritten in binary when it next changes.
func TestDataWrittenAsProtojsonStillReads(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, b, clock := newServices(t)

	jsonOf := func(m proto.Message) []byte {
		v, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
		require.NoError(t, err)
		return v
	}

	// As the previous version wrote them.
	user := &typesv1.User{
		Kind: KindUser, Version: V1,
		Metadata: &typesv1.Metadata{Name: "alice", Labels: map[string]string{"team": "eng"}},
		Spec:     &typesv1.UserSpec{Roles: []string{"access"}, Incarnation: "00112233445566778899aabbccddeeff"},
	}
	lock := &typesv1.Lock{
		Kind: KindLock, Version: V1,
		Metadata: &typesv1.Metadata{Name: "l1"},
		Spec:     &typesv1.LockSpec{Target: &typesv1.LockTarget{User: "bob"}, Message: "gone", CreatedBy: "admin"},
	}
	event := &typesv1.AuditEvent{Id: "old-event", Type: "user.create", Time: timestamppb.New(clock.Now()), User: "admin", Outcome: OutcomeSuccess}
	for key, value := range map[string][]byte{
		UserKey("alice").String(): jsonOf(user),
		LockKey("l1").String():    jsonOf(lock),
	} {
		_, err := b.Put(ctx, backend.Item{Key: backend.Key(key), Value: value})
		require.NoError(t, err)
	}
	_, err := b.Put(ctx, backend.Item{Key: EventKey(clock.Now(), "old-event"), Value: jsonOf(event), Expires: clock.Now().Add(time.Hour)})
	require.NoError(t, err)

	gotUser, err := s.GetUser(ctx, "alice", true)
	require.NoError(t, err)
	require.Equal(t, []string{"access"}, gotUser.GetSpec().GetRoles())
	require.Equal(t, "eng", gotUser.GetMetadata().GetLabels()["team"])
	require.Equal(t, user.GetSpec().GetIncarnation(), gotUser.GetSpec().GetIncarnation())
	gotLock, err := s.GetLock(ctx, "l1")
	require.NoError(t, err)
	require.Equal(t, "bob", gotLock.GetSpec().GetTarget().GetUser())

	log, err := NewAuditLog(AuditLogConfig{Backend: b})
	require.NoError(t, err)
	clock.Advance(time.Second)
	require.NoError(t, log.Emit(ctx, &typesv1.AuditEvent{Id: "new-event", Type: "user.delete"}))
	events, err := log.Search(ctx, clock.Now().Add(-time.Minute), clock.Now().Add(time.Minute), nil, 0)
	require.NoError(t, err)
	require.Len(t, events, 2)
	require.Equal(t, "old-event", events[0].GetId())
	require.Equal(t, "user.create", events[0].GetType())
	require.Equal(t, "new-event", events[1].GetId())
	item, err := b.Get(ctx, EventKey(clock.Now(), "new-event"))
	require.NoError(t, err)
	require.False(t, generic.IsJSON(item.Value), "new events are binary")
	require.NotContains(t, string(item.Value), "new-event", "the id is in the key, not again in the value")
	require.True(t, events[1].GetTime().AsTime().Equal(clock.Now()), "the time comes back from the key")

	// The next write of the old user stores it in binary, with nothing lost.
	gotUser.Spec.Roles = []string{"access", "editor"}
	_, err = s.UpdateUser(ctx, gotUser)
	require.NoError(t, err)
	item, err = b.Get(ctx, UserKey("alice"))
	require.NoError(t, err)
	require.False(t, generic.IsJSON(item.Value))
	again, err := s.GetUser(ctx, "alice", true)
	require.NoError(t, err)
	require.Equal(t, []string{"access", "editor"}, again.GetSpec().GetRoles())
	require.Equal(t, "eng", again.GetMetadata().GetLabels()["team"])
	require.Equal(t, user.GetSpec().GetIncarnation(), again.GetSpec().GetIncarnation())
}
