package clientstore

import (
	"os"
	"path/filepath"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/internal/atomicfile"
)

// lock takes the store's file lock, exclusive for changes and shared for
// reads, and returns the function that releases it. The lock is an flock on
// the lock file (LockFileEx on Windows), so it holds across processes and
// is released by the kernel if a command dies.
func (s *Store) lock(exclusive bool) (func(), error) {
	f, err := os.OpenFile(filepath.Join(s.dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, wrapf(certportal.Unavailable, err, "cannot open the lock file of the certificate store in %s", s.dir)
	}
	if err := lockFileHandle(f, exclusive); err != nil {
		f.Close()
		return nil, wrapf(certportal.Unavailable, err, "cannot lock the certificate store in %s", s.dir)
	}
	return func() {
		unlockFileHandle(f)
		f.Close()
	}, nil
}

// The store's files are written with internal/atomicfile: each staged
// under a temporary name in its final directory, then all renamed into
// place together.
type stagedFile = atomicfile.Staged

// stage writes data (mode 0600) beside dir/name, flushed to disk.
func stage(dir, name string, data []byte) (stagedFile, error) {
	return atomicfile.Stage(filepath.Join(dir, name), data, 0o600)
}

// commit renames the staged files into place, all or nothing.
func commit(files []stagedFile) error { return atomicfile.Commit(files...) }

// discard deletes staged files that will not be committed.
func discard(files []stagedFile) { atomicfile.Discard(files...) }

// syncDir flushes a directory's entries, so renames and removals survive a
// crash.
func syncDir(dir string) error {
	if err := atomicfile.SyncDir(dir); err != nil {
		return wrapf(certportal.Unavailable, err, "cannot flush %s to disk", dir)
	}
	return nil
}
