//go:build unix

package clientstore

import (
	"errors"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

func lockFileHandle(f *os.File, exclusive bool) error {
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	for {
		err := unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

func unlockFileHandle(f *os.File) {
	unix.Flock(int(f.Fd()), unix.LOCK_UN)
}
