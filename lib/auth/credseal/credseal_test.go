package credseal

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"
)

func TestLoadOrCreate(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "sub", KeyFile)
	s1, err := LoadOrCreate(path)
	require.NoError(t, err)
	info, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	// The same file gives the same key.
	s2, err := LoadOrCreate(path)
	require.NoError(t, err)
	require.Equal(t, s1.KeyID(), s2.KeyID())
	sealed, err := s1.Seal([]byte("ssws-token"), "okta/okta_api")
	require.NoError(t, err)
	require.NotContains(t, string(sealed), "ssws-token")
	out, err := s2.Open(sealed, "okta/okta_api", s1.KeyID())
	require.NoError(t, err)
	require.Equal(t, "ssws-token", string(out))

	// A key file others can read is refused.
	require.NoError(t, os.Chmod(path, 0o644))
	_, err = LoadOrCreate(path)
	require.True(t, trace.IsAccessDenied(err), "%v", err)
}

func TestOpenRefuses(t *testing.T) {
	t.Parallel()
	a, err := New(make([]byte, 32))
	require.NoError(t, err)
	key := make([]byte, 32)
	key[0] = 1
	b, err := New(key)
	require.NoError(t, err)
	sealed, err := a.Seal([]byte("secret"), "okta/okta_api")
	require.NoError(t, err)

	tamper := append([]byte(nil), sealed...)
	tamper[len(tamper)-1] ^= 1
	for name, tc := range map[string]struct {
		s       *Sealer
		sealed  []byte
		context string
		keyID   string
	}{
		"other key id":    {b, sealed, "okta/okta_api", a.KeyID()},
		"other key":       {b, sealed, "okta/okta_api", ""},
		"other context":   {a, sealed, "other/okta_api", a.KeyID()},
		"altered":         {a, tamper, "okta/okta_api", a.KeyID()},
		"truncated":       {a, sealed[:5], "okta/okta_api", a.KeyID()},
		"unknown version": {a, append([]byte{9}, sealed[1:]...), "okta/okta_api", a.KeyID()},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := tc.s.Open(tc.sealed, tc.context, tc.keyID)
			require.Error(t, err)
			require.NotContains(t, err.Error(), "secret")
		})
	}
	_, err = New([]byte("short"))
	require.True(t, trace.IsBadParameter(err))
}

func TestFileCreatesOnFirstUse(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), KeyFile)
	f := NewFile(path)
	_, err := f.Open([]byte("x"), "c", "")
	require.True(t, trace.IsNotFound(err), "opening never creates a key: %v", err)
	_, err = os.Stat(path)
	require.True(t, os.IsNotExist(err), "no key before first use")
	sealed, err := f.Seal([]byte("x"), "c")
	require.NoError(t, err)
	out, err := NewFile(path).Open(sealed, "c", f.KeyID())
	require.NoError(t, err)
	require.Equal(t, "x", string(out))
}
