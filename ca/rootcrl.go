package ca

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/certportal/certportal"
)

// The root CRL lists the revoked certificates the root signed (issuing
// CAs). Since the portal does not hold the root key, it cannot re-sign that
// CRL daily as it does the issuing CAs': an administrator signs it with the
// root key (init, ca rollover, ca root-crl) into DATA/ca/root.crl, valid
// for a long time, and serve publishes that file.

// RootCRLFile is the root CRL in the CA directory (PEM "X509 CRL").
const RootCRLFile = "root.crl"

// DefaultRootCRLLifetime is the time from thisUpdate to nextUpdate of the
// root CRL: a year, the longest the CA/Browser Forum's Baseline
// Requirements (4.9.7) allow for the CRL of a CA that signs only CAs, so
// an administrator brings the root key out once a year.
const DefaultRootCRLLifetime = 365 * 24 * time.Hour

// RootCRL is the root CRL as published: its DER and what clients check.
type RootCRL struct {
	DER                    []byte
	Number                 *big.Int
	ThisUpdate, NextUpdate time.Time
}

// rootCRLFile is the last root.crl read, with the file it came from.
type rootCRLFile struct {
	fi  fs.FileInfo
	crl *RootCRL
}

// SignRootCRL signs the root CRL with the loaded root key: number is its
// CRL number (kept in the database by the caller, never reused), revoked
// the certificates the root revoked. nextUpdate is lifetime after now, but
// never past the root's own expiry.
func (a *Authority) SignRootCRL(number int64, revoked []certportal.Revocation, lifetime time.Duration) (*RootCRL, error) {
	if err := a.needRootKey("signing the root CRL"); err != nil {
		return nil, err
	}
	if lifetime <= 0 {
		return nil, errorf(certportal.Invalid, "the root CRL needs a positive lifetime, not %v", lifetime)
	}
	now := a.now().UTC().Truncate(time.Second)
	if !now.Before(a.Root.NotAfter) {
		return nil, errorf(certportal.Unavailable, "the root %s expired on %s; a new installation is needed", a.Root.Subject.CommonName, a.Root.NotAfter.Format(time.DateOnly))
	}
	if left := a.Root.NotAfter.Sub(now); lifetime > left {
		lifetime = left
	}
	der, _, _, err := a.signCRL(a.Root, a.rootKey, number, revoked, lifetime)
	if err != nil {
		return nil, err
	}
	return a.parseRootCRL(der)
}

// RootCRL returns the published root CRL, DATA/ca/root.crl. The file is
// read again whenever it changed, so a root CRL that ca root-crl signs next
// to a running portal is served at once. It must be signed by the root:
// anything else is refused rather than published. A missing file is a
// NotFound error.
func (a *Authority) RootCRL() (*RootCRL, error) {
	p := filepath.Join(a.dir, RootCRLFile)
	a.rootCRLMu.Lock()
	defer a.rootCRLMu.Unlock()
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errorf(certportal.NotFound, "%s is missing; sign the root CRL with certportal ca root-crl", p)
	}
	if err != nil {
		return nil, wrapError(certportal.Internal, err, p+" cannot be read")
	}
	if c := a.rootCRL; c != nil && os.SameFile(c.fi, fi) && c.fi.Size() == fi.Size() && c.fi.ModTime().Equal(fi.ModTime()) {
		return c.crl, nil
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, wrapError(certportal.Internal, err, p+" cannot be read")
	}
	der := data
	if block, _ := pem.Decode(data); block != nil {
		if block.Type != "X509 CRL" {
			return nil, errorf(certportal.Invalid, "%s is not a CRL (PEM %q)", p, block.Type)
		}
		der = block.Bytes
	}
	crl, err := a.parseRootCRL(der)
	if err != nil {
		return nil, wrapError(certportal.Invalid, err, p+": "+certportal.ErrorMessage(err))
	}
	a.rootCRL = &rootCRLFile{fi: fi, crl: crl}
	return crl, nil
}

// parseRootCRL parses a root CRL and checks that the root signed it, for
// the root, with a CRL number and a nextUpdate.
func (a *Authority) parseRootCRL(der []byte) (*RootCRL, error) {
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, wrapError(certportal.Invalid, err, "the root CRL cannot be parsed")
	}
	if !bytes.Equal(crl.RawIssuer, a.Root.RawSubject) {
		return nil, errorf(certportal.Invalid, "the root CRL is not issued by the root %s", a.Root.Subject.CommonName)
	}
	if err := crl.CheckSignatureFrom(a.Root); err != nil {
		return nil, wrapError(certportal.Invalid, err, "the root CRL is not signed by the root "+a.Root.Subject.CommonName)
	}
	if crl.Number == nil || crl.NextUpdate.IsZero() {
		return nil, errorf(certportal.Invalid, "the root CRL has no CRL number or no nextUpdate")
	}
	return &RootCRL{DER: der, Number: crl.Number, ThisUpdate: crl.ThisUpdate, NextUpdate: crl.NextUpdate}, nil
}

// SaveRootCRL writes crl to DATA/ca/root.crl (PEM, 0644, atomically, under
// the directory's lock). It refuses a CRL that the root did not sign, and
// one whose number is not above that of the root CRL in place: CRL numbers
// must grow (RFC 5280 section 5.2.3), and a client that saw the newer CRL
// must never be handed an older one.
func (a *Authority) SaveRootCRL(crl *RootCRL) error {
	if _, err := a.parseRootCRL(crl.DER); err != nil {
		return err
	}
	unlock, err := lockDir(a.dir)
	if err != nil {
		return err
	}
	defer unlock()
	cur, err := a.RootCRL()
	switch {
	case certportal.ErrorCodeOf(err) == certportal.NotFound:
	case err != nil:
		// A damaged or foreign file is replaced by a good one.
	case cur.Number.Cmp(crl.Number) >= 0:
		return errorf(certportal.Conflict, "the root CRL in place has number %s, not below the new one's %s; CRL numbers are never reused", cur.Number, crl.Number)
	}
	return writeFileAtomic(filepath.Join(a.dir, RootCRLFile), pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: crl.DER}), 0o644)
}
