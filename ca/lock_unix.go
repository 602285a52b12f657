//go:build unix

package ca

import (
	"os"
	"path/filepath"
	"syscall"

	"github.com/certportal/certportal"
)

// lockDir takes an exclusive advisory lock (flock) on the CA directory's
// lock file, so two processes sharing DATA/ca (replicas, or an
// administrator's rollover next to a running portal) never interleave the
// writes of one change. It waits for the lock and returns its release.
func lockDir(dir string) (unlock func(), err error) {
	return flockFile(dir, syscall.LOCK_EX)
}

// rlockDir takes a shared lock, for readers of a pair of files (server.crt
// and server.key) that a writer replaces one after the other.
func rlockDir(dir string) (unlock func(), err error) {
	return flockFile(dir, syscall.LOCK_SH)
}

func flockFile(dir string, how int) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, wrapError(certportal.Internal, err, "could not open the lock file of "+dir)
	}
	for {
		err = syscall.Flock(int(f.Fd()), how)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, wrapError(certportal.Internal, err, "could not lock "+dir)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
