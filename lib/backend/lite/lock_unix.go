//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package lite

import (
	"errors"
	"os"
	"syscall"

	"github.com/gravitational/trace"
)

// fileLock is an exclusive advisory lock (flock) on a side file. The kernel
// releases it when the process dies, so a crash never leaves it stale.
type fileLock struct {
	f *os.File
}

func lockFile(path string) (*fileLock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, trace.ConvertSystemError(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, trace.AlreadyExists("database %q is in use by another backend (lock file %q is held)", path[:len(path)-len(".lock")], path)
		}
		return nil, trace.ConvertSystemError(err)
	}
	return &fileLock{f: f}, nil
}

func (l *fileLock) release() error {
	// Unlock before closing: closing drops the flock only once every
	// descriptor of the open file is closed, and a child forked at that
	// moment (os/exec in another goroutine) holds a copy until its exec.
	unlockErr := syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	closeErr := l.f.Close()
	if unlockErr != nil {
		return trace.ConvertSystemError(unlockErr)
	}
	return trace.ConvertSystemError(closeErr)
}
