package backendtest

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/backend"
)

func rangeTests() []testCase {
	return []testCase{
		{"BoundsAndOrder", testRangeBoundsAndOrder},
		{"NilEndReadsToTheEnd", testRangeNilEnd},
		{"Limit", testRangeLimit},
		{"DefaultLimit", testRangeDefaultLimit},
		{"Pagination", testRangePagination},
		{"PrefixWithRangeEnd", testRangePrefix},
		{"ItemsCarryRevisions", testRangeItemsCarryRevisions},
		{"DeleteRange", testDeleteRange},
	}
}

// putShuffled writes every key with its own name as value, in random order,
// so that a backend that returns insertion order fails.
func (f *fixture) putShuffled(keys ...backend.Key) {
	f.t.Helper()
	shuffled := append([]backend.Key(nil), keys...)
	rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for _, k := range shuffled {
		f.put(k, k.String())
	}
}

// numbered returns n keys "<prefix><name>/0000" ... in order.
func (f *fixture) numbered(name string, n int) []backend.Key {
	keys := make([]backend.Key, n)
	for i := range keys {
		keys[i] = f.key(name, fmt.Sprintf("%04d", i))
	}
	return keys
}

// putMany writes keys with AtomicWrite in batches, to keep slow engines fast.
func (f *fixture) putMany(keys []backend.Key) {
	f.t.Helper()
	for len(keys) > 0 {
		n := min(len(keys), backend.MaxAtomicWriteActions)
		actions := make([]backend.ConditionalAction, 0, n)
		for _, k := range keys[:n] {
			actions = append(actions, backend.ConditionalAction{Key: k, Condition: backend.Whatever(), Action: backend.Put(item(k, k.String()))})
		}
		_, err := f.b.AtomicWrite(f.t.Context(), actions)
		require.NoError(f.t, err)
		keys = keys[n:]
	}
}

func testRangeBoundsAndOrder(t *testing.T, f *fixture) {
	a, ab, b, b1, b2, c, d := f.key("a"), f.key("a", "b"), f.key("b"), f.key("b", "1"), f.key("b", "2"), f.key("c"), f.key("d")
	f.putShuffled(d, b2, a, c, b1, ab, b)

	require.Equal(t, strs(a, ab, b, b1, b2, c, d), f.allKeys(), "everything, in byte order")
	require.Equal(t, strs(b, b1, b2), f.keys(b, c, 0), "start inclusive, end exclusive")
	require.Equal(t, strs(b1, b2, c), f.keys(b1, d, 0))
	require.Equal(t, strs(b1, b2), f.keys(backend.Key(f.prefix+"b/"), c, 0), "start between keys")
	require.Empty(t, f.keys(c, c, 0), "empty range when start == end")
	require.Empty(t, f.keys(f.key("e"), f.key("f"), 0), "range with no keys")

	res, err := f.b.GetRange(t.Context(), b, c, 0)
	require.NoError(t, err)
	for _, i := range res.Items {
		require.Equal(t, i.Key.String(), string(i.Value), "items carry their values")
	}
}

func testRangeNilEnd(t *testing.T, f *fixture) {
	b, c, d := f.key("b"), f.key("c"), f.key("d")
	f.putShuffled(f.key("a"), b, c, d)
	// Other sub-tests may share the engine: only keys under our prefix are
	// ours, and they come first from b on.
	got := f.keys(b, nil, 0)
	require.GreaterOrEqual(t, len(got), 3)
	require.Equal(t, strs(b, c, d), got[:3])
	for _, k := range got[3:] {
		require.NotContains(t, k, f.prefix, "key under our prefix after %q", d)
	}
}

func testRangeLimit(t *testing.T, f *fixture) {
	keys := f.numbered("n", 10)
	f.putShuffled(keys...)
	start, end := f.rangeAll()
	for _, limit := range []int{1, 3, 9, 10} {
		require.Equal(t, strs(keys[:limit]...), f.keys(start, end, limit), "limit %d", limit)
	}
	require.Equal(t, strs(keys...), f.keys(start, end, 11), "limit over the count")
	require.Equal(t, strs(keys...), f.keys(start, end, 0), "limit 0")
	require.Equal(t, strs(keys...), f.keys(start, end, backend.MaxRangeLimit), "the largest limit is accepted")
}

func testRangeDefaultLimit(t *testing.T, f *fixture) {
	keys := f.numbered("n", backend.DefaultRangeLimit+1)
	f.putMany(keys)
	start, end := f.rangeAll()
	require.Equal(t, strs(keys[:backend.DefaultRangeLimit]...), f.keys(start, end, 0), "limit 0 means DefaultRangeLimit")
	require.Len(t, f.keys(start, end, backend.MaxRangeLimit), len(keys))
}

// testRangePagination reads 250 items in pages of 100 the way every caller
// pages: the next page starts at NextKey of the last key.
func testRangePagination(t *testing.T, f *fixture) {
	keys := f.numbered("n", 250)
	f.putMany(keys)
	f.put(f.key("o"), "after the range")

	start, end := backend.Key(f.prefix+"n/"), backend.RangeEnd(backend.Key(f.prefix+"n/"))
	seen := map[string]int{}
	var got []string
	var pages []int
	for page := 0; ; page++ {
		require.Less(t, page, 10, "pagination does not end")
		res, err := f.b.GetRange(t.Context(), start, end, 100)
		require.NoError(t, err)
		if len(res.Items) == 0 {
			break
		}
		pages = append(pages, len(res.Items))
		for _, i := range res.Items {
			seen[i.Key.String()]++
			got = append(got, i.Key.String())
		}
		if len(res.Items) < 100 {
			break
		}
		start = backend.NextKey(res.Items[len(res.Items)-1].Key)
	}
	require.Equal(t, []int{100, 100, 50}, pages, "page sizes")
	require.Equal(t, strs(keys...), got, "every item once, in order")
	for k, n := range seen {
		require.Equal(t, 1, n, "%q seen %d times", k, n)
	}
}

func testRangePrefix(t *testing.T, f *fixture) {
	// "p/" must not match "p0" ('0' follows '/') nor "p".
	p, pa, pb, p0, q := f.key("p"), f.key("p", "a"), f.key("p", "b"), f.key("p0"), f.key("q")
	f.putShuffled(p, pa, pb, p0, q)
	prefix := backend.Key(f.prefix + "p/")
	require.Equal(t, strs(pa, pb), f.keys(prefix, backend.RangeEnd(prefix), 0))

	// A prefix ending in 0xff: the range ends at the next byte string up.
	x, xff, xff1, y := f.key("x"), backend.Key(f.prefix+"x\xff"), backend.Key(f.prefix+"x\xff\x01"), f.key("y")
	f.putShuffled(x, xff, xff1, y)
	require.Equal(t, strs(xff, xff1), f.keys(xff, backend.RangeEnd(xff), 0))
}

func testRangeItemsCarryRevisions(t *testing.T, f *fixture) {
	leases := map[string]string{}
	for _, k := range []backend.Key{f.key("a"), f.key("b"), f.key("c")} {
		leases[k.String()] = f.put(k, "v").Revision
	}
	start, end := f.rangeAll()
	res, err := f.b.GetRange(t.Context(), start, end, 0)
	require.NoError(t, err)
	require.Len(t, res.Items, 3)
	for _, i := range res.Items {
		require.Equal(t, leases[i.Key.String()], i.Revision, "revision of %q in GetRange", i.Key)
	}
}

func testDeleteRange(t *testing.T, f *fixture) {
	a, b, b1, c, d, e := f.key("a"), f.key("b"), f.key("b", "1"), f.key("c"), f.key("d"), f.key("e")
	f.putShuffled(a, b, b1, c, d, e)

	require.NoError(t, f.b.DeleteRange(t.Context(), b, d))
	require.Equal(t, strs(a, d, e), f.allKeys(), "only [b, d) is gone")
	f.requireMissing(b1)

	require.NoError(t, f.b.DeleteRange(t.Context(), b, d), "deleting an empty range is not an error")

	prefix := backend.Key(f.prefix + "d")
	require.NoError(t, f.b.DeleteRange(t.Context(), prefix, backend.RangeEnd(prefix)))
	require.Equal(t, strs(a, e), f.allKeys())

	start, end := f.rangeAll()
	require.NoError(t, f.b.DeleteRange(t.Context(), start, end))
	require.Empty(t, f.allKeys())
}
