package scimstore

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/backend/lite"
	"github.com/gatehouse/gatehouse/lib/backend/memory"
	"github.com/gatehouse/gatehouse/lib/scim/scimrecord"
)

func TestKeys(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		got  backend.Key
		want string
	}{
		{UserKey("okta", "id1"), "scim/okta/users/id1"},
		{UserNameKey("okta", "Jane@Example.COM"), "scim/okta/usernames/jane@example.com"},
		{UserExternalIDKey("okta", "00u/1", "id1"), "scim/okta/user_external_id_index/00u%2F1/id1"},
		{UserExternalIDPrefix("okta", "00u/1"), "scim/okta/user_external_id_index/00u%2F1/"},
		{GroupKey("okta", "g1"), "scim/okta/groups/g1"},
		{GroupNameKey("okta", "Eng / Ops"), "scim/okta/group_names/eng%20%2F%20ops"},
		{GroupExternalIDKey("okta", "x", "g1"), "scim/okta/group_external_id_index/x/g1"},
		{GroupExternalIDPrefix("okta", "x"), "scim/okta/group_external_id_index/x/"},
		{UsersPrefix("okta"), "scim/okta/users/"},
	} {
		require.Equal(t, tc.want, tc.got.String())
	}
}

// backends are the backends the store is tested over: memory reads an
// index entry then the record; lite follows the entry in one read
// (GetIndirect).
var backends = map[string]func(t *testing.T) backend.Backend{
	"memory": func(t *testing.T) backend.Backend {
		b, err := memory.New(context.Background(), memory.Config{})
		require.NoError(t, err)
		return b
	},
	"lite": func(t *testing.T) backend.Backend {
		b, err := lite.New(context.Background(), lite.Config{Path: filepath.Join(t.TempDir(), "gatehouse.db")})
		require.NoError(t, err)
		return b
	},
}

func TestStore(t *testing.T) {
	t.Parallel()
	for kind, open := range backends {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			testStore(t, open(t))
		})
	}
}

func testStore(t *testing.T, b backend.Backend) {
	ctx := context.Background()
	t.Cleanup(func() { b.Close() })
	s, err := New(b)
	require.NoError(t, err)

	var ids []string
	for i := range 5 {
		rec := &scimrecord.UserRecord{ID: fmt.Sprintf("id%d", 4-i), UserName: fmt.Sprintf("User%d", i), ExternalID: fmt.Sprintf("ext%d", i), Active: true}
		actions, err := PutUserActions("okta", nil, rec)
		require.NoError(t, err)
		_, err = b.AtomicWrite(ctx, actions)
		require.NoError(t, err)
		ids = append(ids, rec.ID)
	}
	// A second record with a taken userName fails its NotExists condition.
	actions, err := PutUserActions("okta", nil, &scimrecord.UserRecord{ID: "dup", UserName: "USER1"})
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
	recs, err := s.LookupUsers(ctx, "okta", AttrExternalID, "ext3")
	require.NoError(t, err)
	require.Empty(t, recs)
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

// TestLookupJunkIndex: an index entry that names no record, an empty id, an
// id with a separator (which would reach another key space) or a record
// that does not carry the value is "not found", over both read paths.
func TestLookupJunkIndex(t *testing.T) {
	t.Parallel()
	for kind, open := range backends {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := open(t)
			t.Cleanup(func() { b.Close() })
			s, err := New(b)
			require.NoError(t, err)
			put := func(key backend.Key, value string) {
				_, err := b.Put(ctx, backend.Item{Key: key, Value: []byte(value)})
				require.NoError(t, err)
			}
			rec := &scimrecord.UserRecord{ID: "u1", UserName: "real", Active: true}
			actions, err := PutUserActions("okta", nil, rec)
			require.NoError(t, err)
			_, err = b.AtomicWrite(ctx, actions)
			require.NoError(t, err)
			g := &scimrecord.GroupRecord{ID: "g1", DisplayName: "Eng"}
			gactions, err := PutGroupActions("okta", nil, g)
			require.NoError(t, err)
			_, err = b.AtomicWrite(ctx, gactions)
			require.NoError(t, err)

			put(UserKey("okta", "a/b"), `{"id":"a/b","user_name":"slash"}`)
			put(UserNameKey("okta", "slash"), "a/b")
			put(UserNameKey("okta", "empty"), "")
			put(UserNameKey("okta", "gone"), "nosuch")
			put(UserNameKey("okta", "other"), "u1") // u1 is "real", not "other"
			for _, name := range []string{"slash", "empty", "gone", "other", "absent"} {
				_, err := s.LookupUser(ctx, "okta", AttrUserName, name)
				require.True(t, trace.IsNotFound(err), "%s: %v", name, err)
			}
			got, err := s.LookupUser(ctx, "okta", AttrUserName, "REAL")
			require.NoError(t, err)
			require.Equal(t, "u1", got.ID)
			direct, err := s.GetUser(ctx, "okta", "u1")
			require.NoError(t, err)
			require.Equal(t, direct, got, "same record and revision either way")
			_, err = s.LookupUser(ctx, "okta", "nickName", "x")
			require.True(t, trace.IsBadParameter(err), "%v", err)

			gg, err := s.LookupGroup(ctx, "okta", AttrDisplayName, "eng")
			require.NoError(t, err)
			require.Equal(t, "g1", gg.ID)
			_, err = s.LookupGroup(ctx, "okta", AttrDisplayName, "ops")
			require.True(t, trace.IsNotFound(err), "%v", err)
		})
	}
}

// TestUserRecordIDFromKey: a record is stored without its id, which is its key's last part; a
// record written before, with the id in the value, reads the same.
func TestUserRecordIDFromKey(t *testing.T) {
	t.Parallel()
	rec := &scimrecord.UserRecord{ID: "0b5e7c2a-1111-4222-8333-944455556666", UserName: "jane@example.com", Active: true, Attributes: []byte(`{"displayName":"Jane"}`)}
	item, err := MarshalUser("okta", rec)
	require.NoError(t, err)
	require.NotContains(t, string(item.Value), rec.ID)
	got, err := UnmarshalUser(item)
	require.NoError(t, err)
	require.Equal(t, rec.ID, got.ID)

	old := backend.Item{Key: UserKey("okta", rec.ID), Value: []byte(`{"id":"` + rec.ID + `","user_name":"jane@example.com","active":true,"attributes":{}}`)}
	got, err = UnmarshalUser(old)
	require.NoError(t, err)
	require.Equal(t, rec.ID, got.ID)
	require.Equal(t, "jane@example.com", got.UserName)
}

func TestIsExternalIDIndexKey(t *testing.T) {
	t.Parallel()
	for key, want := range map[string]bool{
		UserExternalIDKey("okta", "00u1", "id1").String():              true,
		GroupExternalIDKey("okta", "g1", "id1").String():               true,
		UserKey("okta", "id1").String():                                false,
		UserNameKey("okta", "jane").String():                           false,
		GroupNameKey("okta", "eng").String():                           false,
		"users/user_external_id_index":                                 false,
		"scim/user_external_id_index/x":                                false,
		"scim/okta/user_external_id_indexes/x":                         false,
		UserExternalIDKey("user_external_id_index", "x", "y").String(): true,
	} {
		require.Equal(t, want, isExternalIDIndexKey(backend.Key(key)), key)
	}
}

// TestUserRecordEncoding: the compact encoding round-trips every field, and a truncated value is
// an error, never a panic or a half record.
func TestUserRecordEncoding(t *testing.T) {
	t.Parallel()
	for name, rec := range map[string]*scimrecord.UserRecord{
		"full": {ID: "id1", UserName: "jane@example.com", ExternalID: "00u1", Active: true,
			Attributes:   []byte(`{"displayName":"Jane","emails":[{"value":"jane@example.com"}]}`),
			Groups:       []scimrecord.GroupRef{{ID: "g1", DisplayName: "Eng"}, {ID: "g2", DisplayName: "Ops / Night"}},
			Created:      time.Date(2026, 12, 5, 14, 0, 0, 123456789, time.UTC),
			LastModified: time.Date(2026, 12, 5, 15, 0, 0, 1, time.UTC)},
		"minimal": {ID: "id2", UserName: "bob", Attributes: []byte(`{}`)},
	} {
		t.Run(name, func(t *testing.T) {
			item, err := MarshalUser("okta", rec)
			require.NoError(t, err)
			got, err := UnmarshalUser(item)
			require.NoError(t, err)
			require.Equal(t, rec, got)
			for n := range len(item.Value) - len(rec.Attributes) {
				_, err := UnmarshalUser(backend.Item{Key: item.Key, Value: item.Value[:n]})
				require.Error(t, err, "truncated to %d bytes", n)
			}
		})
	}
}

// TestPluginKeyIsNewKey holds pluginKey to backend.NewKey, which it writes in one allocation.
func TestPluginKeyIsNewKey(t *testing.T) {
	t.Parallel()
	for _, parts := range [][]string{nil, {""}, {usersPart, ""}, {usersPart, "id-1"}, {"a", "b/c", "é", ""}} {
		for _, plugin := range []string{"okta", "", "p%2F"} {
			require.Equal(t, backend.NewKey(append([]string{Prefix, plugin}, parts...)...), pluginKey(plugin, parts...), "%q %q", plugin, parts)
		}
	}
}
