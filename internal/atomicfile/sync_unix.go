//go:build !windows

package atomicfile

import (
	"errors"
	"syscall"
)

// syncUnsupported reports whether fsync on a directory failed only because
// the file system does not offer it.
func syncUnsupported(err error) bool {
	return errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTSUP)
}
