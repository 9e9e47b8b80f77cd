package scimstore

import (
	"bytes"
	"context"
	"strings"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/scim/scimrecord"
)

// Before usernames were canonical (lib/canonical), the userName index was
// keyed by strings.ToLower(userName). For ASCII names the two forms are the
// same; for others ("Straße", a fullwidth or ligature spelling) a record
// written then is not found by a lookup now, and a second record could take
// the same canonical name. CanonicalizeUserNameIndex moves such entries once
// per plugin, before the SCIM endpoint serves, and leaves a marker so that
// later starts skip the scan.

// indexVersionKey marks a plugin whose userName index is canonical.
func indexVersionKey(plugin string) backend.Key { return pluginKey(plugin, metaPart, "username_index") }

// canonicalIndexVersion is the marker's value.
const canonicalIndexVersion = "canonical-v1"

// legacyUserNameKey is the index key the userName had before.
func legacyUserNameKey(plugin, userName string) backend.Key {
	return pluginKey(plugin, userNamesPart, esc(strings.ToLower(userName)))
}

// IndexReport says what CanonicalizeUserNameIndex did.
type IndexReport struct {
	// Skipped is true when the index was already canonical (the marker was
	// there): nothing was read.
	Skipped bool
	// Scanned counts the records read; Moved the index entries moved;
	// Unfinished the records that kept changing while being moved (the
	// next start tries them again).
	Scanned, Moved, Unfinished int
	// Collisions lists, for each record left without an index entry, the
	// userName and the id of the record that already holds its canonical
	// form. They are reported, never resolved automatically: an operator
	// decides which record stands for the person.
	Collisions []IndexCollision
}

// IndexCollision is a record whose canonical userName another record holds.
type IndexCollision struct {
	ID, UserName, HolderID string
}

// CanonicalizeUserNameIndex moves every userName index entry of plugin still
// under its lower-cased key to its canonical key, each in one AtomicWrite
// conditioned on the record's revision and the canonical key being free,
// then writes the marker (unless collisions remain, so that the next start
// reports them again).
func (s *Store) CanonicalizeUserNameIndex(ctx context.Context, plugin string) (*IndexReport, error) {
	rep := &IndexReport{}
	skipped, err := s.migrateOnce(ctx, plugin, indexVersionKey(plugin), canonicalIndexVersion, func() (bool, error) {
		after := ""
		for {
			recs, err := s.ListUsers(ctx, plugin, after, backend.MaxRangeLimit)
			if err != nil {
				return false, trace.Wrap(err)
			}
			for _, rec := range recs {
				rep.Scanned++
				moved, holder, err := s.moveUserNameEntry(ctx, plugin, rec)
				switch {
				case trace.IsCompareFailed(err):
					rep.Unfinished++
				case err != nil:
					return false, trace.Wrap(err)
				case moved:
					rep.Moved++
				}
				if holder != "" {
					rep.Collisions = append(rep.Collisions, IndexCollision{ID: rec.ID, UserName: rec.UserName, HolderID: holder})
				}
			}
			if len(recs) < backend.MaxRangeLimit {
				return len(rep.Collisions) == 0 && rep.Unfinished == 0, nil
			}
			after = recs[len(recs)-1].ID
		}
	})
	if err != nil {
		return nil, trace.Wrap(err)
	}
	rep.Skipped = skipped
	return rep, nil
}

// migrateOnce runs the one-time migration of plugin whose marker is key,
// unless the marker already holds version (skipped), and writes the marker
// when run reports that it finished (a migration that left work for the
// next start does not).
func (s *Store) migrateOnce(ctx context.Context, plugin string, key backend.Key, version string, run func() (finished bool, err error)) (skipped bool, err error) {
	if err := CheckPlugin(plugin); err != nil {
		return false, trace.Wrap(err)
	}
	done, err := s.migrated(ctx, key, version)
	if err != nil || done {
		return done, trace.Wrap(err)
	}
	finished, err := run()
	if err != nil {
		return false, trace.Wrap(err)
	}
	if finished {
		if err := s.markMigrated(ctx, key, version); err != nil {
			return false, trace.Wrap(err)
		}
	}
	return false, nil
}

// migrated reports whether the one-time migration whose marker is key has
// run (the marker holds version).
func (s *Store) migrated(ctx context.Context, key backend.Key, version string) (bool, error) {
	item, err := s.b.Get(ctx, key)
	switch {
	case trace.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, trace.Wrap(err)
	}
	return string(item.Value) == version, nil
}

// markMigrated records that the one-time migration whose marker is key has
// run, so that later starts skip its scan.
func (s *Store) markMigrated(ctx context.Context, key backend.Key, version string) error {
	_, err := s.b.Put(ctx, backend.Item{Key: key, Value: []byte(version)})
	return trace.Wrap(err)
}

// moveUserNameEntry moves rec's index entry to its canonical key if it is
// still under the legacy one, re-reading the record when it changed
// meanwhile (trace.CompareFailed when it kept changing). holder is the id of
// another record holding the canonical key, if any.
func (s *Store) moveUserNameEntry(ctx context.Context, plugin string, rec *scimrecord.UserRecord) (moved bool, holder string, err error) {
	for range 4 {
		legacy, canon := legacyUserNameKey(plugin, rec.UserName), UserNameKey(plugin, rec.UserName)
		if string(legacy) == string(canon) {
			return false, "", nil
		}
		cur, err := s.indexLookup(ctx, canon)
		switch {
		case err == nil && cur == rec.ID:
			return false, "", nil
		case err == nil:
			return false, cur, nil
		case !trace.IsNotFound(err):
			return false, "", trace.Wrap(err)
		}
		actions := []backend.ConditionalAction{
			{Key: UserKey(plugin, rec.ID), Condition: backend.Revision(rec.Revision), Action: backend.Nop()},
			{Key: canon, Condition: backend.NotExists(), Action: backend.Put(backend.Item{Value: []byte(rec.ID)})},
		}
		if id, err := s.indexLookup(ctx, legacy); err == nil && id == rec.ID {
			actions = append(actions, backend.ConditionalAction{Key: legacy, Condition: backend.Whatever(), Action: backend.Delete()})
		}
		_, err = s.b.AtomicWrite(ctx, actions)
		if err == nil {
			return true, "", nil
		}
		if !trace.IsCompareFailed(err) {
			return false, "", trace.Wrap(err)
		}
		// The record changed, or the name was just taken: look again.
		if rec, err = s.GetUser(ctx, plugin, rec.ID); err != nil {
			if trace.IsNotFound(err) {
				return false, "", nil
			}
			return false, "", trace.Wrap(err)
		}
	}
	return false, "", trace.CompareFailed("SCIM user %q kept changing while its userName index was moved", rec.ID)
}

// Before externalId stopped being unique, the user and group externalId
// indexes held one entry per value (external_ids/<esc(externalId)> → id,
// group_external_ids/<esc(externalId)> → id). MigrateExternalIDIndex moves
// each such entry to the record's own key (UserExternalIDKey,
// GroupExternalIDKey) once per plugin, before the SCIM endpoint serves, and
// leaves a marker so that later starts skip the scan.

// externalIDIndexKey marks a plugin whose externalId indexes are per record.
func externalIDIndexKey(plugin string) backend.Key {
	return pluginKey(plugin, metaPart, "external_id_index")
}

// perRecordExternalIDIndex is the marker's value.
const perRecordExternalIDIndex = "per-record-v1"

// legacyExternalIDIndex is one kind's one-entry-per-value index and how to
// read the record an entry names.
type legacyExternalIDIndex struct {
	part string
	// read returns the record's key, revision and current externalId.
	read func(ctx context.Context, s *Store, plugin, id string) (key backend.Key, revision, externalID string, err error)
	key  func(plugin, externalID, id string) backend.Key
}

var legacyExternalIDIndexes = []legacyExternalIDIndex{
	{
		part: "external_ids",
		read: func(ctx context.Context, s *Store, plugin, id string) (backend.Key, string, string, error) {
			rec, err := s.GetUser(ctx, plugin, id)
			if err != nil {
				return nil, "", "", err
			}
			return UserKey(plugin, rec.ID), rec.Revision, rec.ExternalID, nil
		},
		key: UserExternalIDKey,
	},
	{
		part: "group_external_ids",
		read: func(ctx context.Context, s *Store, plugin, id string) (backend.Key, string, string, error) {
			rec, err := s.GetGroup(ctx, plugin, id)
			if err != nil {
				return nil, "", "", err
			}
			return GroupKey(plugin, rec.ID), rec.Revision, rec.ExternalID, nil
		},
		key: GroupExternalIDKey,
	},
}

// ExternalIDReport says what MigrateExternalIDIndex did.
type ExternalIDReport struct {
	// Skipped is true when the marker was there: nothing was read.
	Skipped bool
	// Moved counts the entries moved; Dropped the legacy entries that named
	// no record with that externalId (nothing to move); Unfinished the
	// records that kept changing (the next start tries them again).
	Moved, Dropped, Unfinished int
}

// MigrateExternalIDIndex moves every legacy externalId index entry of plugin
// to its per-record key, each in one AtomicWrite conditioned on the record's
// revision, then writes the marker (unless some records kept changing).
func (s *Store) MigrateExternalIDIndex(ctx context.Context, plugin string) (*ExternalIDReport, error) {
	rep := &ExternalIDReport{}
	skipped, err := s.migrateOnce(ctx, plugin, externalIDIndexKey(plugin), perRecordExternalIDIndex, func() (bool, error) {
		for _, idx := range legacyExternalIDIndexes {
			err := s.eachPage(ctx, pluginKey(plugin, idx.part, ""), func(items []backend.Item) error {
				for _, item := range items {
					moved, err := s.moveExternalIDEntry(ctx, plugin, idx, item)
					switch {
					case trace.IsCompareFailed(err):
						rep.Unfinished++
					case err != nil:
						return trace.Wrap(err)
					case moved:
						rep.Moved++
					default:
						rep.Dropped++
					}
				}
				return nil
			})
			if err != nil {
				return false, trace.Wrap(err)
			}
		}
		return rep.Unfinished == 0, nil
	})
	if err != nil {
		return nil, trace.Wrap(err)
	}
	rep.Skipped = skipped
	return rep, nil
}

// moveExternalIDEntry replaces the legacy entry item by the per-record entry
// of the record it names, if that record still has the externalId; otherwise
// it only deletes the entry. moved reports which.
func (s *Store) moveExternalIDEntry(ctx context.Context, plugin string, idx legacyExternalIDIndex, item backend.Item) (moved bool, err error) {
	drop := backend.ConditionalAction{Key: item.Key, Condition: backend.Revision(item.Revision), Action: backend.Delete()}
	id := string(item.Value)
	for range 4 {
		key, rev, ext, err := idx.read(ctx, s, plugin, id)
		if err != nil && !trace.IsNotFound(err) {
			return false, trace.Wrap(err)
		}
		if err != nil || ext == "" || !bytes.Equal(pluginKey(plugin, idx.part, esc(ext)), item.Key) {
			_, err = s.b.AtomicWrite(ctx, []backend.ConditionalAction{drop})
			return false, trace.Wrap(err)
		}
		_, err = s.b.AtomicWrite(ctx, []backend.ConditionalAction{
			{Key: key, Condition: backend.Revision(rev), Action: backend.Nop()},
			{Key: idx.key(plugin, ext, id), Condition: backend.Whatever(), Action: backend.Put(backend.Item{Value: []byte(id)})},
			drop,
		})
		if !trace.IsCompareFailed(err) {
			return err == nil, trace.Wrap(err)
		}
	}
	return false, trace.CompareFailed("SCIM record %q kept changing while its externalId index entry was moved", id)
}

// grantsKey is where the provisioner records what the roles of plugin's
// users were last reconciled against.
func grantsKey(plugin string) backend.Key { return pluginKey(plugin, metaPart, "grants_reconciled") }

// GrantsReconciled reports whether plugin's users were last reconciled
// against fingerprint (an opaque summary of what SCIM may grant), so that a
// restart does not scan them again.
func (s *Store) GrantsReconciled(ctx context.Context, plugin, fingerprint string) (bool, error) {
	if err := CheckPlugin(plugin); err != nil {
		return false, trace.Wrap(err)
	}
	done, err := s.migrated(ctx, grantsKey(plugin), fingerprint)
	return done, trace.Wrap(err)
}

// SetGrantsReconciled records that plugin's users were reconciled against
// fingerprint.
func (s *Store) SetGrantsReconciled(ctx context.Context, plugin, fingerprint string) error {
	if err := CheckPlugin(plugin); err != nil {
		return trace.Wrap(err)
	}
	return trace.Wrap(s.markMigrated(ctx, grantsKey(plugin), fingerprint))
}
