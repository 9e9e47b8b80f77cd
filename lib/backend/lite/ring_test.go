package lite

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRingAgainstMap drives the ring with random sets, deletes and clears of
// random sizes (padding at the end of the buffer included) and checks every
// answer against a plain map of the latest value per key: whatever the ring
// answers is the latest value, and the latest few keys written are always
// there.
func TestRingAgainstMap(t *testing.T) {
	t.Parallel()
	const size = 64 << 10
	r, err := newRing(size)
	require.NoError(t, err)
	defer r.close()
	rng := rand.New(rand.NewPCG(1, 2))
	type entry struct {
		rev   int64
		value string
	}
	want := map[string]entry{}
	var recent []string
	for i := range 200_000 {
		key := fmt.Sprintf("key/%d", rng.IntN(2000))
		switch op := rng.IntN(100); {
		case op < 70:
			value := string(make([]byte, rng.IntN(size/ringMaxEntryFraction-ringHeader-len(key)+1)))
			value = fmt.Sprintf("%d", i) + value[min(len(value), len(fmt.Sprint(i))):]
			r.set([]byte(key), int64(i), []byte(value))
			want[key] = entry{int64(i), value}
			recent = append(recent, key)
		case op < 99:
			r.del([]byte(key))
			delete(want, key)
		default:
			r.clear()
			clear(want)
			recent = recent[:0]
		}
		if len(recent) > 3 {
			recent = recent[1:]
		}
		require.LessOrEqual(t, r.head-r.tail, int64(size))
		for _, k := range append([]string{key}, recent...) {
			rev, value, ok := r.get([]byte(k))
			w, present := want[k]
			if !present {
				require.False(t, ok, "step %d: %s was deleted", i, k)
				continue
			}
			if ok {
				require.Equal(t, w.rev, rev, "step %d: %s", i, k)
				require.Equal(t, w.value, string(value), "step %d: %s", i, k)
			}
		}
		// The last key set always fits (entries are at most 1/16 of the ring).
		if op := len(recent); op > 0 {
			if _, ok := want[recent[op-1]]; ok {
				_, _, ok := r.get([]byte(recent[op-1]))
				require.True(t, ok, "step %d: last key set must be cached", i)
			}
		}
	}
	require.Positive(t, r.evictions)
	require.NoError(t, r.close())
	_, _, ok := r.get([]byte("key/1"))
	require.False(t, ok, "a closed ring answers nothing")
	r.set([]byte("key/1"), 1, []byte("x")) // and ignores writes
}
