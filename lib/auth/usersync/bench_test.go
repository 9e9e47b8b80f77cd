package usersync

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// BenchmarkFullSync10000 is the first sync of an org of 10,000 assigned
// users (pages of 500): time per full sync and Okta API calls. Run with
// -benchtime 1x; the backend is the in-memory one.
func BenchmarkFullSync10000(b *testing.B) {
	for range b.N {
		b.StopTimer()
		e := newEnv(b, 500)
		e.org.AddUsers(10000)
		e.clock.Advance(time.Minute)
		before, _, _ := e.org.Calls()
		b.StartTimer()
		st, err := e.syncer.Run(e.ctx, testPlugin, RunRequest{Full: true})
		b.StopTimer()
		require.NoError(b, err)
		require.EqualValues(b, 10000, st.GetUsersCreated())
		after, _, _ := e.org.Calls()
		b.ReportMetric(float64(after-before), "okta-calls/op")
		b.StartTimer()
	}
}

// BenchmarkIncremental10Changes is an incremental run after 10 changes in
// an org of 10,000 synced users (5 suspended, 5 renamed): time and Okta API
// calls.
func BenchmarkIncremental10Changes(b *testing.B) {
	e := newEnv(b, 500)
	ids := e.org.AddUsers(10000)
	e.clock.Advance(time.Minute)
	_, err := e.syncer.Run(e.ctx, testPlugin, RunRequest{Full: true})
	require.NoError(b, err)
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		e.clock.Advance(2 * time.Minute)
		for k := range 10 {
			id := ids[(i*10+k)%len(ids)]
			if k < 5 {
				e.org.SetStatus(id, "SUSPENDED")
			} else {
				e.org.SetLogin(id, fmt.Sprintf("renamed-%d-%d@example.com", i, k))
			}
		}
		e.clock.Advance(time.Second)
		before, _, _ := e.org.Calls()
		b.StartTimer()
		st, err := e.syncer.Run(e.ctx, testPlugin, RunRequest{})
		b.StopTimer()
		require.NoError(b, err)
		require.False(b, st.GetLastRunFull())
		require.EqualValues(b, 10, st.GetUsersSeen())
		after, _, _ := e.org.Calls()
		b.ReportMetric(float64(after-before), "okta-calls/op")
		b.StartTimer()
	}
}
