package defaults

import (
	"bytes"
	"log/slog"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"
)

func TestIfZero(t *testing.T) {
	t.Parallel()
	durations := []struct {
		name    string
		in, def time.Duration
		want    time.Duration
	}{
		{name: "zero takes the default", in: 0, def: time.Second, want: time.Second},
		{name: "positive is kept", in: time.Minute, def: time.Second, want: time.Minute},
		{name: "negative is kept for the caller to refuse", in: -time.Minute, def: time.Second, want: -time.Minute},
	}
	for _, tt := range durations {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := tt.in
			IfZero(&got, tt.def)
			require.Equal(t, tt.want, got)
		})
	}

	strs := []struct {
		name, in, def, want string
	}{
		{name: "empty string takes the default", in: "", def: "admin", want: "admin"},
		{name: "set string is kept", in: "root", def: "admin", want: "root"},
	}
	for _, tt := range strs {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := tt.in
			IfZero(&got, tt.def)
			require.Equal(t, tt.want, got)
		})
	}

	t.Run("nil interface takes the default, a set one is kept", func(t *testing.T) {
		t.Parallel()
		def := clockwork.NewFakeClock()
		var unset clockwork.Clock
		IfZero(&unset, clockwork.Clock(def))
		require.Same(t, def, unset)

		set := clockwork.Clock(clockwork.NewFakeClock())
		IfZero(&set, clockwork.Clock(def))
		require.NotSame(t, def, set)
	})
}

func TestIfNotPositive(t *testing.T) {
	t.Parallel()
	ints := []struct {
		name          string
		in, def, want int
	}{
		{name: "zero takes the default", in: 0, def: 10, want: 10},
		{name: "negative takes the default", in: -3, def: 10, want: 10},
		{name: "one is kept", in: 1, def: 10, want: 1},
		{name: "positive is kept", in: 500, def: 10, want: 500},
	}
	for _, tt := range ints {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := tt.in
			IfNotPositive(&got, tt.def)
			require.Equal(t, tt.want, got)
		})
	}

	floats := []struct {
		name          string
		in, def, want float64
	}{
		{name: "zero rate takes the default", in: 0, def: 5, want: 5},
		{name: "negative rate takes the default", in: -0.5, def: 5, want: 5},
		{name: "fractional rate is kept", in: 0.25, def: 5, want: 0.25},
	}
	for _, tt := range floats {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := tt.in
			IfNotPositive(&got, tt.def)
			require.Equal(t, tt.want, got)
		})
	}

	t.Run("durations: a nanosecond is positive", func(t *testing.T) {
		t.Parallel()
		got := time.Nanosecond
		IfNotPositive(&got, time.Second)
		require.Equal(t, time.Nanosecond, got)
	})
}

func TestClock(t *testing.T) {
	t.Parallel()
	t.Run("nil becomes the real clock", func(t *testing.T) {
		t.Parallel()
		var c clockwork.Clock
		Clock(&c)
		require.NotNil(t, c)
		_, fake := c.(*clockwork.FakeClock)
		require.False(t, fake)
		require.WithinDuration(t, time.Now(), c.Now(), time.Minute)
	})
	t.Run("a set clock is kept", func(t *testing.T) {
		t.Parallel()
		fake := clockwork.NewFakeClock()
		c := clockwork.Clock(fake)
		Clock(&c)
		require.Same(t, fake, c)
	})
}

func TestClockFrom(t *testing.T) {
	t.Parallel()
	source := clockwork.NewFakeClock()
	tests := []struct {
		name       string
		in         clockwork.Clock
		want       clockwork.Clock
		wantCalled bool
	}{
		{name: "nil takes the source's clock", in: nil, want: source, wantCalled: true},
		{name: "a set clock is kept and the source is not asked", in: clockwork.NewFakeClock(), wantCalled: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			called := false
			got := tt.in
			ClockFrom(&got, func() clockwork.Clock {
				called = true
				return source
			})
			require.Equal(t, tt.wantCalled, called)
			if tt.want != nil {
				require.Same(t, tt.want, got)
			} else {
				require.Same(t, tt.in, got)
			}
		})
	}
}

// TestLogger replaces the process's default logger, so it does not run in
// parallel with the other tests.
func TestLogger(t *testing.T) {
	var defaultOut bytes.Buffer
	previous := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&defaultOut, nil)))
	t.Cleanup(func() { slog.SetDefault(previous) })

	var givenOut bytes.Buffer
	tests := []struct {
		name      string
		in        *slog.Logger
		component string
		wantIn    *bytes.Buffer
		wantEmpty *bytes.Buffer
	}{
		{name: "nil becomes the default logger, tagged", in: nil, component: "authz", wantIn: &defaultOut, wantEmpty: &givenOut},
		{name: "a given logger is kept, tagged", in: slog.New(slog.NewTextHandler(&givenOut, nil)), component: "scim", wantIn: &givenOut, wantEmpty: &defaultOut},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defaultOut.Reset()
			givenOut.Reset()
			got := tt.in
			Logger(&got, tt.component)
			require.NotNil(t, got)
			got.Info("hello")
			require.Contains(t, tt.wantIn.String(), "component="+tt.component)
			require.Contains(t, tt.wantIn.String(), "msg=hello")
			require.Empty(t, tt.wantEmpty.String())
		})
	}
}
