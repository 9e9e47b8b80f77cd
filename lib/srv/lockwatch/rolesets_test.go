package lockwatch

import (
	"log/slog"
	"runtime"

	"fmt"
	"testing"

	"github.com/gatehouse/gatehouse/lib/backend"
	"github.com/gatehouse/gatehouse/lib/services"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"

	"github.com/stretchr/testify/require"
)

func TestRoleSetsIntern(t *testing.T) {
	t.Parallel()
	var r roleSets
	require.Nil(t, r.intern(nil))
	require.Nil(t, r.intern([]string{}))

	in := []string{"access", "dev"}
	a := r.intern(in)
	b := r.intern([]string{"access", "dev"})
	require.Equal(t, in, a)
	require.Same(t, &a[0], &b[0], "one copy of a list for every user holding it")
	in[0] = "changed"
	require.Equal(t, []string{"access", "dev"}, a, "the interned list is a copy of the caller's")
	require.Len(t, a, cap(a), "an append to a shared list cannot write into it")

	// Lists that differ only where a separator-free join would blur them stay apart.
	require.Equal(t, []string{"a", "bc"}, r.intern([]string{"a", "bc"}))
	require.Equal(t, []string{"ab", "c"}, r.intern([]string{"ab", "c"}))
	require.Equal(t, []string{"dev", "access"}, r.intern([]string{"dev", "access"}))

	// Past the bound the table starts over; lists handed out stay intact.
	for i := range maxRoleSets + 10 {
		l := []string{fmt.Sprintf("role-%d", i)}
		require.Equal(t, l, r.intern(l))
	}
	require.LessOrEqual(t, len(r.sets), maxRoleSets)
	require.Equal(t, []string{"access", "dev"}, a)
	require.Equal(t, []string{"access", "dev"}, r.intern([]string{"access", "dev"}))
}

// BenchmarkUserViewMemory reports the heap the user view holds per user:
// 100,000 users of a SCIM plugin, with one of three role lists each.
func BenchmarkUserViewMemory(b *testing.B) {
	const users = 100_000
	items := make([]backend.Item, users)
	lists := [][]string{{"access"}, {"access", "dev"}, {"access", "dev", "oncall"}}
	for i := range items {
		u := &typesv1.User{
			Kind: services.KindUser, Version: services.V1,
			Metadata: &typesv1.Metadata{Name: fmt.Sprintf("user%06d@example.com", i)},
			Spec:     &typesv1.UserSpec{Roles: lists[i%len(lists)], Incarnation: services.NewIncarnation()},
		}
		it, err := services.MarshalUser(u)
		require.NoError(b, err)
		items[i] = it
	}
	w := &Watcher{cfg: Config{UsersPrefix: UsersPrefix, Logger: slog.Default()}}
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		view := make(map[string]userState)
		for _, it := range items {
			name, u := w.parseUser(it)
			view[name] = u
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/users, "heap-B/user")
		runtime.KeepAlive(view)
	}
}
