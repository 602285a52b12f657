package ca

import (
	"crypto"
	"crypto/x509"
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
// Issuers, so an older CA keeps signing its CRL after a rollover) or of the
// root (the root's common name). number is the CRL number, which the
// caller keeps in the database so it is never reused. thisUpdate is now and
// nextUpdate CRLLifetime later; a reason code is written only for reasons
// other than none and unspecified (RFC 5280 section 5.3.1 asks to omit
// unspecified). An unknown issuer is a NotFound error.
func (a *Authority) SignCRL(issuer string, number int64, revoked []certportal.Revocation) (der []byte, thisUpdate, nextUpdate time.Time, err error) {
	var cert *x509.Certificate
	var key crypto.Signer
	if ic := a.issuerByCN(issuer); ic != nil {
		cert, key = ic.cert, ic.key
	} else if issuer == a.Root.Subject.CommonName {
		cert, key = a.Root, a.rootKey
	} else {
		return nil, time.Time{}, time.Time{}, errorf(certportal.NotFound, "there is no CA named %q; the CAs are %s", issuer, strings.Join(a.caNames(), ", "))
	}
	if number < 0 {
		return nil, time.Time{}, time.Time{}, errorf(certportal.Invalid, "the CRL number %d is negative", number)
	}
	thisUpdate = a.now().UTC().Truncate(time.Second)
	nextUpdate = thisUpdate.Add(CRLLifetime)
	entries := make([]x509.RevocationListEntry, 0, len(revoked))
	seen := map[string]bool{}
	for _, r := range revoked {
		hex, err := certportal.NormalizeSerial(r.Serial)
		if err != nil {
			return nil, time.Time{}, time.Time{}, err
		}
		if seen[hex] {
			continue // a serial listed twice would make the CRL ambiguous
		}
		seen[hex] = true
		serial, _ := new(big.Int).SetString(hex, 16)
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
		entries = append(entries, x509.RevocationListEntry{SerialNumber: serial, RevocationTime: at, ReasonCode: reason})
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
