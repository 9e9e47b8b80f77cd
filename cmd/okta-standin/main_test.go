package main

import (
	"testing"

	"github.com/gatehouse/gatehouse/cmd/internal/errline"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"
)

func TestCheckLoopback(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:3090", true},
		{"[::1]:3090", true},
		{"localhost:0", true},
		{"0.0.0.0:3090", false},
		{":3090", false},
		{"192.168.1.10:3090", false},
		{"example.com:3090", false},
		{"no-port", false},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			t.Parallel()
			err := checkLoopback(tc.addr)
			if tc.ok {
				require.NoError(t, err)
				return
			}
			require.True(t, trace.IsBadParameter(err), "%v", err)
		})
	}
}

// TestOneLine: a wrapped error keeps its messages apart on one line.
func TestOneLine(t *testing.T) {
	t.Parallel()
	err := trace.Wrap(trace.Wrap(trace.BadParameter("plugin \"okta\" runs SCIM or user sync, never both"), "turning SCIM on in plugin %q", "okta"), "setting Gatehouse up")
	require.Equal(t, `setting Gatehouse up: turning SCIM on in plugin "okta": plugin "okta" runs SCIM or user sync, never both`, errline.Of(err))
}
