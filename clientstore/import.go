package clientstore

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/certportal/certportal"
	pkcs12 "software.sslmate.com/src/go-pkcs12"
)

// maxP12Size bounds what Import reads: a PKCS#12 of one key and a short
// chain is a few kilobytes, so anything near a megabyte is not one.
const maxP12Size = 1 << 20

// Import decodes a password-protected PKCS#12 (.p12/.pfx) file and puts its
// certificates in their stores: the certificate whose private key the file
// carries goes to personal with its key, each CA certificate to root when it
// is self-signed and to intermediate otherwise. Files written by the portal
// (modern AES-256/PBKDF2 or legacy 3DES), by openssl pkcs12 -export (default
// and -legacy), by Java's keytool and by NSS's pk12util (BER with
// indefinite lengths, as Firefox and Chromium on Linux export) are read.
//
// Everything is decoded and checked before anything is written, and then
// written all at once, so an error changes nothing. A certificate the store
// holds already (by thumbprint) is reported with Added false and not written
// again. The result lists the personal certificate first, then the CAs in
// the order of the file.
func (s *Store) Import(p12 []byte, password string) ([]Imported, error) {
	leaf, key, cas, err := decodeP12(p12, password)
	if err != nil {
		return nil, err
	}
	if _, err := x509.MarshalPKCS8PrivateKey(key); err != nil {
		return nil, wrapf(certportal.Invalid, err, "the private key in the PKCS#12 file is of a type certportal cannot store")
	}

	out := []Imported{{Entry: newEntry(Personal, leaf)}}
	out[0].HasKey = true
	for _, ca := range cas {
		store := Intermediate
		if isSelfSigned(ca) {
			store = Root
		}
		out = append(out, Imported{Entry: newEntry(store, ca)})
	}

	// Ask for the passphrase of the keys before taking the lock, not while
	// other commands wait for it.
	if seal, err := s.sealKeys(); err != nil {
		return nil, wrapf(certportal.Unavailable, err, "cannot read the certificate store in %s", s.dir)
	} else if seal {
		if _, err := s.passphrase(); err != nil {
			return nil, err
		}
	}
	unlock, err := s.lock(true)
	if err != nil {
		return nil, err
	}
	defer unlock()

	// Stage every new file first; the personal key and certificate are
	// renamed last, so a reader never sees a personal certificate whose CAs
	// are missing, and the key lands before the certificate that lists it.
	var staged []stagedFile
	var caFiles, leafFiles []stagedFile
	fail := func(err error) ([]Imported, error) {
		discard(staged)
		return nil, wrapf(certportal.Unavailable, err, "cannot write to the certificate store in %s; nothing was imported", s.dir)
	}
	for i := range out {
		e := &out[i]
		dir := filepath.Join(s.dir, e.Store)
		certPath := filepath.Join(dir, e.Thumbprint+".pem")
		haveCert, err := exists(certPath)
		if err != nil {
			return fail(err)
		}
		e.Added = !haveCert
		if e.Store == Personal {
			haveKey, err := exists(filepath.Join(dir, e.Thumbprint+".key"))
			if err != nil {
				return fail(err)
			}
			if !haveKey {
				seal, err := s.sealKeys()
				if err != nil {
					return fail(err)
				}
				keyFile, err := s.keyFile(key, seal)
				if err != nil {
					discard(staged)
					return nil, err
				}
				f, err := stage(dir, e.Thumbprint+".key", keyFile)
				if err != nil {
					return fail(err)
				}
				staged = append(staged, f)
				leafFiles = append(leafFiles, f)
			}
		}
		if haveCert {
			continue
		}
		f, err := stage(dir, e.Thumbprint+".pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.Cert.Raw}))
		if err != nil {
			return fail(err)
		}
		staged = append(staged, f)
		if e.Store == Personal {
			leafFiles = append(leafFiles, f)
		} else {
			caFiles = append(caFiles, f)
		}
	}
	if err := commit(append(caFiles, leafFiles...)); err != nil {
		return nil, wrapf(certportal.Unavailable, err, "cannot write to the certificate store in %s; nothing was imported", s.dir)
	}
	return out, nil
}

// decodeP12 decodes a PKCS#12 file and returns the certificate that belongs
// to its private key, the key, and the other certificates (duplicates
// dropped), turning every failure into a sentence for the user.
func decodeP12(p12 []byte, password string) (leaf *x509.Certificate, key crypto.Signer, cas []*x509.Certificate, err error) {
	switch {
	case len(p12) == 0:
		return nil, nil, nil, errorf(certportal.Invalid, "the PKCS#12 file is empty")
	case len(p12) > maxP12Size:
		return nil, nil, nil, errorf(certportal.Invalid, "the file is too large to be a PKCS#12 certificate file")
	case bytes.Contains(p12[:min(len(p12), 64)], []byte("-----BEGIN")):
		return nil, nil, nil, errorf(certportal.Invalid, "the file is PEM text, not a PKCS#12 (.p12/.pfx) file")
	}
	pf, err := parsePFX(p12)
	if err != nil {
		return nil, nil, nil, decodeError(err)
	}
	switch err := checkIterations(pf.normalised()); {
	case errors.Is(err, errTooManyIterations):
		return nil, nil, nil, wrapf(certportal.Invalid, err, "the PKCS#12 file asks for more than %d key-derivation iterations; it is damaged or was not made for certificate import", maxKDFIterations)
	case err != nil:
		return nil, nil, nil, wrapf(certportal.Invalid, err, "the file is not a valid PKCS#12 file, or it is damaged")
	}
	k, first, rest, err := decodePFX(pf, password)
	if err != nil {
		return nil, nil, nil, decodeError(err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, nil, nil, errorf(certportal.Invalid, "the private key in the PKCS#12 file is of a type certportal cannot use")
	}
	// DecodeChain takes the first certificate for the leaf; not every
	// writer puts it first, so look for the one that matches the key.
	all := append([]*x509.Certificate{first}, rest...)
	for _, c := range all {
		if samePublicKey(c.PublicKey, signer.Public()) {
			leaf = c
			break
		}
	}
	if leaf == nil {
		return nil, nil, nil, errorf(certportal.Invalid, "the private key in the PKCS#12 file does not belong to its certificate")
	}
	seen := map[string]bool{string(leaf.Raw): true}
	for _, c := range all {
		if !seen[string(c.Raw)] {
			seen[string(c.Raw)] = true
			cas = append(cas, c)
		}
	}
	return leaf, signer, cas, nil
}

// Why a PKCS#12 file could not be read, decided by decodePFX from error
// types and the file's structure, never from the library's wording.
var (
	errP12Damaged       = errors.New("PKCS#12 file damaged")
	errP12WrongPassword = errors.New("PKCS#12 password wrong")
	errP12NoKey         = errors.New("PKCS#12 file holds no private key")
	errP12NoCert        = errors.New("PKCS#12 file holds no certificate")
	errP12ManyKeys      = errors.New("PKCS#12 file holds more than one private key")
)

// decodePFX decodes a parsed PKCS#12 file with go-pkcs12. Its own MAC is
// always checked over the bytes it was computed on; when the file is BER,
// the DER form is then handed to go-pkcs12 under a fresh MAC. Failures
// come back as one of the errP12 errors, or as go-pkcs12's
// NotImplementedError, wrapping the cause.
func decodePFX(f *pfxFile, password string) (any, *x509.Certificate, []*x509.Certificate, error) {
	if len(f.macData) > 0 {
		k, c, cas, err := pkcs12.DecodeChain(encodePFX(f.authSafe, f.macData), password)
		var syntax asn1.SyntaxError
		var structural asn1.StructuralError
		switch {
		case err == nil:
			return k, c, cas, nil
		case errors.Is(err, pkcs12.ErrIncorrectPassword):
			return nil, nil, nil, macFailed(f, password, err)
		case !f.changed, !errors.As(err, &syntax) && !errors.As(err, &structural):
			return nil, nil, nil, afterMAC(f, password, err)
		}
		// The MAC matched and go-pkcs12 stopped at the BER inside: go on
		// with the DER form.
	}
	k, c, cas, err := pkcs12.DecodeChain(remac(f.safes, password), password)
	switch {
	case err == nil:
		return k, c, cas, nil
	case len(f.macData) == 0:
		// No MAC: only decryption can say whether the password is right.
		return nil, nil, nil, macFailed(f, password, err)
	}
	return nil, nil, nil, afterMAC(f, password, err)
}

// macFailed decides, after the MAC did not match, between a wrong password
// and a damaged file: the password is tried on each encrypted part alone,
// and if any part decrypts and parses, the password is right and the
// file is damaged. With a wrong password no part opens (that would need a
// valid padding and valid ASN.1 from a wrong key).
func macFailed(f *pfxFile, password string, cause error) error {
	for _, part := range f.encryptedParts() {
		if _, err := pkcs12.ToPEM(remac(part, password), password); err == nil {
			return fmt.Errorf("%w: the password opens a part but the MAC does not match: %w", errP12Damaged, cause)
		}
	}
	return fmt.Errorf("%w: %w", errP12WrongPassword, cause)
}

// afterMAC classifies a failure once the MAC matched, that is once the
// password is known to be right.
func afterMAC(f *pfxFile, password string, cause error) error {
	var notImpl pkcs12.NotImplementedError
	if errors.As(cause, &notImpl) {
		return cause
	}
	if keys, certs, ok := f.countBags(password); ok {
		switch {
		case keys == 0:
			return fmt.Errorf("%w: %w", errP12NoKey, cause)
		case keys > 1:
			return fmt.Errorf("%w: %w", errP12ManyKeys, cause)
		case certs == 0:
			return fmt.Errorf("%w: %w", errP12NoCert, cause)
		}
	}
	return fmt.Errorf("%w: %w", errP12Damaged, cause)
}

// decodeError turns a decoding failure into a sentence for the user; the
// cause stays for logs.
func decodeError(err error) error {
	var notImpl pkcs12.NotImplementedError
	switch {
	case errors.Is(err, errP12WrongPassword):
		return wrapf(certportal.Invalid, err, "the PKCS#12 password is wrong")
	case errors.Is(err, errP12NoKey):
		return wrapf(certportal.Invalid, err, "the PKCS#12 file holds no private key; export the certificate with its private key")
	case errors.Is(err, errP12NoCert):
		return wrapf(certportal.Invalid, err, "the PKCS#12 file holds no certificate")
	case errors.Is(err, errP12ManyKeys):
		return wrapf(certportal.Invalid, err, "the PKCS#12 file holds more than one private key; export one certificate at a time")
	case errors.Is(err, errP12Damaged) && errors.Is(err, pkcs12.ErrIncorrectPassword):
		return wrapf(certportal.Invalid, err, "the PKCS#12 file is damaged: the password is right, but the file fails its integrity check; export it again")
	case errors.As(err, &notImpl):
		return wrapf(certportal.Invalid, err, "the PKCS#12 file uses a form certportal cannot read (it must hold one private key and its certificates)")
	}
	return wrapf(certportal.Invalid, err, "the file is not a valid PKCS#12 file, or it is damaged")
}

// samePublicKey reports whether two public keys are equal.
func samePublicKey(a, b crypto.PublicKey) bool {
	ak, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ak.Equal(b)
}

// isSelfSigned reports whether c names itself as issuer and its signature
// verifies with its own key: a root, fit for the root store.
func isSelfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawSubject, c.RawIssuer) &&
		c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil
}

// exists reports whether path exists.
func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return false, err
}
