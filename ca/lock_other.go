//go:build !unix

package ca

// lockDir is a no-op where flock is missing: there, run one writer of the
// CA directory at a time (one replica renewing, rollovers while it is idle).
func lockDir(dir string) (unlock func(), err error) { return func() {}, nil }

// rlockDir is the shared counterpart of lockDir, a no-op here too.
func rlockDir(dir string) (unlock func(), err error) { return func() {}, nil }
