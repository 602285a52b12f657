// Package atomicfile writes files so that a reader or a crash never sees
// half of one: a temporary file in the same directory is written, synced
// and renamed (or linked) to the target, and the directory is synced so the
// new entry itself survives a crash (as age and mkcert do for keys). It is
// the one writer of whole files in certportal: the CA's keys and CRLs, the
// config, the outbox, the user's certificate store, backups.
package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// TempPrefix starts the name of every file being written, so that readers
// listing a directory can skip them.
const TempPrefix = ".tmp-"

// Staged is a file written and synced under a temporary name, waiting to
// be renamed into place by Commit (or removed by Discard).
type Staged struct {
	temp, final string
}

// Stage writes data with permissions perm to a new temporary file beside
// path, flushed to disk.
func Stage(path string, data []byte, perm os.FileMode) (Staged, error) {
	f, err := os.CreateTemp(filepath.Dir(path), TempPrefix+filepath.Base(path)+"-*")
	if err != nil {
		return Staged{}, err
	}
	s := Staged{temp: f.Name(), final: path}
	werr := f.Chmod(perm)
	if werr == nil {
		_, werr = f.Write(data)
	}
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(s.temp)
		return Staged{}, werr
	}
	return s, nil
}

// Commit renames staged files into place, in order, and syncs their
// directories. If a rename fails, the files renamed already are removed
// again and the rest discarded, so the directory ends as it was (all or
// nothing, short of a crash between two renames, which leaves complete
// files only).
func Commit(files ...Staged) error {
	for i, f := range files {
		if err := os.Rename(f.temp, f.final); err != nil {
			for _, done := range files[:i] {
				os.Remove(done.final)
			}
			Discard(files[i:]...)
			return err
		}
	}
	dirs := map[string]bool{}
	for _, f := range files {
		dirs[filepath.Dir(f.final)] = true
	}
	for d := range dirs {
		if err := SyncDir(d); err != nil {
			return err
		}
	}
	return nil
}

// Discard removes staged files that will not be committed.
func Discard(files ...Staged) {
	for _, f := range files {
		os.Remove(f.temp)
	}
}

// WriteFile writes data to path with permissions perm, replacing what is
// there.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	s, err := Stage(path, data, perm)
	if err != nil {
		return err
	}
	return Commit(s)
}

// WriteNew writes data to path, which must not exist: a file that appears
// meanwhile is never replaced (fs.ErrExist).
func WriteNew(path string, data []byte, perm os.FileMode) error {
	s, err := Stage(path, data, perm)
	if err != nil {
		return err
	}
	return Place(s.temp, path, false)
}

// Place moves the complete, synced file tmp to path and syncs the
// directory. With replace it renames; without, it links and removes tmp,
// which fails with fs.ErrExist when path exists (on a file system without
// hard links it checks, then renames).
func Place(tmp, path string, replace bool) error {
	if !replace {
		err := os.Link(tmp, path)
		if err == nil {
			os.Remove(tmp)
			return SyncDir(filepath.Dir(path))
		}
		if errors.Is(err, fs.ErrExist) {
			os.Remove(tmp)
			return err
		}
		if _, serr := os.Lstat(path); serr == nil {
			os.Remove(tmp)
			return &fs.PathError{Op: "link", Path: path, Err: fs.ErrExist}
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// SyncDir fsyncs a directory, so renames and new entries in it are durable.
// A file system that cannot sync a directory (Windows, some network file
// systems) is not an error: there is nothing more to do.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil && !syncUnsupported(err) {
		d.Close()
		return err
	}
	return d.Close()
}
