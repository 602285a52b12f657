package clientstore

import (
	"os"
	"path/filepath"

	"github.com/certportal/certportal"
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

// stagedFile is a file written to a temporary name in its final directory,
// waiting to be renamed into place.
type stagedFile struct {
	temp, final string
}

// stage writes data to a new temporary file (mode 0600) in dir, flushed to
// disk, and returns it ready to be renamed to name.
func stage(dir, name string, data []byte) (stagedFile, error) {
	f, err := os.CreateTemp(dir, tempPrefix+"*")
	if err != nil {
		return stagedFile{}, err
	}
	sf := stagedFile{temp: f.Name(), final: filepath.Join(dir, name)}
	fail := func(err error) (stagedFile, error) {
		f.Close()
		os.Remove(sf.temp)
		return stagedFile{}, err
	}
	if err := f.Chmod(0o600); err != nil {
		return fail(err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(sf.temp)
		return stagedFile{}, err
	}
	return sf, nil
}

// commit renames the staged files into place in order. If a rename fails,
// the files already renamed are removed again and the remaining temporary
// files deleted, so the store ends as it was (all or nothing, short of a
// crash between two renames, which leaves complete files only).
func commit(files []stagedFile) error {
	for i, f := range files {
		if err := os.Rename(f.temp, f.final); err != nil {
			for _, done := range files[:i] {
				os.Remove(done.final)
			}
			discard(files[i:])
			return err
		}
	}
	dirs := map[string]bool{}
	for _, f := range files {
		dirs[filepath.Dir(f.final)] = true
	}
	for d := range dirs {
		if err := syncDir(d); err != nil {
			return err
		}
	}
	return nil
}

// discard deletes staged files that will not be committed.
func discard(files []stagedFile) {
	for _, f := range files {
		os.Remove(f.temp)
	}
}

// syncDir flushes a directory's entries, so renames and removals survive a
// crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return wrapf(certportal.Unavailable, err, "cannot open %s", dir)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !isSyncUnsupported(err) {
		return wrapf(certportal.Unavailable, err, "cannot flush %s to disk", dir)
	}
	return nil
}
