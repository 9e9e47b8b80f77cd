package services

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPublicOrigin(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]string{
		"":                           "",
		"gatehouse.example.com:443":  "https://gatehouse.example.com",
		"gatehouse.example.com:3080": "https://gatehouse.example.com:3080",
		"gatehouse.example.com":      "https://gatehouse.example.com",
		"10.0.0.1:443":               "https://10.0.0.1",
		"[2001:db8::1]:443":          "https://[2001:db8::1]",
		"[2001:db8::1]:8443":         "https://[2001:db8::1]:8443",
		"gatehouse.example.com:4430": "https://gatehouse.example.com:4430",
	} {
		t.Run(addr, func(t *testing.T) {
			require.Equal(t, want, PublicOrigin(addr))
		})
	}
}
