package ca

import (
	"crypto"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"unicode/utf8"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/internal/atomicfile"
	"github.com/certportal/certportal/internal/sealed"
)

// Key custody (SPEC.md "Key custody"): Load never reads root.key, so the
// running portal holds no key that every user's root store trusts. The
// commands that sign with the root (init, ca rollover, ca root-crl) load it
// with LoadRootKey from DATA/ca or, once it was moved off the server by
// ExportRootKey, with UseRootKey from the encrypted file OpenRootKey reads.

// MinRootKeyPassphrase is the shortest passphrase ExportRootKey accepts:
// scrypt slows down guessing but cannot save a short passphrase, and the
// file holds the key that every user's root store trusts.
const MinRootKeyPassphrase = 12

// rootKeyWorkFactor is the scrypt work factor (2^18, age's default: about
// a second and 256 MiB) of an exported root key; maxRootKeyWorkFactor is
// the largest OpenRootKey accepts (2^19), so a file from a later version
// with a stronger setting opens, while a damaged or hostile one cannot ask
// for many seconds of work and gigabytes of memory (age accepts 2^22).
var rootKeyWorkFactor, maxRootKeyWorkFactor = 18, 19

// maxRootKeyFile bounds what OpenRootKey reads: an RSA-4096 key in PEM is
// about 3.3 KB, armored and encrypted under 5 KB.
const maxRootKeyFile = 64 << 10

// RootKeyInDir reports whether root.key is still in the CA directory,
// where a portal that is broken into could use it. It only looks at the
// directory entry; the key is not read.
func (a *Authority) RootKeyInDir() bool {
	_, err := os.Lstat(filepath.Join(a.dir, RootKeyFile))
	return err == nil
}

// HasRootKey reports whether the root key is loaded (LoadRootKey or
// UseRootKey), so the root can sign.
func (a *Authority) HasRootKey() bool { return a.rootKey != nil }

// LoadRootKey reads root.key from the CA directory and keeps it for the
// operations that sign with the root. Without the file it is a NotFound
// error that says where the key went and how to use it.
func (a *Authority) LoadRootKey() error {
	p := filepath.Join(a.dir, RootKeyFile)
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return errorf(certportal.NotFound, "the root key is not in %s (it was exported with certportal ca root-key export); give the exported file with --root-key FILE", a.dir)
	}
	if err != nil {
		return wrapError(certportal.Internal, err, p+" cannot be read")
	}
	key, err := parseKeyPEM(data)
	if err != nil {
		return wrapError(certportal.Invalid, err, p+": "+certportal.ErrorMessage(err))
	}
	if !keyMatches(key, a.Root) {
		return errorf(certportal.Invalid, "%s does not belong to the certificate %s; the CA directory is inconsistent", p, a.Root.Subject.CommonName)
	}
	a.rootKey = key
	return nil
}

// UseRootKey keeps key, the root key from an exported file, for the
// operations that sign with the root. A key that is not root.crt's is
// refused: signing with it would make certificates and CRLs nobody trusts.
func (a *Authority) UseRootKey(key crypto.Signer) error {
	if key == nil || !keyMatches(key, a.Root) {
		return errorf(certportal.Invalid, "the root key file does not belong to this portal's root %s (its public key differs from root.crt's); nothing was changed", a.Root.Subject.CommonName)
	}
	a.rootKey = key
	return nil
}

// DropRootKey forgets the loaded root key; the root can no longer sign.
// serve calls it after the one signing it may do on the first start after
// an upgrade.
func (a *Authority) DropRootKey() { a.rootKey = nil }

// needRootKey is the error of an operation that signs with the root when
// no root key is loaded.
func (a *Authority) needRootKey(what string) error {
	if a.rootKey != nil {
		return nil
	}
	return errorf(certportal.Unavailable, "%s needs the root key, which is not loaded; give the exported file with --root-key FILE", what)
}

// ExportRootKey moves the root key off the server: it writes it to out,
// encrypted with age to passphrase (scrypt) and ASCII-armored, and removes
// root.key from the CA directory only after out is written, synced, read
// back and decrypted to the same key. out must not exist; it is created
// 0600 and never replaced (a refused or failed export leaves no out file
// and root.key in place).
func (a *Authority) ExportRootKey(out, passphrase string) error {
	if utf8.RuneCountInString(passphrase) < MinRootKeyPassphrase {
		return errorf(certportal.Invalid, "the passphrase must have at least %d characters: the file holds the key that every user's root store trusts", MinRootKeyPassphrase)
	}
	if _, err := os.Lstat(out); err == nil {
		return errorf(certportal.Conflict, "%s exists; choose a new file name, an export never replaces a file", out)
	}
	// Under the directory's lock, so a rollover that is signing with the
	// key cannot run while it disappears.
	unlock, err := lockDir(a.dir)
	if err != nil {
		return err
	}
	defer unlock()
	p := filepath.Join(a.dir, RootKeyFile)
	if fi, err := os.Lstat(p); err == nil && !fi.Mode().IsRegular() {
		// Removing a link would leave the key where it points.
		return errorf(certportal.Invalid, "%s is not a regular file (a link?); put the key file itself there, then export it", p)
	}
	if err := a.LoadRootKey(); err != nil {
		return err
	}
	defer a.DropRootKey()
	plain, err := keyPEM(a.rootKey)
	if err != nil {
		return wrapError(certportal.Internal, err, "could not encode the root key")
	}
	sealed, err := sealRootKey(plain, passphrase)
	if err != nil {
		return err
	}
	if err := writeNewFile(out, sealed); err != nil {
		return err
	}
	// Read back what is on disk, not what is in memory.
	back, err := os.ReadFile(out)
	if err != nil {
		return wrapError(certportal.Internal, err, "could not read "+out+" back; root.key was left in place")
	}
	key, err := OpenRootKey(back, passphrase)
	if err != nil || !keyMatches(key, a.Root) || !sameKey(key, a.rootKey) {
		return errorf(certportal.Internal, "%s does not decrypt to the root key; root.key was left in place", out)
	}
	if err := os.Remove(p); err != nil {
		return wrapError(certportal.Internal, err, "the key was exported to "+out+", but "+p+" could not be removed; remove it by hand")
	}
	return syncDir(a.dir)
}

// sealRootKey encrypts plain to passphrase with age and armors it.
func sealRootKey(plain []byte, passphrase string) ([]byte, error) {
	b, err := sealed.Seal(plain, passphrase, rootKeyWorkFactor)
	if err != nil {
		return nil, wrapError(certportal.Internal, err, "could not encrypt the root key")
	}
	return b, nil
}

// writeNewFile writes data to path, which must not exist, so that path
// appears complete and synced or not at all, and an existing file is never
// replaced.
func writeNewFile(path string, data []byte) error {
	err := atomicfile.WriteNew(path, data, 0o600)
	switch {
	case errors.Is(err, fs.ErrExist):
		return errorf(certportal.Conflict, "%s exists; choose a new file name, an export never replaces a file", path)
	case err != nil:
		return wrapError(certportal.Internal, err, "could not write "+path)
	}
	return nil
}

// sameKey reports whether two private keys are the same.
func sameKey(a, b crypto.Signer) bool {
	k, ok := a.(interface{ Equal(crypto.PrivateKey) bool })
	return ok && k.Equal(b)
}

// OpenRootKey decrypts a root key file that ExportRootKey wrote (armored
// or binary age, scrypt) with passphrase and parses the key in it. It is
// the parser of the --root-key file, outside input: its size, scrypt work
// factor and plaintext are bounded. A wrong passphrase is an Unauthorized
// error; anything that is not such a file is Invalid. It does not check
// that the key is the root's: UseRootKey does.
func OpenRootKey(data []byte, passphrase string) (crypto.Signer, error) {
	notOurs := errorf(certportal.Invalid, "the root key file is not a root key exported by certportal ca root-key export (or it is damaged)")
	if len(data) > maxRootKeyFile {
		return nil, notOurs
	}
	if passphrase == "" {
		return nil, errorf(certportal.Invalid, "the passphrase of the root key file is empty")
	}
	plain, err := sealed.Open(data, passphrase, maxRootKeyWorkFactor, maxRootKeyFile)
	if errors.Is(err, sealed.ErrWrongPassphrase) {
		return nil, wrapError(certportal.Unauthorized, err, "the passphrase of the root key file is wrong; nothing was changed")
	}
	if err != nil {
		e := *notOurs
		e.Err = err
		return nil, &e
	}
	key, err := parseKeyPEM(plain)
	if err != nil {
		e := *notOurs
		e.Err = err
		return nil, &e
	}
	return key, nil
}
