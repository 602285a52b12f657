package ca

import (
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"math/big"
	"strings"
	"time"

	"github.com/certportal/certportal"
)

// CRLLifetime is the time from thisUpdate to nextUpdate of a CRL. The
// portal re-signs daily and at every revocation, so a week leaves ample
// room for a portal that is down for a while (SPEC.md "Revocation data").
const CRLLifetime = 7 * 24 * time.Hour

// SignCRL signs the CRL of an issuing CA (issuer is its common name; any of
// Issuers, so an older CA keeps signing its CRL after a rollover) or, when
// the root key is loaded, of the root (the root's common name). number is
// the CRL number, which the caller keeps in the database so it is never
// reused. thisUpdate is now and nextUpdate CRLLifetime later; a reason code
// is written only for reasons other than none and unspecified (RFC 5280
// section 5.3.1 asks to omit unspecified). An unknown issuer is a NotFound
// error. The root CRL that is published is signed by SignRootCRL.
func (a *Authority) SignCRL(issuer string, number int64, revoked []certportal.Revocation) (der []byte, thisUpdate, nextUpdate time.Time, err error) {
	if ic := a.issuerByCN(issuer); ic != nil {
		return a.signCRL(ic.cert, ic.key, number, revoked, CRLLifetime)
	}
	if issuer == a.Root.Subject.CommonName {
		if err := a.needRootKey("signing the root CRL"); err != nil {
			return nil, time.Time{}, time.Time{}, err
		}
		return a.signCRL(a.Root, a.rootKey, number, revoked, CRLLifetime)
	}
	return nil, time.Time{}, time.Time{}, errorf(certportal.NotFound, "there is no CA named %q; the CAs are %s", issuer, strings.Join(a.caNames(), ", "))
}

// signCRL signs a CRL of cert with key, valid for lifetime from now.
func (a *Authority) signCRL(cert *x509.Certificate, key crypto.Signer, number int64, revoked []certportal.Revocation, lifetime time.Duration) (der []byte, thisUpdate, nextUpdate time.Time, err error) {
	issuer := cert.Subject.CommonName
	if number < 0 {
		return nil, time.Time{}, time.Time{}, errorf(certportal.Invalid, "the CRL number %d is negative", number)
	}
	thisUpdate = a.now().UTC().Truncate(time.Second)
	nextUpdate = thisUpdate.Add(lifetime)
	entries, ok := sortedEntries(revoked, thisUpdate)
	if !ok {
		if entries, err = anyEntries(revoked, thisUpdate); err != nil {
			return nil, time.Time{}, time.Time{}, err
		}
	}
	der, err = x509.CreateRevocationList(randOr(a.Rand), &x509.RevocationList{
		SignatureAlgorithm:        signatureAlgorithm(key.Public()),
		RevokedCertificateEntries: entries,
		Number:                    big.NewInt(number),
		ThisUpdate:                thisUpdate,
		NextUpdate:                nextUpdate,
	}, cert, key)
	if err != nil {
		return nil, time.Time{}, time.Time{}, wrapError(certportal.Internal, err, "could not sign the CRL of "+issuer)
	}
	return der, thisUpdate, nextUpdate, nil
}

// sortedEntries is the fast path for what the database hands over: serials
// in canonical form (certportal.FormatSerial: upper-case hex, even length,
// no leading zero byte) in strictly ascending order. Canonical strings are
// equal exactly when the numbers are, so strict order proves there are no
// duplicates without a map, and each serial is decoded with hex rather
// than parsed and re-formatted (together about a quarter of the signing
// time of a million-entry CRL). It returns false, having checked nothing
// else, when any serial is out of order or not canonical; anyEntries then
// does the careful work.
func sortedEntries(revoked []certportal.Revocation, thisUpdate time.Time) ([]x509.RevocationListEntry, bool) {
	entries := make([]x509.RevocationListEntry, len(revoked))
	prev := ""
	for i, r := range revoked {
		if !canonicalSerial(r.Serial) || (i > 0 && r.Serial <= prev) {
			return nil, false
		}
		prev = r.Serial
		b, err := hex.DecodeString(r.Serial)
		if err != nil {
			return nil, false
		}
		entries[i] = crlEntry(new(big.Int).SetBytes(b), r, thisUpdate)
	}
	return entries, true
}

// canonicalSerial reports whether s is a serial as FormatSerial writes it,
// at most 20 bytes long (RFC 5280 section 4.1.2.2).
func canonicalSerial(s string) bool {
	if len(s) == 0 || len(s)%2 == 1 || len(s) > 40 || (len(s) > 2 && s[0] == '0' && s[1] == '0') {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// anyEntries accepts serials in any form NormalizeSerial does, in any
// order, and drops a serial listed twice, which would make the CRL
// ambiguous.
func anyEntries(revoked []certportal.Revocation, thisUpdate time.Time) ([]x509.RevocationListEntry, error) {
	entries := make([]x509.RevocationListEntry, 0, len(revoked))
	seen := map[string]bool{}
	for _, r := range revoked {
		hex, err := certportal.NormalizeSerial(r.Serial)
		if err != nil {
			return nil, err
		}
		if seen[hex] {
			continue
		}
		seen[hex] = true
		serial, _ := new(big.Int).SetString(hex, 16)
		entries = append(entries, crlEntry(serial, r, thisUpdate))
	}
	return entries, nil
}

// crlEntry is the CRL entry of one revocation.
func crlEntry(serial *big.Int, r certportal.Revocation, thisUpdate time.Time) x509.RevocationListEntry {
	at := r.Time.UTC().Truncate(time.Second)
	if at.IsZero() || at.After(thisUpdate) {
		// A revocation recorded by a replica whose clock runs ahead
		// must not postdate the CRL (RFC 5280 section 5.3.2).
		at = thisUpdate
	}
	reason := int(r.Reason)
	if r.Reason == certportal.ReasonNone {
		reason = 0 // zero omits the extension
	}
	return x509.RevocationListEntry{SerialNumber: serial, RevocationTime: at, ReasonCode: reason}
}
