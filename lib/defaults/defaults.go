// Package defaults fills in the unset fields of a Config in its
// CheckAndSetDefaults: a real clock, a logger tagged with its component, and
// a default value for a field left at zero or (where a non-positive value is
// meaningless) at zero or below. Every Config in the tree sets its defaults
// through these few calls, so "unset" means the same thing everywhere and a
// CheckAndSetDefaults reads as the list of its defaults.
//
// It is a leaf: it imports nothing of ours, so every layer, lib/backend
// included, may use it.
package defaults

import (
	"log/slog"

	"github.com/jonboulle/clockwork"
)

// IfZero sets *field to def when *field is its type's zero value (0, "", nil).
// A negative number is kept: callers that refuse negative values check them
// before or after, as their validation order requires.
func IfZero[T comparable](field *T, def T) {
	var zero T
	if *field == zero {
		*field = def
	}
}

// Number is a type whose values can be compared with zero: the integers,
// the floats and the types defined on them, such as time.Duration.
type Number interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64 |
		~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~uintptr |
		~float32 | ~float64
}

// IfNotPositive sets *field to def when *field is zero or negative: for the
// settings (timeouts, limits, retries) where a non-positive value has no
// meaning and is read as "unset" rather than refused.
func IfNotPositive[T Number](field *T, def T) {
	if *field <= 0 {
		*field = def
	}
}

// Clock sets *clock to the real clock when it is nil.
func Clock(clock *clockwork.Clock) {
	if *clock == nil {
		*clock = clockwork.NewRealClock()
	}
}

// ClockFrom sets *clock to source() when it is nil; source is called only
// then. For a component that shares the clock of what it is built on, such as
// its backend's (ClockFrom(&c.Clock, c.Backend.Clock)).
func ClockFrom(clock *clockwork.Clock, source func() clockwork.Clock) {
	if *clock == nil {
		*clock = source()
	}
}

// Logger sets *logger to slog.Default() when it is nil, and then tags it,
// given or defaulted, with the attribute component=component, which is how
// the logs of one component are told apart.
func Logger(logger **slog.Logger, component string) {
	if *logger == nil {
		*logger = slog.Default()
	}
	*logger = (*logger).With("component", component)
}
