//go:build !unix

package sqlite

import (
	"errors"
	"io/fs"
	"os"
)

// Elsewhere the cache checks PRAGMA data_version instead.

func keyOf(fs.FileInfo) (fileKey, bool) { return fileKey{}, false }

func mapReadOnly(*os.File, int) ([]byte, error) {
	return nil, errors.New("the wal-index is read by PRAGMA data_version on this system")
}

func unmap([]byte) {}
