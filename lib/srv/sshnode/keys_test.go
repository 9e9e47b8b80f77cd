package sshnode_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/gatehouse/gatehouse/lib/srv/sshnode"
)

func TestLoadOrCreateHostKey(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "node", "host_key")
	first, err := sshnode.LoadOrCreateHostKey(path)
	require.NoError(t, err)
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	again, err := sshnode.LoadOrCreateHostKey(path)
	require.NoError(t, err)
	require.Equal(t, first.PublicKey().Marshal(), again.PublicKey().Marshal())

	require.NoError(t, os.WriteFile(path, []byte("garbage"), 0o600))
	_, err = sshnode.LoadOrCreateHostKey(path)
	require.True(t, trace.IsBadParameter(err), "%v", err)
}

func TestParseAuthorizedKeys(t *testing.T) {
	t.Parallel()
	a, b := newSigner(t), newSigner(t)
	data := append(ssh.MarshalAuthorizedKey(a.PublicKey()), '\n')
	data = append(data, ssh.MarshalAuthorizedKey(b.PublicKey())...)
	keys, err := sshnode.ParseAuthorizedKeys(data)
	require.NoError(t, err)
	require.Len(t, keys, 2)
	require.Equal(t, b.PublicKey().Marshal(), keys[1].Marshal())

	for _, bad := range []string{"", "  \n", "not a key"} {
		_, err := sshnode.ParseAuthorizedKeys([]byte(bad))
		require.True(t, trace.IsBadParameter(err), "%q: %v", bad, err)
	}
}
