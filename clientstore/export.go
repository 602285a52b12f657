package clientstore

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/internal/p12"
)

// Export returns the personal certificate with the given thumbprint, its
// private key and the CA certificates of the store that chain it
// (intermediates, then the root), as a PKCS#12 file protected by password.
// thumbprint "" means the only personal certificate; when there are several,
// Export returns Invalid naming them. The file is modern (AES-256, PBKDF2
// with 100,000 iterations) unless legacy asks for 3DES/SHA-1, written by
// internal/p12 like the portal's own files; the password follows
// certportal.ValidateP12Password.
//
// go-pkcs12 v0.7.4 writes no friendlyName on the key and certificate bags
// (only its trust-store encoder can), so importers name the entry
// themselves (keytool: "1"; NSS: from the subject).
func (s *Store) Export(thumbprint, password string, legacy bool) ([]byte, error) {
	if err := certportal.ValidateP12Password(password); err != nil {
		return nil, err
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
	file, err := p12.Encode(nil, key, e.Cert, chain, password, legacy)
	if err != nil {
		return nil, wrapf(certportal.Internal, err, "cannot write the PKCS#12 file")
	}
	return file, nil
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
		return nil, errorf(certportal.Invalid, "the personal store holds %d certificates; choose one with --thumbprint (the newest is usually the current one):%s", len(personal), describePersonal(personal, time.Now()))
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

// describePersonal lists personal certificates for a choice, one a line
// and newest first: Issued To, Expiration and Thumbprint, the newest and
// the expired ones marked. Whether one was revoked only the portal knows.
func describePersonal(es []Entry, now time.Time) string {
	sorted := slices.Clone(es)
	slices.SortStableFunc(sorted, func(a, b Entry) int { return b.Cert.NotBefore.Compare(a.Cert.NotBefore) })
	var b strings.Builder
	for i, e := range sorted {
		var notes []string
		if i == 0 {
			notes = append(notes, "newest")
		}
		if now.After(e.NotAfter) {
			notes = append(notes, "expired")
		}
		fmt.Fprintf(&b, "\n  Issued To: %s   Expiration: %s   Thumbprint: %s", e.IssuedTo, e.NotAfter.UTC().Format(time.DateOnly), e.Thumbprint)
		if len(notes) > 0 {
			fmt.Fprintf(&b, "   (%s)", strings.Join(notes, ", "))
		}
	}
	return b.String()
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
