package scimstore

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/backend/memory"
)

func TestKeys(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		got  backend.Key
		want string
	}{
		{UserKey("okta", "id1"), "scim/okta/users/id1"},
		{UserNameKey("okta", "Jane@Example.COM"), "scim/okta/usernames/jane@example.com"},
		{UserExternalIDKey("okta", "00u/1"), "scim/okta/external_ids/00u%2F1"},
		{GroupKey("okta", "g1"), "scim/okta/groups/g1"},
		{GroupNameKey("okta", "Eng / Ops"), "scim/okta/group_names/eng%20%2F%20ops"},
		{GroupExternalIDKey("okta", "x"), "scim/okta/group_external_ids/x"},
		{UsersPrefix("okta"), "scim/okta/users/"},
	} {
		require.Equal(t, tc.want, tc.got.String())
	}
}

func TestStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, err := memory.New(ctx, memory.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	s, err := New(b)
	require.NoError(t, err)

	var ids []string
	for i := range 5 {
		rec := &UserRecord{ID: fmt.Sprintf("id%d", 4-i), UserName: fmt.Sprintf("User%d", i), ExternalID: fmt.Sprintf("ext%d", i), Active: true}
		actions, err := PutUserActions("okta", nil, rec)
		require.NoError(t, err)
		_, err = b.AtomicWrite(ctx, actions)
		require.NoError(t, err)
		ids = append(ids, rec.ID)
	}
	// A second record with a taken userName fails its NotExists condition.
	actions, err := PutUserActions("okta", nil, &UserRecord{ID: "dup", UserName: "USER1"})
	require.NoError(t, err)
	_, err = b.AtomicWrite(ctx, actions)
	require.True(t, trace.IsCompareFailed(err), "%v", err)

	got, err := s.LookupUser(ctx, "okta", AttrUserName, "user3")
	require.NoError(t, err)
	require.Equal(t, "id1", got.ID)
	require.NotEmpty(t, got.Revision)

	// Rename moves the index.
	next := *got
	next.UserName, next.ExternalID = "renamed", ""
	actions, err = PutUserActions("okta", got, &next)
	require.NoError(t, err)
	_, err = b.AtomicWrite(ctx, actions)
	require.NoError(t, err)
	_, err = s.LookupUser(ctx, "okta", AttrUserName, "user3")
	require.True(t, trace.IsNotFound(err))
	_, err = s.LookupUser(ctx, "okta", AttrExternalID, "ext3")
	require.True(t, trace.IsNotFound(err))
	_, err = s.LookupUser(ctx, "okta", AttrUserName, "RENAMED")
	require.NoError(t, err)
	// A stale revision fails.
	_, err = b.AtomicWrite(ctx, actions)
	require.True(t, trace.IsCompareFailed(err))

	slices.Sort(ids)
	page1, err := s.ListUsers(ctx, "okta", "", 3)
	require.NoError(t, err)
	page2, err := s.ListUsers(ctx, "okta", page1[2].ID, 3)
	require.NoError(t, err)
	var listed []string
	for _, r := range append(page1, page2...) {
		listed = append(listed, r.ID)
	}
	require.Equal(t, ids, listed)
	n, err := s.CountUsers(ctx, "okta")
	require.NoError(t, err)
	require.Equal(t, 5, n)
	n, err = s.CountUsers(ctx, "other")
	require.NoError(t, err)
	require.Zero(t, n)

	cur, err := s.GetUser(ctx, "okta", "id0")
	require.NoError(t, err)
	_, err = b.AtomicWrite(ctx, DeleteUserActions("okta", cur))
	require.NoError(t, err)
	_, err = s.GetUser(ctx, "okta", "id0")
	require.True(t, trace.IsNotFound(err))
	_, err = s.LookupUser(ctx, "okta", AttrUserName, "user4")
	require.True(t, trace.IsNotFound(err))
	_, err = s.GetUser(ctx, "okta", "a/b")
	require.True(t, trace.IsNotFound(err))
}
