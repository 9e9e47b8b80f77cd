package abuse

import (
	"context"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"
)

func TestParseTrustedProxies(t *testing.T) {
	t.Parallel()
	got, err := ParseTrustedProxies([]string{"10.0.0.0/8", " 192.0.2.10 ", "2001:db8::/32", "::ffff:198.51.100.7"})
	require.NoError(t, err)
	require.Equal(t, []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("192.0.2.10/32"),
		netip.MustParsePrefix("2001:db8::/32"),
		netip.MustParsePrefix("198.51.100.7/32"),
	}, got)
	none, err := ParseTrustedProxies(nil)
	require.NoError(t, err)
	require.Empty(t, none)
	for _, bad := range []string{"", "10.0.0.0/33", "10.0.0.1/8", "proxy.example.com", "10.0.0", "fe80::1%eth0", "0.0.0.0/-1"} {
		_, err := ParseTrustedProxies([]string{bad})
		require.Error(t, err, bad)
	}
}

func TestSourcesClient(t *testing.T) {
	t.Parallel()
	trusted, err := ParseTrustedProxies([]string{"10.0.0.0/8", "2001:db8:ffff::/48"})
	require.NoError(t, err)
	s := NewSources(trusted)
	cases := []struct {
		name   string
		s      *Sources
		remote string
		xff    []string
		want   string
	}{
		{name: "no proxy trusted ignores the header", s: nil, remote: "10.1.2.3:5000", xff: []string{"198.51.100.1"}, want: "10.1.2.3"},
		{name: "untrusted peer ignores the header", s: s, remote: "203.0.113.9:5000", xff: []string{"198.51.100.1"}, want: "203.0.113.9"},
		{name: "trusted peer: rightmost entry", s: s, remote: "10.1.2.3:5000", xff: []string{"198.51.100.1"}, want: "198.51.100.1"},
		{name: "client-written entries on the left are skipped", s: s, remote: "10.1.2.3:5000", xff: []string{"1.1.1.1, 198.51.100.1"}, want: "198.51.100.1"},
		{name: "chains of trusted proxies are walked", s: s, remote: "10.1.2.3:5000", xff: []string{"1.1.1.1, 198.51.100.1, 10.9.9.9"}, want: "198.51.100.1"},
		{name: "several headers read as one list", s: s, remote: "10.1.2.3:5000", xff: []string{"1.1.1.1", "198.51.100.1, 10.9.9.9"}, want: "198.51.100.1"},
		{name: "junk stops at the last good address", s: s, remote: "10.1.2.3:5000", xff: []string{"junk, 10.9.9.9"}, want: "10.9.9.9"},
		{name: "trusted peer without the header", s: s, remote: "10.1.2.3:5000", want: "10.1.2.3"},
		{name: "IPv6 trusted proxy", s: s, remote: "[2001:db8:ffff::1]:443", xff: []string{"2001:db8:1:2::5"}, want: "2001:db8:1:2::5"},
		{name: "IPv4-mapped peer", s: s, remote: "[::ffff:203.0.113.9]:443", want: "203.0.113.9"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.remote
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			a, ok := tc.s.Client(r)
			require.True(t, ok)
			require.Equal(t, tc.want, a.String())
		})
	}
}

func TestKeyGroupsIPv6By64(t *testing.T) {
	t.Parallel()
	key := func(remote string) string {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = remote
		return (*Sources)(nil).Key(r)
	}
	require.Equal(t, "2001:db8:1:2::/64", key("[2001:db8:1:2::1]:1"))
	require.Equal(t, key("[2001:db8:1:2::1]:1"), key("[2001:db8:1:2:ffff:ffff:ffff:ffff]:2"))
	require.NotEqual(t, key("[2001:db8:1:2::1]:1"), key("[2001:db8:1:3::1]:1"))
	require.Equal(t, "203.0.113.9", key("203.0.113.9:1"))
	require.NotEqual(t, key("203.0.113.9:1"), key("203.0.113.10:1"))
	require.Equal(t, "203.0.113.9", key("[::ffff:203.0.113.9]:1"))
	require.Equal(t, "@", key("@"), "a non-IP peer is its own key")
}

// TestReserveIsAtomic is the race of issue 10: 200 concurrent failures
// from one source; exactly limit reservations succeed.
func TestReserveIsAtomic(t *testing.T) {
	t.Parallel()
	clock := clockwork.NewFakeClock()
	l := NewFailureLimiter(clock, 10, time.Minute, 100)
	var wg sync.WaitGroup
	var mu sync.Mutex
	admitted := 0
	for range 200 {
		wg.Go(func() {
			if l.Reserve("k") == 0 {
				mu.Lock()
				admitted++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	require.Equal(t, 10, admitted)
	require.Equal(t, 10, l.Failures("k"))
	require.Equal(t, time.Minute, l.Reserve("k"))
	l.Refund("k")
	require.Equal(t, 9, l.Failures("k"))
	require.Zero(t, l.Reserve("k"))
	l.Add("k")
	require.Equal(t, 11, l.Failures("k"))
	require.Zero(t, l.Reserve("other"))
	clock.Advance(time.Minute)
	require.Zero(t, l.Failures("k"))
	require.Zero(t, l.Reserve("k"))
	l.Refund("gone")
}

func TestFailureLimiterBounded(t *testing.T) {
	t.Parallel()
	l := NewFailureLimiter(clockwork.NewFakeClock(), 1, time.Minute, 3)
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		l.Reserve(k)
	}
	require.LessOrEqual(t, len(l.entries), 3)
}

func TestSemaphore(t *testing.T) {
	t.Parallel()
	s := NewSemaphore(0)
	require.Equal(t, 1, s.Size())
	require.True(t, s.TryAcquire())
	require.False(t, s.TryAcquire())
	ctx, cancel := contextWithCancel(t)
	cancel()
	require.Error(t, s.Acquire(ctx))
	s.Release()
	require.NoError(t, s.Acquire(t.Context()))
	s.Release()
	require.GreaterOrEqual(t, HashSlots(), 1)
}

func TestAggregator(t *testing.T) {
	t.Parallel()
	clock := clockwork.NewFakeClock()
	a := NewAggregator(clock, time.Minute, 100)
	rec, flush := a.Note("s1")
	require.True(t, rec)
	require.Empty(t, flush)
	for range 29 {
		rec, flush = a.Note("s1")
		require.False(t, rec)
		require.Empty(t, flush)
	}
	rec, _ = a.Note("s2")
	require.True(t, rec, "sources are counted apart")
	start := clock.Now()
	clock.Advance(time.Minute)
	rec, flush = a.Note("s1")
	require.True(t, rec)
	require.Equal(t, []Suppressed{{Key: "s1", Start: start, Count: 29}}, flush)
	rec, flush = a.Note("s1")
	require.False(t, rec)
	require.Empty(t, flush)
	require.Equal(t, []Suppressed{{Key: "s1", Start: clock.Now(), Count: 1}}, a.Flush())
	require.Empty(t, a.Flush())
}

func contextWithCancel(t *testing.T) (context.Context, context.CancelFunc) {
	return context.WithCancel(t.Context())
}

// TestAggregatorFull: once as many sources as allowed are tracked, further
// sources share one overflow window instead of one event each.
func TestAggregatorFull(t *testing.T) {
	t.Parallel()
	clock := clockwork.NewFakeClock()
	a := NewAggregator(clock, time.Minute, 2)
	for _, k := range []string{"a", "b"} {
		rec, _ := a.Note(k)
		require.True(t, rec)
	}
	rec, _ := a.Note("c")
	require.True(t, rec, "the first overflowing refusal is recorded")
	for _, k := range []string{"d", "e", "f"} {
		rec, _ = a.Note(k)
		require.False(t, rec, k)
	}
	require.Equal(t, []Suppressed{{Key: OverflowKey, Start: clock.Now(), Count: 3}}, a.Flush())
}
