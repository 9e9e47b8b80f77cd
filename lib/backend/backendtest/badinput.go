package backendtest

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/lib/backend"
)

func badInputTests() []testCase {
	return []testCase{
		{"SingleKeyMethods", testBadSingleKey},
		{"Ranges", testBadRanges},
		{"AtomicWrite", testBadAtomicWrite},
	}
}

// badCall is one call that must be refused with BadParameter.
type badCall struct {
	name string
	call func() error
}

// requireRefused runs every call, requires BadParameter without a panic,
// then requires that nothing was written under the fixture's prefix.
func (f *fixture) requireRefused(calls []badCall) {
	f.t.Helper()
	for _, c := range calls {
		err := panicFree(f.t, c.name, c.call)
		requireBadParameter(f.t, err, "%s", c.name)
	}
	require.Empty(f.t, f.allKeys(), "a refused call wrote something")
}

func testBadSingleKey(t *testing.T, f *fixture) {
	ctx := t.Context()
	b := f.b
	long := backend.Key(f.prefix + string(bigKeyTail(backend.MaxKeySize+1-len(f.prefix))))
	require.Len(t, long, backend.MaxKeySize+1)
	big := bigValue(backend.MaxValueSize + 1)
	ok := f.key("ok")
	expires := f.clock.Now().Add(time.Hour)

	var calls []badCall
	for name, key := range map[string]backend.Key{"empty key": nil, "key over MaxKeySize": long} {
		calls = append(calls,
			badCall{"Create with " + name, func() error { _, err := b.Create(ctx, item(key, "v")); return err }},
			badCall{"Put with " + name, func() error { _, err := b.Put(ctx, item(key, "v")); return err }},
			badCall{"Update with " + name, func() error { _, err := b.Update(ctx, item(key, "v")); return err }},
			badCall{"Get with " + name, func() error { _, err := b.Get(ctx, key); return err }},
			badCall{"Delete with " + name, func() error { return b.Delete(ctx, key) }},
			badCall{"ConditionalUpdate with " + name, func() error {
				_, err := b.ConditionalUpdate(ctx, backend.Item{Key: key, Value: []byte("v"), Revision: "1"})
				return err
			}},
			badCall{"ConditionalDelete with " + name, func() error { return b.ConditionalDelete(ctx, key, "1") }},
			badCall{"KeepAlive with " + name, func() error {
				return b.KeepAlive(ctx, backend.Lease{Key: key, Revision: "1"}, expires)
			}},
		)
	}
	calls = append(calls,
		badCall{"Create with value over MaxValueSize", func() error { _, err := b.Create(ctx, backend.Item{Key: ok, Value: big}); return err }},
		badCall{"Put with value over MaxValueSize", func() error { _, err := b.Put(ctx, backend.Item{Key: ok, Value: big}); return err }},
	)
	f.requireRefused(calls)

	// Update-style writes must refuse an oversized value on an existing key
	// too, and leave it as it was.
	lease := f.put(ok, "v")
	for _, c := range []badCall{
		{"Update with value over MaxValueSize", func() error { _, err := b.Update(ctx, backend.Item{Key: ok, Value: big}); return err }},
		{"ConditionalUpdate with value over MaxValueSize", func() error {
			_, err := b.ConditionalUpdate(ctx, backend.Item{Key: ok, Value: big, Revision: lease.Revision})
			return err
		}},
	} {
		requireBadParameter(t, panicFree(t, c.name, c.call), "%s", c.name)
	}
	f.requireValue(ok, "v", lease.Revision)
}

func testBadRanges(t *testing.T, f *fixture) {
	ctx := t.Context()
	b := f.b
	start, end := f.rangeAll()
	long := backend.Key(string(start) + string(bigKeyTail(backend.MaxKeySize)))
	f.put(f.key("a"), "v")

	for _, c := range []badCall{
		{"GetRange with negative limit", func() error { _, err := b.GetRange(ctx, start, end, -1); return err }},
		{"GetRange with limit over MaxRangeLimit", func() error {
			_, err := b.GetRange(ctx, start, end, backend.MaxRangeLimit+1)
			return err
		}},
		{"GetRange with start over MaxKeySize", func() error { _, err := b.GetRange(ctx, long, end, 0); return err }},
		{"GetRange with end over MaxKeySize", func() error { _, err := b.GetRange(ctx, start, long, 0); return err }},
		{"DeleteRange with start over MaxKeySize", func() error { return b.DeleteRange(ctx, long, end) }},
		{"DeleteRange with end over MaxKeySize", func() error { return b.DeleteRange(ctx, start, long) }},
	} {
		requireBadParameter(t, panicFree(t, c.name, c.call), "%s", c.name)
	}
	require.Equal(t, strs(f.key("a")), f.allKeys(), "a refused DeleteRange deleted something")
}

func testBadAtomicWrite(t *testing.T, f *fixture) {
	ctx := t.Context()
	put := func(k backend.Key) backend.ConditionalAction {
		return backend.ConditionalAction{Key: k, Condition: backend.Whatever(), Action: backend.Put(item(k, "v"))}
	}
	many := func(n int) []backend.ConditionalAction {
		out := make([]backend.ConditionalAction, n)
		for i := range out {
			out[i] = put(f.key(fmt.Sprintf("%03d", i)))
		}
		return out
	}
	with := func(mutate func(a *backend.ConditionalAction)) []backend.ConditionalAction {
		actions := []backend.ConditionalAction{put(f.key("first")), put(f.key("second"))}
		mutate(&actions[1])
		return actions
	}
	long := backend.Key(f.prefix + string(bigKeyTail(backend.MaxKeySize)))

	cases := map[string][]backend.ConditionalAction{
		"no actions":          {},
		"nil actions":         nil,
		"too many actions":    many(backend.MaxAtomicWriteActions + 1),
		"duplicate keys":      append(many(3), put(f.key("001"))),
		"empty key":           with(func(a *backend.ConditionalAction) { a.Key = nil }),
		"key over MaxKeySize": with(func(a *backend.ConditionalAction) { a.Key = long }),
		"value over MaxValue": with(func(a *backend.ConditionalAction) { a.Action.Item.Value = bigValue(backend.MaxValueSize + 1) }),
		"total over MaxAtomicWriteSize": func() []backend.ConditionalAction {
			// Two values each within MaxValueSize, together over the total.
			actions := with(func(a *backend.ConditionalAction) { a.Action.Item.Value = bigValue(backend.MaxValueSize) })
			actions[0].Action.Item.Value = bigValue(backend.MaxAtomicWriteSize - backend.MaxValueSize)
			return actions
		}(),
		"zero condition kind":  with(func(a *backend.ConditionalAction) { a.Condition = backend.Condition{} }),
		"unknown condition":    with(func(a *backend.ConditionalAction) { a.Condition.Kind = 99 }),
		"revision without rev": with(func(a *backend.ConditionalAction) { a.Condition = backend.Revision("") }),
		"zero action kind":     with(func(a *backend.ConditionalAction) { a.Action = backend.Action{} }),
		"unknown action":       with(func(a *backend.ConditionalAction) { a.Action.Kind = -1 }),
	}
	var calls []badCall
	for name, actions := range cases {
		calls = append(calls, badCall{"AtomicWrite with " + name, func() error {
			_, err := f.b.AtomicWrite(ctx, actions)
			return err
		}})
	}
	f.requireRefused(calls)
}
