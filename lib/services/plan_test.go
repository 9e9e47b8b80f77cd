package services

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/scim/scimrecord"
	"github.com/gatehouse/gatehouse/lib/services/scimstore"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// TestPlanActions checks that each typed write is the backend action the
// callers built by hand before plans existed: same key, condition and bytes.
func TestPlanActions(t *testing.T) {
	t.Parallel()
	u := validUser()
	userItem, err := MarshalUser(u)
	require.NoError(t, err)
	l := validLock()
	lockItem, err := MarshalLock(l)
	require.NoError(t, err)
	pl := validPlugin()
	pluginItem, err := MarshalPlugin(pl)
	require.NoError(t, err)
	cred := &typesv1.PluginStaticCredentials{
		Metadata: &typesv1.Metadata{Name: "okta-scim", Labels: map[string]string{"plugin": "okta"}},
		Spec:     &typesv1.PluginStaticCredentialsSpec{ScimTokenHash: []byte("hash")},
	}
	credItem, err := MarshalPluginStaticCredentials(cred)
	require.NoError(t, err)

	var p Plan
	require.NoError(t, p.PutUser(u, backend.NotExists()))
	p.DeleteUser("bob", "r1")
	p.RequireUser("carol", "r2")
	require.NoError(t, p.PutLock(l, backend.Revision("r3")))
	p.DeleteLock("l2", "r4")
	require.NoError(t, p.PutPlugin(pl, backend.Revision("r5")))
	p.DeletePlugin("p2", "r6")
	p.RequirePlugin("p3", "r7")
	require.NoError(t, p.PutPluginStaticCredentials(cred, backend.NotExists()))
	p.DeletePluginStaticCredentials("c2", "r8")

	uname, lname, pname := u.GetMetadata().GetName(), l.GetMetadata().GetName(), pl.GetMetadata().GetName()
	want := []backend.ConditionalAction{
		{Key: UserKey(uname), Condition: backend.NotExists(), Action: backend.Put(userItem)},
		{Key: UserKey("bob"), Condition: backend.Revision("r1"), Action: backend.Delete()},
		{Key: UserKey("carol"), Condition: backend.Revision("r2"), Action: backend.Nop()},
		{Key: LockKey(lname), Condition: backend.Revision("r3"), Action: backend.Put(lockItem)},
		{Key: LockKey("l2"), Condition: backend.Revision("r4"), Action: backend.Delete()},
		{Key: PluginKey(pname), Condition: backend.Revision("r5"), Action: backend.Put(pluginItem)},
		{Key: PluginKey("p2"), Condition: backend.Revision("r6"), Action: backend.Delete()},
		{Key: PluginKey("p3"), Condition: backend.Revision("r7"), Action: backend.Nop()},
		{Key: PluginStaticCredentialsKey("okta-scim"), Condition: backend.NotExists(), Action: backend.Put(credItem)},
		{Key: PluginStaticCredentialsKey("c2"), Condition: backend.Revision("r8"), Action: backend.Delete()},
	}
	require.Equal(t, want, p.Actions())
	require.Equal(t, len(want), p.Len())

	var kinds []string
	for _, w := range p.Writes() {
		kinds = append(kinds, w.Kind+" "+w.Name+" "+strconv.FormatBool(w.Put))
	}
	require.Equal(t, []string{
		"user " + uname + " true", "user bob false", "user carol false",
		"lock " + lname + " true", "lock l2 false",
		"plugin " + pname + " true", "plugin p2 false", "plugin p3 false",
		"plugin_static_credentials okta-scim true", "plugin_static_credentials c2 false",
	}, kinds)

	got, err := p.Writes()[0].User()
	require.NoError(t, err)
	require.Equal(t, uname, got.GetMetadata().GetName())
	_, err = p.Writes()[1].User()
	require.True(t, trace.IsBadParameter(err), "a delete carries no user")

	// An invalid resource is refused and adds nothing.
	bad := validUser()
	bad.Metadata.Name = ""
	require.Error(t, p.PutUser(bad, backend.Whatever()))
	require.Equal(t, len(want), p.Len())
}

// TestPutOwnedUserMatchesPutUser: a user put without the copy is stored as PutUser stores it,
// and refused where PutUser refuses it.
func TestPutOwnedUserMatchesPutUser(t *testing.T) {
	t.Parallel()
	full := func() *typesv1.User {
		u := validUser()
		u.Kind, u.Version = KindUser, V1
		u.Metadata.Revision = "rev-7"
		u.Metadata.Description = "from Okta"
		u.Metadata.Labels = map[string]string{"b": "2", "a": "1", LabelPlugin: "okta"}
		u.Metadata.Expires = timestamppb.New(time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC))
		u.Spec.Traits = NewTraits(map[string][]string{"groups": {"Everyone", "Eng"}, "logins": {"alice"}})
		u.Spec.Incarnation = "inc-1"
		u.Spec.LocalAuth = &typesv1.LocalAuthSecrets{PasswordHash: []byte("hash")}
		u.Spec.CreatedBy = &typesv1.CreatedBy{Time: timestamppb.New(time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)),
			Connector: &typesv1.ConnectorRef{Type: "saml", Id: "okta", Identity: "00u1"}}
		return u
	}
	for _, tc := range []struct {
		name string
		user func() *typesv1.User
	}{
		{"full", full},
		{"defaults to set", validUser},
		{"no spec", func() *typesv1.User { u := validUser(); u.Spec = nil; return u }},
		{"bad name", func() *typesv1.User { u := validUser(); u.Metadata.Name = "@admin"; return u }},
		{"no metadata", func() *typesv1.User { u := validUser(); u.Metadata = nil; return u }},
		{"bad kind", func() *typesv1.User { u := validUser(); u.Kind = KindLock; return u }},
		{"bad created time", func() *typesv1.User {
			u := full()
			u.Spec.CreatedBy.Time = &timestamppb.Timestamp{Seconds: -1 << 62}
			return u
		}},
		{"nil", func() *typesv1.User { return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var want, got Plan
			wantErr := want.PutUser(tc.user(), backend.Revision("r1"))
			err := got.PutOwnedUser(tc.user(), backend.Revision("r1"))
			require.Equal(t, wantErr == nil, err == nil, "errors: %v, %v", wantErr, err)
			if wantErr != nil {
				require.Equal(t, wantErr.Error(), err.Error())
			}
			require.Equal(t, want.Actions(), got.Actions())
		})
	}
}

func TestPlanSCIMRecords(t *testing.T) {
	t.Parallel()
	next := &scimrecord.UserRecord{ID: "id1", UserName: "alice", Active: true}
	wantActions, err := scimstore.PutUserActions("okta", nil, next)
	require.NoError(t, err)
	var p Plan
	require.NoError(t, p.PutSCIMUser("okta", nil, next))
	p.RequireSCIMUser("okta", "id2", "r1")
	p.RequireSCIMGroup("okta", "g1", "r2")
	want := append(wantActions,
		backend.ConditionalAction{Key: scimstore.UserKey("okta", "id2"), Condition: backend.Revision("r1"), Action: backend.Nop()},
		backend.ConditionalAction{Key: scimstore.GroupKey("okta", "g1"), Condition: backend.Revision("r2"), Action: backend.Nop()},
	)
	require.Equal(t, want, p.Actions())
	records := 0
	for _, w := range p.Writes()[:len(wantActions)] {
		require.Equal(t, "id1", w.Name)
		require.Contains(t, []string{PlanKindSCIMUser, PlanKindSCIMIndex}, w.Kind)
		if w.Kind == PlanKindSCIMUser {
			records++
		}
	}
	require.Equal(t, 1, records, "exactly one write is the record; the others are its indexes")
}

func TestPlanAppendEventAndCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, b, clock := newServices(t)
	log, err := NewAuditLog(AuditLogConfig{Backend: b})
	require.NoError(t, err)

	var p Plan
	require.NoError(t, p.PutUser(validUser(), backend.NotExists()))
	e := &typesv1.AuditEvent{Type: "test.create", Message: "created"}
	now := clock.Now()
	require.NoError(t, p.AppendEvent(e, now, time.Hour))
	require.NotEmpty(t, e.GetId())
	require.Equal(t, OutcomeSuccess, e.GetOutcome())
	value, err := MarshalAuditEvent(e)
	require.NoError(t, err)
	require.Equal(t, backend.ConditionalAction{
		Key: EventKey(now, e.GetId()), Condition: backend.NotExists(),
		Action: backend.Put(backend.Item{Value: value, Expires: now.Add(time.Hour)}),
	}, p.Actions()[1])

	_, err = p.Commit(ctx, b)
	require.NoError(t, err)
	_, err = s.GetUser(ctx, validUser().GetMetadata().GetName(), false)
	require.NoError(t, err)
	events, err := log.Search(ctx, now.Add(-time.Second), now.Add(time.Second), nil, 0)
	require.NoError(t, err)
	require.Len(t, events, 1)
	require.Equal(t, e.GetId(), events[0].GetId())

	// The same plan again fails whole: the user exists, so the event is
	// not written either.
	_, err = p.Commit(ctx, b)
	require.True(t, trace.IsCompareFailed(err), "%v", err)

	// An invalid event is refused.
	require.Error(t, p.AppendEvent(&typesv1.AuditEvent{}, now, time.Hour))
}

func TestReadUserAndLock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, b, _ := newServices(t)
	u, err := ReadUser(ctx, b, "nobody")
	require.NoError(t, err)
	require.Nil(t, u)
	l, err := ReadLock(ctx, b, "nolock")
	require.NoError(t, err)
	require.Nil(t, l)

	_, err = s.CreateUser(ctx, validUser())
	require.NoError(t, err)
	u, err = ReadUser(ctx, b, validUser().GetMetadata().GetName())
	require.NoError(t, err)
	require.NotEmpty(t, u.GetMetadata().GetRevision())
	require.Equal(t, "users/", PrefixKey(UsersPrefix).String())
}

// failingGets is a backend whose reads fail.
type failingGets struct{ backend.Backend }

func (failingGets) Get(context.Context, backend.Key) (*backend.Item, error) {
	return nil, trace.ConnectionProblem(nil, "backend down")
}

func TestCheckBackend(t *testing.T) {
	t.Parallel()
	_, b, _ := newServices(t)
	require.NoError(t, CheckBackend(context.Background(), b))
	err := CheckBackend(context.Background(), failingGets{b})
	require.True(t, trace.IsConnectionProblem(err), "%v", err)
}

func TestPlanFirstAdminMarkerAndPasswordToken(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, b, clock := newServices(t)
	_, err := GetFirstAdminMarker(ctx, b)
	require.True(t, trace.IsNotFound(err), "%v", err)

	u := validUser()
	u.Spec.Incarnation = "inc"
	var p Plan
	p.PutFirstAdminMarker([]byte(`{"user":"x"}`), backend.NotExists())
	token, ref, expires, err := p.CreatePasswordToken(u, time.Hour, clock.Now())
	require.NoError(t, err)
	require.NotEmpty(t, token)
	require.NotContains(t, ref, token, "the ref does not reveal the token")
	require.Equal(t, clock.Now().Add(time.Hour), expires)
	_, err = p.Commit(ctx, b)
	require.NoError(t, err)
	item, err := GetFirstAdminMarker(ctx, b)
	require.NoError(t, err)
	require.Equal(t, `{"user":"x"}`, string(item.Value))
	require.True(t, trace.IsAlreadyExists(CreateFirstAdminMarker(ctx, b, []byte("{}"))))
	stored, err := b.Get(ctx, backend.Key(ref))
	require.NoError(t, err)
	require.Equal(t, expires, stored.Expires)

	var del Plan
	del.DeletePasswordToken(ref)
	_, err = del.Commit(ctx, b)
	require.NoError(t, err)
	_, err = b.Get(ctx, backend.Key(ref))
	require.True(t, trace.IsNotFound(err))
}

// TestPlanAppendEventMarshalsTheEventItself holds AppendEvent, which marshals the caller's event
// instead of a clone, to MarshalAuditEvent's value and to leaving the event with its id and time.
func TestPlanAppendEventMarshalsTheEventItself(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	e := &typesv1.AuditEvent{Type: "scim.user.create", User: "okta", Resource: "alice", Fields: map[string]string{"b": "2", "a": "1"}}
	var p Plan
	require.NoError(t, p.AppendEvent(e, now, time.Hour))
	require.NotEmpty(t, e.GetId())
	require.True(t, e.GetTime().AsTime().Equal(now))
	want, err := MarshalAuditEvent(e)
	require.NoError(t, err)
	require.Equal(t, want, p.Actions()[0].Action.Item.Value)
	back, err := UnmarshalAuditEvent(backend.Item{Key: EventKey(now, e.GetId()), Value: want})
	require.NoError(t, err)
	require.True(t, proto.Equal(e, back), "%v", back)
}
