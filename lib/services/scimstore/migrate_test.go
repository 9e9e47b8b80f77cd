package scimstore

import (
	"context"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/scim/scimrecord"
)

// writeLegacyUser stores rec as the code before canonical usernames did:
// its userName index entry under the lower-cased name.
func writeLegacyUser(t *testing.T, b backend.Backend, rec *scimrecord.UserRecord) {
	t.Helper()
	item, err := MarshalUser("okta", rec)
	require.NoError(t, err)
	_, err = b.AtomicWrite(context.Background(), []backend.ConditionalAction{
		{Key: item.Key, Condition: backend.NotExists(), Action: backend.Put(item)},
		{Key: legacyUserNameKey("okta", rec.UserName), Condition: backend.NotExists(), Action: backend.Put(backend.Item{Value: []byte(rec.ID)})},
	})
	require.NoError(t, err)
}

func TestCanonicalizeUserNameIndex(t *testing.T) {
	t.Parallel()
	for kind, open := range backends {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := open(t)
			s, err := New(b)
			require.NoError(t, err)
			now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
			rec := func(id, name string) *scimrecord.UserRecord {
				return &scimrecord.UserRecord{ID: id, UserName: name, Active: true, Attributes: []byte("{}"), Created: now, LastModified: now}
			}
			writeLegacyUser(t, b, rec("a", "Jane@example.com")) // ASCII: both forms agree
			writeLegacyUser(t, b, rec("b", "Straße@example.com"))
			writeLegacyUser(t, b, rec("c", "ｆｕｌｌ@example.com"))
			writeLegacyUser(t, b, rec("d", "strasse@example.com")) // the canonical form of b's name

			// Before: b's and c's names are not found under their canonical
			// forms.
			_, err = s.LookupUser(ctx, "okta", AttrUserName, "full@example.com")
			require.True(t, trace.IsNotFound(err), "%v", err)

			rep, err := s.CanonicalizeUserNameIndex(ctx, "okta")
			require.NoError(t, err)
			require.False(t, rep.Skipped)
			require.Equal(t, 4, rep.Scanned)
			require.Equal(t, 1, rep.Moved, "c moves; a needs nothing; b collides with d")
			require.Equal(t, []IndexCollision{{ID: "b", UserName: "Straße@example.com", HolderID: "d"}}, rep.Collisions)

			got, err := s.LookupUser(ctx, "okta", AttrUserName, "FULL@example.com")
			require.NoError(t, err)
			require.Equal(t, "c", got.ID)
			_, err = b.Get(ctx, legacyUserNameKey("okta", "ｆｕｌｌ@example.com"))
			require.True(t, trace.IsNotFound(err), "the legacy entry is gone: %v", err)
			got, err = s.LookupUser(ctx, "okta", AttrUserName, "Jane@example.com")
			require.NoError(t, err)
			require.Equal(t, "a", got.ID)

			// A collision leaves no marker: the next start reports it again.
			rep, err = s.CanonicalizeUserNameIndex(ctx, "okta")
			require.NoError(t, err)
			require.False(t, rep.Skipped)
			require.Len(t, rep.Collisions, 1)
			require.Zero(t, rep.Moved)

			// Once the operator resolves it, the scan completes and is
			// skipped from then on.
			require.NoError(t, b.Delete(ctx, UserKey("okta", "b")))
			rep, err = s.CanonicalizeUserNameIndex(ctx, "okta")
			require.NoError(t, err)
			require.Empty(t, rep.Collisions)
			rep, err = s.CanonicalizeUserNameIndex(ctx, "okta")
			require.NoError(t, err)
			require.True(t, rep.Skipped)
		})
	}
}

// TestMigrateExternalIDIndex: entries of the one-per-value externalId indexes (users and groups)
// are moved to the per-record indexes; an entry naming a record that no longer has the value is
// dropped; the marker makes the next run skip; records written afterwards may share an
// externalId.
func TestMigrateExternalIDIndex(t *testing.T) {
	t.Parallel()
	for kind, open := range backends {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := open(t)
			s, err := New(b)
			require.NoError(t, err)
			now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
			legacy := func(id, name, ext, indexed string) {
				rec := &scimrecord.UserRecord{ID: id, UserName: name, ExternalID: ext, Active: true, Attributes: []byte("{}"), Created: now, LastModified: now}
				item, err := MarshalUser("okta", rec)
				require.NoError(t, err)
				_, err = b.AtomicWrite(ctx, []backend.ConditionalAction{
					{Key: item.Key, Condition: backend.NotExists(), Action: backend.Put(item)},
					{Key: UserNameKey("okta", name), Condition: backend.NotExists(), Action: backend.Put(backend.Item{Value: []byte(id)})},
					{Key: pluginKey("okta", legacyExternalIDIndexes[0].part, esc(indexed)), Condition: backend.NotExists(), Action: backend.Put(backend.Item{Value: []byte(id)})},
				})
				require.NoError(t, err)
			}
			legacy("a", "jane", "00u/1", "00u/1")
			legacy("b", "bob", "00u2", "00u2")
			legacy("c", "carol", "00u3", "stale") // an entry whose record moved on
			group := &scimrecord.GroupRecord{ID: "g", DisplayName: "Eng", ExternalID: "00g1", Created: now, LastModified: now}
			gitem, err := MarshalGroup("okta", group)
			require.NoError(t, err)
			_, err = b.AtomicWrite(ctx, []backend.ConditionalAction{
				{Key: gitem.Key, Condition: backend.NotExists(), Action: backend.Put(gitem)},
				{Key: GroupNameKey("okta", "Eng"), Condition: backend.NotExists(), Action: backend.Put(backend.Item{Value: []byte("g")})},
				{Key: pluginKey("okta", legacyExternalIDIndexes[1].part, "00g1"), Condition: backend.NotExists(), Action: backend.Put(backend.Item{Value: []byte("g")})},
			})
			require.NoError(t, err)

			lookup := func(ext string) []string {
				recs, err := s.LookupUsers(ctx, "okta", AttrExternalID, ext)
				require.NoError(t, err)
				var ids []string
				for _, r := range recs {
					ids = append(ids, r.ID)
				}
				return ids
			}
			require.Empty(t, lookup("00u/1"), "before the move, the per-record index is empty")

			rep, err := s.MigrateExternalIDIndex(ctx, "okta")
			require.NoError(t, err)
			require.Equal(t, ExternalIDReport{Moved: 3, Dropped: 1}, *rep)
			groups, err := s.LookupGroups(ctx, "okta", AttrExternalID, "00g1")
			require.NoError(t, err)
			require.Len(t, groups, 1)
			require.Equal(t, "g", groups[0].ID)
			require.Equal(t, []string{"a"}, lookup("00u/1"))
			require.Equal(t, []string{"b"}, lookup("00u2"))
			require.Empty(t, lookup("stale"))
			res, err := b.GetRange(ctx, pluginKey("okta", legacyExternalIDIndexes[0].part, ""), backend.RangeEnd(pluginKey("okta", legacyExternalIDIndexes[0].part, "")), 0)
			require.NoError(t, err)
			require.Empty(t, res.Items, "no legacy user entry is left")
			res, err = b.GetRange(ctx, pluginKey("okta", legacyExternalIDIndexes[1].part, ""), backend.RangeEnd(pluginKey("okta", legacyExternalIDIndexes[1].part, "")), 0)
			require.NoError(t, err)
			require.Empty(t, res.Items, "no legacy group entry is left")

			rep, err = s.MigrateExternalIDIndex(ctx, "okta")
			require.NoError(t, err)
			require.True(t, rep.Skipped)

			// A second record with b's externalId, then a rename of a onto it.
			next := &scimrecord.UserRecord{ID: "d", UserName: "dave", ExternalID: "00u2", Active: true, Attributes: []byte("{}"), Created: now, LastModified: now}
			actions, err := PutUserActions("okta", nil, next)
			require.NoError(t, err)
			_, err = b.AtomicWrite(ctx, actions)
			require.NoError(t, err)
			a, err := s.GetUser(ctx, "okta", "a")
			require.NoError(t, err)
			renamed := *a
			renamed.ExternalID = "00u2"
			actions, err = PutUserActions("okta", a, &renamed)
			require.NoError(t, err)
			_, err = b.AtomicWrite(ctx, actions)
			require.NoError(t, err)
			require.Equal(t, []string{"a", "b", "d"}, lookup("00u2"))
			require.Empty(t, lookup("00u/1"))
		})
	}
}

func TestGrantsReconciledMarker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := New(backends["memory"](t))
	require.NoError(t, err)
	done, err := s.GrantsReconciled(ctx, "okta", "fp1")
	require.NoError(t, err)
	require.False(t, done, "never reconciled")
	require.NoError(t, s.SetGrantsReconciled(ctx, "okta", "fp1"))
	done, err = s.GrantsReconciled(ctx, "okta", "fp1")
	require.NoError(t, err)
	require.True(t, done)
	done, err = s.GrantsReconciled(ctx, "okta", "fp2")
	require.NoError(t, err)
	require.False(t, done, "a new fingerprint needs a pass")
	done, err = s.GrantsReconciled(ctx, "azure", "fp1")
	require.NoError(t, err)
	require.False(t, done, "per plugin")
}
