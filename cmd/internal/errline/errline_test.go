package errline

import (
	"testing"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"
)

// TestOf: a wrapped error keeps its messages apart on one line.
func TestOf(t *testing.T) {
	t.Parallel()
	err := trace.Wrap(trace.Wrap(trace.ConnectionProblem(nil, "bind: address already in use"), "listen tcp 127.0.0.1:3080"), "web: listening on 127.0.0.1:3080")
	require.Equal(t, "web: listening on 127.0.0.1:3080: listen tcp 127.0.0.1:3080: bind: address already in use", Of(err))
	require.Equal(t, `log level "loud": want debug, info, warn or error`, Of(trace.BadParameter("log level %q: want debug, info, warn or error", "loud")))
	require.Equal(t, "a b: c", Join("  a\t b \n\n c\n"))
}
