// Package generic is the one resource service every typed service in
// lib/services is built on. It owns what is common to all resources: the key
// layout (<prefix>/<name>), protojson marshalling, revisions flowing from the
// backend into metadata.revision, metadata.expires mapped to the backend
// item's expiry, paging with opaque tokens, optimistic concurrency, and the
// translation of backend errors into messages such as `user "alice" not
// found`.
//
// Resources are stored as protojson with the proto field names. The revision
// is never stored: it is the backend's, and is set on every resource read or
// written.
package generic

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gravitational/trace"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/defaults"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// Resource is what a generic service stores: a generated resource message
// with a metadata field.
type Resource interface {
	proto.Message
	GetMetadata() *typesv1.Metadata
}

const (
	// MaxNameLength is the longest resource name, in bytes (a DNS name's
	// limit, which also keeps keys far below backend.MaxKeySize).
	MaxNameLength = 253
	// DefaultPageSize is the page size of List when the caller passes 0.
	DefaultPageSize = 100
	// MaxPageSize is the largest page List returns.
	MaxPageSize = 1000
	// DefaultMaxSwapAttempts bounds UpdateAndSwap's read-modify-write loop.
	DefaultMaxSwapAttempts = 10
)

// Config configures a Service.
type Config[T Resource] struct {
	// Backend stores the resources. Required.
	Backend backend.Backend
	// Kind is the resource kind, used in error messages ("user"). Required.
	Kind string
	// KeyPrefix is the first key part ("users"); resources live at
	// <KeyPrefix>/<name>. Required, without a separator.
	KeyPrefix string
	// Validate checks a resource and sets its defaults before every write. It
	// may modify the resource it is given (the service passes its own copy).
	// Required: every kind validates.
	Validate func(T) error
	// MarshalOptions are the protojson options used to store values.
	// UseProtoNames is always set.
	MarshalOptions protojson.MarshalOptions
	// UnmarshalOptions are the protojson options used to read values. Stored
	// values are read with DiscardUnknown set, so that an older binary can
	// read what a newer one wrote.
	UnmarshalOptions protojson.UnmarshalOptions
	// MaxSwapAttempts bounds UpdateAndSwap; 0 means DefaultMaxSwapAttempts.
	MaxSwapAttempts int
	// Binary stores resources in the protobuf binary encoding instead of
	// protojson: about a third smaller and several times cheaper to encode
	// and decode, for the kinds written and read on every SCIM write (users,
	// locks). Reading accepts either encoding whatever this says
	// (UnmarshalResource), so a data dir written before keeps working and is
	// rewritten in binary one resource at a time as resources change.
	Binary bool
	// CacheDecoded keeps the decoded form of what Get and List read, keyed by the
	// item's key and revision, so that a resource read on every request
	// (the SAML connector and roles behind each SCIM write) is decoded once
	// per revision instead of once per read. The backend is still read
	// every time, so a change is seen as soon as the backend shows it; only
	// the decoding is skipped. For kinds with few resources: at most
	// decodeCacheMax are kept.
	CacheDecoded bool
}

// CheckAndSetDefaults validates the config and fills in defaults.
func (c *Config[T]) CheckAndSetDefaults() error {
	switch {
	case c.Backend == nil:
		return trace.BadParameter("generic service: missing Backend")
	case c.Kind == "":
		return trace.BadParameter("generic service: missing Kind")
	case c.KeyPrefix == "" || strings.ContainsRune(c.KeyPrefix, backend.Separator):
		return trace.BadParameter("generic service for %s: KeyPrefix must be one non-empty key part, got %q", c.Kind, c.KeyPrefix)
	case c.Validate == nil:
		return trace.BadParameter("generic service for %s: missing Validate", c.Kind)
	case c.MaxSwapAttempts < 0:
		return trace.BadParameter("generic service for %s: MaxSwapAttempts must not be negative", c.Kind)
	}
	defaults.IfZero(&c.MaxSwapAttempts, DefaultMaxSwapAttempts)
	c.MarshalOptions.UseProtoNames = true
	c.UnmarshalOptions.DiscardUnknown = true
	return nil
}

// Service stores resources of one kind under one key prefix.
type Service[T Resource] struct {
	cfg     Config[T]
	decoded *decodeCache[T] // nil unless cfg.CacheDecoded
}

// New returns a service for the configured kind.
func New[T Resource](cfg Config[T]) (*Service[T], error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, trace.Wrap(err)
	}
	s := &Service[T]{cfg: cfg}
	if cfg.CacheDecoded {
		s.decoded = &decodeCache[T]{m: make(map[string]decoded[T])}
	}
	return s, nil
}

// decodeCacheMax bounds a decode cache; past it the cache starts over.
const decodeCacheMax = 1024

// decodeCache maps an item's key to its last decoded form.
type decodeCache[T Resource] struct {
	mu sync.Mutex
	m  map[string]decoded[T]
}

// decoded is an item's decoded form and what identifies the item: a
// backend gives every write a new revision, and the expiry is part of the
// decoded resource (metadata.expires).
type decoded[T Resource] struct {
	revision string
	expires  time.Time
	r        T
}

// unmarshal decodes item, from the cache when it holds this revision. The
// caller gets its own copy either way: callers modify what they read.
func (c *decodeCache[T]) unmarshal(item backend.Item, opts protojson.UnmarshalOptions) (T, error) {
	if item.Revision == "" {
		return UnmarshalResource[T](item, opts)
	}
	c.mu.Lock()
	d, ok := c.m[string(item.Key)]
	c.mu.Unlock()
	if ok && d.revision == item.Revision && d.expires.Equal(item.Expires) {
		return proto.Clone(d.r).(T), nil
	}
	r, err := UnmarshalResource[T](item, opts)
	if err != nil {
		return r, err
	}
	c.mu.Lock()
	if len(c.m) >= decodeCacheMax {
		clear(c.m)
	}
	c.m[string(item.Key)] = decoded[T]{revision: item.Revision, expires: item.Expires, r: proto.Clone(r).(T)}
	c.mu.Unlock()
	return r, nil
}

// Kind returns the resource kind the service stores.
func (s *Service[T]) Kind() string { return s.cfg.Kind }

// Backend returns the backend the service writes to, for callers that build
// an AtomicWrite spanning several kinds.
func (s *Service[T]) Backend() backend.Backend { return s.cfg.Backend }

// Key returns the backend key of the named resource. It does not validate the
// name; use CheckName first for untrusted input.
func (s *Service[T]) Key(name string) backend.Key {
	return backend.NewKey(s.cfg.KeyPrefix, name)
}

// prefix is the key prefix every resource of the kind shares, with the
// trailing separator, so that "plugins/" never matches
// "plugin_static_credentials/...".
func (s *Service[T]) prefix() backend.Key {
	return backend.Key(s.cfg.KeyPrefix + string(backend.Separator))
}

// CheckName refuses a name that cannot be a resource name: empty, longer
// than MaxNameLength, not UTF-8, containing the key separator, whitespace or
// non-printable characters, or "." and "..".
func CheckName(kind, name string) error {
	switch {
	case name == "":
		return trace.BadParameter("%s name must not be empty", kind)
	case len(name) > MaxNameLength:
		return trace.BadParameter("%s name is %d bytes, over the limit of %d", kind, len(name), MaxNameLength)
	case !utf8.ValidString(name):
		return trace.BadParameter("%s name %q is not valid UTF-8", kind, name)
	case strings.ContainsRune(name, backend.Separator):
		return trace.BadParameter("%s name %q must not contain %q", kind, name, string(backend.Separator))
	case name == "." || name == "..":
		return trace.BadParameter("%s name %q is reserved", kind, name)
	}
	for _, r := range name {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return trace.BadParameter("%s name %q must contain only printable characters without spaces", kind, name)
		}
	}
	return nil
}

// newT allocates an empty message of type T. Generated messages answer
// ProtoReflect on a nil pointer, which is what the zero T is.
func newT[T Resource]() T {
	var zero T
	return zero.ProtoReflect().New().Interface().(T)
}

// metadataOf returns r's metadata, allocating it if unset.
func metadataOf(r Resource) *typesv1.Metadata {
	if md := r.GetMetadata(); md != nil {
		return md
	}
	m := r.ProtoReflect()
	fd := m.Descriptor().Fields().ByName("metadata")
	if fd == nil {
		// Every Resource has the field: GetMetadata is generated from it.
		return &typesv1.Metadata{}
	}
	return m.Mutable(fd).Message().Interface().(*typesv1.Metadata)
}

// nameOf returns the resource's name, or "" without metadata.
func nameOf(r Resource) string { return r.GetMetadata().GetName() }

// prepare copies r, validates the copy (which sets defaults), checks the name
// and expiry, and returns it. The caller's resource is never modified.
func (s *Service[T]) prepare(r T) (T, error) {
	var zero T
	if !r.ProtoReflect().IsValid() {
		return zero, trace.BadParameter("missing %s", s.cfg.Kind)
	}
	c := proto.Clone(r).(T)
	if err := s.cfg.Validate(c); err != nil {
		return zero, trace.Wrap(err)
	}
	name := nameOf(c)
	if err := CheckName(s.cfg.Kind, name); err != nil {
		return zero, trace.Wrap(err)
	}
	if exp := c.GetMetadata().GetExpires(); exp != nil {
		if err := exp.CheckValid(); err != nil {
			return zero, trace.BadParameter("%s %q: metadata.expires: %v", s.cfg.Kind, name, err)
		}
		if backend.Expired(exp.AsTime(), s.cfg.Backend.Clock().Now()) {
			return zero, trace.BadParameter("%s %q: metadata.expires %s is in the past", s.cfg.Kind, name, exp.AsTime().UTC().Format(time.RFC3339))
		}
	}
	return c, nil
}

// MarshalItem validates r and returns the backend item that stores it (see
// MarshalResource). r is not modified.
func (s *Service[T]) MarshalItem(r T) (backend.Item, error) {
	_, item, err := s.prepareItem(r)
	return item, trace.Wrap(err)
}

// prepareItem is prepare, then the item storing the prepared copy: what
// every write starts with.
func (s *Service[T]) prepareItem(r T) (T, backend.Item, error) {
	c, err := s.prepare(r)
	if err != nil {
		var zero T
		return zero, backend.Item{}, trace.Wrap(err)
	}
	item, err := s.marshalPrepared(c)
	if err != nil {
		var zero T
		return zero, backend.Item{}, trace.Wrap(err)
	}
	return c, item, nil
}

// marshalPrepared marshals c, the copy prepare made (see MarshalOwned).
func (s *Service[T]) marshalPrepared(c T) (backend.Item, error) {
	item, err := MarshalOwned(s.cfg.KeyPrefix, c, s.cfg.Binary, s.cfg.MarshalOptions)
	return item, trace.Wrap(err)
}

// UnmarshalItem decodes a stored item (see UnmarshalResource).
func (s *Service[T]) UnmarshalItem(item backend.Item) (T, error) {
	r, err := UnmarshalResource[T](item, s.cfg.UnmarshalOptions)
	return r, trace.Wrap(err)
}

// MarshalResource returns the backend item that stores r under keyPrefix:
// the key <keyPrefix>/<name>, the protojson value (proto field names) without
// metadata.revision, and metadata.expires as the item's expiry. The item's
// Revision is r's metadata.revision, for ConditionalUpdate. It checks the
// name but does not validate r otherwise: callers validate first. r is not
// modified.
func MarshalResource[T Resource](keyPrefix string, r T, opts protojson.MarshalOptions) (backend.Item, error) {
	opts.UseProtoNames = true
	return marshalResource(keyPrefix, r, false, func(c T) ([]byte, error) { return opts.Marshal(c) })
}

// MarshalResourceBinary is MarshalResource in the protobuf binary encoding
// (deterministic: map entries sorted), without metadata.expires in the
// value, since the item's expiry holds it. UnmarshalResource reads it.
func MarshalResourceBinary[T Resource](keyPrefix string, r T) (backend.Item, error) {
	return marshalResource(keyPrefix, r, true, marshalBinary[T])
}

// MarshalOwned is MarshalResourceBinary when binary is set, else
// MarshalResource, for a resource the caller owns: a copy it made, which no
// other goroutine sees while this runs. It marshals r itself rather than a
// clone of it (the clone is a good part of a write's CPU, and the caller's
// copy already is one): metadata.revision, and in the binary encoding
// metadata.expires, are cleared for the marshal and put back, so that r is
// as it was when this returns, and the value is the one MarshalResource
// writes.
func MarshalOwned[T Resource](keyPrefix string, r T, binary bool, opts protojson.MarshalOptions) (backend.Item, error) {
	if binary {
		return marshalResourceIn(keyPrefix, r, true, false, marshalBinary[T])
	}
	opts.UseProtoNames = true
	return marshalResourceIn(keyPrefix, r, false, false, func(c T) ([]byte, error) { return opts.Marshal(c) })
}

// MarshalOwnedBinaryWith is MarshalOwned in the binary encoding, with marshal writing the
// value: for a kind whose encoder writes exactly proto's deterministic encoding faster (see
// services.marshalDeterministic).
func MarshalOwnedBinaryWith[T Resource](keyPrefix string, r T, marshal func(T) ([]byte, error)) (backend.Item, error) {
	return marshalResourceIn(keyPrefix, r, true, false, marshal)
}

func marshalBinary[T Resource](c T) ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(c)
}

func marshalResource[T Resource](keyPrefix string, r T, dropExpires bool, marshal func(T) ([]byte, error)) (backend.Item, error) {
	return marshalResourceIn(keyPrefix, r, dropExpires, true, marshal)
}

// marshalResourceIn is marshalResource; clone says whether to marshal a
// clone of r (r may be shared) or r itself (owned: see MarshalOwned).
func marshalResourceIn[T Resource](keyPrefix string, r T, dropExpires, clone bool, marshal func(T) ([]byte, error)) (backend.Item, error) {
	if !r.ProtoReflect().IsValid() {
		return backend.Item{}, trace.BadParameter("missing resource")
	}
	md := r.GetMetadata()
	if err := CheckName("resource", md.GetName()); err != nil {
		return backend.Item{}, trace.Wrap(err)
	}
	// md is not nil past CheckName: a resource without metadata has no name.
	rev, exp := md.GetRevision(), md.GetExpires()
	c := r
	if clone {
		c = proto.Clone(r).(T)
	}
	cmd := c.GetMetadata()
	cmd.Revision = ""
	if dropExpires {
		cmd.Expires = nil
	}
	value, err := marshal(c)
	if !clone {
		cmd.Revision, cmd.Expires = rev, exp
	}
	if err != nil {
		return backend.Item{}, trace.Wrap(err, "marshalling %q", md.GetName())
	}
	item := backend.Item{Key: backend.NewKey(keyPrefix, md.GetName()), Value: value, Revision: md.GetRevision()}
	if exp := md.GetExpires(); exp != nil {
		if err := exp.CheckValid(); err != nil {
			return backend.Item{}, trace.BadParameter("%q: metadata.expires: %v", md.GetName(), err)
		}
		item.Expires = exp.AsTime()
	}
	return item, nil
}

// UnmarshalResource decodes a stored item into a resource, setting
// metadata.revision from the item's revision and metadata.expires from its
// expiry (the backend's expiry is authoritative). Unknown fields are
// discarded, so that an older binary reads what a newer one wrote.
func UnmarshalResource[T Resource](item backend.Item, opts protojson.UnmarshalOptions) (T, error) {
	r := newT[T]()
	opts.DiscardUnknown = true
	if err := unmarshalValue(item.Value, r, opts); err != nil {
		var zero T
		return zero, trace.BadParameter("stored resource at %q is corrupt: %v", item.Key, err)
	}
	md := metadataOf(r)
	md.Revision = item.Revision
	if item.Expires.IsZero() {
		md.Expires = nil
	} else {
		md.Expires = timestamppb.New(item.Expires)
	}
	return r, nil
}

// IsJSON reports whether a stored value is protojson rather than the binary
// encoding. protojson (as this package writes it: neither indented nor
// multiline) always starts with "{"; a binary resource never does: 0x7b
// would be the tag of field 15 as a group, and resources have no groups.
func IsJSON(value []byte) bool { return len(value) > 0 && value[0] == '{' }

// unmarshalValue decodes a stored value in either encoding into r.
func unmarshalValue(value []byte, r proto.Message, opts protojson.UnmarshalOptions) error {
	if IsJSON(value) {
		return opts.Unmarshal(value, r)
	}
	return proto.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(value, r)
}

// withRevision returns c with metadata.revision set to rev.
func withRevision[T Resource](c T, rev string) T {
	metadataOf(c).Revision = rev
	return c
}

// notFound is the error for a missing resource.
func (s *Service[T]) notFound(name string) error {
	return trace.NotFound("%s %q not found", s.cfg.Kind, name)
}

// Get reads one resource; trace.NotFound (`user "alice" not found`) if it is
// missing or expired.
func (s *Service[T]) Get(ctx context.Context, name string) (T, error) {
	var zero T
	if err := CheckName(s.cfg.Kind, name); err != nil {
		return zero, trace.Wrap(err)
	}
	item, err := s.cfg.Backend.Get(ctx, s.Key(name))
	if err != nil {
		if trace.IsNotFound(err) {
			return zero, s.notFound(name)
		}
		return zero, trace.Wrap(err)
	}
	r, err := s.decode(*item)
	return r, trace.Wrap(err)
}

// decode decodes an item this service read, through the decode cache when
// the kind has one.
func (s *Service[T]) decode(item backend.Item) (T, error) {
	if s.decoded != nil {
		r, err := s.decoded.unmarshal(item, s.cfg.UnmarshalOptions)
		return r, trace.Wrap(err)
	}
	r, err := s.UnmarshalItem(item)
	return r, trace.Wrap(err)
}

// pageTokenPrefix marks the tokens this service hands out, so that a token
// from elsewhere is refused rather than misread.
const pageTokenPrefix = "gh1:"

func encodePageToken(name string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(pageTokenPrefix + name))
}

func (s *Service[T]) decodePageToken(token string) (string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || !strings.HasPrefix(string(raw), pageTokenPrefix) {
		return "", trace.BadParameter("invalid page token for %s list", s.cfg.Kind)
	}
	name := strings.TrimPrefix(string(raw), pageTokenPrefix)
	if CheckName(s.cfg.Kind, name) != nil {
		return "", trace.BadParameter("invalid page token for %s list", s.cfg.Kind)
	}
	return name, nil
}

// List returns one page of resources in name (key) order, and the token of
// the next page, empty after the last page. pageSize 0 means
// DefaultPageSize; a negative size, one over MaxPageSize or a token this
// service did not issue is refused with trace.BadParameter. Tokens stay valid
// across writes: a page starts at the first name not before the token's.
//
// A stored item that cannot be decoded fails the whole call: a listing that
// silently skips a lock would be worse than no listing.
func (s *Service[T]) List(ctx context.Context, pageSize int, pageToken string) ([]T, string, error) {
	out, next, err := s.ListWithPrefix(ctx, "", pageSize, pageToken)
	return out, next, trace.Wrap(err)
}

// ListWithPrefix is List restricted to the resources whose name starts with
// namePrefix ("" for all of them). It reads one key range of at most
// pageSize+1 items, so a page costs the same however many resources the
// kind holds. A token from another prefix's listing is clamped into this
// prefix's range: it can skip names, never return one outside the prefix.
// A prefix that no name could start with (the key separator, invalid
// UTF-8, over MaxNameLength) is refused with trace.BadParameter.
func (s *Service[T]) ListWithPrefix(ctx context.Context, namePrefix string, pageSize int, pageToken string) ([]T, string, error) {
	pageSize, err := CheckLimit("page size", pageSize, DefaultPageSize, MaxPageSize)
	if err != nil {
		return nil, "", trace.Wrap(err)
	}
	switch {
	case len(namePrefix) > MaxNameLength:
		return nil, "", trace.BadParameter("%s name prefix is %d bytes, over the limit of %d", s.cfg.Kind, len(namePrefix), MaxNameLength)
	case !utf8.ValidString(namePrefix):
		return nil, "", trace.BadParameter("%s name prefix is not valid UTF-8", s.cfg.Kind)
	case strings.ContainsRune(namePrefix, backend.Separator):
		return nil, "", trace.BadParameter("%s names never contain %q", s.cfg.Kind, string(backend.Separator))
	}
	prefix := s.prefix()
	rangeStart := backend.Key(string(prefix) + namePrefix)
	start := rangeStart
	if pageToken != "" {
		name, err := s.decodePageToken(pageToken)
		if err != nil {
			return nil, "", trace.Wrap(err)
		}
		if k := s.Key(name); bytes.Compare(k, rangeStart) > 0 {
			start = k
		}
	}
	end := backend.RangeEnd(rangeStart)
	if end != nil && bytes.Compare(start, end) >= 0 {
		// A token past the prefix's range: nothing left.
		return []T{}, "", nil
	}
	// One extra item tells whether there is a next page and where it starts.
	res, err := s.cfg.Backend.GetRange(ctx, start, end, pageSize+1)
	if err != nil {
		return nil, "", trace.Wrap(err)
	}
	items := res.Items
	next := ""
	if len(items) > pageSize {
		next = encodePageToken(strings.TrimPrefix(string(items[pageSize].Key), string(prefix)))
		items = items[:pageSize]
	}
	out := make([]T, 0, len(items))
	for _, item := range items {
		r, err := s.decode(item)
		if err != nil {
			return nil, "", trace.Wrap(err)
		}
		out = append(out, r)
	}
	return out, next, nil
}

// CheckLimit returns the effective value of a caller's page size or limit
// n, which the error messages call what ("page size"): def when n is 0, n
// when it is between 1 and max, and trace.BadParameter when it is negative
// or over max. Every paged read in lib/services bounds its caller this way.
func CheckLimit(what string, n, def, max int) (int, error) {
	switch {
	case n < 0:
		return 0, trace.BadParameter("%s must not be negative, got %d", what, n)
	case n == 0:
		return def, nil
	case n > max:
		return 0, trace.BadParameter("%s %d is over the maximum of %d", what, n, max)
	}
	return n, nil
}

// ListAll reads every resource of the kind, page by page, calling keep (if
// non-nil) to choose which to return.
func (s *Service[T]) ListAll(ctx context.Context, keep func(T) bool) ([]T, error) {
	var out []T
	token := ""
	for {
		page, next, err := s.List(ctx, MaxPageSize, token)
		if err != nil {
			return nil, trace.Wrap(err)
		}
		for _, r := range page {
			if keep == nil || keep(r) {
				out = append(out, r)
			}
		}
		if next == "" {
			return out, nil
		}
		token = next
	}
}

// Create writes a new resource and returns it with its revision;
// trace.AlreadyExists (`user "alice" already exists`) if the name is taken.
func (s *Service[T]) Create(ctx context.Context, r T) (T, error) {
	var zero T
	c, item, err := s.prepareItem(r)
	if err != nil {
		return zero, trace.Wrap(err)
	}
	lease, err := s.cfg.Backend.Create(ctx, item)
	if err != nil {
		if trace.IsAlreadyExists(err) {
			return zero, trace.AlreadyExists("%s %q already exists", s.cfg.Kind, nameOf(c))
		}
		return zero, trace.Wrap(err)
	}
	return withRevision(c, lease.Revision), nil
}

// Update overwrites an existing resource if it is still at
// metadata.revision, which is required. trace.NotFound if it is gone,
// trace.CompareFailed if someone changed it since it was read.
func (s *Service[T]) Update(ctx context.Context, r T) (T, error) {
	var zero T
	c, err := s.prepare(r)
	if err != nil {
		return zero, trace.Wrap(err)
	}
	name := nameOf(c)
	if c.GetMetadata().GetRevision() == "" {
		return zero, trace.BadParameter("updating %s %q needs metadata.revision: read it first, or use upsert", s.cfg.Kind, name)
	}
	item, err := s.marshalPrepared(c)
	if err != nil {
		return zero, trace.Wrap(err)
	}
	lease, err := s.cfg.Backend.ConditionalUpdate(ctx, item)
	if err != nil {
		return zero, trace.Wrap(s.conditionalError(ctx, name, err))
	}
	return withRevision(c, lease.Revision), nil
}

// conditionalError turns the CompareFailed of a conditional write into
// NotFound when the resource is gone, or into a CompareFailed naming it.
func (s *Service[T]) conditionalError(ctx context.Context, name string, err error) error {
	if !trace.IsCompareFailed(err) {
		return trace.Wrap(err)
	}
	if _, gerr := s.cfg.Backend.Get(ctx, s.Key(name)); trace.IsNotFound(gerr) {
		return s.notFound(name)
	}
	return trace.CompareFailed("%s %q was changed since it was read (revision mismatch): read it again and retry", s.cfg.Kind, name)
}

// Upsert writes a resource whether or not it exists, ignoring
// metadata.revision, and returns it with its new revision.
func (s *Service[T]) Upsert(ctx context.Context, r T) (T, error) {
	var zero T
	c, item, err := s.prepareItem(r)
	if err != nil {
		return zero, trace.Wrap(err)
	}
	item.Revision = ""
	lease, err := s.cfg.Backend.Put(ctx, item)
	if err != nil {
		return zero, trace.Wrap(err)
	}
	return withRevision(c, lease.Revision), nil
}

// Delete removes a resource; trace.NotFound (`user "alice" not found`) if
// missing.
func (s *Service[T]) Delete(ctx context.Context, name string) error {
	if err := CheckName(s.cfg.Kind, name); err != nil {
		return trace.Wrap(err)
	}
	if err := s.cfg.Backend.Delete(ctx, s.Key(name)); err != nil {
		if trace.IsNotFound(err) {
			return s.notFound(name)
		}
		return trace.Wrap(err)
	}
	return nil
}

// ConditionalDelete removes a resource only if it is still at revision;
// trace.NotFound if it is gone, trace.CompareFailed if it changed.
func (s *Service[T]) ConditionalDelete(ctx context.Context, name, revision string) error {
	if err := CheckName(s.cfg.Kind, name); err != nil {
		return trace.Wrap(err)
	}
	if revision == "" {
		return trace.BadParameter("deleting %s %q conditionally needs a revision", s.cfg.Kind, name)
	}
	if err := s.cfg.Backend.ConditionalDelete(ctx, s.Key(name), revision); err != nil {
		return trace.Wrap(s.conditionalError(ctx, name, err))
	}
	return nil
}

// UpdateAndSwap is the one read-modify-write helper: it reads the resource,
// calls modify on the copy read (secrets included), validates it and writes
// it back conditionally on the revision read. When someone else wrote in
// between it starts over, at most MaxSwapAttempts times, then gives up with
// trace.CompareFailed. An error from modify is returned as is, without retry.
// modify must not rename the resource. NotFound if the resource is missing.
func (s *Service[T]) UpdateAndSwap(ctx context.Context, name string, modify func(T) error) (T, error) {
	var zero T
	if modify == nil {
		return zero, trace.BadParameter("update of %s %q: missing modify function", s.cfg.Kind, name)
	}
	for attempt := 0; attempt < s.cfg.MaxSwapAttempts; attempt++ {
		cur, err := s.Get(ctx, name)
		if err != nil {
			return zero, trace.Wrap(err)
		}
		rev := cur.GetMetadata().GetRevision()
		if err := modify(cur); err != nil {
			return zero, trace.Wrap(err)
		}
		if got := nameOf(cur); got != name {
			return zero, trace.BadParameter("update of %s %q must not rename it to %q", s.cfg.Kind, name, got)
		}
		c, item, err := s.prepareItem(cur)
		if err != nil {
			return zero, trace.Wrap(err)
		}
		// The revision read, whatever modify did to the field.
		item.Revision = rev
		lease, err := s.cfg.Backend.ConditionalUpdate(ctx, item)
		switch {
		case err == nil:
			return withRevision(c, lease.Revision), nil
		case trace.IsCompareFailed(err):
			// Someone else's write landed: theirs made progress, try again
			// on top of it.
			if err := ctx.Err(); err != nil {
				return zero, trace.Wrap(err)
			}
			continue
		default:
			return zero, trace.Wrap(err)
		}
	}
	return zero, trace.CompareFailed("%s %q: gave up after %d concurrent modifications, try again", s.cfg.Kind, name, s.cfg.MaxSwapAttempts)
}

// String describes the service for logs.
func (s *Service[T]) String() string {
	return fmt.Sprintf("%s service (%s/)", s.cfg.Kind, s.cfg.KeyPrefix)
}
