// Package lockwatch keeps a process-local view of the locks in force and tells
// subscribers, such as the SSH session monitor, the moment a lock that
// targets them appears. It keeps a view of the users too (users.go), so
// that a credential whose user is deleted, created again or stripped of a
// role it was issued with is refused and its live sessions end, with the
// same fail-closed rules.
//
// The watcher loads every lock under the locks prefix, then follows backend
// watch events. When its event stream breaks it reconnects with backoff and
// reloads from scratch. Because a missed lock means a deprovisioned user keeps
// access, the view fails closed: until the first load, while the stream is
// down for longer than MaxStaleness (zero by default, so at once), and while
// a stored lock cannot be decoded (it may target anyone; skipping it would
// let its target in), CheckLockInForce refuses every party.
//
// Live sessions keep the last view while it is stale, but not for ever: once
// it has been stale for longer than LiveSessionStaleness (five minutes by
// default), LiveBoundExceeded is closed and session monitors end their
// sessions with LiveStaleMessage. That bounds how long a lock written during
// an outage that this process cannot see (say, it is cut off from a healthy
// etcd) can go unenforced.
package lockwatch

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/defaults"
	"github.com/gatehouse/gatehouse/lib/services"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
)

// LocksPrefix is the key prefix lock resources are stored under.
var LocksPrefix = services.PrefixKey(services.LocksPrefix)

// Defaults.
const (
	// DefaultRetryInitial is the first backoff delay after a failed reconnect.
	DefaultRetryInitial = 100 * time.Millisecond
	// DefaultRetryMax caps the reconnect backoff.
	DefaultRetryMax = 10 * time.Second
	// DefaultSubscriptionBuffer is the event buffer of one subscription.
	DefaultSubscriptionBuffer = 64
	// DefaultInitTimeout bounds how long one watch attempt waits for the
	// backend's Init event before it gives up and retries.
	DefaultInitTimeout = 30 * time.Second
	// DefaultLiveSessionStaleness is how long live sessions may run on a
	// stale lock view.
	DefaultLiveSessionStaleness = 5 * time.Minute
)

// Config configures a Watcher.
type Config struct {
	// Backend is where locks are stored; required.
	Backend backend.Backend
	// Clock decides lock expiry and backoff; defaults to the backend's clock.
	Clock clockwork.Clock
	// Logger defaults to slog.Default.
	Logger *slog.Logger
	// MaxStaleness is how long the view may be disconnected from the backend
	// before CheckLockInForce refuses. Zero (the default) refuses as soon as
	// the stream breaks: a lock written during an outage must not be missed.
	MaxStaleness time.Duration
	// LiveSessionStaleness is how long the view may be stale before live
	// sessions are told to end (LiveBoundExceeded). Until then they run on
	// the last view; new ones are refused from MaxStaleness on. Defaults to
	// DefaultLiveSessionStaleness; must not be below MaxStaleness.
	LiveSessionStaleness time.Duration
	// RetryInitial is the first reconnect backoff after a failed attempt; the
	// first reconnect after a healthy stream breaks happens at once.
	RetryInitial time.Duration
	// RetryMax caps the reconnect backoff.
	RetryMax time.Duration
	// InitTimeout bounds the wait for a new stream's Init event.
	InitTimeout time.Duration
	// SubscriptionBuffer is the event buffer of each subscription.
	SubscriptionBuffer int
	// Prefix is the key prefix of locks; defaults to LocksPrefix.
	Prefix backend.Key
	// UsersPrefix is the key prefix of users (the user view, see
	// WatchCredential); defaults to UsersPrefix.
	UsersPrefix backend.Key
}

// CheckAndSetDefaults validates the config and fills in defaults.
func (c *Config) CheckAndSetDefaults() error {
	if c.Backend == nil {
		return trace.BadParameter("lockwatch: missing Backend")
	}
	if c.MaxStaleness < 0 {
		return trace.BadParameter("lockwatch: MaxStaleness must not be negative")
	}
	if c.LiveSessionStaleness < 0 {
		return trace.BadParameter("lockwatch: LiveSessionStaleness must not be negative")
	}
	defaults.IfZero(&c.LiveSessionStaleness, DefaultLiveSessionStaleness)
	if c.LiveSessionStaleness < c.MaxStaleness {
		return trace.BadParameter("lockwatch: LiveSessionStaleness (%v) must not be below MaxStaleness (%v)", c.LiveSessionStaleness, c.MaxStaleness)
	}
	defaults.ClockFrom(&c.Clock, c.Backend.Clock)
	defaults.Clock(&c.Clock)
	defaults.Logger(&c.Logger, "lockwatch")
	defaults.IfNotPositive(&c.RetryInitial, DefaultRetryInitial)
	defaults.IfNotPositive(&c.RetryMax, DefaultRetryMax)
	if c.RetryMax < c.RetryInitial {
		c.RetryMax = c.RetryInitial
	}
	defaults.IfNotPositive(&c.InitTimeout, DefaultInitTimeout)
	defaults.IfNotPositive(&c.SubscriptionBuffer, DefaultSubscriptionBuffer)
	if len(c.Prefix) == 0 {
		c.Prefix = LocksPrefix
	}
	if len(c.UsersPrefix) == 0 {
		c.UsersPrefix = UsersPrefix
	}
	return nil
}

// Event is a change to a lock that matches a subscriber.
type Event struct {
	// Type is backend.OpPut for a created or changed lock in force, and
	// backend.OpDelete for a removed (or purged) lock.
	Type backend.OpType
	// Lock is the lock; for OpDelete, the last version seen.
	Lock *typesv1.Lock
}

// Watcher is a live view of the locks in force. It is safe for concurrent use.
type Watcher struct {
	cfg    Config
	ctx    context.Context
	cancel context.CancelFunc
	loopWG sync.WaitGroup

	initOnce sync.Once
	initCh   chan struct{}

	mu sync.RWMutex
	// locks holds every lock under the prefix by key, in force or not.
	locks map[string]*typesv1.Lock
	// synced is set after the first complete load.
	synced bool
	// undecodable are the keys of stored locks that cannot be decoded, with
	// the decoding error. While any is left the view counts as stale: such
	// a lock cannot be matched, and may target anyone.
	undecodable map[string]error
	// undecodableSince is when undecodable last became non-empty.
	undecodableSince time.Time
	// connected is set while the current stream is in sync.
	connected      bool
	disconnectedAt time.Time
	// liveExpired is closed once the view has been stale for
	// LiveSessionStaleness; a fresh one replaces it when the view is back
	// in sync. liveTimer closes it; liveGen tells a stale timer's callback
	// that the outage it was set for has ended.
	liveExpired chan struct{}
	liveTimer   clockwork.Timer
	liveGen     uint64
	subs        map[*Subscription]struct{}
	closed      bool
	// users is the user view by name; credSubs the credential
	// subscriptions by username (users.go).
	users map[string]userState
	// roleSets interns the users' role lists (users.go).
	roleSets roleSets
	credSubs map[string]map[*CredentialSubscription]struct{}
	// usersChanged is closed at the next change of users (WatchCredential
	// waits on it for the view to catch up).
	usersChanged chan struct{}
}

// New starts a watcher. It returns at once; use WaitInit to wait for the
// first load. Until then every CheckLockInForce refuses.
func New(ctx context.Context, cfg Config) (*Watcher, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, trace.Wrap(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &Watcher{
		cfg:            cfg,
		ctx:            ctx,
		cancel:         cancel,
		initCh:         make(chan struct{}),
		locks:          make(map[string]*typesv1.Lock),
		undecodable:    make(map[string]error),
		subs:           make(map[*Subscription]struct{}),
		disconnectedAt: cfg.Clock.Now(),
		liveExpired:    make(chan struct{}),
	}
	// Stale from the start: no session can begin before the first load,
	// but the bound is kept the same way as after a break.
	w.mu.Lock()
	w.startLiveTimerLocked()
	w.mu.Unlock()
	w.loopWG.Add(1)
	go w.run()
	return w, nil
}

// WaitInit blocks until the first complete load of the locks, or ctx ends.
func (w *Watcher) WaitInit(ctx context.Context) error {
	select {
	case <-w.initCh:
		return nil
	case <-ctx.Done():
		return trace.Wrap(ctx.Err(), "waiting for the lock watcher's first load")
	case <-w.ctx.Done():
		return trace.ConnectionProblem(nil, "lock watcher closed")
	}
}

// Close stops the watcher and ends every subscription.
func (w *Watcher) Close() error {
	w.cancel()
	w.loopWG.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	w.connected = false
	w.stopLiveTimerLocked()
	for s := range w.subs {
		s.closeLocked(trace.ConnectionProblem(nil, "lock watcher closed"))
	}
	w.voidAllLocked("lock watcher closed")
	w.notifyUsersChangedLocked()
	return nil
}

// Stale reports whether the view cannot be trusted for new sessions.
func (w *Watcher) Stale() bool {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.staleLocked(w.cfg.Clock.Now())
}

func (w *Watcher) staleLocked(now time.Time) bool {
	if !w.synced || w.closed || len(w.undecodable) > 0 {
		return true
	}
	if w.connected {
		return false
	}
	return now.Sub(w.disconnectedAt) >= w.cfg.MaxStaleness
}

// StaleFor returns how long the view has been stale (out of sync with the
// backend), or zero while it is in sync.
func (w *Watcher) StaleFor() time.Duration {
	w.mu.RLock()
	defer w.mu.RUnlock()
	now := w.cfg.Clock.Now()
	var d time.Duration
	if !w.connected || w.closed {
		d = now.Sub(w.disconnectedAt)
	}
	if len(w.undecodable) > 0 {
		d = max(d, now.Sub(w.undecodableSince))
	}
	return max(d, 0)
}

// LiveBoundExceeded returns a channel that is closed once the view has been
// stale for longer than LiveSessionStaleness: live sessions must then end
// (with LiveStaleMessage). Fetch it again after each wake-up: once the view
// is back in sync a new, open channel is returned.
func (w *Watcher) LiveBoundExceeded() <-chan struct{} {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.liveExpired
}

// LiveStaleMessage is why live sessions end when LiveBoundExceeded fires.
func (w *Watcher) LiveStaleMessage() string {
	return LiveStaleMessage(w.cfg.LiveSessionStaleness)
}

// startLiveTimerLocked arms the live-session bound for an outage that
// starts now.
func (w *Watcher) startLiveTimerLocked() {
	w.stopLiveTimerLocked()
	gen := w.liveGen
	w.liveTimer = w.cfg.Clock.AfterFunc(w.cfg.LiveSessionStaleness, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if gen != w.liveGen || (w.connected && len(w.undecodable) == 0) {
			return
		}
		select {
		case <-w.liveExpired:
		default:
			w.cfg.Logger.Error("Lock view stale for longer than the live-session bound; ending live sessions.", "live_session_staleness", w.cfg.LiveSessionStaleness, "stale_since", w.disconnectedAt)
			close(w.liveExpired)
		}
	})
}

// stopLiveTimerLocked disarms the bound (the view is in sync again, or the
// watcher is closing) and invalidates a callback already under way.
func (w *Watcher) stopLiveTimerLocked() {
	w.liveGen++
	if w.liveTimer != nil {
		w.liveTimer.Stop()
		w.liveTimer = nil
	}
}

// CheckLockInForce returns trace.AccessDenied when a lock in force matches
// subject (`lock targeting user "alice" is in force: <message>`), and
// also, failing closed, when the view is stale (StaleMessage).
//
// It reads only the in-memory view, so ctx is not consulted; it is there so
// that every LockChecker has the same signature as one that reads the backend.
func (w *Watcher) CheckLockInForce(_ context.Context, subject Subject) error {
	w.mu.RLock()
	defer w.mu.RUnlock()
	now := w.cfg.Clock.Now()
	if w.staleLocked(now) {
		return trace.AccessDenied(StaleMessage)
	}
	if l := w.findLocked(now, subject); l != nil {
		return LockInForceError(l)
	}
	return nil
}

// FindLockInForce returns a lock in force matching subject in the current
// view, or nil, without regard to staleness. Live sessions use it to
// re-check themselves; new sessions must use CheckLockInForce.
func (w *Watcher) FindLockInForce(subject Subject) *typesv1.Lock {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.findLocked(w.cfg.Clock.Now(), subject)
}

func (w *Watcher) findLocked(now time.Time, subject Subject) *typesv1.Lock {
	var found *typesv1.Lock
	for _, l := range w.locks {
		if !InForce(l, now) || !Matches(l, subject) {
			continue
		}
		// Pick deterministically so that messages do not flap.
		if found == nil || l.GetMetadata().GetName() < found.GetMetadata().GetName() {
			found = l
		}
	}
	return found
}

// LocksInForce returns the locks in force in the current view.
func (w *Watcher) LocksInForce() []*typesv1.Lock {
	w.mu.RLock()
	defer w.mu.RUnlock()
	now := w.cfg.Clock.Now()
	out := make([]*typesv1.Lock, 0, len(w.locks))
	for _, l := range w.locks {
		if InForce(l, now) {
			out = append(out, l)
		}
	}
	return out
}

// Subscribe returns a subscription to changes of locks that match subject.
// Subscribe first, then check FindLockInForce or CheckLockInForce:
// a lock written in between is then seen by one or the other.
func (w *Watcher) Subscribe(subject Subject) (*Subscription, error) {
	return w.SubscribeFunc(subject, nil)
}

// SubscribeFunc is Subscribe, and also calls fn, if not nil, for every
// matching event, synchronously in the watcher's goroutine before the event
// is queued. It is for enforcement that must not wait for a goroutine to be
// scheduled (killing a locked session's processes): fn must be quick and
// must not block or call back into the watcher.
func (w *Watcher) SubscribeFunc(subject Subject, fn func(Event)) (*Subscription, error) {
	if subject.User == "" && len(subject.Roles) == 0 && len(subject.Logins) == 0 && subject.Node == "" {
		return nil, trace.BadParameter("lock subscription needs a subject")
	}
	s := &Subscription{
		w:       w,
		subject: subject,
		fn:      fn,
		ch:      make(chan Event, w.cfg.SubscriptionBuffer),
		done:    make(chan struct{}),
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, trace.ConnectionProblem(nil, "lock watcher closed")
	}
	w.subs[s] = struct{}{}
	return s, nil
}

// Subscription delivers events for locks that match its subject.
type Subscription struct {
	w       *Watcher
	subject Subject
	fn      func(Event)
	ch      chan Event
	done    chan struct{}
	once    sync.Once
	err     error
}

// Events delivers matching lock events. It is never closed; watch Done.
func (s *Subscription) Events() <-chan Event { return s.ch }

// Done is closed when the subscription ends: Close, the watcher closed, or
// the subscriber fell behind (Err is then trace.LimitExceeded and the
// subscriber must resubscribe and re-check, because events were lost).
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Err says why the subscription ended; nil while it is live or after Close.
func (s *Subscription) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// Close ends the subscription.
func (s *Subscription) Close() {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	s.closeLocked(nil)
}

func (s *Subscription) closeLocked(err error) {
	s.once.Do(func() {
		s.err = err
		delete(s.w.subs, s)
		close(s.done)
	})
}

// notifyLocked sends ev to every subscription it matches. A subscription
// whose buffer is full is ended rather than skipped: a silently lost lock
// event would leave a session running.
func (w *Watcher) notifyLocked(ev Event) {
	for s := range w.subs {
		if !Matches(ev.Lock, s.subject) {
			continue
		}
		if s.fn != nil {
			s.fn(ev)
		}
		select {
		case s.ch <- ev:
		default:
			w.cfg.Logger.Warn("Lock subscriber fell behind, ending its subscription.")
			s.closeLocked(trace.LimitExceeded("lock subscription fell behind; resubscribe and re-check"))
		}
	}
}

func (w *Watcher) run() {
	defer w.loopWG.Done()
	failures := 0
	for {
		synced, err := w.watchOnce()
		if w.ctx.Err() != nil {
			return
		}
		w.markDisconnected(err)
		if synced {
			failures = 0
		}
		// The first retry after a healthy stream is immediate; a lock may be
		// being written right now. Later retries back off with jitter.
		var delay time.Duration
		if failures > 0 {
			delay = w.cfg.RetryInitial << min(failures-1, 20)
			if delay > w.cfg.RetryMax || delay <= 0 {
				delay = w.cfg.RetryMax
			}
			delay = delay/2 + rand.N(delay/2+1)
		}
		failures++
		if delay > 0 {
			select {
			case <-w.ctx.Done():
				return
			case <-w.cfg.Clock.After(delay):
			}
		}
	}
}

func (w *Watcher) markDisconnected(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.connected {
		w.connected = false
		w.disconnectedAt = w.cfg.Clock.Now()
		w.startLiveTimerLocked()
		w.cfg.Logger.Warn("Lock event stream broke; reconnecting. New sessions are refused once it has been down for MaxStaleness.", "error", err, "max_staleness", w.cfg.MaxStaleness)
	} else {
		w.cfg.Logger.Debug("Lock watch attempt failed.", "error", err)
	}
}

var errStreamClosed = errors.New("lock event stream closed")

// watchOnce opens one backend watcher, reloads on its Init event and follows
// it until it breaks. synced reports whether it got in sync.
func (w *Watcher) watchOnce() (synced bool, err error) {
	ctx, cancel := context.WithCancel(w.ctx)
	defer cancel()
	bw, err := w.cfg.Backend.NewWatcher(ctx, backend.Watch{
		Name:     "lockwatch",
		Prefixes: []backend.Key{w.cfg.Prefix, w.cfg.UsersPrefix},
	})
	if err != nil {
		return false, trace.Wrap(err)
	}
	defer bw.Close()

	initTimer := w.cfg.Clock.NewTimer(w.cfg.InitTimeout)
	defer initTimer.Stop()
	for {
		select {
		case <-ctx.Done():
			return synced, trace.Wrap(ctx.Err())
		case <-bw.Done():
			return synced, trace.Wrap(errStreamClosed)
		case <-initTimer.Chan():
			if !synced {
				return false, trace.ConnectionProblem(nil, "no Init event from the backend within %v", w.cfg.InitTimeout)
			}
		case ev := <-bw.Events():
			switch ev.Type {
			case backend.OpInit:
				// Events from now on are seen, so a load now misses nothing.
				if err := w.reload(ctx); err != nil {
					return synced, trace.Wrap(err)
				}
				synced = true
				initTimer.Stop()
			case backend.OpPut:
				if !synced {
					continue
				}
				w.applyPut(ev.Item)
			case backend.OpDelete:
				if !synced {
					continue
				}
				w.applyDelete(ev.Item.Key)
			}
		}
	}
}

// reload reads every lock and replaces the view, telling subscribers what
// changed since the last view they were told about.
func (w *Watcher) reload(ctx context.Context) error {
	fresh := make(map[string]*typesv1.Lock)
	undecodable := make(map[string]error)
	start, end := w.cfg.Prefix, backend.RangeEnd(w.cfg.Prefix)
	for {
		res, err := w.cfg.Backend.GetRange(ctx, start, end, backend.MaxRangeLimit)
		if err != nil {
			return trace.Wrap(err, "loading locks")
		}
		for _, it := range res.Items {
			l, err := w.parse(it)
			if err != nil {
				undecodable[string(it.Key)] = err
				continue
			}
			if l != nil {
				fresh[string(it.Key)] = l
			}
		}
		if len(res.Items) < backend.MaxRangeLimit {
			break
		}
		start = backend.NextKey(res.Items[len(res.Items)-1].Key)
	}
	users, err := w.loadUsers(ctx)
	if err != nil {
		return trace.Wrap(err)
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.cfg.Clock.Now()
	for k, old := range w.locks {
		if _, ok := fresh[k]; !ok {
			w.notifyLocked(Event{Type: backend.OpDelete, Lock: old})
		}
	}
	for k, l := range fresh {
		old, ok := w.locks[k]
		if ok && old.GetMetadata().GetRevision() == l.GetMetadata().GetRevision() {
			continue
		}
		if InForce(l, now) {
			w.notifyLocked(Event{Type: backend.OpPut, Lock: l})
		}
	}
	w.locks = fresh
	// After the locks: a session whose user was both deleted and locked
	// meanwhile is told about the lock.
	w.replaceUsersLocked(users)
	w.synced = true
	w.connected = true
	w.stopLiveTimerLocked()
	select {
	case <-w.liveExpired:
		w.liveExpired = make(chan struct{})
	default:
	}
	wasUndecodable := len(w.undecodable) > 0
	w.undecodable = undecodable
	if len(undecodable) > 0 {
		if !wasUndecodable {
			w.undecodableSince = now
		}
		// Live sessions get the same bound as during an outage.
		w.startLiveTimerLocked()
	}
	w.initOnce.Do(func() { close(w.initCh) })
	w.cfg.Logger.Info("Lock view in sync.", "locks", len(fresh), "users", len(users), "undecodable_locks", len(undecodable))
	return nil
}

// setUndecodableLocked records whether the lock at key is undecodable
// (err) or not (nil), and arms or disarms the live-session bound when the
// view turns untrustworthy or trustworthy again because of it.
func (w *Watcher) setUndecodableLocked(key string, err error) {
	before := len(w.undecodable) > 0
	if err != nil {
		w.undecodable[key] = err
	} else {
		delete(w.undecodable, key)
	}
	after := len(w.undecodable) > 0
	switch {
	case !before && after:
		w.undecodableSince = w.cfg.Clock.Now()
		if w.connected {
			w.startLiveTimerLocked()
		}
	case before && !after && w.connected:
		w.stopLiveTimerLocked()
		select {
		case <-w.liveExpired:
			w.liveExpired = make(chan struct{})
		default:
		}
		w.cfg.Logger.Info("No undecodable lock is left; the lock view is trusted again.")
	}
}

func (w *Watcher) applyPut(it backend.Item) {
	if w.isUserKey(it.Key) {
		w.applyUserPut(it)
		return
	}
	l, err := w.parse(it)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.setUndecodableLocked(string(it.Key), err)
	if l == nil {
		// Undecodable, or locking nobody: whatever this key held before
		// is replaced, so its previous version no longer applies.
		if old, ok := w.locks[string(it.Key)]; ok {
			delete(w.locks, string(it.Key))
			w.notifyLocked(Event{Type: backend.OpDelete, Lock: old})
		}
		return
	}
	w.locks[string(it.Key)] = l
	if InForce(l, w.cfg.Clock.Now()) {
		w.notifyLocked(Event{Type: backend.OpPut, Lock: l})
	}
}

func (w *Watcher) applyDelete(key backend.Key) {
	if w.isUserKey(key) {
		w.applyUserDelete(key)
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.setUndecodableLocked(string(key), nil)
	old, ok := w.locks[string(key)]
	if !ok {
		return
	}
	delete(w.locks, string(key))
	w.notifyLocked(Event{Type: backend.OpDelete, Lock: old})
}

// parse decodes a stored lock. A lock that cannot be decoded cannot be
// matched, and may be meant to lock anyone: parse returns the error, and
// the view counts as stale (refusing everyone) until the lock is fixed or
// deleted. A lock with an empty target locks nobody: nil, nil.
func (w *Watcher) parse(it backend.Item) (*typesv1.Lock, error) {
	l, err := services.UnmarshalLock(it)
	if err != nil {
		w.cfg.Logger.Error("A stored lock cannot be decoded; refusing every new session and request until it is fixed or deleted (gatectl rm lock/<name>).", "key", it.Key.String(), "error", err)
		return nil, trace.Wrap(err)
	}
	if l.Metadata == nil {
		l.Metadata = &typesv1.Metadata{Revision: it.Revision}
	}
	if l.Metadata.Name == "" {
		l.Metadata.Name = string(it.Key[len(w.cfg.Prefix):])
	}
	if TargetEmpty(l.GetSpec().GetTarget()) {
		w.cfg.Logger.Error("Ignoring a lock with an empty target.", "key", it.Key.String())
		return nil, nil
	}
	return l, nil
}
