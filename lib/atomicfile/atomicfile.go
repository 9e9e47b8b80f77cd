// Package atomicfile is the one way Gatehouse replaces a file it must never
// leave half-written (private keys, certificates, identity files): a leaf
// package with no internal imports.
package atomicfile

import (
	"os"
	"path/filepath"

	"github.com/gravitational/trace"
)

// WriteFile replaces path with data at mode. It writes a temporary file in
// the same directory, sets its mode before the first byte (a key is never
// readable by others, even for a moment), syncs it, renames it over path
// and syncs the directory, so that a reader sees the old file or the new
// one, and a crash never leaves a partial or lost file behind.
func WriteFile(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return trace.ConvertSystemError(err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op after the rename
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
	if err := f.Close(); err != nil {
		return trace.ConvertSystemError(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return trace.ConvertSystemError(err)
	}
	return trace.Wrap(syncDir(dir))
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return trace.ConvertSystemError(err)
	}
	defer d.Close()
	return trace.ConvertSystemError(d.Sync())
}
