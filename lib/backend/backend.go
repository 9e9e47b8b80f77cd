// Package backend defines the key-value storage interface that every piece of
// Gatehouse state goes through, the limits and errors all implementations
// share, and a registry that selects an implementation by name.
//
// The interface is resource-agnostic: typed resources live one layer up in
// lib/services. Every write produces a new opaque revision, which is what
// optimistic concurrency (ConditionalUpdate, ConditionalDelete, AtomicWrite
// conditions, SCIM ETags) compares. Items may carry an expiry; an expired item
// is invisible to every read at once and is purged later, which emits a Delete
// event to watchers.
//
// Every implementation must pass the compliance suite in lib/backend/backendtest.
package backend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
)

// Limits shared by every implementation. They are part of the contract: a
// value that one engine accepts must be accepted by all of them, so that an
// operator can move from SQLite to etcd without data that no longer fits.
const (
	// MaxKeySize is the largest key, in bytes.
	MaxKeySize = 1024
	// MaxValueSize is the largest value, in bytes. etcd refuses requests over
	// 1.5 MiB by default; 1 MiB leaves room for the key and the envelope.
	MaxValueSize = 1 << 20
	// MaxAtomicWriteActions is the most actions one AtomicWrite may carry.
	MaxAtomicWriteActions = 64
	// MaxAtomicWriteSize is the most bytes of keys and values one
	// AtomicWrite may carry in all: one etcd transaction must fit in etcd's
	// default 1.5 MiB request limit, so the largest single value fits, but
	// not 64 of them.
	MaxAtomicWriteSize = MaxValueSize + 64*MaxKeySize
	// DefaultRangeLimit is used by GetRange when the caller passes limit 0.
	DefaultRangeLimit = 1000
	// MaxRangeLimit is the largest page GetRange returns.
	MaxRangeLimit = 10000
	// DefaultWatchQueueSize is the event buffer of a watcher that asks for none.
	DefaultWatchQueueSize = 1024
)

// Separator joins the parts of a key.
const Separator = '/'

// Key is a backend key. Keys are compared byte-wise; resources use keys of the
// form "kind/name" built with NewKey.
type Key []byte

// NewKey joins parts with the separator: NewKey("users", "alice") is
// "users/alice".
func NewKey(parts ...string) Key {
	return Key(strings.Join(parts, string(Separator)))
}

// String returns the key as text.
func (k Key) String() string { return string(k) }

// HasPrefix reports whether k starts with prefix.
func (k Key) HasPrefix(prefix Key) bool { return bytes.HasPrefix(k, prefix) }

// RangeEnd returns the smallest key greater than every key that starts with
// prefix, for use as the exclusive end of GetRange and DeleteRange. An empty
// prefix, or one made only of 0xff bytes, has no such key: RangeEnd returns nil,
// which GetRange reads as "to the end of the keyspace".
func RangeEnd(prefix Key) Key {
	end := bytes.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// NextKey returns the smallest key greater than k: the start of the next page
// after an item with key k.
func NextKey(k Key) Key {
	return append(bytes.Clone(k), 0)
}

// Item is one key-value pair as stored.
type Item struct {
	// Key is the item's key; never empty.
	Key Key
	// Value is the stored bytes; at most MaxValueSize.
	Value []byte
	// Expires is when the item stops being visible; zero means never.
	Expires time.Time
	// Revision identifies the write that produced this version of the item.
	// It is opaque: compare it for equality, never order or parse it.
	Revision string
}

// Lease is what a write returns: the key written and its new revision.
type Lease struct {
	Key      Key
	Revision string
}

// GetResult is a page of items in key order.
type GetResult struct {
	Items []Item
}

// ConditionKind says what an AtomicWrite condition requires of its key.
type ConditionKind int

const (
	// ConditionWhatever holds always.
	ConditionWhatever ConditionKind = iota + 1
	// ConditionExists holds when the key exists (and has not expired).
	ConditionExists
	// ConditionNotExists holds when the key does not exist (or has expired).
	ConditionNotExists
	// ConditionRevision holds when the key exists at exactly Condition.Revision.
	ConditionRevision
)

// Condition is the precondition of one conditional action.
type Condition struct {
	Kind     ConditionKind
	Revision string
}

// Whatever is a condition that always holds.
func Whatever() Condition { return Condition{Kind: ConditionWhatever} }

// Exists holds when the key exists.
func Exists() Condition { return Condition{Kind: ConditionExists} }

// NotExists holds when the key does not exist.
func NotExists() Condition { return Condition{Kind: ConditionNotExists} }

// Revision holds when the key exists at revision rev.
func Revision(rev string) Condition { return Condition{Kind: ConditionRevision, Revision: rev} }

// ActionKind says what a conditional action does to its key.
type ActionKind int

const (
	// ActionNop writes nothing: the action only contributes its condition.
	ActionNop ActionKind = iota + 1
	// ActionPut writes Action.Item's value and expiry at the key.
	ActionPut
	// ActionDelete removes the key; deleting a missing key is not an error
	// (use ConditionExists to require it).
	ActionDelete
)

// Action is what one conditional action does if every condition holds.
type Action struct {
	Kind ActionKind
	// Item holds the value and expiry for ActionPut; its Key and Revision are
	// ignored (the ConditionalAction's Key is used).
	Item Item
}

// Nop is an action that writes nothing.
func Nop() Action { return Action{Kind: ActionNop} }

// Put is an action that writes item's value and expiry.
func Put(item Item) Action { return Action{Kind: ActionPut, Item: item} }

// Delete is an action that removes the key.
func Delete() Action { return Action{Kind: ActionDelete} }

// ConditionalAction is one key's part of an AtomicWrite.
type ConditionalAction struct {
	Key       Key
	Condition Condition
	Action    Action
}

// OpType is the type of a watch event.
type OpType int

const (
	// OpInit is the first event of every watcher: from then on it sees every
	// change under its prefixes.
	OpInit OpType = iota + 1
	// OpPut reports a created or updated item: its key, value, expiry and
	// the revision the write returned, so that a cache built from events can
	// make conditional writes.
	OpPut
	// OpDelete reports a deleted or expired item; only Item.Key is set.
	OpDelete
)

// String names the operation.
func (o OpType) String() string {
	switch o {
	case OpInit:
		return "init"
	case OpPut:
		return "put"
	case OpDelete:
		return "delete"
	default:
		return "unknown"
	}
}

// Event is one change seen by a watcher.
type Event struct {
	Type OpType
	Item Item
}

// Watch says what a watcher follows.
type Watch struct {
	// Name identifies the watcher in logs.
	Name string
	// Prefixes are the key prefixes to follow; none means every key. The
	// empty prefix is a prefix of every key, so it too follows every key.
	Prefixes []Key
	// QueueSize is the event buffer; 0 means DefaultWatchQueueSize. A watcher
	// whose buffer fills is closed, never silently skipped: its consumer must
	// start a new one and reload.
	QueueSize int
}

// PrepareWatch is the start of every backend's NewWatcher, so that all of
// them accept and refuse the same watches: it refuses a done ctx, a negative
// QueueSize and a prefix over MaxKeySize, and returns w with its prefixes
// copied (the caller may reuse its slices) and QueueSize defaulted to
// DefaultWatchQueueSize. An empty prefix is accepted: it follows every key.
func PrepareWatch(ctx context.Context, w Watch) (Watch, error) {
	if err := ctx.Err(); err != nil {
		return Watch{}, trace.Wrap(err)
	}
	if w.QueueSize < 0 {
		return Watch{}, trace.BadParameter("watcher %q: queue size must not be negative, got %d", w.Name, w.QueueSize)
	}
	prefixes := make([]Key, 0, len(w.Prefixes))
	for _, p := range w.Prefixes {
		if len(p) > MaxKeySize {
			return Watch{}, trace.BadParameter("watcher %q: prefix is over the key size limit of %d", w.Name, MaxKeySize)
		}
		prefixes = append(prefixes, bytes.Clone(p))
	}
	w.Prefixes = prefixes
	if w.QueueSize == 0 {
		w.QueueSize = DefaultWatchQueueSize
	}
	return w, nil
}

// Watcher delivers events in commit order. It is closed when its context is
// cancelled, when the backend closes, when the consumer falls behind, or when
// Close is called; Done is closed then.
type Watcher interface {
	// Events delivers OpInit first, then Put and Delete events.
	Events() <-chan Event
	// Done is closed when the watcher stops delivering events.
	Done() <-chan struct{}
	// Close stops the watcher.
	Close() error
}

// Backend is the key-value store every Gatehouse service writes through.
// Every method that takes a key refuses an empty key or one over MaxKeySize
// with trace.BadParameter, and every write refuses a value over MaxValueSize.
type Backend interface {
	// Create writes a new item; trace.AlreadyExists if the key exists.
	Create(ctx context.Context, i Item) (*Lease, error)
	// Put writes an item whether or not it exists.
	Put(ctx context.Context, i Item) (*Lease, error)
	// Update overwrites an existing item; trace.NotFound if it is missing.
	Update(ctx context.Context, i Item) (*Lease, error)
	// Get reads one item; trace.NotFound if missing or expired.
	Get(ctx context.Context, key Key) (*Item, error)
	// GetRange reads items with start <= key < end in key order, at most
	// limit of them (0 means DefaultRangeLimit; negative is refused). A nil
	// end means the end of the keyspace.
	GetRange(ctx context.Context, start, end Key, limit int) (*GetResult, error)
	// Delete removes one item; trace.NotFound if missing.
	Delete(ctx context.Context, key Key) error
	// DeleteRange removes every item with start <= key < end.
	DeleteRange(ctx context.Context, start, end Key) error
	// ConditionalUpdate overwrites the item only if it exists at i.Revision;
	// trace.CompareFailed otherwise (missing, stale or foreign revision).
	ConditionalUpdate(ctx context.Context, i Item) (*Lease, error)
	// ConditionalDelete removes the item only if it exists at revision;
	// trace.CompareFailed otherwise.
	ConditionalDelete(ctx context.Context, key Key, revision string) error
	// AtomicWrite applies every action if every condition holds, or none of
	// them; trace.CompareFailed if a condition fails. It takes 1 to
	// MaxAtomicWriteActions actions on distinct keys carrying at most
	// MaxAtomicWriteSize bytes, and returns the revision
	// that every written item now has.
	AtomicWrite(ctx context.Context, actions []ConditionalAction) (revision string, err error)
	// KeepAlive moves the expiry of an existing item written at
	// lease.Revision; trace.NotFound if it is missing, trace.CompareFailed if
	// it was rewritten since. The item gets a new revision.
	KeepAlive(ctx context.Context, lease Lease, expires time.Time) error
	// NewWatcher follows changes under w.Prefixes until ctx ends.
	NewWatcher(ctx context.Context, w Watch) (Watcher, error)
	// Clock is the backend's clock, which decides expiry.
	Clock() clockwork.Clock
	// Close releases the backend; its watchers close.
	Close() error
}

// ErrIncorrectRevision is what every backend's CompareFailed error (see
// CompareFailed) matches with errors.Is: a revision or condition did not
// hold. Its text ends the message of those errors.
var ErrIncorrectRevision = errors.New("the item was changed or removed since it was read")

// CompareFailed returns the error every backend returns when a condition does
// not hold: a trace.CompareFailed error (trace.IsCompareFailed holds) that
// also matches ErrIncorrectRevision with errors.Is. An empty format gives
// ErrIncorrectRevision's text as the message.
func CompareFailed(format string, args ...any) error {
	msg := ErrIncorrectRevision.Error()
	if format != "" {
		msg = fmt.Sprintf(format, args...)
	}
	// Wrap captures the stack once, as trace.CompareFailed would.
	return trace.Wrap(&incorrectRevisionError{CompareFailedError: &trace.CompareFailedError{Message: msg}})
}

// incorrectRevisionError is a trace.CompareFailedError that errors.Is also
// matches to ErrIncorrectRevision.
type incorrectRevisionError struct {
	*trace.CompareFailedError
}

// Is matches ErrIncorrectRevision and whatever the CompareFailedError matches.
func (e *incorrectRevisionError) Is(target error) bool {
	return target == ErrIncorrectRevision || e.CompareFailedError.Is(target)
}

// Unwrap exposes the CompareFailedError to errors.As (trace.IsCompareFailed).
func (e *incorrectRevisionError) Unwrap() error { return e.CompareFailedError }

// CheckKey refuses an empty or oversized key.
func CheckKey(key Key) error {
	switch {
	case len(key) == 0:
		return trace.BadParameter("backend key must not be empty")
	case len(key) > MaxKeySize:
		return trace.BadParameter("backend key is %d bytes, over the limit of %d", len(key), MaxKeySize)
	}
	return nil
}

// CheckItem refuses an item that no backend may store: a bad key, an
// oversized value.
func CheckItem(i Item) error {
	if err := CheckKey(i.Key); err != nil {
		return trace.Wrap(err)
	}
	if len(i.Value) > MaxValueSize {
		return trace.BadParameter("value for key %q is %d bytes, over the limit of %d", i.Key, len(i.Value), MaxValueSize)
	}
	return nil
}

// CheckRange validates GetRange arguments and returns the effective limit.
func CheckRange(start, end Key, limit int) (int, error) {
	if len(start) > MaxKeySize || len(end) > MaxKeySize {
		return 0, trace.BadParameter("range bound is over the key size limit of %d", MaxKeySize)
	}
	switch {
	case limit < 0:
		return 0, trace.BadParameter("range limit must not be negative, got %d", limit)
	case limit == 0:
		return DefaultRangeLimit, nil
	case limit > MaxRangeLimit:
		return 0, trace.BadParameter("range limit %d is over the maximum of %d", limit, MaxRangeLimit)
	}
	return limit, nil
}

// InRange reports whether start <= key < end, with a nil end meaning no upper
// bound.
func InRange(key, start, end Key) bool {
	if bytes.Compare(key, start) < 0 {
		return false
	}
	return end == nil || bytes.Compare(key, end) < 0
}

// CheckAtomicWrite refuses an AtomicWrite that no backend may apply: no
// actions, too many, duplicate keys, unknown kinds, bad items.
func CheckAtomicWrite(actions []ConditionalAction) error {
	switch {
	case len(actions) == 0:
		return trace.BadParameter("atomic write needs at least one action")
	case len(actions) > MaxAtomicWriteActions:
		return trace.BadParameter("atomic write has %d actions, over the limit of %d", len(actions), MaxAtomicWriteActions)
	}
	seen := make(map[string]struct{}, len(actions))
	size := 0
	for i, a := range actions {
		size += len(a.Key) + len(a.Action.Item.Value)
		if err := CheckKey(a.Key); err != nil {
			return trace.BadParameter("atomic write action %d: %v", i, err)
		}
		if _, dup := seen[string(a.Key)]; dup {
			return trace.BadParameter("atomic write names key %q more than once", a.Key)
		}
		seen[string(a.Key)] = struct{}{}
		switch a.Condition.Kind {
		case ConditionWhatever, ConditionExists, ConditionNotExists:
		case ConditionRevision:
			if a.Condition.Revision == "" {
				return trace.BadParameter("atomic write action %d on %q: revision condition without a revision", i, a.Key)
			}
		default:
			return trace.BadParameter("atomic write action %d on %q: unknown condition kind %d", i, a.Key, a.Condition.Kind)
		}
		switch a.Action.Kind {
		case ActionNop, ActionDelete:
		case ActionPut:
			if len(a.Action.Item.Value) > MaxValueSize {
				return trace.BadParameter("atomic write action %d: value for key %q is %d bytes, over the limit of %d", i, a.Key, len(a.Action.Item.Value), MaxValueSize)
			}
		default:
			return trace.BadParameter("atomic write action %d on %q: unknown action kind %d", i, a.Key, a.Action.Kind)
		}
	}
	if size > MaxAtomicWriteSize {
		return trace.BadParameter("atomic write carries %d bytes of keys and values, over the limit of %d", size, MaxAtomicWriteSize)
	}
	return nil
}

// Expired reports whether an item with the given expiry is expired at now.
func Expired(expires, now time.Time) bool {
	return !expires.IsZero() && !now.Before(expires)
}

// MatchesPrefixes reports whether key is under one of prefixes; no prefixes
// match every key.
func MatchesPrefixes(key Key, prefixes []Key) bool {
	if len(prefixes) == 0 {
		return true
	}
	for _, p := range prefixes {
		if key.HasPrefix(p) {
			return true
		}
	}
	return false
}
