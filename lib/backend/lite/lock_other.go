//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package lite

// fileLock is a no-op on platforms without flock: there, nothing stops a
// second process from opening the same database, and its writes would not
// reach this process's watchers. Run one Gatehouse process per data directory.
type fileLock struct{}

func lockFile(string) (*fileLock, error) { return &fileLock{}, nil }

func (*fileLock) release() error { return nil }
