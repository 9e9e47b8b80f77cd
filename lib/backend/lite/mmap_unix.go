//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package lite

import (
	"syscall"

	"github.com/gravitational/trace"
)

// mapAnonymous returns size bytes of zeroed memory outside the Go heap.
func mapAnonymous(size int) ([]byte, error) {
	buf, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		return nil, trace.Wrap(err, "mapping %d bytes for the read cache", size)
	}
	return buf, nil
}

func unmapAnonymous(buf []byte) error {
	return trace.Wrap(syscall.Munmap(buf))
}
