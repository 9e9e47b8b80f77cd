package atomicfile

import (
	"os"
	"path/filepath"
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
		{name: "new file", mode: 0o600},
		{name: "replaces an existing file and its mode", existing: []byte("old contents, longer than the new"), mode: 0o644},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "key.pem")
			if tt.existing != nil {
				require.NoError(t, os.WriteFile(path, tt.existing, 0o666))
			}
			require.NoError(t, WriteFile(path, []byte("new"), tt.mode))

			got, err := os.ReadFile(path)
			require.NoError(t, err)
			require.Equal(t, "new", string(got))
			fi, err := os.Stat(path)
			require.NoError(t, err)
			require.Equal(t, tt.mode, fi.Mode().Perm())
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			require.Len(t, entries, 1, "the temporary file is gone")
		})
	}
}

func TestWriteFileMissingDir(t *testing.T) {
	t.Parallel()
	err := WriteFile(filepath.Join(t.TempDir(), "missing", "key.pem"), []byte("x"), 0o600)
	require.True(t, trace.IsNotFound(err), "got %v", err)
}
