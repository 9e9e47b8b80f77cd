// Package atomicfile replaces a file's contents so that a crash or power loss
// leaves either the old file or the new one, never a truncated mix: the data
// goes to a temporary file in the same directory, is synced, and is renamed
// over the target, and then the directory is synced so the rename itself is
// durable. It is the one way Gatehouse writes the files it owns (keys,
// certificates, identity files).
package atomicfile

import (
	"os"
	"path/filepath"

	"github.com/gravitational/trace"
)

// WriteFile replaces path with data, with exactly mode as the file's
// permission bits (the umask does not apply: the temporary file is chmodded
// before any byte of data is written, so a secret is never readable by more
// than mode allows). The directory must exist.
func WriteFile(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return trace.ConvertSystemError(err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op after a successful rename
	if err := writeSyncClose(f, data, mode); err != nil {
		return trace.Wrap(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return trace.ConvertSystemError(err)
	}
	return trace.Wrap(syncDir(dir))
}

// writeSyncClose writes data to f with mode and syncs and closes it.
func writeSyncClose(f *os.File, data []byte, mode os.FileMode) error {
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return trace.ConvertSystemError(err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return trace.ConvertSystemError(err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return trace.ConvertSystemError(err)
	}
	return trace.ConvertSystemError(f.Close())
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return trace.ConvertSystemError(err)
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return trace.ConvertSystemError(err)
	}
	return trace.ConvertSystemError(d.Close())
}
