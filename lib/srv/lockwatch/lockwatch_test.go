package lockwatch_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/backend/memory"
	"github.com/gatehouse/gatehouse/lib/services"
	"github.com/gatehouse/gatehouse/lib/srv/lockwatch"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// flakyBackend wraps a backend so that a test can break every watch stream
// and make new watchers fail.
type flakyBackend struct {
	backend.Backend
	mu       sync.Mutex
	fail     bool
	watchers []backend.Watcher
	opened   int
}

func (f *flakyBackend) NewWatcher(ctx context.Context, w backend.Watch) (backend.Watcher, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return nil, trace.ConnectionProblem(nil, "backend unreachable (test)")
	}
	bw, err := f.Backend.NewWatcher(ctx, w)
	if err != nil {
		return nil, err
	}
	f.watchers = append(f.watchers, bw)
	f.opened++
	return bw, nil
}

// breakStreams closes every open watcher; with fail set, new ones fail too.
func (f *flakyBackend) breakStreams(fail bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = fail
	for _, w := range f.watchers {
		w.Close()
	}
	f.watchers = nil
}

func (f *flakyBackend) openedCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.opened
}

func (f *flakyBackend) setFail(fail bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = fail
}

type fixture struct {
	ctx   context.Context
	clock *clockwork.FakeClock
	bk    *flakyBackend
	w     *lockwatch.Watcher
}

func newFixture(t *testing.T, mutate func(*lockwatch.Config), failFirst bool) *fixture {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	clock := clockwork.NewFakeClockAt(time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC))
	mem, err := memory.New(ctx, memory.Config{Clock: clock})
	require.NoError(t, err)
	t.Cleanup(func() { mem.Close() })
	bk := &flakyBackend{Backend: mem, fail: failFirst}
	cfg := lockwatch.Config{Backend: bk, Clock: clock, Logger: slog.New(slog.DiscardHandler)}
	if mutate != nil {
		mutate(&cfg)
	}
	w, err := lockwatch.New(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { w.Close() })
	if !failFirst {
		waitCtx, done := context.WithTimeout(ctx, 5*time.Second)
		defer done()
		require.NoError(t, w.WaitInit(waitCtx))
	}
	return &fixture{ctx: ctx, clock: clock, bk: bk, w: w}
}

func lockFor(name string, target *typesv1.LockTarget, msg string) *typesv1.Lock {
	return &typesv1.Lock{
		Kind:     "lock",
		Version:  "v1",
		Metadata: &typesv1.Metadata{Name: name},
		Spec:     &typesv1.LockSpec{Target: target, Message: msg},
	}
}

func (f *fixture) putLock(t *testing.T, l *typesv1.Lock) {
	t.Helper()
	item, err := services.MarshalLock(l)
	if lockwatch.TargetEmpty(l.GetSpec().GetTarget()) {
		// services refuses such a lock; store it anyway, as a buggy or
		// foreign writer might, to show it locks nobody.
		v, merr := protojson.Marshal(l)
		require.NoError(t, merr)
		item, err = backend.Item{Key: services.LockKey(l.GetMetadata().GetName()), Value: v}, nil
	}
	require.NoError(t, err)
	_, err = f.bk.Put(f.ctx, item)
	require.NoError(t, err)
}

func (f *fixture) deleteLock(t *testing.T, name string) {
	t.Helper()
	require.NoError(t, f.bk.Delete(f.ctx, backend.NewKey("locks", name)))
}

func recv(t *testing.T, s *lockwatch.Subscription) lockwatch.Event {
	t.Helper()
	select {
	case ev := <-s.Events():
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no lock event within 5s")
		return lockwatch.Event{}
	}
}

func alice() lockwatch.Subject {
	return lockwatch.Subject{User: "alice", Roles: []string{"access"}, Logins: []string{"root"}, Node: "node1"}
}

func bob() lockwatch.Subject {
	return lockwatch.Subject{User: "bob", Roles: []string{"dev"}, Logins: []string{"bob"}, Node: "node1"}
}

func TestNewLockNotifiesOnlyMatchingSubscribers(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, false)
	require.NoError(t, f.w.CheckLockInForce(t.Context(), alice()))

	subA, err := f.w.Subscribe(alice())
	require.NoError(t, err)
	defer subA.Close()
	subB, err := f.w.Subscribe(bob())
	require.NoError(t, err)
	defer subB.Close()

	f.putLock(t, lockFor("l-alice", &typesv1.LockTarget{User: "alice"}, "deprovisioned by Okta"))
	ev := recv(t, subA)
	require.Equal(t, backend.OpPut, ev.Type)
	require.Equal(t, "l-alice", ev.Lock.GetMetadata().GetName())

	// Events are delivered in order: if bob had been told about alice's lock
	// he would see it before his own.
	f.putLock(t, lockFor("l-bob", &typesv1.LockTarget{User: "bob"}, "gone"))
	ev = recv(t, subB)
	require.Equal(t, "l-bob", ev.Lock.GetMetadata().GetName())

	err = f.w.CheckLockInForce(t.Context(), alice())
	require.True(t, trace.IsAccessDenied(err), "%v", err)
	require.Equal(t, `lock targeting user "alice" is in force: deprovisioned by Okta`, err.Error())
	require.Len(t, f.w.LocksInForce(), 2)
}

func TestLockTargets(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, false)
	cases := []struct {
		name   string
		target *typesv1.LockTarget
		want   string // "" means alice is not locked
	}{
		{"role", &typesv1.LockTarget{Role: "access"}, `lock targeting role "access" is in force: m`},
		{"other role", &typesv1.LockTarget{Role: "dev"}, ""},
		{"login", &typesv1.LockTarget{Login: "root"}, `lock targeting login "root" is in force: m`},
		{"node", &typesv1.LockTarget{Node: "node1"}, `lock targeting node "node1" is in force: m`},
		{"user and other login", &typesv1.LockTarget{User: "alice", Login: "admin"}, ""},
		{"user and login", &typesv1.LockTarget{User: "alice", Login: "root"}, `lock targeting user "alice", login "root" is in force: m`},
		{"empty target", &typesv1.LockTarget{}, ""},
		// Users are one account whatever the spelling; the lock is stored
		// under the canonical name.
		{"user in another spelling", &typesv1.LockTarget{User: "ＡＬＩＣＥ"}, `lock targeting user "alice" is in force: m`},
		{"user look-alike with a login", &typesv1.LockTarget{User: "Alice", Login: "root"}, `lock targeting user "alice", login "root" is in force: m`},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sub, err := f.w.Subscribe(alice())
			require.NoError(t, err)
			defer sub.Close()
			// Names unique to this case: events of earlier cases may still be
			// in flight and are skipped.
			name, marker := fmt.Sprintf("l%d", i), fmt.Sprintf("marker%d", i)
			f.putLock(t, lockFor(name, tc.target, "m"))
			// A marker lock on alice is always delivered; anything before it
			// must be the lock under test.
			f.putLock(t, lockFor(marker, &typesv1.LockTarget{User: "alice", Node: "elsewhere"}, "not alice"))
			f.putLock(t, lockFor(marker, &typesv1.LockTarget{User: "alice"}, "marker"))
			ev := recv(t, sub)
			for n := ev.Lock.GetMetadata().GetName(); ev.Type != backend.OpPut || (n != name && n != marker); n = ev.Lock.GetMetadata().GetName() {
				ev = recv(t, sub)
			}
			if tc.want == "" {
				require.Equal(t, marker, ev.Lock.GetMetadata().GetName())
			} else {
				require.Equal(t, name, ev.Lock.GetMetadata().GetName())
				require.Equal(t, tc.want, lockwatch.LockMessage(ev.Lock))
			}
			f.deleteLock(t, marker)
			f.deleteLock(t, name)
		})
	}
}

func TestDeletedLock(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, false)
	sub, err := f.w.Subscribe(alice())
	require.NoError(t, err)
	defer sub.Close()
	f.putLock(t, lockFor("l", &typesv1.LockTarget{User: "alice"}, "m"))
	require.Equal(t, backend.OpPut, recv(t, sub).Type)
	require.Error(t, f.w.CheckLockInForce(t.Context(), alice()))

	f.deleteLock(t, "l")
	ev := recv(t, sub)
	require.Equal(t, backend.OpDelete, ev.Type)
	require.Equal(t, "l", ev.Lock.GetMetadata().GetName())
	require.NoError(t, f.w.CheckLockInForce(t.Context(), alice()))
}

func TestExpiredLock(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, false)
	sub, err := f.w.Subscribe(alice())
	require.NoError(t, err)
	defer sub.Close()

	// Already expired when written: never in force, never announced.
	past := lockFor("past", &typesv1.LockTarget{User: "alice"}, "old")
	past.Metadata.Expires = timestamppb.New(f.clock.Now().Add(-time.Minute))
	f.putLock(t, past)

	soon := lockFor("soon", &typesv1.LockTarget{User: "alice"}, "temporary")
	soon.Metadata.Expires = timestamppb.New(f.clock.Now().Add(time.Hour))
	f.putLock(t, soon)
	ev := recv(t, sub)
	require.Equal(t, "soon", ev.Lock.GetMetadata().GetName(), "the expired lock must not be announced")
	err = f.w.CheckLockInForce(t.Context(), alice())
	require.Equal(t, `lock targeting user "alice" is in force: temporary`, err.Error())

	// Past its expiry the lock no longer applies, whether or not the backend
	// purged it yet.
	f.clock.Advance(time.Hour)
	require.NoError(t, f.w.CheckLockInForce(t.Context(), alice()))
	require.Nil(t, f.w.FindLockInForce(alice()))
}

func TestStreamBreakReloads(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, false)
	sub, err := f.w.Subscribe(alice())
	require.NoError(t, err)
	defer sub.Close()
	f.putLock(t, lockFor("gone-later", &typesv1.LockTarget{User: "alice", Login: "root"}, "x"))
	require.Equal(t, "gone-later", recv(t, sub).Lock.GetMetadata().GetName())

	// The stream breaks and the backend stays unreachable: new checks are
	// refused at once (fail closed).
	f.bk.breakStreams(true)
	require.Eventually(t, f.w.Stale, 5*time.Second, 5*time.Millisecond)
	err = f.w.CheckLockInForce(t.Context(), bob())
	require.True(t, trace.IsAccessDenied(err))
	require.Equal(t, lockwatch.StaleMessage, err.Error())

	// Changes made meanwhile are not seen by the stream...
	f.deleteLock(t, "gone-later")
	f.putLock(t, lockFor("during-outage", &typesv1.LockTarget{User: "alice"}, "written during the outage"))

	// ...but the reload after reconnecting finds them.
	f.bk.setFail(false)
	require.Eventually(t, func() bool {
		f.clock.Advance(lockwatch.DefaultRetryMax)
		return !f.w.Stale()
	}, 10*time.Second, 10*time.Millisecond)

	seen := map[string]backend.OpType{}
	for range 2 {
		ev := recv(t, sub)
		seen[ev.Lock.GetMetadata().GetName()] = ev.Type
	}
	require.Equal(t, map[string]backend.OpType{"gone-later": backend.OpDelete, "during-outage": backend.OpPut}, seen)
	require.Equal(t, `lock targeting user "alice" is in force: written during the outage`, f.w.CheckLockInForce(t.Context(), alice()).Error())
	require.NoError(t, f.w.CheckLockInForce(t.Context(), bob()))

	// And the new stream is live.
	f.putLock(t, lockFor("after", &typesv1.LockTarget{Role: "access"}, "y"))
	require.Equal(t, "after", recv(t, sub).Lock.GetMetadata().GetName())
}

func TestNeverSyncedFailsClosed(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, true)
	err := f.w.CheckLockInForce(t.Context(), bob())
	require.True(t, trace.IsAccessDenied(err))
	require.Equal(t, lockwatch.StaleMessage, err.Error())

	f.bk.setFail(false)
	require.Eventually(t, func() bool {
		f.clock.Advance(lockwatch.DefaultRetryMax)
		return f.w.CheckLockInForce(t.Context(), bob()) == nil
	}, 10*time.Second, 10*time.Millisecond)
}

func TestMaxStaleness(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *lockwatch.Config) {
		c.MaxStaleness = time.Minute
		// Retries far apart, so the watcher stays disconnected while the
		// test advances the clock.
		c.RetryInitial = time.Hour
		c.RetryMax = time.Hour
	}, false)
	f.bk.breakStreams(true)
	// Wait until the watcher noticed and its immediate retry failed: it then
	// sleeps on the clock (the other sleepers are the memory backend's purge
	// ticker and the live-session bound's timer).
	require.NoError(t, f.clock.BlockUntilContext(f.ctx, 3))
	require.NoError(t, f.w.CheckLockInForce(t.Context(), bob()), "within MaxStaleness the last view is trusted")
	f.clock.Advance(time.Minute)
	require.Equal(t, lockwatch.StaleMessage, f.w.CheckLockInForce(t.Context(), bob()).Error())
}

func TestSlowSubscriberIsCutNotSkipped(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *lockwatch.Config) { c.SubscriptionBuffer = 1 }, false)
	sub, err := f.w.Subscribe(alice())
	require.NoError(t, err)
	f.putLock(t, lockFor("a", &typesv1.LockTarget{User: "alice"}, ""))
	f.putLock(t, lockFor("b", &typesv1.LockTarget{User: "alice"}, ""))
	select {
	case <-sub.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("overflowing subscription was not ended")
	}
	require.True(t, trace.IsLimitExceeded(sub.Err()), "%v", sub.Err())
}

func TestSubscribeNeedsSubject(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, false)
	_, err := f.w.Subscribe(lockwatch.Subject{})
	require.True(t, trace.IsBadParameter(err))
	require.NoError(t, f.w.Close())
	_, err = f.w.Subscribe(alice())
	require.Error(t, err)
	require.Equal(t, lockwatch.StaleMessage, f.w.CheckLockInForce(t.Context(), alice()).Error())
}

func TestSubscribeFuncRunsBeforeDelivery(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, false)
	var mu sync.Mutex
	var seen []string
	sub, err := f.w.SubscribeFunc(alice(), func(ev lockwatch.Event) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, ev.Type.String()+" "+ev.Lock.GetMetadata().GetName())
	})
	require.NoError(t, err)
	defer sub.Close()
	f.putLock(t, lockFor("other", &typesv1.LockTarget{User: "bob"}, ""))
	f.putLock(t, lockFor("l", &typesv1.LockTarget{User: "alice"}, ""))
	recv(t, sub)
	// The callback ran before the event was queued.
	mu.Lock()
	require.Equal(t, []string{"put l"}, seen)
	mu.Unlock()
	f.deleteLock(t, "l")
	recv(t, sub)
	mu.Lock()
	require.Equal(t, []string{"put l", "delete l"}, seen)
	mu.Unlock()
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestLiveSessionBound(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *lockwatch.Config) {
		// Retries far apart, so the watcher stays disconnected while the
		// test advances the clock.
		c.RetryInitial = time.Hour
		c.RetryMax = time.Hour
	}, false)
	require.Zero(t, f.w.StaleFor())
	live := f.w.LiveBoundExceeded()
	require.False(t, closed(live))

	f.bk.breakStreams(true)
	// Noticed, the immediate retry failed, and the watcher sleeps (with the
	// purge ticker and the live-session timer).
	require.NoError(t, f.clock.BlockUntilContext(f.ctx, 3))
	require.Equal(t, lockwatch.StaleMessage, f.w.CheckLockInForce(t.Context(), bob()).Error(), "new sessions are refused at once")

	f.clock.Advance(lockwatch.DefaultLiveSessionStaleness - time.Second)
	require.Equal(t, lockwatch.DefaultLiveSessionStaleness-time.Second, f.w.StaleFor())
	require.False(t, closed(f.w.LiveBoundExceeded()), "live sessions keep the last view within the bound")
	f.clock.Advance(time.Second)
	require.Eventually(t, func() bool { return closed(live) }, 5*time.Second, time.Millisecond, "live sessions are told once the bound passes")
	require.Equal(t, "the lock view has been unavailable for more than 5m0s; reconnect when the cluster is healthy", f.w.LiveStaleMessage())

	// Back in sync: a fresh, open channel, and no staleness.
	f.bk.setFail(false)
	require.Eventually(t, func() bool {
		f.clock.Advance(time.Hour)
		return !f.w.Stale()
	}, 10*time.Second, 10*time.Millisecond)
	require.Zero(t, f.w.StaleFor())
	again := f.w.LiveBoundExceeded()
	require.False(t, closed(again))

	// An outage shorter than the bound leaves the channel open for good:
	// the timer set when it began does not fire after it ended.
	f.bk.breakStreams(false)
	require.Eventually(t, func() bool { return f.bk.openedCount() >= 3 && !f.w.Stale() }, 5*time.Second, time.Millisecond)
	f.clock.Advance(2 * lockwatch.DefaultLiveSessionStaleness)
	require.Never(t, func() bool { return closed(again) }, 100*time.Millisecond, 5*time.Millisecond)
	require.True(t, again == f.w.LiveBoundExceeded(), "the same channel while the view stays in sync")
}

func TestLiveSessionStalenessConfig(t *testing.T) {
	t.Parallel()
	mem, err := memory.New(context.Background(), memory.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { mem.Close() })
	for _, tc := range []struct {
		name      string
		max, live time.Duration
		wantErr   bool
		wantBound time.Duration
	}{
		{name: "default", wantBound: lockwatch.DefaultLiveSessionStaleness},
		{name: "set", live: time.Minute, wantBound: time.Minute},
		{name: "negative", live: -time.Second, wantErr: true},
		{name: "below MaxStaleness", max: time.Hour, live: time.Minute, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := lockwatch.Config{Backend: mem, MaxStaleness: tc.max, LiveSessionStaleness: tc.live}
			err := cfg.CheckAndSetDefaults()
			if tc.wantErr {
				require.True(t, trace.IsBadParameter(err), "%v", err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.wantBound, cfg.LiveSessionStaleness)
		})
	}
}

// putRaw stores bytes at a lock key, as a buggy or newer writer might.
func (f *fixture) putRaw(t *testing.T, name, value string) {
	t.Helper()
	_, err := f.bk.Put(f.ctx, backend.Item{Key: services.LockKey(name), Value: []byte(value)})
	require.NoError(t, err)
}

// TestUndecodableLockFailsClosed: a stored lock that cannot be decoded may
// target anyone, so the view refuses everyone (as stale) until it is fixed
// or deleted, rather than skipping it; live sessions get the staleness
// bound, as during an outage.
func TestUndecodableLockFailsClosed(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *lockwatch.Config) { c.LiveSessionStaleness = time.Minute }, false)
	require.NoError(t, f.w.CheckLockInForce(t.Context(), bob()))
	live := f.w.LiveBoundExceeded()

	// Written while the stream is up.
	f.putRaw(t, "garbled", `{"kind":"lock","spec":{"target":`)
	require.Eventually(t, f.w.Stale, 5*time.Second, 5*time.Millisecond)
	err := f.w.CheckLockInForce(t.Context(), bob())
	require.True(t, lockwatch.IsStale(err), "%v", err)
	require.True(t, trace.IsAccessDenied(err))
	f.clock.Advance(time.Minute)
	require.GreaterOrEqual(t, f.w.StaleFor(), time.Minute)
	select {
	case <-live:
	case <-time.After(5 * time.Second):
		t.Fatal("live sessions must be bounded while a lock cannot be decoded")
	}

	// Fixed (rewritten as a valid lock): trusted again, and the lock applies.
	f.putLock(t, lockFor("garbled", &typesv1.LockTarget{User: "alice"}, "fixed"))
	require.Eventually(t, func() bool { return !f.w.Stale() }, 5*time.Second, 5*time.Millisecond)
	require.NoError(t, f.w.CheckLockInForce(t.Context(), bob()))
	require.Error(t, f.w.CheckLockInForce(t.Context(), alice()))
	select {
	case <-f.w.LiveBoundExceeded():
		t.Fatal("a fresh live-session bound once trusted again")
	default:
	}

	// Garbled again, then deleted.
	f.putRaw(t, "garbled", "not json")
	require.Eventually(t, f.w.Stale, 5*time.Second, 5*time.Millisecond)
	require.Nil(t, f.w.FindLockInForce(alice()), "the replaced version no longer applies")
	f.deleteLock(t, "garbled")
	require.Eventually(t, func() bool { return !f.w.Stale() }, 5*time.Second, 5*time.Millisecond)
	require.NoError(t, f.w.CheckLockInForce(t.Context(), alice()))
}

// TestUndecodableLockAtLoad: the first load with an undecodable lock stored
// does not make the view trusted.
func TestUndecodableLockAtLoad(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil, true)
	f.putRaw(t, "garbled", "\x00\x01")
	f.putLock(t, lockFor("ok", &typesv1.LockTarget{User: "alice"}, "m"))
	f.bk.setFail(false)
	require.Eventually(t, func() bool {
		f.clock.Advance(lockwatch.DefaultRetryMax)
		ctx, done := context.WithTimeout(f.ctx, 10*time.Millisecond)
		defer done()
		return f.w.WaitInit(ctx) == nil
	}, 10*time.Second, 10*time.Millisecond)
	require.True(t, f.w.Stale(), "loaded, but not trusted")
	require.True(t, lockwatch.IsStale(f.w.CheckLockInForce(t.Context(), bob())))
	f.deleteLock(t, "garbled")
	require.Eventually(t, func() bool { return f.w.CheckLockInForce(t.Context(), bob()) == nil }, 5*time.Second, 5*time.Millisecond)
	require.Error(t, f.w.CheckLockInForce(t.Context(), alice()))
}

// TestLockMessageIsOneSafeLine: the text printed into a locked SSH session
// shows a control character or bidi override of a lock's message (one
// written before they were refused) as an escape, on one line.
func TestLockMessageIsOneSafeLine(t *testing.T) {
	t.Parallel()
	l := &typesv1.Lock{Spec: &typesv1.LockSpec{
		Target:  &typesv1.LockTarget{User: "eve"},
		Message: "bye\x1b]52;c;eA==\x07\r\n  next\u202e\u009b2J",
	}}
	require.Equal(t, `lock targeting user "eve" is in force: bye\u001b]52;c;eA==\u0007\u000d next\u202e\u009b2J`, lockwatch.LockMessage(l))
}
