package scimstore

import (
	"context"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/backend"
)

// writeLegacyUser stores rec as the code before canonical usernames did:
// its userName index entry under the lower-cased name.
func writeLegacyUser(t *testing.T, b backend.Backend, rec *UserRecord) {
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
			rec := func(id, name string) *UserRecord {
				return &UserRecord{ID: id, UserName: name, Active: true, Attributes: []byte("{}"), Created: now, LastModified: now}
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
