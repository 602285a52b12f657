package clientstore

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
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
// and -legacy) and by Java's keytool are read.
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
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, wrapf(certportal.Invalid, err, "the private key in the PKCS#12 file is of a type certportal cannot store")
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})

	out := []Imported{{Entry: newEntry(Personal, leaf)}}
	out[0].HasKey = true
	for _, ca := range cas {
		store := Intermediate
		if isSelfSigned(ca) {
			store = Root
		}
		out = append(out, Imported{Entry: newEntry(store, ca)})
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
				f, err := stage(dir, e.Thumbprint+".key", keyPEM)
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
	switch err := checkIterations(p12); {
	case errors.Is(err, errTooManyIterations):
		return nil, nil, nil, wrapf(certportal.Invalid, err, "the PKCS#12 file asks for more than %d key-derivation iterations; it is damaged or was not made for certificate import", maxKDFIterations)
	case err != nil:
		return nil, nil, nil, wrapf(certportal.Invalid, err, "the file is not a valid PKCS#12 file, or it is damaged")
	}
	k, first, rest, err := pkcs12.DecodeChain(p12, password)
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

// decodeError turns a go-pkcs12 error into a sentence for the user; the
// library's error stays as the cause for logs.
func decodeError(err error) error {
	var notImpl pkcs12.NotImplementedError
	switch {
	case errors.Is(err, pkcs12.ErrIncorrectPassword):
		return wrapf(certportal.Invalid, err, "the PKCS#12 password is wrong")
	case errors.Is(err, pkcs12.ErrDecryption):
		// A file without a MAC, or whose MAC passed but whose content
		// does not decrypt: the library cannot tell which.
		return wrapf(certportal.Invalid, err, "the PKCS#12 password is wrong, or the file is damaged")
	case errors.As(err, &notImpl):
		return wrapf(certportal.Invalid, err, "the PKCS#12 file uses a form certportal cannot read (it must hold one private key and its certificates)")
	case err.Error() == "pkcs12: private key missing":
		return wrapf(certportal.Invalid, err, "the PKCS#12 file holds no private key; export the certificate with its private key")
	case err.Error() == "pkcs12: certificate missing":
		return wrapf(certportal.Invalid, err, "the PKCS#12 file holds no certificate")
	case err.Error() == "pkcs12: expected exactly one key bag":
		return wrapf(certportal.Invalid, err, "the PKCS#12 file holds more than one private key; export one certificate at a time")
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
