package clientstore

import (
	"bytes"
	"crypto/x509"
	"strings"
	"unicode/utf8"

	"github.com/certportal/certportal"
	pkcs12 "software.sslmate.com/src/go-pkcs12"
)

// MinExportPassword is the shortest PKCS#12 password Export accepts, in
// characters (the product's rule for every PKCS#12 file).
const MinExportPassword = 12

// exportIterations is the PBKDF2 (and MAC key derivation) iteration count
// of modern exports: the product asks for at least 10,000; 100,000 keeps a
// guessed-password attack slow while Windows, Java and NSS open the file in
// well under a second.
const exportIterations = 100_000

// modernEncoder writes AES-256-CBC/PBKDF2-HMAC-SHA-256 with an HMAC-SHA-256
// MAC, which OpenSSL 3 (without -legacy), Java 12+ and NSS open.
var modernEncoder = pkcs12.Modern2023.WithIterations(exportIterations)

// legacyEncoder writes 3DES/SHA-1 for systems that cannot read AES
// (macOS Keychain, Windows before Server 2019). Its iteration counts are
// the library's (2048, MAC 1), the values those systems are known to accept.
var legacyEncoder = pkcs12.LegacyDES

// Export returns the personal certificate with the given thumbprint, its
// private key and the CA certificates of the store that chain it
// (intermediates, then the root), as a PKCS#12 file protected by password.
// thumbprint "" means the only personal certificate; when there are several,
// Export returns Invalid naming them. The file is modern (AES-256, PBKDF2
// with 100,000 iterations) unless legacy asks for 3DES/SHA-1. The password
// must have at least MinExportPassword characters.
//
// go-pkcs12 v0.7.4 writes no friendlyName on the key and certificate bags
// (only its trust-store encoder can), so importers name the entry
// themselves (keytool: "1"; NSS: from the subject).
func (s *Store) Export(thumbprint, password string, legacy bool) ([]byte, error) {
	if n := utf8.RuneCountInString(password); n < MinExportPassword {
		return nil, errorf(certportal.Invalid, "the PKCS#12 password must have at least %d characters (it has %d)", MinExportPassword, n)
	}
	if !utf8.ValidString(password) {
		return nil, errorf(certportal.Invalid, "the PKCS#12 password is not valid UTF-8 text")
	}
	for _, r := range password {
		// PKCS#12 passwords are BMPString (UTF-16 without surrogates).
		if r > 0xFFFF {
			return nil, errorf(certportal.Invalid, "the PKCS#12 password may not contain emoji or other characters outside the Basic Multilingual Plane")
		}
	}
	unlock, err := s.lock(false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	e, err := s.pickPersonal(thumbprint)
	if err != nil {
		return nil, err
	}
	key, err := s.readKey(e.Thumbprint)
	if err != nil {
		return nil, err
	}
	cas, err := s.list(Intermediate, Root)
	if err != nil {
		return nil, err
	}
	chain, _ := buildChain(e.Cert, cas)
	enc := modernEncoder
	if legacy {
		enc = legacyEncoder
	}
	p12, err := enc.Encode(key, e.Cert, chain, password)
	if err != nil {
		return nil, wrapf(certportal.Internal, err, "cannot write the PKCS#12 file")
	}
	return p12, nil
}

// pickPersonal finds the personal certificate a caller names ("" = the only
// one). The caller holds the lock.
func (s *Store) pickPersonal(thumbprint string) (*Entry, error) {
	personal, err := s.list(Personal)
	if err != nil {
		return nil, err
	}
	if thumbprint == "" {
		switch len(personal) {
		case 0:
			return nil, errorf(certportal.NotFound, "there is no certificate in the personal store; import one with \"certportal store import\"")
		case 1:
			return &personal[0], nil
		}
		return nil, errorf(certportal.Invalid, "the personal store holds %d certificates; choose one with --thumbprint: %s", len(personal), describe(personal))
	}
	want, err := normalizeThumbprint(thumbprint)
	if err != nil {
		return nil, err
	}
	for i := range personal {
		if personal[i].matches(want) {
			return &personal[i], nil
		}
	}
	return nil, errorf(certportal.NotFound, "no certificate with thumbprint %s in the personal store", want)
}

// describe lists entries for a message: "THUMBPRINT (Issued To, expires DATE)".
func describe(es []Entry) string {
	var parts []string
	for _, e := range es {
		parts = append(parts, e.Thumbprint+" ("+e.IssuedTo+", expires "+e.NotAfter.UTC().Format("2006-01-02")+")")
	}
	return strings.Join(parts, "; ")
}

// maxChain bounds the chain walk; real hierarchies are two or three deep.
const maxChain = 8

// buildChain walks from leaf up through the CA entries, each step to a
// certificate whose subject is the current issuer and whose key verifies
// the current signature, and stops at a certificate of the root store or
// when no issuer is found. It returns the CA certificates in order (leaf
// excluded) and whether the chain ends at a root of the store. Validity
// dates are not checked: an expired chain still exports and lists.
func buildChain(leaf *x509.Certificate, cas []Entry) ([]*x509.Certificate, bool) {
	var chain []*x509.Certificate
	cur := leaf
	used := map[string]bool{string(leaf.Raw): true}
	for len(chain) < maxChain {
		var best *Entry
		for i := range cas {
			c := &cas[i]
			if used[string(c.Cert.Raw)] || !bytes.Equal(c.Cert.RawSubject, cur.RawIssuer) {
				continue
			}
			if cur.CheckSignatureFrom(c.Cert) != nil {
				continue
			}
			// Of two matching issuers (a CA renewed with the same
			// key), prefer the store's root, then the later expiry.
			if best == nil || (c.Store == Root && best.Store != Root) ||
				(c.Store == best.Store && c.Cert.NotAfter.After(best.Cert.NotAfter)) {
				best = c
			}
		}
		if best == nil {
			return chain, false
		}
		chain = append(chain, best.Cert)
		used[string(best.Cert.Raw)] = true
		if best.Store == Root {
			return chain, true
		}
		cur = best.Cert
	}
	return chain, false
}
