//go:build unix

package sqlite

import (
	"io/fs"
	"os"
	"syscall"
)

func keyOf(fi fs.FileInfo) (fileKey, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileKey{}, false
	}
	return fileKey{dev: uint64(st.Dev), ino: uint64(st.Ino)}, true //nolint:unconvert // the types differ by system
}

func mapReadOnly(f *os.File, n int) ([]byte, error) {
	return syscall.Mmap(int(f.Fd()), 0, n, syscall.PROT_READ, syscall.MAP_SHARED)
}

func unmap(b []byte) { syscall.Munmap(b) } //nolint:errcheck // nothing to do about it
