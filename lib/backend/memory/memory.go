// Package memory is an in-memory backend.Backend: the engine for unit tests
// and the reference implementation of the backend contract. Everything lives
// in two B-trees (by key, and by expiry for the purge) behind one mutex;
// watchers are fed under that mutex, so every watcher sees changes in commit
// order. Nothing survives Close.
package memory

import (
	"bytes"
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
	"github.com/tidwall/btree"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/defaults"
	"github.com/gatehouse/gatehouse/lib/tick"
)

// Name is the name the backend is registered under.
const Name = "memory"

// DefaultPurgeInterval is how often, in clock time, expired items are
// removed and reported to watchers.
const DefaultPurgeInterval = time.Second

func init() {
	backend.Register(Name, func(ctx context.Context, p backend.Params) (backend.Backend, error) {
		if p.Path != "" {
			return nil, trace.BadParameter("the memory backend takes no path, got %q", p.Path)
		}
		if len(p.Settings) > 0 {
			return nil, trace.BadParameter("the memory backend takes no settings, got %d", len(p.Settings))
		}
		b, err := New(ctx, Config{Clock: p.Clock})
		return b, trace.Wrap(err)
	})
}

// Config configures the memory backend.
type Config struct {
	// Clock decides expiry and drives the purge; defaults to the real clock.
	Clock clockwork.Clock
	// PurgeInterval is how often expired items are purged; defaults to
	// DefaultPurgeInterval.
	PurgeInterval time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// CheckAndSetDefaults validates the config and fills in defaults.
func (c *Config) CheckAndSetDefaults() error {
	defaults.Clock(&c.Clock)
	if c.PurgeInterval < 0 {
		return trace.BadParameter("memory backend purge interval must not be negative, got %v", c.PurgeInterval)
	}
	defaults.IfZero(&c.PurgeInterval, DefaultPurgeInterval)
	defaults.IfZero(&c.Logger, slog.Default())
	return nil
}

// record is one stored item. Records are never changed in place once stored:
// a write replaces the record, so the expiry index stays consistent.
type record struct {
	key      string
	value    []byte
	expires  time.Time
	revision string
}

func (r *record) item() backend.Item {
	return backend.Item{
		Key:      backend.Key(r.key),
		Value:    bytes.Clone(r.value),
		Expires:  r.expires,
		Revision: r.revision,
	}
}

func byKey(a, b *record) bool { return a.key < b.key }

// byExpiry orders records with an expiry by time, then key.
func byExpiry(a, b *record) bool {
	if !a.expires.Equal(b.expires) {
		return a.expires.Before(b.expires)
	}
	return a.key < b.key
}

// Memory is the in-memory backend.
type Memory struct {
	cfg    Config
	log    *slog.Logger
	cancel context.CancelFunc
	loops  sync.WaitGroup

	// mu guards everything below, and every send to a watcher.
	mu       sync.Mutex
	items    *btree.BTreeG[*record]
	expiring *btree.BTreeG[*record]
	lastRev  uint64
	watchers map[*watcher]struct{}
	closed   bool
}

var _ backend.Backend = (*Memory)(nil)

// New opens an empty in-memory backend. Its purge loop runs until Close.
func New(ctx context.Context, cfg Config) (*Memory, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, trace.Wrap(err)
	}
	if err := ctx.Err(); err != nil {
		return nil, trace.Wrap(err)
	}
	opts := btree.Options{NoLocks: true} // m.mu guards the trees.
	// The loop outlives the ctx of New: it is stopped by Close.
	loopCtx, cancel := context.WithCancel(context.Background())
	m := &Memory{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "backend:memory"),
		cancel:   cancel,
		items:    btree.NewBTreeGOptions(byKey, opts),
		expiring: btree.NewBTreeGOptions(byExpiry, opts),
		watchers: map[*watcher]struct{}{},
	}
	// The ticker is made before New returns so that a fake clock advanced
	// right after New already drives it.
	ticker := cfg.Clock.NewTicker(cfg.PurgeInterval)
	m.loops.Add(1)
	go m.purgeLoop(loopCtx, ticker)
	return m, nil
}

// Clock returns the clock that decides expiry.
func (m *Memory) Clock() clockwork.Clock { return m.cfg.Clock }

// Close stops the purge loop and closes every watcher. Closing twice is
// harmless.
func (m *Memory) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	for w := range m.watchers {
		m.dropWatcherLocked(w)
	}
	m.items.Clear()
	m.expiring.Clear()
	m.mu.Unlock()
	m.cancel()
	m.loops.Wait()
	return nil
}

func errClosed() error {
	return trace.ConnectionProblem(nil, "memory backend is closed")
}

// lock takes the mutex unless the backend is closed; on success the caller
// must unlock.
func (m *Memory) lock() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return errClosed()
	}
	return nil
}

// liveLocked returns the record at key unless it is missing or expired.
func (m *Memory) liveLocked(key backend.Key) (*record, bool) {
	r, ok := m.items.Get(&record{key: string(key)})
	if !ok || backend.Expired(r.expires, m.cfg.Clock.Now()) {
		return nil, false
	}
	return r, true
}

func (m *Memory) nextRevisionLocked() string {
	m.lastRev++
	return strconv.FormatUint(m.lastRev, 10)
}

// setLocked stores i at revision and reports the change to watchers.
func (m *Memory) setLocked(i backend.Item, revision string) {
	r := &record{key: string(i.Key), value: bytes.Clone(i.Value), expires: i.Expires, revision: revision}
	if prev, replaced := m.items.Set(r); replaced && !prev.expires.IsZero() {
		m.expiring.Delete(prev)
	}
	if !r.expires.IsZero() {
		m.expiring.Set(r)
	}
	m.emitLocked(backend.Event{Type: backend.OpPut, Item: r.item()})
}

// removeLocked deletes key, if stored (live or expired), and reports it.
func (m *Memory) removeLocked(key string) {
	prev, ok := m.items.Delete(&record{key: key})
	if !ok {
		return
	}
	if !prev.expires.IsZero() {
		m.expiring.Delete(prev)
	}
	m.emitLocked(backend.Event{Type: backend.OpDelete, Item: backend.Item{Key: backend.Key(key)}})
}

// write runs a single-key write: check the item, lock, decide with check
// (given the live record or nil), then store at a new revision.
func (m *Memory) write(i backend.Item, check func(live *record) error) (*backend.Lease, error) {
	if err := backend.CheckItem(i); err != nil {
		return nil, trace.Wrap(err)
	}
	if err := m.lock(); err != nil {
		return nil, trace.Wrap(err)
	}
	defer m.mu.Unlock()
	live, _ := m.liveLocked(i.Key)
	if err := check(live); err != nil {
		return nil, trace.Wrap(err)
	}
	rev := m.nextRevisionLocked()
	m.setLocked(i, rev)
	return &backend.Lease{Key: bytes.Clone(i.Key), Revision: rev}, nil
}

// Create writes a new item; trace.AlreadyExists if the key exists.
func (m *Memory) Create(ctx context.Context, i backend.Item) (*backend.Lease, error) {
	lease, err := m.write(i, func(live *record) error {
		if live != nil {
			return trace.AlreadyExists("key %q already exists", i.Key)
		}
		return nil
	})
	return lease, trace.Wrap(err)
}

// Put writes an item whether or not it exists.
func (m *Memory) Put(ctx context.Context, i backend.Item) (*backend.Lease, error) {
	lease, err := m.write(i, func(*record) error { return nil })
	return lease, trace.Wrap(err)
}

// Update overwrites an existing item; trace.NotFound if it is missing.
func (m *Memory) Update(ctx context.Context, i backend.Item) (*backend.Lease, error) {
	lease, err := m.write(i, func(live *record) error {
		if live == nil {
			return trace.NotFound("key %q is not found", i.Key)
		}
		return nil
	})
	return lease, trace.Wrap(err)
}

// ConditionalUpdate overwrites the item only if it exists at i.Revision.
func (m *Memory) ConditionalUpdate(ctx context.Context, i backend.Item) (*backend.Lease, error) {
	lease, err := m.write(i, func(live *record) error {
		if live == nil || i.Revision == "" || live.revision != i.Revision {
			return backend.CompareFailed("")
		}
		return nil
	})
	return lease, trace.Wrap(err)
}

// Get reads one item; trace.NotFound if missing or expired.
func (m *Memory) Get(ctx context.Context, key backend.Key) (*backend.Item, error) {
	if err := backend.CheckKey(key); err != nil {
		return nil, trace.Wrap(err)
	}
	if err := m.lock(); err != nil {
		return nil, trace.Wrap(err)
	}
	defer m.mu.Unlock()
	r, ok := m.liveLocked(key)
	if !ok {
		return nil, trace.NotFound("key %q is not found", key)
	}
	i := r.item()
	return &i, nil
}

// GetRange reads live items with start <= key < end in key order, at most
// limit of them. It costs O(log n + k) plus the expired items it skips.
func (m *Memory) GetRange(ctx context.Context, start, end backend.Key, limit int) (*backend.GetResult, error) {
	limit, err := backend.CheckRange(start, end, limit)
	if err != nil {
		return nil, trace.Wrap(err)
	}
	if err := m.lock(); err != nil {
		return nil, trace.Wrap(err)
	}
	defer m.mu.Unlock()
	now := m.cfg.Clock.Now()
	res := &backend.GetResult{}
	m.items.Ascend(&record{key: string(start)}, func(r *record) bool {
		if !backend.InRange(backend.Key(r.key), start, end) {
			return false
		}
		if !backend.Expired(r.expires, now) {
			res.Items = append(res.Items, r.item())
		}
		return len(res.Items) < limit
	})
	return res, nil
}

// Delete removes one item; trace.NotFound if missing or expired.
func (m *Memory) Delete(ctx context.Context, key backend.Key) error {
	if err := backend.CheckKey(key); err != nil {
		return trace.Wrap(err)
	}
	if err := m.lock(); err != nil {
		return trace.Wrap(err)
	}
	defer m.mu.Unlock()
	if _, ok := m.liveLocked(key); !ok {
		return trace.NotFound("key %q is not found", key)
	}
	m.removeLocked(string(key))
	return nil
}

// DeleteRange removes every item with start <= key < end, expired or not.
func (m *Memory) DeleteRange(ctx context.Context, start, end backend.Key) error {
	if _, err := backend.CheckRange(start, end, 0); err != nil {
		return trace.Wrap(err)
	}
	if err := m.lock(); err != nil {
		return trace.Wrap(err)
	}
	defer m.mu.Unlock()
	var doomed []string
	m.items.Ascend(&record{key: string(start)}, func(r *record) bool {
		if !backend.InRange(backend.Key(r.key), start, end) {
			return false
		}
		doomed = append(doomed, r.key)
		return true
	})
	for _, k := range doomed {
		m.removeLocked(k)
	}
	return nil
}

// ConditionalDelete removes the item only if it exists at revision.
func (m *Memory) ConditionalDelete(ctx context.Context, key backend.Key, revision string) error {
	if err := backend.CheckKey(key); err != nil {
		return trace.Wrap(err)
	}
	if err := m.lock(); err != nil {
		return trace.Wrap(err)
	}
	defer m.mu.Unlock()
	live, ok := m.liveLocked(key)
	if !ok || revision == "" || live.revision != revision {
		return backend.CompareFailed("")
	}
	m.removeLocked(string(key))
	return nil
}

// AtomicWrite applies every action if every condition holds, or none.
func (m *Memory) AtomicWrite(ctx context.Context, actions []backend.ConditionalAction) (string, error) {
	if err := backend.CheckAtomicWrite(actions); err != nil {
		return "", trace.Wrap(err)
	}
	if err := m.lock(); err != nil {
		return "", trace.Wrap(err)
	}
	defer m.mu.Unlock()
	for _, a := range actions {
		live, exists := m.liveLocked(a.Key)
		var holds bool
		switch a.Condition.Kind {
		case backend.ConditionWhatever:
			holds = true
		case backend.ConditionExists:
			holds = exists
		case backend.ConditionNotExists:
			holds = !exists
		case backend.ConditionRevision:
			holds = exists && live.revision == a.Condition.Revision
		}
		if !holds {
			return "", backend.CompareFailed("condition on key %q does not hold: %s", a.Key, backend.ErrIncorrectRevision)
		}
	}
	rev := m.nextRevisionLocked()
	for _, a := range actions {
		switch a.Action.Kind {
		case backend.ActionPut:
			m.setLocked(backend.Item{Key: a.Key, Value: a.Action.Item.Value, Expires: a.Action.Item.Expires}, rev)
		case backend.ActionDelete:
			m.removeLocked(string(a.Key))
		case backend.ActionNop:
		}
	}
	return rev, nil
}

// KeepAlive moves the expiry of an item written at lease.Revision.
func (m *Memory) KeepAlive(ctx context.Context, lease backend.Lease, expires time.Time) error {
	if err := backend.CheckKey(lease.Key); err != nil {
		return trace.Wrap(err)
	}
	if err := m.lock(); err != nil {
		return trace.Wrap(err)
	}
	defer m.mu.Unlock()
	live, ok := m.liveLocked(lease.Key)
	if !ok {
		return trace.NotFound("key %q is not found", lease.Key)
	}
	if live.revision != lease.Revision {
		return backend.CompareFailed("")
	}
	m.setLocked(backend.Item{Key: lease.Key, Value: live.value, Expires: expires}, m.nextRevisionLocked())
	return nil
}

// purgeLoop removes expired items on every tick of the backend's clock.
func (m *Memory) purgeLoop(ctx context.Context, ticker clockwork.Ticker) {
	defer m.loops.Done()
	tick.Every(ctx.Done(), ticker, func() {
		if n := m.purge(); n > 0 {
			m.log.Debug("Purged expired items.", "count", n)
		}
	})
}

// purge removes every expired item, reporting each to watchers, and returns
// how many it removed.
func (m *Memory) purge() int {
	if err := m.lock(); err != nil {
		return 0
	}
	defer m.mu.Unlock()
	now := m.cfg.Clock.Now()
	var doomed []string
	m.expiring.Scan(func(r *record) bool {
		if !backend.Expired(r.expires, now) {
			return false
		}
		doomed = append(doomed, r.key)
		return true
	})
	for _, k := range doomed {
		m.removeLocked(k)
	}
	return len(doomed)
}
