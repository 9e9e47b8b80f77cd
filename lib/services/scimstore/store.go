package scimstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"net/url"
	"strings"
	"time"

	"github.com/gravitational/trace"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/canonical"
	"github.com/gatehouse/gatehouse/lib/scim/scimrecord"
	"github.com/gatehouse/gatehouse/lib/services/generic"
)

// Prefix is the first key part of everything this package stores.
const Prefix = "scim"

// Key parts under scim/<plugin>/.
const (
	usersPart            = "users"
	userNamesPart        = "usernames"
	userExternalIDsPart  = "user_external_id_index"
	groupsPart           = "groups"
	groupNamesPart       = "group_names"
	groupExternalIDsPart = "group_external_id_index"
	metaPart             = "meta"
)

// Lookup attributes accepted by LookupUser and LookupGroup.
const (
	AttrID          = "id"
	AttrUserName    = "userName"
	AttrExternalID  = "externalId"
	AttrDisplayName = "displayName"
)

// MaxIndexedValueBytes bounds an indexed value (externalId, displayName) so
// that its escaped key stays far below backend.MaxKeySize.
const MaxIndexedValueBytes = 512

func esc(s string) string { return url.PathEscape(s) }

// pluginKey is backend.NewKey(Prefix, plugin, parts...), built in one
// allocation: every SCIM read makes a key or two, and NewKey's join and
// conversion cost three.
func pluginKey(plugin string, parts ...string) backend.Key {
	n := len(Prefix) + 1 + len(plugin)
	for _, p := range parts {
		n += 1 + len(p)
	}
	k := make(backend.Key, 0, n)
	k = append(append(append(k, Prefix...), backend.Separator), plugin...)
	for _, p := range parts {
		k = append(append(k, backend.Separator), p...)
	}
	return k
}

// UsersPrefix is the prefix of every user record of plugin, with a trailing
// separator.
func UsersPrefix(plugin string) backend.Key { return pluginKey(plugin, usersPart, "") }

// GroupsPrefix is the prefix of every group record of plugin, with a
// trailing separator.
func GroupsPrefix(plugin string) backend.Key { return pluginKey(plugin, groupsPart, "") }

// UserKey is the key of user record id.
func UserKey(plugin, id string) backend.Key { return pluginKey(plugin, usersPart, id) }

// UserNameKey is the key of the userName index entry: the canonical form of
// userName (canonical.Username), the same form Gatehouse usernames are
// compared in, so that "Admin" and the fullwidth "ａｄｍｉｎ" are one name.
func UserNameKey(plugin, userName string) backend.Key {
	return pluginKey(plugin, userNamesPart, esc(canonical.Username(userName)))
}

// UserExternalIDKey is the key of user record id's externalId index entry. externalId is not
// unique (RFC 7643 §3.1 leaves it to the client), so the entry is keyed by the value and the
// record id, and a lookup reads every entry under UserExternalIDPrefix.
func UserExternalIDKey(plugin, externalID, id string) backend.Key {
	return pluginKey(plugin, userExternalIDsPart, esc(externalID), id)
}

// UserExternalIDPrefix is the prefix of the index entries of every user with externalID, with a
// trailing separator.
func UserExternalIDPrefix(plugin, externalID string) backend.Key {
	return pluginKey(plugin, userExternalIDsPart, esc(externalID), "")
}

// GroupKey is the key of group record id.
func GroupKey(plugin, id string) backend.Key { return pluginKey(plugin, groupsPart, id) }

// GroupNameKey is the key of the displayName index entry (case-insensitive).
func GroupNameKey(plugin, displayName string) backend.Key {
	return pluginKey(plugin, groupNamesPart, esc(strings.ToLower(displayName)))
}

// GroupExternalIDKey is the key of group record id's externalId index entry;
// see UserExternalIDKey.
func GroupExternalIDKey(plugin, externalID, id string) backend.Key {
	return pluginKey(plugin, groupExternalIDsPart, esc(externalID), id)
}

// GroupExternalIDPrefix is the prefix of the index entries of every group
// with externalID, with a trailing separator.
func GroupExternalIDPrefix(plugin, externalID string) backend.Key {
	return pluginKey(plugin, groupExternalIDsPart, esc(externalID), "")
}

// CheckPlugin refuses a plugin name that cannot be a key part.
func CheckPlugin(plugin string) error {
	return trace.Wrap(generic.CheckName("plugin", plugin))
}

// checkID refuses an id that cannot be a key part. Ids are server-assigned
// UUIDs, but they arrive from clients in URLs and filters.
func checkID(id string) error {
	if !validID(id) {
		return trace.BadParameter("invalid SCIM id %q", id)
	}
	return nil
}

// validID is checkID's rule, also for the id part of a key found (bytes, so
// that a lookup does not copy it to a string only to check it).
func validID[S ~string | ~[]byte](id S) bool {
	if len(id) == 0 || len(id) > generic.MaxNameLength {
		return false
	}
	for i := range len(id) {
		if id[i] == backend.Separator {
			return false
		}
	}
	return true
}

func checkIndexed(what, v string) error {
	if len(v) > MaxIndexedValueBytes {
		return trace.BadParameter("%s is %d bytes, over the limit of %d", what, len(v), MaxIndexedValueBytes)
	}
	return nil
}

// MarshalUser returns the backend item storing rec for plugin.
func MarshalUser(plugin string, rec *scimrecord.UserRecord) (backend.Item, error) {
	if rec == nil {
		return backend.Item{}, trace.BadParameter("missing user record")
	}
	if err := checkID(rec.ID); err != nil {
		return backend.Item{}, trace.Wrap(err)
	}
	if rec.UserName == "" {
		return backend.Item{}, trace.BadParameter("user record %q: missing userName", rec.ID)
	}
	if err := checkIndexed("externalId", rec.ExternalID); err != nil {
		return backend.Item{}, trace.Wrap(err)
	}
	return backend.Item{Key: UserKey(plugin, rec.ID), Value: encodeUserRecord(rec), Revision: rec.Revision}, nil
}

// UnmarshalUser decodes a stored user record, its Revision from the item,
// and its ID from the key when the value does not hold it: records are
// stored in the compact encoding of encodeUserRecord, without the id, and
// those written before it, in JSON, still read.
func UnmarshalUser(item backend.Item) (*scimrecord.UserRecord, error) {
	var rec scimrecord.UserRecord
	var err error
	if len(item.Value) > 0 && item.Value[0] == '{' {
		err = json.Unmarshal(item.Value, &rec)
		if err == nil && rec.ID == "" {
			rec.ID = lastKeyPart(item.Key)
		}
	} else {
		err = decodeUserRecord(item.Value, item.Key, &rec)
	}
	if err != nil {
		return nil, trace.BadParameter("stored SCIM user at %q is corrupt: %v", item.Key, err)
	}
	rec.Revision = item.Revision
	return &rec, nil
}

// userRecordV1 starts a record in the compact encoding; JSON starts with "{".
const userRecordV1 = 1

// encodeUserRecord returns the compact encoding of rec: the version byte,
// then userName, externalId, active, created and lastModified (unix seconds
// and nanoseconds), the groups (count, then id and displayName each), and
// the attributes' JSON as the rest. Strings are length-prefixed (uvarint).
// It is about a third smaller than the JSON written before (no field names,
// binary times, no id: the key holds it), and it is every SCIM lookup's
// read, so it is also cheaper to decode.
func encodeUserRecord(rec *scimrecord.UserRecord) []byte {
	b := make([]byte, 0, 64+len(rec.UserName)+len(rec.ExternalID)+len(rec.Attributes))
	b = append(b, userRecordV1)
	b = appendString(b, rec.UserName)
	b = appendString(b, rec.ExternalID)
	if rec.Active {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = appendTime(b, rec.Created)
	b = appendTime(b, rec.LastModified)
	b = binary.AppendUvarint(b, uint64(len(rec.Groups)))
	for _, g := range rec.Groups {
		b = appendString(b, g.ID)
		b = appendString(b, g.DisplayName)
	}
	return append(b, rec.Attributes...)
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendTime(b []byte, t time.Time) []byte {
	return binary.AppendUvarint(binary.AppendVarint(b, t.Unix()), uint64(t.Nanosecond()))
}

// decodeUserRecord decodes what encodeUserRecord wrote into rec, and takes
// the id from key (the part after its last separator): every string of the
// record is cut from one string holding the encoded fields and the id, one
// allocation instead of one per string (lookups decode a record each).
func decodeUserRecord(v []byte, key backend.Key, rec *scimrecord.UserRecord) error {
	// The first pass finds where the attributes start, which is where the
	// strings end, and checks the whole encoding.
	d := recordDecoder{buf: v, skip: true}
	d.fields(&scimrecord.UserRecord{}, false)
	if d.err != nil {
		return d.err
	}
	attrs := d.pos
	id := key[bytes.LastIndexByte(key, backend.Separator)+1:]
	var sb strings.Builder
	sb.Grow(attrs + len(id))
	sb.Write(v[:attrs])
	sb.Write(id)
	all := sb.String()
	// The second pass cuts the strings from all, which holds v[:attrs].
	d = recordDecoder{buf: v, str: all[:attrs]}
	d.fields(rec, true)
	if d.err != nil {
		return d.err
	}
	rec.ID = all[attrs:]
	rec.Attributes = json.RawMessage(bytes.Clone(v[attrs:]))
	if len(rec.Attributes) == 0 {
		rec.Attributes = nil
	}
	return nil
}

// fields decodes the record's fields up to its attributes into rec; with
// groups false, the groups are read but not kept.
func (d *recordDecoder) fields(rec *scimrecord.UserRecord, groups bool) {
	if d.byte() != userRecordV1 {
		d.fail()
		d.err = trace.BadParameter("unknown record encoding")
		return
	}
	rec.UserName = d.string()
	rec.ExternalID = d.string()
	rec.Active = d.byte() == 1
	rec.Created = d.time()
	rec.LastModified = d.time()
	n := d.uvarint()
	if n > uint64(len(d.buf)-d.pos) {
		d.fail()
	}
	if n == 0 || d.err != nil {
		return
	}
	if groups {
		rec.Groups = make([]scimrecord.GroupRef, n)
		for i := range rec.Groups {
			rec.Groups[i] = scimrecord.GroupRef{ID: d.string(), DisplayName: d.string()}
		}
		return
	}
	for range 2 * n {
		d.string()
	}
}

// recordDecoder reads the compact record encoding from buf, at pos; the
// first error sticks and later reads return zero values. Strings are cut
// from str, which holds buf's first bytes, where it reaches; else copied,
// or with skip, only passed over.
type recordDecoder struct {
	buf  []byte
	pos  int
	str  string
	skip bool
	err  error
}

func (d *recordDecoder) fail() {
	if d.err == nil {
		d.err = trace.BadParameter("truncated record")
	}
	d.pos = len(d.buf)
}

func (d *recordDecoder) byte() byte {
	if d.pos >= len(d.buf) {
		d.fail()
		return 0
	}
	c := d.buf[d.pos]
	d.pos++
	return c
}

func (d *recordDecoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.buf[d.pos:])
	if n <= 0 {
		d.fail()
		return 0
	}
	d.pos += n
	return v
}

func (d *recordDecoder) string() string {
	n := d.uvarint()
	if n > uint64(len(d.buf)-d.pos) {
		d.fail()
		return ""
	}
	start := d.pos
	d.pos += int(n)
	switch {
	case d.pos <= len(d.str):
		return d.str[start:d.pos]
	case d.skip:
		return ""
	}
	return string(d.buf[start:d.pos])
}

func (d *recordDecoder) time() time.Time {
	sec, n := binary.Varint(d.buf[d.pos:])
	if n <= 0 {
		d.fail()
		return time.Time{}
	}
	d.pos += n
	nsec := d.uvarint()
	if nsec >= uint64(time.Second) {
		d.fail()
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

// lastKeyPart is the part of key after its last separator.
func lastKeyPart(key backend.Key) string {
	k := string(key)
	return k[strings.LastIndexByte(k, backend.Separator)+1:]
}

// MarshalGroup returns the backend item storing rec for plugin.
func MarshalGroup(plugin string, rec *scimrecord.GroupRecord) (backend.Item, error) {
	if rec == nil {
		return backend.Item{}, trace.BadParameter("missing group record")
	}
	if err := checkID(rec.ID); err != nil {
		return backend.Item{}, trace.Wrap(err)
	}
	if rec.DisplayName == "" {
		return backend.Item{}, trace.BadParameter("group record %q: missing displayName", rec.ID)
	}
	if err := checkIndexed("displayName", rec.DisplayName); err != nil {
		return backend.Item{}, trace.Wrap(err)
	}
	if err := checkIndexed("externalId", rec.ExternalID); err != nil {
		return backend.Item{}, trace.Wrap(err)
	}
	value, err := json.Marshal(rec)
	if err != nil {
		return backend.Item{}, trace.Wrap(err)
	}
	return backend.Item{Key: GroupKey(plugin, rec.ID), Value: value, Revision: rec.Revision}, nil
}

// UnmarshalGroup decodes a stored group record, its Revision from the item.
func UnmarshalGroup(item backend.Item) (*scimrecord.GroupRecord, error) {
	var rec scimrecord.GroupRecord
	if err := json.Unmarshal(item.Value, &rec); err != nil {
		return nil, trace.BadParameter("stored SCIM group at %q is corrupt: %v", item.Key, err)
	}
	rec.Revision = item.Revision
	return &rec, nil
}

// indexActions moves an index entry from oldKey to newKey (either may be
// nil): the new key must be free, the old one is removed. Both are guarded by
// the record's own condition, which the caller adds.
func indexActions(oldKey, newKey backend.Key, id string) []backend.ConditionalAction {
	var out []backend.ConditionalAction
	if bytes.Equal(oldKey, newKey) {
		return nil
	}
	if oldKey != nil {
		out = append(out, backend.ConditionalAction{Key: oldKey, Condition: backend.Whatever(), Action: backend.Delete()})
	}
	if newKey != nil {
		out = append(out, backend.ConditionalAction{
			Key:       newKey,
			Condition: backend.NotExists(),
			Action:    backend.Put(backend.Item{Value: []byte(id)}),
		})
	}
	return out
}

func optKey(v string, key func(string) backend.Key) backend.Key {
	if v == "" {
		return nil
	}
	return key(v)
}

// recordKeys are the keys one record occupies: the record itself, its name
// index entry (userName or displayName) and, when it has an externalId, that
// index entry. Users and groups are stored the same way through them.
type recordKeys struct {
	record, name, externalID backend.Key
}

func userKeys(plugin string, r *scimrecord.UserRecord) recordKeys {
	return recordKeys{
		record:     UserKey(plugin, r.ID),
		name:       UserNameKey(plugin, r.UserName),
		externalID: optKey(r.ExternalID, func(v string) backend.Key { return UserExternalIDKey(plugin, v, r.ID) }),
	}
}

func groupKeys(plugin string, r *scimrecord.GroupRecord) recordKeys {
	return recordKeys{
		record:     GroupKey(plugin, r.ID),
		name:       GroupNameKey(plugin, r.DisplayName),
		externalID: optKey(r.ExternalID, func(v string) backend.Key { return GroupExternalIDKey(plugin, v, r.ID) }),
	}
}

// putActions stores item (the record at next's keys) in place of the
// record at old's keys, read at oldRevision (old nil: a new record).
func putActions(item backend.Item, id string, old *recordKeys, oldRevision string, next recordKeys) []backend.ConditionalAction {
	cond := backend.NotExists()
	var oldName, oldExt backend.Key
	if old != nil {
		cond = backend.Revision(oldRevision)
		oldName, oldExt = old.name, old.externalID
	}
	actions := []backend.ConditionalAction{{Key: item.Key, Condition: cond, Action: backend.Put(item)}}
	actions = append(actions, indexActions(oldName, next.name, id)...)
	return append(actions, indexActions(oldExt, next.externalID, id)...)
}

// deleteActions removes the record at k, read at revision, and its indexes.
func deleteActions(k recordKeys, revision string) []backend.ConditionalAction {
	actions := []backend.ConditionalAction{
		{Key: k.record, Condition: backend.Revision(revision), Action: backend.Delete()},
		{Key: k.name, Condition: backend.Whatever(), Action: backend.Delete()},
	}
	if k.externalID != nil {
		actions = append(actions, backend.ConditionalAction{Key: k.externalID, Condition: backend.Whatever(), Action: backend.Delete()})
	}
	return actions
}

// PutUserActions returns the actions that store next in place of old (nil
// for a new record; otherwise as read, with its Revision) with its indexes:
// the record conditioned on old's revision (or NotExists), a new userName or
// externalId index entry conditioned on NotExists, a replaced one deleted.
// A CompareFailed from the write means a concurrent change or a userName
// taken by another record; the caller tells them apart by reading the index.
// The externalId entry is the record's own (keyed by its id), so another
// record with the same externalId never conflicts.
func PutUserActions(plugin string, old, next *scimrecord.UserRecord) ([]backend.ConditionalAction, error) {
	if old != nil && old.ID != next.ID {
		return nil, trace.BadParameter("user record id cannot change (%q to %q)", old.ID, next.ID)
	}
	item, err := MarshalUser(plugin, next)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	var oldKeys *recordKeys
	var oldRevision string
	if old != nil {
		k := userKeys(plugin, old)
		oldKeys, oldRevision = &k, old.Revision
	}
	return putActions(item, next.ID, oldKeys, oldRevision, userKeys(plugin, next)), nil
}

// DeleteUserActions returns the actions that remove old (as read) and its
// index entries, conditioned on old's revision.
func DeleteUserActions(plugin string, old *scimrecord.UserRecord) []backend.ConditionalAction {
	return deleteActions(userKeys(plugin, old), old.Revision)
}

// PutGroupActions is PutUserActions for groups (displayName and externalId
// indexes).
func PutGroupActions(plugin string, old, next *scimrecord.GroupRecord) ([]backend.ConditionalAction, error) {
	if old != nil && old.ID != next.ID {
		return nil, trace.BadParameter("group record id cannot change (%q to %q)", old.ID, next.ID)
	}
	item, err := MarshalGroup(plugin, next)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	var oldKeys *recordKeys
	var oldRevision string
	if old != nil {
		k := groupKeys(plugin, old)
		oldKeys, oldRevision = &k, old.Revision
	}
	return putActions(item, next.ID, oldKeys, oldRevision, groupKeys(plugin, next)), nil
}

// DeleteGroupActions returns the actions that remove old (as read) and its
// index entries, conditioned on old's revision.
func DeleteGroupActions(plugin string, old *scimrecord.GroupRecord) []backend.ConditionalAction {
	return deleteActions(groupKeys(plugin, old), old.Revision)
}

// Store reads records and indexes. Writes go through the Put*/Delete*
// action builders and the caller's backend.AtomicWrite.
type Store struct {
	b backend.Backend
	// indirect is b when it can follow an index entry to its record in one
	// read (lite); nil otherwise.
	indirect indirectGetter
}

// indirectGetter is implemented by backends that read an index entry and
// the item it names (targetPrefix + the entry's value) in one go
// (lite.Backend.GetIndirect): a filter lookup then costs one read, not two.
type indirectGetter interface {
	GetIndirect(ctx context.Context, indexKey, targetPrefix backend.Key) (*backend.Item, error)
}

// New returns a Store over b.
func New(b backend.Backend) (*Store, error) {
	if b == nil {
		return nil, trace.BadParameter("scimstore: missing backend")
	}
	s := &Store{b: b}
	s.indirect, _ = b.(indirectGetter)
	if c, ok := b.(cacheWhenReader); ok {
		// externalId index entries are only read by range, which a read
		// cache does not answer: caching them on write would only take
		// memory (about 120 bytes a user).
		c.CacheWhenRead(isExternalIDIndexKey)
	}
	return s, nil
}

// cacheWhenReader is a backend whose read cache can take some items when
// they are read rather than when written (lite.Backend).
type cacheWhenReader interface {
	CacheWhenRead(match func(key backend.Key) bool)
}

// isExternalIDIndexKey reports whether key is a user or group externalId
// index entry: scim/<plugin>/(user|group)_external_id_index/...
func isExternalIDIndexKey(key backend.Key) bool {
	rest, ok := bytes.CutPrefix(key, []byte(Prefix+string(backend.Separator)))
	if !ok {
		return false
	}
	i := bytes.IndexByte(rest, backend.Separator)
	if i < 0 {
		return false
	}
	rest = rest[i+1:]
	return bytes.HasPrefix(rest, []byte(userExternalIDsPart+string(backend.Separator))) ||
		bytes.HasPrefix(rest, []byte(groupExternalIDsPart+string(backend.Separator)))
}

// lookupIndirect reads the record an index entry names through
// s.indirect: ok false when the backend cannot (the caller reads the entry,
// then the record). The id in the key found is checked as GetUser/GetGroup
// check ids, so an entry holding junk is "not found" either way.
func (s *Store) lookupIndirect(ctx context.Context, key, prefix backend.Key) (item *backend.Item, ok bool, err error) {
	if s.indirect == nil {
		return nil, false, nil
	}
	if backend.CheckKey(key) != nil {
		return nil, true, trace.NotFound("no such index entry")
	}
	item, err = s.indirect.GetIndirect(ctx, key, prefix)
	if trace.IsNotFound(err) {
		return nil, true, err // the expected answer, passed on without a stack trace
	}
	if err != nil {
		return nil, true, trace.Wrap(err)
	}
	if !validID(item.Key[len(prefix):]) {
		return nil, true, trace.NotFound("no such record")
	}
	return item, true, nil
}

// userIndexKey returns the index key for a user lookup by attr, or nil for
// AttrID (no index).
func userIndexKey(plugin, attr, value string) (backend.Key, error) {
	switch {
	case strings.EqualFold(attr, AttrID):
		return nil, nil
	case strings.EqualFold(attr, AttrUserName):
		return UserNameKey(plugin, value), nil
	case strings.EqualFold(attr, AttrExternalID):
		return nil, trace.BadParameter("externalId is not unique: look users up by it with LookupUsers")
	}
	return nil, trace.BadParameter("users cannot be looked up by %q", attr)
}

func groupIndexKey(plugin, attr, value string) (backend.Key, error) {
	switch {
	case strings.EqualFold(attr, AttrID):
		return nil, nil
	case strings.EqualFold(attr, AttrDisplayName):
		return GroupNameKey(plugin, value), nil
	case strings.EqualFold(attr, AttrExternalID):
		return nil, trace.BadParameter("externalId is not unique: look groups up by it with LookupGroups")
	}
	return nil, trace.BadParameter("groups cannot be looked up by %q", attr)
}

// GetUser reads user record id; trace.NotFound if missing.
func (s *Store) GetUser(ctx context.Context, plugin, id string) (*scimrecord.UserRecord, error) {
	return getRecord(ctx, s, userKind, plugin, id)
}

// GetGroup reads group record id; trace.NotFound if missing.
func (s *Store) GetGroup(ctx context.Context, plugin, id string) (*scimrecord.GroupRecord, error) {
	return getRecord(ctx, s, groupKind, plugin, id)
}

// recordKind describes one kind of SCIM record (users or groups) to the
// reads both kinds share, so that each read is written once.
type recordKind[T any] struct {
	// name is the kind in error messages ("user").
	name      string
	prefix    func(plugin string) backend.Key
	key       func(plugin, id string) backend.Key
	indexKey  func(plugin, attr, value string) (backend.Key, error)
	unmarshal func(backend.Item) (T, error)
}

var (
	userKind  = recordKind[*scimrecord.UserRecord]{name: "user", prefix: UsersPrefix, key: UserKey, indexKey: userIndexKey, unmarshal: UnmarshalUser}
	groupKind = recordKind[*scimrecord.GroupRecord]{name: "group", prefix: GroupsPrefix, key: GroupKey, indexKey: groupIndexKey, unmarshal: UnmarshalGroup}
)

// getRecord reads record id of kind k; trace.NotFound if missing (or if id
// cannot be an id).
func getRecord[T any](ctx context.Context, s *Store, k recordKind[T], plugin, id string) (T, error) {
	var zero T
	if err := checkID(id); err != nil {
		return zero, trace.NotFound("SCIM %s %q not found", k.name, id)
	}
	item, err := s.b.Get(ctx, k.key(plugin, id))
	if err != nil {
		if trace.IsNotFound(err) {
			return zero, trace.NotFound("SCIM %s %q not found", k.name, id)
		}
		return zero, trace.Wrap(err)
	}
	return k.unmarshal(*item)
}

// lookupRecordID is LookupUserID and LookupGroupID.
func lookupRecordID[T any](ctx context.Context, s *Store, k recordKind[T], plugin, attr, value string) (string, error) {
	key, err := k.indexKey(plugin, attr, value)
	if err != nil {
		return "", trace.Wrap(err)
	}
	if key == nil {
		return value, nil
	}
	id, err := s.indexLookup(ctx, key)
	if trace.IsNotFound(err) {
		return "", trace.NotFound("no SCIM %s with %s %q", k.name, attr, value)
	}
	return id, trace.Wrap(err)
}

// lookupRecord reads the record attr=value names, in one backend read when
// the backend can follow the index itself. A missing record is returned
// unwrapped: FindUser turns it into "none", without a stack trace.
func lookupRecord[T any](ctx context.Context, s *Store, k recordKind[T], plugin, attr, value string) (T, error) {
	var zero T
	key, err := k.indexKey(plugin, attr, value)
	if err != nil {
		return zero, trace.Wrap(err)
	}
	if key != nil {
		if item, ok, err := s.lookupIndirect(ctx, key, k.prefix(plugin)); ok {
			if trace.IsNotFound(err) {
				return zero, err
			}
			if err != nil {
				return zero, trace.Wrap(err)
			}
			return k.unmarshal(*item)
		}
	}
	id, err := lookupRecordID(ctx, s, k, plugin, attr, value)
	if err != nil {
		return zero, trace.Wrap(err)
	}
	return getRecord(ctx, s, k, plugin, id)
}

// oneOrNone turns a unique lookup's answer into a list: none for
// trace.NotFound, which LookupUsers and LookupGroups do not count as an
// error.
func oneOrNone[T any](rec T, err error) ([]T, error) {
	switch {
	case trace.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, trace.Wrap(err)
	}
	return []T{rec}, nil
}

// indexLookup reads an index entry and returns the id it holds.
func (s *Store) indexLookup(ctx context.Context, key backend.Key) (string, error) {
	if backend.CheckKey(key) != nil {
		return "", trace.NotFound("no such index entry")
	}
	item, err := s.b.Get(ctx, key)
	if err != nil {
		return "", trace.Wrap(err)
	}
	return string(item.Value), nil
}

// LookupUserID returns the id of the user record with attr (AttrUserName,
// case-insensitive; AttrID) equal to value, from the index; trace.NotFound if
// none. externalId, which is not unique, is looked up with LookupUsers.
func (s *Store) LookupUserID(ctx context.Context, plugin, attr, value string) (string, error) {
	return lookupRecordID(ctx, s, userKind, plugin, attr, value)
}

// LookupUser returns the user record with attr equal to value (see
// LookupUserID); trace.NotFound if none. The record is checked to carry the
// value, so a stale read can never return another user.
func (s *Store) LookupUser(ctx context.Context, plugin, attr, value string) (*scimrecord.UserRecord, error) {
	rec, err := s.FindUser(ctx, plugin, attr, value)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if rec == nil {
		return nil, trace.NotFound("no SCIM user with %s %q", attr, value)
	}
	return rec, nil
}

// FindUser is LookupUser for a caller to whom a missing record is an
// expected answer (a create looking for the name it is about to take):
// nil and no error when there is none, so that no error, and no stack
// trace, is made for it.
func (s *Store) FindUser(ctx context.Context, plugin, attr, value string) (*scimrecord.UserRecord, error) {
	rec, err := lookupRecord(ctx, s, userKind, plugin, attr, value)
	switch {
	case trace.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, trace.Wrap(err)
	}
	if strings.EqualFold(attr, AttrUserName) && !canonical.Equal(rec.UserName, value) {
		return nil, nil
	}
	return rec, nil
}

// LookupUsers returns every user record with attr (AttrUserName,
// case-insensitive; AttrExternalID, caseExact; AttrID) equal to value, in id
// order, from the indexes: at most one for userName and id, any number for
// externalId. No match is an empty list, not an error.
func (s *Store) LookupUsers(ctx context.Context, plugin, attr, value string) ([]*scimrecord.UserRecord, error) {
	if !strings.EqualFold(attr, AttrExternalID) {
		return oneOrNone(s.LookupUser(ctx, plugin, attr, value))
	}
	return lookupByExternalID(ctx, s, UserExternalIDPrefix(plugin, value), value,
		func(id string) (*scimrecord.UserRecord, error) { return s.GetUser(ctx, plugin, id) },
		func(u *scimrecord.UserRecord) string { return u.ExternalID })
}

// LookupGroupID returns the id of the group record with attr
// (AttrDisplayName, case-insensitive; AttrID) equal to value; trace.NotFound
// if none. externalId, which is not unique, is looked up with LookupGroups.
func (s *Store) LookupGroupID(ctx context.Context, plugin, attr, value string) (string, error) {
	return lookupRecordID(ctx, s, groupKind, plugin, attr, value)
}

// LookupGroup returns the group record with attr equal to value; see
// LookupUser.
func (s *Store) LookupGroup(ctx context.Context, plugin, attr, value string) (*scimrecord.GroupRecord, error) {
	rec, err := lookupRecord(ctx, s, groupKind, plugin, attr, value)
	if err != nil {
		if trace.IsNotFound(err) {
			return nil, trace.NotFound("no SCIM group with %s %q", attr, value)
		}
		return nil, trace.Wrap(err)
	}
	if strings.EqualFold(attr, AttrDisplayName) && !strings.EqualFold(rec.DisplayName, value) {
		return nil, trace.NotFound("no SCIM group with %s %q", attr, value)
	}
	return rec, nil
}

// LookupGroups is LookupUsers for groups (AttrDisplayName, case-insensitive;
// AttrExternalID, any number; AttrID).
func (s *Store) LookupGroups(ctx context.Context, plugin, attr, value string) ([]*scimrecord.GroupRecord, error) {
	if !strings.EqualFold(attr, AttrExternalID) {
		return oneOrNone(s.LookupGroup(ctx, plugin, attr, value))
	}
	return lookupByExternalID(ctx, s, GroupExternalIDPrefix(plugin, value), value,
		func(id string) (*scimrecord.GroupRecord, error) { return s.GetGroup(ctx, plugin, id) },
		func(g *scimrecord.GroupRecord) string { return g.ExternalID })
}

// lookupByExternalID reads every record whose externalId index entry is
// under prefix, in id order, keeping those that still carry value (the entry
// is written in one AtomicWrite with its record, so it names it back; the
// check keeps a stale read from ever returning another record).
func lookupByExternalID[T any](ctx context.Context, s *Store, prefix backend.Key, value string,
	get func(id string) (T, error), externalID func(T) string,
) ([]T, error) {
	if value == "" || len(value) > MaxIndexedValueBytes {
		return nil, nil
	}
	var out []T
	err := s.eachPage(ctx, prefix, func(items []backend.Item) error {
		for _, item := range items {
			rec, err := get(string(item.Value))
			if trace.IsNotFound(err) {
				continue
			}
			if err != nil {
				return trace.Wrap(err)
			}
			if externalID(rec) == value {
				out = append(out, rec)
			}
		}
		return nil
	})
	if err != nil {
		return nil, trace.Wrap(err)
	}
	return out, nil
}

// eachPage calls fn with every page of the items under prefix, in key
// order, paging with NextKey, and stops at fn's first error.
func (s *Store) eachPage(ctx context.Context, prefix backend.Key, fn func([]backend.Item) error) error {
	start, end := prefix, backend.RangeEnd(prefix)
	for {
		res, err := s.b.GetRange(ctx, start, end, backend.MaxRangeLimit)
		if err != nil {
			return trace.Wrap(err)
		}
		if err := fn(res.Items); err != nil {
			return trace.Wrap(err)
		}
		if len(res.Items) < backend.MaxRangeLimit {
			return nil
		}
		start = backend.NextKey(res.Items[len(res.Items)-1].Key)
	}
}

// pageStart is the first key of a page after startAfterID.
func pageStart(prefix backend.Key, startAfterID string) backend.Key {
	if startAfterID == "" {
		return prefix
	}
	return backend.NextKey(append(append(backend.Key{}, prefix...), startAfterID...))
}

func checkLimit(limit int) (int, error) {
	switch {
	case limit < 0:
		return 0, trace.BadParameter("limit must not be negative")
	case limit == 0:
		return backend.DefaultRangeLimit, nil
	case limit > backend.MaxRangeLimit:
		return backend.MaxRangeLimit, nil
	}
	return limit, nil
}

// ListUsers returns up to limit user records with ids after startAfterID
// ("" for the first page), in id order, which is stable across pages.
func (s *Store) ListUsers(ctx context.Context, plugin, startAfterID string, limit int) ([]*scimrecord.UserRecord, error) {
	return listRecords(ctx, s, userKind, plugin, startAfterID, limit)
}

// ListGroups is ListUsers for groups.
func (s *Store) ListGroups(ctx context.Context, plugin, startAfterID string, limit int) ([]*scimrecord.GroupRecord, error) {
	return listRecords(ctx, s, groupKind, plugin, startAfterID, limit)
}

// listRecords is ListUsers and ListGroups.
func listRecords[T any](ctx context.Context, s *Store, k recordKind[T], plugin, startAfterID string, limit int) ([]T, error) {
	limit, err := checkLimit(limit)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	prefix := k.prefix(plugin)
	res, err := s.b.GetRange(ctx, pageStart(prefix, startAfterID), backend.RangeEnd(prefix), limit)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	out := make([]T, 0, len(res.Items))
	for _, item := range res.Items {
		rec, err := k.unmarshal(item)
		if err != nil {
			return nil, trace.Wrap(err)
		}
		out = append(out, rec)
	}
	return out, nil
}

// count counts the items under prefix, paging with NextKey. The backend
// has no key-only range, so this reads values: callers should cache.
func (s *Store) count(ctx context.Context, prefix backend.Key) (int, error) {
	n := 0
	err := s.eachPage(ctx, prefix, func(items []backend.Item) error {
		n += len(items)
		return nil
	})
	if err != nil {
		return 0, trace.Wrap(err)
	}
	return n, nil
}

// CountUsers counts the user records of plugin (active and inactive).
func (s *Store) CountUsers(ctx context.Context, plugin string) (int, error) {
	return s.count(ctx, UsersPrefix(plugin))
}

// CountGroups counts the group records of plugin.
func (s *Store) CountGroups(ctx context.Context, plugin string) (int, error) {
	return s.count(ctx, GroupsPrefix(plugin))
}
