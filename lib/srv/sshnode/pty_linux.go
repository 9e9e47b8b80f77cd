package sshnode

import (
	"os"
	"strconv"

	"github.com/gravitational/trace"
	"golang.org/x/sys/unix"
)

// openPTY allocates a pseudo-terminal pair through /dev/ptmx.
func openPTY() (ptmx, tty *os.File, err error) {
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, trace.ConvertSystemError(err)
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		unix.Close(fd)
		return nil, nil, trace.Wrap(err, "unlocking pty")
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		unix.Close(fd)
		return nil, nil, trace.Wrap(err, "reading pty number")
	}
	// Non-blocking, so that the runtime poller owns it and Close interrupts a
	// pending Read.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, nil, trace.Wrap(err)
	}
	ptmx = os.NewFile(uintptr(fd), "/dev/ptmx")
	name := "/dev/pts/" + strconv.Itoa(n)
	tty, err = os.OpenFile(name, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		ptmx.Close()
		return nil, nil, trace.ConvertSystemError(err)
	}
	return ptmx, tty, nil
}

// setWinsize sets a terminal's size; zero sizes are ignored.
func setWinsize(f *os.File, cols, rows uint32) error {
	if cols == 0 || rows == 0 || cols > 0xffff || rows > 0xffff {
		return nil
	}
	ws := &unix.Winsize{Col: uint16(cols), Row: uint16(rows)}
	// Fd would switch the file back to blocking mode; Control does not.
	rc, err := f.SyscallConn()
	if err != nil {
		return trace.Wrap(err)
	}
	var ioErr error
	if err := rc.Control(func(fd uintptr) {
		ioErr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, ws)
	}); err != nil {
		return trace.Wrap(err)
	}
	return trace.Wrap(ioErr)
}
