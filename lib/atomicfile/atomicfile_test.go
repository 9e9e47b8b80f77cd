package atomicfile

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/require"
)

func TestWriteFile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		existing []byte
		mode     os.FileMode
	}{
		{name: "new private file", mode: 0o600},
		{name: "new public file", mode: 0o644},
		{name: "replaces an existing file", existing: []byte("old contents, longer than the new"), mode: 0o600},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "key.pem")
			if tc.existing != nil {
				require.NoError(t, os.WriteFile(path, tc.existing, 0o644))
			}
			require.NoError(t, WriteFile(path, []byte("new"), tc.mode))
			got, err := os.ReadFile(path)
			require.NoError(t, err)
			require.Equal(t, "new", string(got))
			fi, err := os.Stat(path)
			require.NoError(t, err)
			require.Equal(t, tc.mode, fi.Mode().Perm(), "exactly the mode asked for")
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			require.Len(t, entries, 1, "no temporary file left behind")
		})
	}
}

// The mode is exact even under a restrictive umask (the copies this package
// replaced chmodded the temporary file; the umask never applied).
func TestWriteFileIgnoresUmask(t *testing.T) {
	// Not parallel: the umask is process-wide.
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "cert.pem")
	require.NoError(t, WriteFile(path, []byte("cert"), 0o644))
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o644), fi.Mode().Perm())
}

func TestWriteFileFailures(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// A missing directory is NotFound, and nothing is created.
	err := WriteFile(filepath.Join(dir, "missing", "f"), []byte("x"), 0o600)
	require.True(t, trace.IsNotFound(err), "got %v", err)
	// A directory in the way of the rename leaves it and no temporary file.
	target := filepath.Join(dir, "taken")
	require.NoError(t, os.Mkdir(target, 0o700))
	require.Error(t, WriteFile(target, []byte("x"), 0o600))
	fi, err := os.Stat(target)
	require.NoError(t, err)
	require.True(t, fi.IsDir())
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary file left behind")
}
