//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package lite

// mapAnonymous falls back to the Go heap where there is no mmap.
func mapAnonymous(size int) ([]byte, error) { return make([]byte, size), nil }

func unmapAnonymous([]byte) error { return nil }
