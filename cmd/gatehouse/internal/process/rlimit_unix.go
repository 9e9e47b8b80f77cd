//go:build unix

package process

import "syscall"

// openFileLimit is the process's descriptor limit (Go raises the soft limit
// to the hard one at start); zero if unknown.
func openFileLimit() uint64 {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0
	}
	return uint64(r.Cur) // int64 on some BSDs
}
