// Package clientstore is the user's side of certportal: a certificate
// manager that keeps the user's certificates the way a desktop one does, in
// three stores — personal (the user's own certificates with their private
// keys), intermediate (issuing CAs) and root (trust anchors). It imports and
// exports password-protected PKCS#12 files, lists and deletes certificates,
// and signs in to a portal with a personal certificate (Whoami).
//
// A store directory holds one sub-directory per store. Each certificate is
// one PEM file named after its thumbprint (<THUMBPRINT>.pem); the private key
// of a personal certificate sits next to it as <THUMBPRINT>.key (PKCS#8 PEM,
// encrypted with age when the store's keys have a passphrase: keyfile.go).
// Files are 0600 and directories 0700, every file is written atomically
// (temporary file, fsync, rename), and changes take an exclusive lock on the
// store's lock file so two commands running at once cannot interleave.
package clientstore

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/internal/atomicfile"
)

// The names of the three stores, as the command line takes them.
const (
	Personal     = "personal"
	Intermediate = "intermediate"
	Root         = "root"
)

// storeNames lists the stores in the order a desktop certificate manager
// shows them; List sorts by this order.
var storeNames = []string{Personal, Intermediate, Root}

// lockFile is the file that Store methods flock; it holds no data.
const lockFile = ".lock"

// Store is a store directory opened by Open. Its methods are safe to call
// from several goroutines and processes at once: changes hold an exclusive
// file lock, reads a shared one.
type Store struct {
	dir  string
	pass *passphrase // set by SetPassphrase
}

// Entry describes one certificate in a store, with the columns a desktop
// certificate manager shows.
type Entry struct {
	Store      string // personal / intermediate / root
	IssuedTo   string // subject CN (or full subject if no CN)
	IssuedBy   string // issuer CN (or full issuer if no CN)
	NotAfter   time.Time
	Serial     string            // even-length upper hex (certportal.FormatSerial)
	Thumbprint string            // SHA-1 upper hex (certportal.Thumbprint)
	SHA256     string            // SHA-256 upper hex (certportal.Fingerprint256)
	HasKey     bool              // a private key is stored with it (personal only)
	Cert       *x509.Certificate `json:"-"`
}

// Imported is one certificate that Import found in a PKCS#12 file. Added is
// false when the store held it already.
type Imported struct {
	Entry
	Added bool
}

// DefaultDir returns where the user's stores live when no directory is
// given: $XDG_DATA_HOME/certportal/store, else
// ~/.local/share/certportal/store (the XDG Base Directory default).
func DefaultDir() (string, error) {
	if x := os.Getenv("XDG_DATA_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "certportal", "store"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", wrapf(certportal.Internal, err, "cannot find your home directory for the certificate store; give a directory with --store-dir")
	}
	return filepath.Join(home, ".local", "share", "certportal", "store"), nil
}

// Open opens the store directory dir, creating it and its three stores
// (mode 0700) when they do not exist.
func Open(dir string) (*Store, error) {
	if dir == "" {
		return nil, errorf(certportal.Invalid, "no store directory given")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, wrapf(certportal.Invalid, err, "cannot use %q as a store directory", dir)
	}
	for _, name := range storeNames {
		if err := os.MkdirAll(filepath.Join(abs, name), 0o700); err != nil {
			return nil, wrapf(certportal.Unavailable, err, "cannot create the certificate store in %s", abs)
		}
	}
	f, err := os.OpenFile(filepath.Join(abs, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, wrapf(certportal.Unavailable, err, "cannot create the lock file of the certificate store in %s", abs)
	}
	f.Close()
	return &Store{dir: abs}, nil
}

// Dir returns the absolute path of the store directory.
func (s *Store) Dir() string { return s.dir }

// List returns the certificates of one store, or of all three when store is
// "", sorted by store (personal, intermediate, root) and then by IssuedTo.
func (s *Store) List(store string) ([]Entry, error) {
	names, err := storeArg(store)
	if err != nil {
		return nil, err
	}
	unlock, err := s.lock(false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return s.list(names...)
}

// Delete removes the certificate with the given thumbprint from store (""
// means whichever store holds it), and its private key when it is a personal
// certificate. The thumbprint may be typed in any case, with colons, spaces
// or the invisible U+200E that Windows adds when one is copied; a SHA-256
// fingerprint is accepted too. An unknown thumbprint is NotFound; one held
// by several stores while store is "" is Invalid.
func (s *Store) Delete(thumbprint, store string) error {
	names, err := storeArg(store)
	if err != nil {
		return err
	}
	want, err := normalizeThumbprint(thumbprint)
	if err != nil {
		return err
	}
	unlock, err := s.lock(true)
	if err != nil {
		return err
	}
	defer unlock()
	all, err := s.list(names...)
	if err != nil {
		return err
	}
	var found []Entry
	for _, e := range all {
		if e.matches(want) {
			found = append(found, e)
		}
	}
	switch len(found) {
	case 0:
		where := "any store"
		if store != "" {
			where = "the " + store + " store"
		}
		return errorf(certportal.NotFound, "no certificate with thumbprint %s in %s", want, where)
	case 1:
	default:
		var in []string
		for _, e := range found {
			in = append(in, e.Store)
		}
		return errorf(certportal.Invalid, "the certificate %s is in several stores (%s); say which with --store", want, strings.Join(in, ", "))
	}
	e := found[0]
	dir := filepath.Join(s.dir, e.Store)
	if err := os.Remove(filepath.Join(dir, e.Thumbprint+".pem")); err != nil {
		return wrapf(certportal.Unavailable, err, "cannot delete the certificate %s from the %s store", e.Thumbprint, e.Store)
	}
	if err := os.Remove(filepath.Join(dir, e.Thumbprint+".key")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return wrapf(certportal.Unavailable, err, "deleted the certificate %s but not its private key; delete %s by hand", e.Thumbprint, filepath.Join(dir, e.Thumbprint+".key"))
	}
	return syncDir(dir)
}

// matches reports whether e is the certificate named by a normalised SHA-1
// thumbprint or SHA-256 fingerprint.
func (e *Entry) matches(want string) bool {
	return e.Thumbprint == want || e.SHA256 == want
}

// storeArg checks a store name given by a caller and returns the stores it
// names ("" names all three).
func storeArg(store string) ([]string, error) {
	if store == "" {
		return storeNames, nil
	}
	if slices.Contains(storeNames, store) {
		return []string{store}, nil
	}
	return nil, errorf(certportal.Invalid, "there is no store %q; the stores are personal, intermediate and root", store)
}

// normalizeThumbprint accepts a thumbprint as a user types or pastes it and
// returns the canonical upper-case hex.
func normalizeThumbprint(t string) (string, error) {
	h, err := certportal.NormalizeHex(t)
	if err != nil {
		return "", wrapf(certportal.Invalid, err, "%q is not a thumbprint: a thumbprint is 40 hexadecimal digits, as \"store list\" shows", t)
	}
	if len(h) != 40 && len(h) != 64 {
		return "", errorf(certportal.Invalid, "%q is not a thumbprint: a thumbprint is 40 hexadecimal digits (SHA-1), as \"store list\" shows", t)
	}
	return h, nil
}

// list reads the named stores. The caller holds the lock.
func (s *Store) list(names ...string) ([]Entry, error) {
	var out []Entry
	for _, name := range names {
		dir := filepath.Join(s.dir, name)
		des, err := os.ReadDir(dir)
		if err != nil {
			return nil, wrapf(certportal.Unavailable, err, "cannot read the %s store in %s", name, s.dir)
		}
		keys := map[string]bool{}
		for _, de := range des {
			if n := de.Name(); strings.HasSuffix(n, ".key") && !strings.HasPrefix(n, atomicfile.TempPrefix) {
				keys[strings.TrimSuffix(n, ".key")] = true
			}
		}
		for _, de := range des {
			n := de.Name()
			if !de.Type().IsRegular() || strings.HasPrefix(n, atomicfile.TempPrefix) || !strings.HasSuffix(n, ".pem") {
				continue
			}
			data, err := os.ReadFile(filepath.Join(dir, n))
			if err != nil {
				return nil, wrapf(certportal.Unavailable, err, "cannot read %s", filepath.Join(dir, n))
			}
			cert, err := parseCertPEM(data)
			if err != nil {
				return nil, wrapf(certportal.Internal, err, "the file %s in the certificate store is damaged; delete it and import the certificate again", filepath.Join(dir, n))
			}
			e := newEntry(name, cert)
			e.HasKey = name == Personal && keys[e.Thumbprint]
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b Entry) int {
		if c := slices.Index(storeNames, a.Store) - slices.Index(storeNames, b.Store); c != 0 {
			return c
		}
		if c := strings.Compare(a.IssuedTo, b.IssuedTo); c != 0 {
			return c
		}
		return strings.Compare(a.Thumbprint, b.Thumbprint)
	})
	return out, nil
}

// newEntry describes cert as it sits (or will sit) in store.
func newEntry(store string, cert *x509.Certificate) Entry {
	return Entry{
		Store:      store,
		IssuedTo:   displayName(cert.Subject.CommonName, cert.Subject.String()),
		IssuedBy:   displayName(cert.Issuer.CommonName, cert.Issuer.String()),
		NotAfter:   cert.NotAfter,
		Serial:     certportal.FormatSerial(cert.SerialNumber),
		Thumbprint: certportal.Thumbprint(cert.Raw),
		SHA256:     certportal.Fingerprint256(cert.Raw),
		Cert:       cert,
	}
}

func displayName(cn, full string) string {
	if cn != "" {
		return cn
	}
	return full
}

// parseCertPEM parses a file holding exactly one PEM CERTIFICATE block.
func parseCertPEM(data []byte) (*x509.Certificate, error) {
	b, rest := pem.Decode(data)
	if b == nil || b.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("not a single PEM certificate")
	}
	return x509.ParseCertificate(b.Bytes)
}

// readKey reads the private key stored with a personal certificate.
func (s *Store) readKey(thumbprint string) (crypto.Signer, error) {
	path := filepath.Join(s.dir, Personal, thumbprint+".key")
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errorf(certportal.Invalid, "the personal certificate %s has no private key in the store", thumbprint)
	}
	if err != nil {
		return nil, wrapf(certportal.Unavailable, err, "cannot read the private key of %s", thumbprint)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, wrapf(certportal.Unavailable, err, "cannot read the private key of %s", thumbprint)
	}
	if len(data) > maxKeyFile {
		return nil, errorf(certportal.Internal, "the private key file %s is damaged", path)
	}
	return s.parseKeyFile(path, data)
}

// errorf returns a *certportal.Error from this package.
func errorf(code certportal.ErrorCode, format string, args ...any) *certportal.Error {
	e := certportal.Errorf(code, format, args...)
	e.Op = "clientstore"
	return e
}

// wrapf returns a *certportal.Error from this package whose cause is err;
// the cause is kept for errors.Is/As and logs, and never shown in Message.
func wrapf(code certportal.ErrorCode, err error, format string, args ...any) *certportal.Error {
	e := errorf(code, format, args...)
	e.Err = err
	return e
}
