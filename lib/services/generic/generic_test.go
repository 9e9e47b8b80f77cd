package generic

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/backend/memory"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

func newTestService(t *testing.T) (*Service[*typesv1.Lock], *clockwork.FakeClock, backend.Backend) {
	t.Helper()
	clock := clockwork.NewFakeClockAt(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	b, err := memory.New(context.Background(), memory.Config{Clock: clock})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	svc, err := New(Config[*typesv1.Lock]{
		Backend:   b,
		Kind:      "lock",
		KeyPrefix: "locks",
		Validate: func(l *typesv1.Lock) error {
			if l.GetSpec().GetTarget().GetUser() == "" {
				return trace.BadParameter("lock needs a user")
			}
			if l.Kind == "" {
				l.Kind = "lock"
			}
			return nil
		},
	})
	require.NoError(t, err)
	return svc, clock, b
}

func lock(name, user string) *typesv1.Lock {
	return &typesv1.Lock{
		Metadata: &typesv1.Metadata{Name: name},
		Spec:     &typesv1.LockSpec{Target: &typesv1.LockTarget{User: user}, Message: "m"},
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	_, _, b := newTestService(t)
	ok := func(*typesv1.Lock) error { return nil }
	for name, cfg := range map[string]Config[*typesv1.Lock]{
		"no backend":   {Kind: "lock", KeyPrefix: "locks", Validate: ok},
		"no kind":      {Backend: b, KeyPrefix: "locks", Validate: ok},
		"no prefix":    {Backend: b, Kind: "lock", Validate: ok},
		"slash prefix": {Backend: b, Kind: "lock", KeyPrefix: "a/b", Validate: ok},
		"no validate":  {Backend: b, Kind: "lock", KeyPrefix: "locks"},
		"neg attempts": {Backend: b, Kind: "lock", KeyPrefix: "locks", Validate: ok, MaxSwapAttempts: -1},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := New(cfg)
			require.True(t, trace.IsBadParameter(err), "%v", err)
		})
	}
}

func TestCheckName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"alice", true},
		{"alice@example.com", true},
		{"élodie", true},
		{strings.Repeat("a", MaxNameLength), true},
		{"", false},
		{strings.Repeat("a", MaxNameLength+1), false},
		{"a/b", false},
		{"a b", false},
		{"a\tb", false},
		{"a\x00b", false},
		{"\xff", false},
		{".", false},
		{"..", false},
	} {
		t.Run(fmt.Sprintf("%q", tc.name), func(t *testing.T) {
			err := CheckName("user", tc.name)
			if tc.ok {
				require.NoError(t, err)
			} else {
				require.True(t, trace.IsBadParameter(err), "%v", err)
			}
		})
	}
}

func TestCheckLimit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		n       int
		want    int
		wantErr string
	}{
		{n: 0, want: 10},
		{n: 1, want: 1},
		{n: 50, want: 50},
		{n: -1, wantErr: "page size must not be negative, got -1"},
		{n: 51, wantErr: "page size 51 is over the maximum of 50"},
	} {
		got, err := CheckLimit("page size", tc.n, 10, 50)
		if tc.wantErr != "" {
			require.True(t, trace.IsBadParameter(err), "n=%d: %v", tc.n, err)
			require.EqualError(t, err, tc.wantErr)
			continue
		}
		require.NoError(t, err)
		require.Equal(t, tc.want, got, "n=%d", tc.n)
	}
}

func TestCRUD(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, _, b := newTestService(t)

	_, err := svc.Get(ctx, "l1")
	require.True(t, trace.IsNotFound(err))
	require.EqualError(t, err, `lock "l1" not found`)

	in := lock("l1", "alice")
	in.Metadata.Revision = "bogus" // ignored on create, never stored
	created, err := svc.Create(ctx, in)
	require.NoError(t, err)
	require.NotEmpty(t, created.GetMetadata().GetRevision())
	require.NotEqual(t, "bogus", created.GetMetadata().GetRevision())
	require.Equal(t, "lock", created.GetKind(), "validate sets defaults")
	require.Empty(t, in.GetKind(), "the caller's resource is not modified")

	// Stored as protojson with proto names, without the revision.
	item, err := b.Get(ctx, backend.Key("locks/l1"))
	require.NoError(t, err)
	require.Contains(t, string(item.Value), `"metadata"`)
	require.NotContains(t, string(item.Value), "revision")
	require.NotContains(t, string(item.Value), "bogus")
	require.Equal(t, item.Revision, created.GetMetadata().GetRevision())

	_, err = svc.Create(ctx, lock("l1", "bob"))
	require.True(t, trace.IsAlreadyExists(err))
	require.EqualError(t, err, `lock "l1" already exists`)

	got, err := svc.Get(ctx, "l1")
	require.NoError(t, err)
	require.True(t, proto.Equal(created, got), "got %v want %v", got, created)

	// Update needs a revision.
	_, err = svc.Update(ctx, lock("l1", "carol"))
	require.True(t, trace.IsBadParameter(err), "%v", err)

	got.Spec.Message = "changed"
	updated, err := svc.Update(ctx, got)
	require.NoError(t, err)
	require.NotEqual(t, got.GetMetadata().GetRevision(), updated.GetMetadata().GetRevision())

	// A stale revision fails with a clear CompareFailed.
	got.Spec.Message = "stale"
	_, err = svc.Update(ctx, got)
	require.True(t, trace.IsCompareFailed(err), "%v", err)
	require.Contains(t, err.Error(), `lock "l1" was changed since it was read`)

	// Update of a deleted resource is NotFound.
	require.NoError(t, svc.Delete(ctx, "l1"))
	_, err = svc.Update(ctx, updated)
	require.True(t, trace.IsNotFound(err), "%v", err)

	err = svc.Delete(ctx, "l1")
	require.True(t, trace.IsNotFound(err))
	require.EqualError(t, err, `lock "l1" not found`)

	// Upsert creates and overwrites.
	u1, err := svc.Upsert(ctx, lock("l2", "dave"))
	require.NoError(t, err)
	u2, err := svc.Upsert(ctx, lock("l2", "erin"))
	require.NoError(t, err)
	require.NotEqual(t, u1.GetMetadata().GetRevision(), u2.GetMetadata().GetRevision())
	got, err = svc.Get(ctx, "l2")
	require.NoError(t, err)
	require.Equal(t, "erin", got.GetSpec().GetTarget().GetUser())

	// Conditional delete.
	err = svc.ConditionalDelete(ctx, "l2", u1.GetMetadata().GetRevision())
	require.True(t, trace.IsCompareFailed(err), "%v", err)
	require.NoError(t, svc.ConditionalDelete(ctx, "l2", u2.GetMetadata().GetRevision()))
	err = svc.ConditionalDelete(ctx, "l2", u2.GetMetadata().GetRevision())
	require.True(t, trace.IsNotFound(err), "%v", err)

	// Validation and names are enforced on every write.
	for _, bad := range []*typesv1.Lock{lock("l3", ""), lock("a/b", "x"), lock("", "x"), nil} {
		_, err = svc.Create(ctx, bad)
		require.True(t, trace.IsBadParameter(err), "%v", err)
		_, err = svc.Upsert(ctx, bad)
		require.True(t, trace.IsBadParameter(err), "%v", err)
	}
	_, err = svc.Get(ctx, "a/b")
	require.True(t, trace.IsBadParameter(err))
	require.True(t, trace.IsBadParameter(svc.Delete(ctx, "")))
}

func TestListPaging(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, _, b := newTestService(t)
	// Unrelated keys on both sides of the prefix stay out of the list.
	for _, k := range []string{"lock", "locks", "locksmith/a", "lockr/a"} {
		_, err := b.Put(ctx, backend.Item{Key: backend.Key(k), Value: []byte("{}")})
		require.NoError(t, err)
	}
	var want []string
	for i := range 25 {
		name := fmt.Sprintf("l%02d", i)
		want = append(want, name)
		_, err := svc.Create(ctx, lock(name, "u"))
		require.NoError(t, err)
	}

	for _, size := range []int{1, 7, 24, 25, 26, 0} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			var names []string
			token := ""
			pages := 0
			for {
				page, next, err := svc.List(ctx, size, token)
				require.NoError(t, err)
				pages++
				for _, l := range page {
					require.NotEmpty(t, l.GetMetadata().GetRevision())
					names = append(names, l.GetMetadata().GetName())
				}
				if next == "" {
					break
				}
				require.Len(t, page, size)
				token = next
				require.Less(t, pages, 100)
			}
			require.Equal(t, want, names)
		})
	}

	// A token stays valid when the item it points at is deleted.
	page, next, err := svc.List(ctx, 5, "")
	require.NoError(t, err)
	require.Len(t, page, 5)
	require.NoError(t, svc.Delete(ctx, "l05"))
	page, _, err = svc.List(ctx, 5, next)
	require.NoError(t, err)
	require.Equal(t, "l06", page[0].GetMetadata().GetName())

	for name, tc := range map[string]struct {
		size  int
		token string
	}{
		"negative size":  {size: -1},
		"oversized page": {size: MaxPageSize + 1},
		"not base64":     {token: "!!!"},
		"foreign token":  {token: "YWxpY2U"},
		"bad name token": {token: encodePageToken("a/b")},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := svc.List(ctx, tc.size, tc.token)
			require.True(t, trace.IsBadParameter(err), "%v", err)
		})
	}
}

// TestListWithPrefix: a prefix listing returns exactly the names under the
// prefix, page by page, and a token from elsewhere never escapes the range.
func TestListWithPrefix(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, _, _ := newTestService(t)
	for _, name := range []string{"al", "alice", "alina", "alz", "am", "bob", "ak"} {
		_, err := svc.Create(ctx, lock(name, "u"))
		require.NoError(t, err)
	}
	names := func(page []*typesv1.Lock) []string {
		var out []string
		for _, l := range page {
			out = append(out, l.GetMetadata().GetName())
		}
		return out
	}

	page, next, err := svc.ListWithPrefix(ctx, "al", 2, "")
	require.NoError(t, err)
	require.Equal(t, []string{"al", "alice"}, names(page))
	require.NotEmpty(t, next)
	page, next, err = svc.ListWithPrefix(ctx, "al", 2, next)
	require.NoError(t, err)
	require.Equal(t, []string{"alina", "alz"}, names(page))
	require.Empty(t, next, "am is outside the prefix")

	for name, tc := range map[string]struct {
		prefix, token string
		want          []string
	}{
		"all":                     {prefix: "", want: []string{"ak", "al", "alice", "alina", "alz", "am", "bob"}},
		"none":                    {prefix: "c", want: nil},
		"token before the prefix": {prefix: "al", token: encodePageToken("aa"), want: []string{"al", "alice", "alina", "alz"}},
		"token inside the prefix": {prefix: "al", token: encodePageToken("alin"), want: []string{"alina", "alz"}},
		"token after the prefix":  {prefix: "al", token: encodePageToken("b"), want: nil},
	} {
		t.Run(name, func(t *testing.T) {
			page, next, err := svc.ListWithPrefix(ctx, tc.prefix, 10, tc.token)
			require.NoError(t, err)
			require.Empty(t, next)
			require.Equal(t, tc.want, names(page))
		})
	}

	for name, prefix := range map[string]string{
		"separator": "a/b",
		"too long":  strings.Repeat("a", MaxNameLength+1),
		"not UTF-8": "\xff",
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := svc.ListWithPrefix(ctx, prefix, 10, "")
			require.True(t, trace.IsBadParameter(err), "%v", err)
		})
	}
}

func TestListFailsOnCorruptItem(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, _, b := newTestService(t)
	_, err := svc.Create(ctx, lock("a", "u"))
	require.NoError(t, err)
	_, err = b.Put(ctx, backend.Item{Key: backend.Key("locks/b"), Value: []byte("not json")})
	require.NoError(t, err)
	_, _, err = svc.List(ctx, 0, "")
	require.Error(t, err)
	_, err = svc.Get(ctx, "b")
	require.Error(t, err)
}

func TestExpiry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, clock, b := newTestService(t)

	exp := clock.Now().Add(time.Hour)
	l := lock("temp", "u")
	l.Metadata.Expires = timestamppb.New(exp)
	created, err := svc.Create(ctx, l)
	require.NoError(t, err)
	require.True(t, created.GetMetadata().GetExpires().AsTime().Equal(exp))

	item, err := b.Get(ctx, backend.Key("locks/temp"))
	require.NoError(t, err)
	require.True(t, item.Expires.Equal(exp), "metadata.expires becomes the item's expiry")

	// The backend's expiry is what reads report.
	newExp := clock.Now().Add(2 * time.Hour)
	require.NoError(t, b.KeepAlive(ctx, backend.Lease{Key: item.Key, Revision: item.Revision}, newExp))
	got, err := svc.Get(ctx, "temp")
	require.NoError(t, err)
	require.True(t, got.GetMetadata().GetExpires().AsTime().Equal(newExp))

	// Past expiry is refused.
	past := lock("past", "u")
	past.Metadata.Expires = timestamppb.New(clock.Now().Add(-time.Second))
	_, err = svc.Create(ctx, past)
	require.True(t, trace.IsBadParameter(err), "%v", err)

	clock.Advance(2*time.Hour + time.Second)
	_, err = svc.Get(ctx, "temp")
	require.True(t, trace.IsNotFound(err), "%v", err)

	// No expiry stays unset.
	perm, err := svc.Create(ctx, lock("perm", "u"))
	require.NoError(t, err)
	require.Nil(t, perm.GetMetadata().GetExpires())
	got, err = svc.Get(ctx, "perm")
	require.NoError(t, err)
	require.Nil(t, got.GetMetadata().GetExpires())
}

func TestMarshalRoundTrip(t *testing.T) {
	t.Parallel()
	svc, clock, _ := newTestService(t)
	l := lock("x", "u")
	l.Metadata.Revision = "rev-1"
	l.Metadata.Labels = map[string]string{"a": "b"}
	l.Metadata.Expires = timestamppb.New(clock.Now().Add(time.Minute))
	item, err := svc.MarshalItem(l)
	require.NoError(t, err)
	require.Equal(t, "locks/x", item.Key.String())
	require.Equal(t, "rev-1", item.Revision, "the revision is carried for conditional writes")
	require.NotContains(t, string(item.Value), "rev-1")
	require.Contains(t, string(item.Value), `"spec"`)
	require.Equal(t, "rev-1", l.GetMetadata().GetRevision(), "input untouched")

	item.Revision = "rev-2"
	back, err := svc.UnmarshalItem(item)
	require.NoError(t, err)
	require.Equal(t, "rev-2", back.GetMetadata().GetRevision())
	require.Equal(t, "lock", back.GetKind())
	want := proto.Clone(l).(*typesv1.Lock)
	want.Kind = "lock"
	want.Metadata.Revision = "rev-2"
	require.True(t, proto.Equal(want, back), "got %v", back)

	_, err = svc.MarshalItem(lock("y", ""))
	require.True(t, trace.IsBadParameter(err))

	// Unknown stored fields are tolerated (written by a newer version).
	back, err = UnmarshalResource[*typesv1.Lock](backend.Item{Key: backend.Key("locks/z"), Value: []byte(`{"metadata":{"name":"z"},"future_field":1}`)}, svc.cfg.UnmarshalOptions)
	require.NoError(t, err)
	require.Equal(t, "z", back.GetMetadata().GetName())

	// Metadata is allocated when absent so the revision can be set.
	back, err = UnmarshalResource[*typesv1.Lock](backend.Item{Key: backend.Key("locks/z"), Value: []byte(`{}`), Revision: "r"}, svc.cfg.UnmarshalOptions)
	require.NoError(t, err)
	require.Equal(t, "r", back.GetMetadata().GetRevision())
}

func TestUpdateAndSwap(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, _, _ := newTestService(t)

	_, err := svc.UpdateAndSwap(ctx, "missing", func(*typesv1.Lock) error { return nil })
	require.True(t, trace.IsNotFound(err), "%v", err)

	created, err := svc.Create(ctx, lock("l", "u"))
	require.NoError(t, err)
	out, err := svc.UpdateAndSwap(ctx, "l", func(l *typesv1.Lock) error {
		l.Spec.Message = "swapped"
		l.Metadata.Revision = "garbage" // ignored: the revision read is used
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, "swapped", out.GetSpec().GetMessage())
	require.NotEqual(t, created.GetMetadata().GetRevision(), out.GetMetadata().GetRevision())

	// The modify error is returned as is, and nothing is written.
	boom := trace.AccessDenied("boom")
	_, err = svc.UpdateAndSwap(ctx, "l", func(l *typesv1.Lock) error { l.Spec.Message = "no"; return boom })
	require.True(t, trace.IsAccessDenied(err))
	got, err := svc.Get(ctx, "l")
	require.NoError(t, err)
	require.Equal(t, "swapped", got.GetSpec().GetMessage())

	// Renames and invalid results are refused.
	_, err = svc.UpdateAndSwap(ctx, "l", func(l *typesv1.Lock) error { l.Metadata.Name = "other"; return nil })
	require.True(t, trace.IsBadParameter(err))
	_, err = svc.UpdateAndSwap(ctx, "l", func(l *typesv1.Lock) error { l.Spec.Target = nil; return nil })
	require.True(t, trace.IsBadParameter(err))

	// A writer sneaking in between read and write forces a retry on top of
	// its change.
	calls := 0
	out, err = svc.UpdateAndSwap(ctx, "l", func(l *typesv1.Lock) error {
		calls++
		if calls == 1 {
			cur, err := svc.Get(ctx, "l")
			require.NoError(t, err)
			cur.Spec.Target.User = "intruder"
			_, err = svc.Update(ctx, cur)
			require.NoError(t, err)
		}
		l.Spec.Message = fmt.Sprintf("attempt %d", calls)
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, 2, calls)
	require.Equal(t, "intruder", out.GetSpec().GetTarget().GetUser(), "the concurrent change is kept")
	require.Equal(t, "attempt 2", out.GetSpec().GetMessage())

	// Always interfered with: gives up after MaxSwapAttempts.
	calls = 0
	_, err = svc.UpdateAndSwap(ctx, "l", func(l *typesv1.Lock) error {
		calls++
		_, err := svc.Upsert(ctx, lock("l", "u"))
		require.NoError(t, err)
		return nil
	})
	require.True(t, trace.IsCompareFailed(err), "%v", err)
	require.Equal(t, DefaultMaxSwapAttempts, calls)
}

// TestUpdateAndSwapConcurrent runs counters from several goroutines: every
// successful swap must be reflected in the final value (no lost update).
func TestUpdateAndSwapConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, _, _ := newTestService(t)
	l := lock("counter", "u")
	l.Metadata.Labels = map[string]string{"n": "0"}
	_, err := svc.Create(ctx, l)
	require.NoError(t, err)

	const workers, perWorker = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for done := 0; done < perWorker; {
				_, err := svc.UpdateAndSwap(ctx, "counter", func(l *typesv1.Lock) error {
					var n int
					if _, err := fmt.Sscan(l.Metadata.Labels["n"], &n); err != nil {
						return trace.Wrap(err)
					}
					l.Metadata.Labels["n"] = fmt.Sprint(n + 1)
					return nil
				})
				switch {
				case err == nil:
					done++
				case trace.IsCompareFailed(err):
					// Gave up under contention: the caller retries.
				default:
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	got, err := svc.Get(ctx, "counter")
	require.NoError(t, err)
	require.Equal(t, fmt.Sprint(workers*perWorker), got.GetMetadata().GetLabels()["n"])
}

// newCustomService is newTestService's service with cfg's options on the same kind of backend.
func newCustomService(t *testing.T, opts func(*Config[*typesv1.Lock])) (*Service[*typesv1.Lock], backend.Backend) {
	t.Helper()
	base, _, b := newTestService(t)
	cfg := base.cfg
	opts(&cfg)
	svc, err := New(cfg)
	require.NoError(t, err)
	return svc, b
}

func TestBinaryEncoding(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, b := newCustomService(t, func(c *Config[*typesv1.Lock]) { c.Binary = true })

	// A resource written as protojson by an earlier version is read, and so is one in binary.
	old := lock("old", "alice")
	old.Kind = "lock"
	jsonItem, err := MarshalResource("locks", old, protojson.MarshalOptions{})
	require.NoError(t, err)
	require.True(t, IsJSON(jsonItem.Value))
	_, err = b.Put(ctx, jsonItem)
	require.NoError(t, err)
	got, err := svc.Get(ctx, "old")
	require.NoError(t, err)
	require.Equal(t, "alice", got.GetSpec().GetTarget().GetUser())

	created, err := svc.Create(ctx, lock("new", "bob"))
	require.NoError(t, err)
	item, err := b.Get(ctx, svc.Key("new"))
	require.NoError(t, err)
	require.False(t, IsJSON(item.Value), "written in binary")
	require.NotContains(t, string(item.Value), created.GetMetadata().GetRevision())
	got, err = svc.Get(ctx, "new")
	require.NoError(t, err)
	require.True(t, proto.Equal(created, got))

	// Rewriting the old resource stores it in binary, nothing lost.
	got, err = svc.Get(ctx, "old")
	require.NoError(t, err)
	got.Spec.Message = "rewritten"
	_, err = svc.Update(ctx, got)
	require.NoError(t, err)
	item, err = b.Get(ctx, svc.Key("old"))
	require.NoError(t, err)
	require.False(t, IsJSON(item.Value))
	got, err = svc.Get(ctx, "old")
	require.NoError(t, err)
	require.Equal(t, "alice", got.GetSpec().GetTarget().GetUser())
	require.Equal(t, "rewritten", got.GetSpec().GetMessage())

	// Expiry lives in the item, and comes back on read.
	exp := lock("exp", "carol")
	exp.Metadata.Expires = timestamppb.New(b.Clock().Now().Add(time.Hour))
	_, err = svc.Create(ctx, exp)
	require.NoError(t, err)
	got, err = svc.Get(ctx, "exp")
	require.NoError(t, err)
	require.True(t, got.GetMetadata().GetExpires().AsTime().Equal(exp.Metadata.Expires.AsTime()))
}

func TestCacheDecoded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, _ := newCustomService(t, func(c *Config[*typesv1.Lock]) { c.CacheDecoded = true })

	_, err := svc.Create(ctx, lock("l", "alice"))
	require.NoError(t, err)
	first, err := svc.Get(ctx, "l")
	require.NoError(t, err)
	// The caller owns what it gets: changing it changes no later read.
	first.Spec.Target.User = "mallory"
	second, err := svc.Get(ctx, "l")
	require.NoError(t, err)
	require.Equal(t, "alice", second.GetSpec().GetTarget().GetUser())

	// A write is seen on the next read: the cache is keyed by revision.
	second.Spec.Message = "changed"
	updated, err := svc.Update(ctx, second)
	require.NoError(t, err)
	third, err := svc.Get(ctx, "l")
	require.NoError(t, err)
	require.Equal(t, "changed", third.GetSpec().GetMessage())
	require.Equal(t, updated.GetMetadata().GetRevision(), third.GetMetadata().GetRevision())

	// A deleted and re-created resource is the new one.
	require.NoError(t, svc.Delete(ctx, "l"))
	_, err = svc.Get(ctx, "l")
	require.True(t, trace.IsNotFound(err))
	_, err = svc.Create(ctx, lock("l", "bob"))
	require.NoError(t, err)
	fourth, err := svc.Get(ctx, "l")
	require.NoError(t, err)
	require.Equal(t, "bob", fourth.GetSpec().GetTarget().GetUser())

	// Lists go through the same cache, with the same rules.
	listed, _, err := svc.List(ctx, 0, "")
	require.NoError(t, err)
	require.Len(t, listed, 1)
	require.Equal(t, "bob", listed[0].GetSpec().GetTarget().GetUser())
	listed[0].Spec.Target.User = "mallory"
	again, _, err := svc.List(ctx, 0, "")
	require.NoError(t, err)
	require.Equal(t, "bob", again[0].GetSpec().GetTarget().GetUser(), "the caller owns what a list returns")
	again[0].Spec.Message = "listed then changed"
	_, err = svc.Update(ctx, again[0])
	require.NoError(t, err)
	last, _, err := svc.List(ctx, 0, "")
	require.NoError(t, err)
	require.Equal(t, "listed then changed", last[0].GetSpec().GetMessage(), "a write is seen by the next list")
}

// TestMarshalOwnedMatchesMarshalResource holds MarshalOwned, which marshals the caller's copy
// instead of a clone, to the items MarshalResource and MarshalResourceBinary write, and to leaving
// that copy as it was (revision and expiry put back), on success and on failure.
func TestMarshalOwnedMatchesMarshalResource(t *testing.T) {
	t.Parallel()
	exp := timestamppb.New(time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC))
	full := lock("x", "u")
	full.Metadata.Revision = "rev-1"
	full.Metadata.Labels = map[string]string{"b": "2", "a": "1", "c": "3"}
	full.Metadata.Expires = exp
	noRev := lock("y", "u")
	badExpiry := lock("z", "u")
	badExpiry.Metadata.Expires = &timestamppb.Timestamp{Seconds: -1 << 62}
	for _, tc := range []struct {
		name string
		l    *typesv1.Lock
	}{{"revision, labels and expiry", full}, {"bare", noRev}, {"invalid expiry", badExpiry}, {"no name", lock("", "u")}} {
		for _, binary := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s binary=%v", tc.name, binary), func(t *testing.T) {
				t.Parallel()
				want, wantErr := MarshalResource("locks", tc.l, protojson.MarshalOptions{})
				if binary {
					want, wantErr = MarshalResourceBinary("locks", tc.l)
				}
				owned := proto.Clone(tc.l).(*typesv1.Lock)
				got, err := MarshalOwned("locks", owned, binary, protojson.MarshalOptions{})
				require.Equal(t, wantErr == nil, err == nil, "errors: %v, %v", wantErr, err)
				if wantErr != nil {
					require.Equal(t, wantErr.Error(), err.Error())
				}
				require.Equal(t, want, got)
				require.True(t, proto.Equal(tc.l, owned), "the owned copy is put back: %v", owned)
			})
		}
	}
}
