//go:build windows

package atomicfile

// syncUnsupported: Windows cannot flush a directory handle.
func syncUnsupported(error) bool { return true }
