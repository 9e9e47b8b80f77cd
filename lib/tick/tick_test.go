package tick

import (
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"
)

// start runs loop in a goroutine on a fresh fake clock and returns the clock,
// the done channel the loop watches, and a channel closed when it returns.
func start(t *testing.T, loop func(done <-chan struct{}, tk clockwork.Ticker)) (*clockwork.FakeClock, chan struct{}, <-chan struct{}) {
	t.Helper()
	clock := clockwork.NewFakeClock()
	tk := clock.NewTicker(time.Minute)
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		loop(done, tk)
	}()
	return clock, done, exited
}

func TestEvery(t *testing.T) {
	t.Parallel()
	calls := make(chan struct{})
	clock, done, exited := start(t, func(done <-chan struct{}, tk clockwork.Ticker) {
		Every(done, tk, func() { calls <- struct{}{} })
	})

	for range 3 {
		clock.Advance(time.Minute)
		select {
		case <-calls:
		case <-time.After(10 * time.Second):
			t.Fatal("fn was not called on a tick")
		}
	}
	select {
	case <-calls:
		t.Fatal("fn was called without a tick")
	default:
	}

	close(done)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("Every did not return when done was closed")
	}
}

func TestWhileStopsWhenFnSaysSo(t *testing.T) {
	t.Parallel()
	calls := make(chan int, 10)
	n := 0
	clock, done, exited := start(t, func(done <-chan struct{}, tk clockwork.Ticker) {
		While(done, tk, func() bool {
			n++
			calls <- n
			return n < 2
		})
	})
	defer close(done)

	for want := 1; want <= 2; want++ {
		clock.Advance(time.Minute)
		select {
		case got := <-calls:
			require.Equal(t, want, got)
		case <-time.After(10 * time.Second):
			t.Fatal("fn was not called on a tick")
		}
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("While did not return when fn returned false")
	}
	clock.Advance(time.Minute)
	require.Empty(t, calls, "no call after fn returned false")
}

func TestWhileReturnsWhenDoneBeforeATick(t *testing.T) {
	t.Parallel()
	_, done, exited := start(t, func(done <-chan struct{}, tk clockwork.Ticker) {
		While(done, tk, func() bool {
			t.Error("fn called without a tick")
			return true
		})
	})
	close(done)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("While did not return when done was closed")
	}
}
