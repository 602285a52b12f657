package ca

import "testing"

// SetRootKeyWorkFactor lowers the scrypt work factor of ExportRootKey and
// sealRootKey for the rest of a test, so fuzz seeds and table tests do not
// each spend a second and 256 MiB in scrypt.
func SetRootKeyWorkFactor(t testing.TB, logN int) {
	old := rootKeyWorkFactor
	rootKeyWorkFactor = logN
	t.Cleanup(func() { rootKeyWorkFactor = old })
}

// SetMaxRootKeyWorkFactor lowers the largest work factor OpenRootKey
// accepts for the rest of a test, so a fuzzer that mutates one into a
// root key file's header does not spend seconds per input.
func SetMaxRootKeyWorkFactor(t testing.TB, logN int) {
	old := maxRootKeyWorkFactor
	maxRootKeyWorkFactor = logN
	t.Cleanup(func() { maxRootKeyWorkFactor = old })
}

// SealRootKey is sealRootKey, for tests that build root key files.
var SealRootKey = sealRootKey
