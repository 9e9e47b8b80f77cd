package main

import (
	"bytes"
	"testing"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"
)

// TestOneLine: a wrapped error keeps its messages apart on one line.
func TestOneLine(t *testing.T) {
	t.Parallel()
	err := trace.Wrap(trace.Wrap(trace.ConnectionProblem(nil, "bind: address already in use"), "listen tcp 127.0.0.1:3080"), "web: listening on 127.0.0.1:3080")
	require.Equal(t, "web: listening on 127.0.0.1:3080: listen tcp 127.0.0.1:3080: bind: address already in use", oneLine(err))
	require.Equal(t, "log level \"loud\": want debug, info, warn or error", oneLine(trace.BadParameter("log level %q: want debug, info, warn or error", "loud")))
}

// TestStrayArgument: an argument where a flag was meant is named as such,
// not as an "unknown command", and nothing starts.
func TestStrayArgument(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"start", "./data"}, {"recover", "./data"}, {"sign", "alice"}} {
		var out, errOut bytes.Buffer
		require.Equal(t, 1, run(args, &out, &errOut), "%v", args)
		require.Equal(t, "ERROR: gatehouse "+args[0]+" takes no argument, got \""+args[1]+"\": settings are flags, such as --data-dir DIR (see gatehouse "+args[0]+" --help)\n", errOut.String())
		require.Empty(t, out.String())
	}
}
