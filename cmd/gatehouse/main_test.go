package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gatehouse/gatehouse/cmd/gatehouse/internal/config"
)

// TestLogValuesAreSafe: a value from outside (a SAML NameID, an SSH login)
// reaches the server log, in either format, on one line, with no raw control
// character or bidi override and bounded in length; the JSON stays JSON.
func TestLogValuesAreSafe(t *testing.T) {
	t.Parallel()
	hostile := "eve\x1b]52;c;eA==\x07\u009b2J\u202e\x7f\nlevel=ERROR msg=forged"
	long := strings.Repeat("é", 4000)
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			log := newLogger(&config.Config{LogFormat: format, LogLevel: slog.LevelInfo}, &buf)
			log.Info("SAML login failed", "user", hostile, "error", errors.New("refused "+hostile), "login", long, "n", 3)
			out := buf.String()
			require.Equal(t, 1, strings.Count(out, "\n"), out)
			for _, bad := range []string{"\x1b", "\x07", "\u009b", "\u202e", "\x7f"} {
				require.NotContains(t, out, bad)
			}
			require.Less(t, len(out), 2*maxLogValue+1024, "the long value is cut")
			require.Contains(t, out, "bytes in all")
			if format == "json" {
				var m map[string]any
				require.NoError(t, json.Unmarshal([]byte(out), &m))
				require.Equal(t, "eve\\u001b]52;c;eA==\\u0007\\u009b2J\\u202e\\u007f\nlevel=ERROR msg=forged", m["user"])
				require.EqualValues(t, 3, m["n"])
			}
		})
	}
	// Nothing to escape: left as it is.
	a := slog.String("user", "alice@example.com")
	require.Equal(t, a, safeLogAttr(nil, a))
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
