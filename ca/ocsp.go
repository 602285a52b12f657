package ca

import (
	"bytes"
	"crypto"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"time"

	"github.com/certportal/certportal"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
	"golang.org/x/crypto/ocsp"
)

// OCSPRequest is the part of an RFC 6960 OCSP request the responder needs.
type OCSPRequest struct {
	Serial *big.Int
	// HashAlgorithm is the hash of the CertID: crypto.SHA1 or crypto.SHA256.
	HashAlgorithm crypto.Hash
	// Nonce is the RFC 8954 nonce (1 to 32 octets), nil when absent.
	Nonce []byte
	// KnownIssuer reports whether the CertID names one of the issuing CAs.
	KnownIssuer bool
	// Issuer is the common name of the issuing CA the CertID names (its
	// issuerKeyHash picks it among Issuers); "" with KnownIssuer means the
	// current issuing CA.
	Issuer string
}

// OCSPStatus is what the database says about a serial. Known false means
// the serial was never issued ("unknown"); a non-zero Revoked means revoked.
type OCSPStatus struct {
	Known   bool
	Revoked time.Time
	Reason  certportal.RevocationReason
}

// OCSPLifetime is the span from thisUpdate to nextUpdate of an OCSP
// response; cached responses are re-signed when less than a quarter is left.
const OCSPLifetime = 24 * time.Hour

// ocspCacheMax bounds the response cache (one entry per serial and CertID
// hash, about 600 bytes each, so at most some 60 MB).
const ocspCacheMax = 100_000

// maxNonce is the largest nonce RFC 8954 lets a responder accept.
const maxNonce = 32

var (
	oidSHA1       = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSHA256     = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidOCSPNonce  = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}
	oidOCSPBasic  = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 1}
	oidECDSA256   = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSA384   = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidSHA256RSA  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	asn1NullParam = asn1.RawValue{Tag: asn1.TagNull}
)

// issuerHashes are the issuerNameHash and issuerKeyHash of an issuing CA
// for each CertID hash certportal accepts, computed once at Load.
type issuerHashes map[crypto.Hash][2][]byte

func newIssuerHashes(issuer *x509.Certificate) (issuerHashes, error) {
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(issuer.RawSubjectPublicKeyInfo, &spki); err != nil {
		return nil, wrapError(certportal.Invalid, err, "the issuing CA's public key cannot be parsed")
	}
	n1, k1 := sha1.Sum(issuer.RawSubject), sha1.Sum(spki.PublicKey.RightAlign())
	n2, k2 := sha256.Sum256(issuer.RawSubject), sha256.Sum256(spki.PublicKey.RightAlign())
	return issuerHashes{
		crypto.SHA1:   {n1[:], k1[:]},
		crypto.SHA256: {n2[:], k2[:]},
	}, nil
}

// malformed is the error of every unusable OCSP request; the web package
// answers it with ocsp.MalformedRequestErrorResponse.
func malformed(why string) error {
	return errorf(certportal.Invalid, "malformed OCSP request: %s", why)
}

// ParseOCSPRequest parses a DER OCSPRequest (RFC 6960 section 4.1.1),
// including the request extensions that golang.org/x/crypto/ocsp does not
// expose, so the RFC 8954 nonce can be echoed. Exactly one CertID is
// supported; a signature, if any, is ignored. Bad input is an Invalid error.
func (a *Authority) ParseOCSPRequest(der []byte) (*OCSPRequest, error) {
	input := cryptobyte.String(der)
	var req, tbs cryptobyte.String
	if !input.ReadASN1(&req, cbasn1.SEQUENCE) || !input.Empty() {
		return nil, malformed("not a DER OCSPRequest")
	}
	if !req.ReadASN1(&tbs, cbasn1.SEQUENCE) {
		return nil, malformed("no tbsRequest")
	}
	// optionalSignature [0] is allowed and ignored: the responder answers
	// anyone, as public OCSP responders do.
	if !req.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) || !req.Empty() {
		return nil, malformed("trailing data after tbsRequest")
	}
	var version cryptobyte.String
	var hasVersion bool
	if !tbs.ReadOptionalASN1(&version, &hasVersion, cbasn1.Tag(0).Constructed().ContextSpecific()) {
		return nil, malformed("bad version")
	}
	if hasVersion {
		var v int64
		if !version.ReadASN1Integer(&v) || !version.Empty() || v != 0 {
			return nil, malformed("unsupported version")
		}
	}
	if !tbs.SkipOptionalASN1(cbasn1.Tag(1).Constructed().ContextSpecific()) {
		return nil, malformed("bad requestorName")
	}
	var list, one cryptobyte.String
	if !tbs.ReadASN1(&list, cbasn1.SEQUENCE) || !list.ReadASN1(&one, cbasn1.SEQUENCE) {
		return nil, malformed("no request in the request list")
	}
	if !list.Empty() {
		return nil, malformed("more than one certificate asked about")
	}
	out := &OCSPRequest{}
	if err := a.parseCertID(&one, out); err != nil {
		return nil, err
	}
	// singleRequestExtensions [0]: certportal knows none of them.
	var singleExts cryptobyte.String
	var hasSingleExts bool
	if !one.ReadOptionalASN1(&singleExts, &hasSingleExts, cbasn1.Tag(0).Constructed().ContextSpecific()) || !one.Empty() {
		return nil, malformed("bad request")
	}
	if hasSingleExts {
		if err := parseExtensions(singleExts, nil); err != nil {
			return nil, err
		}
	}
	var exts cryptobyte.String
	var hasExts bool
	if !tbs.ReadOptionalASN1(&exts, &hasExts, cbasn1.Tag(2).Constructed().ContextSpecific()) || !tbs.Empty() {
		return nil, malformed("bad requestExtensions")
	}
	if hasExts {
		if err := parseExtensions(exts, &out.Nonce); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// parseCertID reads a CertID and sets Serial, HashAlgorithm and KnownIssuer.
func (a *Authority) parseCertID(s *cryptobyte.String, out *OCSPRequest) error {
	var certID, alg cryptobyte.String
	var oid asn1.ObjectIdentifier
	if !s.ReadASN1(&certID, cbasn1.SEQUENCE) || !certID.ReadASN1(&alg, cbasn1.SEQUENCE) || !alg.ReadASN1ObjectIdentifier(&oid) {
		return malformed("bad CertID")
	}
	// Parameters: absent or NULL.
	if !alg.Empty() {
		var null cryptobyte.String
		if !alg.ReadASN1(&null, cbasn1.NULL) || !null.Empty() || !alg.Empty() {
			return malformed("bad hash algorithm parameters")
		}
	}
	switch {
	case oid.Equal(oidSHA1):
		out.HashAlgorithm = crypto.SHA1
	case oid.Equal(oidSHA256):
		out.HashAlgorithm = crypto.SHA256
	default:
		return malformed("the CertID hash must be SHA-1 or SHA-256")
	}
	var nameHash, keyHash []byte
	out.Serial = new(big.Int)
	if !certID.ReadASN1Bytes(&nameHash, cbasn1.OCTET_STRING) || !certID.ReadASN1Bytes(&keyHash, cbasn1.OCTET_STRING) ||
		!certID.ReadASN1Integer(out.Serial) || !certID.Empty() {
		return malformed("bad CertID")
	}
	// 20 octets: the longest serial RFC 5280 allows.
	if out.Serial.Sign() <= 0 || out.Serial.BitLen() > 160 {
		return malformed("the serial number is not a valid certificate serial")
	}
	for _, ic := range a.issuers {
		want := ic.ids[out.HashAlgorithm]
		if bytes.Equal(nameHash, want[0]) && bytes.Equal(keyHash, want[1]) {
			out.KnownIssuer, out.Issuer = true, ic.cert.Subject.CommonName
			break
		}
	}
	return nil
}

// parseExtensions reads a SEQUENCE OF Extension. When nonce is not nil it
// receives the RFC 8954 nonce; unknown critical extensions are refused
// (RFC 6960 section 4.4), unknown non-critical ones ignored.
func parseExtensions(s cryptobyte.String, nonce *[]byte) error {
	var seq cryptobyte.String
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) || !s.Empty() {
		return malformed("bad extensions")
	}
	seen := false
	for !seq.Empty() {
		var ext cryptobyte.String
		var oid asn1.ObjectIdentifier
		var critical bool
		var value []byte
		if !seq.ReadASN1(&ext, cbasn1.SEQUENCE) || !ext.ReadASN1ObjectIdentifier(&oid) ||
			!ext.ReadOptionalASN1Boolean(&critical, cbasn1.BOOLEAN, false) ||
			!ext.ReadASN1Bytes(&value, cbasn1.OCTET_STRING) || !ext.Empty() {
			return malformed("bad extension")
		}
		if nonce == nil || !oid.Equal(oidOCSPNonce) {
			if critical {
				return malformed("unsupported critical extension " + oid.String())
			}
			continue
		}
		if seen {
			return malformed("two nonces")
		}
		seen = true
		// RFC 8954: Nonce ::= OCTET STRING (SIZE(1..32)), inside extnValue.
		v := cryptobyte.String(value)
		var n []byte
		if !v.ReadASN1Bytes(&n, cbasn1.OCTET_STRING) || !v.Empty() {
			return malformed("the nonce is not an OCTET STRING")
		}
		if len(n) < 1 || len(n) > maxNonce {
			return malformed("the nonce must be 1 to 32 octets long")
		}
		*nonce = n
	}
	return nil
}

// ocspKey identifies a cached response: the CertID a client asks with.
type ocspKey struct {
	issuer string
	hash   crypto.Hash
	serial string
}

// ocspEntry is a cached response and what it says.
type ocspEntry struct {
	status     OCSPStatus
	der        []byte
	thisUpdate time.Time
}

// OCSPResponse returns the signed OCSP response for req given the status
// the database holds. It is signed by the issuing CA the request names
// (req.Issuer, the current one when empty) itself, carries its certificate, and has thisUpdate now and nextUpdate OCSPLifetime later.
// Without a nonce the cached response for (serial, status) is returned,
// re-signed when the status changes or less than a quarter of its lifetime
// is left; with a nonce a fresh response echoes it. A request about another
// issuer gets the "unauthorized" response (RFC 6960 section 2.3). The
// returned bytes may be shared with the cache: callers must not modify them.
func (a *Authority) OCSPResponse(req *OCSPRequest, st OCSPStatus) ([]byte, error) {
	ans, err := a.OCSPAnswer(req, st)
	return ans.DER, err
}

// OCSPAnswer is a signed OCSP response with what an HTTP cache needs to
// know of it.
type OCSPAnswer struct {
	DER []byte
	// Cacheable is set for a successful response to a request without a
	// nonce: the same for every client until the status changes, so a
	// cache may keep it (RFC 5019), but never past NextUpdate.
	Cacheable              bool
	ThisUpdate, NextUpdate time.Time
}

// OCSPAnswer is OCSPResponse with the response's times.
func (a *Authority) OCSPAnswer(req *OCSPRequest, st OCSPStatus) (OCSPAnswer, error) {
	if req == nil || !req.KnownIssuer || req.Serial == nil {
		return OCSPAnswer{DER: ocsp.UnauthorizedErrorResponse}, nil
	}
	ic := a.current()
	if req.Issuer != "" {
		if ic = a.issuerByCN(req.Issuer); ic == nil {
			return OCSPAnswer{DER: ocsp.UnauthorizedErrorResponse}, nil
		}
	}
	st = normalizeStatus(st)
	now := a.now().UTC().Truncate(time.Second)
	if req.Nonce != nil {
		der, err := a.signOCSP(ic, req, st, now)
		return OCSPAnswer{DER: der, ThisUpdate: now, NextUpdate: now.Add(OCSPLifetime)}, err
	}
	key := ocspKey{ic.cert.Subject.CommonName, req.HashAlgorithm, string(req.Serial.Bytes())}
	a.ocspMu.Lock()
	e := a.ocspCache[key]
	a.ocspMu.Unlock()
	if e != nil && e.status == st && !now.Before(e.thisUpdate) && now.Sub(e.thisUpdate) < OCSPLifetime*3/4 {
		return OCSPAnswer{DER: e.der, Cacheable: true, ThisUpdate: e.thisUpdate, NextUpdate: e.thisUpdate.Add(OCSPLifetime)}, nil
	}
	der, err := a.signOCSP(ic, req, st, now)
	if err != nil {
		return OCSPAnswer{}, err
	}
	a.ocspMu.Lock()
	defer a.ocspMu.Unlock()
	if a.ocspCache == nil {
		a.ocspCache = make(map[ocspKey]*ocspEntry)
	}
	if _, ok := a.ocspCache[key]; !ok && len(a.ocspCache) >= ocspCacheMax {
		for k := range a.ocspCache { // map order is random: evict one at random
			delete(a.ocspCache, k)
			break
		}
	}
	a.ocspCache[key] = &ocspEntry{status: st, der: der, thisUpdate: now}
	return OCSPAnswer{DER: der, Cacheable: true, ThisUpdate: now, NextUpdate: now.Add(OCSPLifetime)}, nil
}

// normalizeStatus makes equal statuses compare equal: times in UTC to the
// second, no reason for good and unknown, ReasonNone for "no reason".
func normalizeStatus(st OCSPStatus) OCSPStatus {
	if !st.Known {
		return OCSPStatus{}
	}
	if st.Revoked.IsZero() {
		return OCSPStatus{Known: true}
	}
	st.Revoked = st.Revoked.UTC().Truncate(time.Second)
	if st.Reason == certportal.ReasonUnspecified {
		st.Reason = certportal.ReasonNone
	}
	return st
}

// The ASN.1 of an OCSP response (RFC 6960 section 4.2.1). It is encoded
// here rather than by ocsp.CreateResponse, which can put no nonce in
// responseExtensions (where OpenSSL and RFC 8954 look for it) and takes
// producedAt from the wall clock instead of a.Now.
type (
	ocspResponseASN1 struct {
		Status   asn1.Enumerated
		Response ocspResponseBytes `asn1:"explicit,tag:0,optional"`
	}
	ocspResponseBytes struct {
		ResponseType asn1.ObjectIdentifier
		Response     []byte
	}
	ocspBasicResponse struct {
		TBSResponseData    asn1.RawValue
		SignatureAlgorithm pkix.AlgorithmIdentifier
		Signature          asn1.BitString
		Certificates       []asn1.RawValue `asn1:"explicit,tag:0,optional"`
	}
	ocspResponseData struct {
		RawResponderID     asn1.RawValue
		ProducedAt         time.Time `asn1:"generalized"`
		Responses          []ocspSingleResponse
		ResponseExtensions []pkix.Extension `asn1:"explicit,tag:1,optional"`
	}
	ocspCertID struct {
		HashAlgorithm pkix.AlgorithmIdentifier
		NameHash      []byte
		IssuerKeyHash []byte
		SerialNumber  *big.Int
	}
	ocspSingleResponse struct {
		CertID     ocspCertID
		Good       asn1.Flag       `asn1:"tag:0,optional"`
		Revoked    ocspRevokedInfo `asn1:"tag:1,optional"`
		Unknown    asn1.Flag       `asn1:"tag:2,optional"`
		ThisUpdate time.Time       `asn1:"generalized"`
		NextUpdate time.Time       `asn1:"generalized,explicit,tag:0,optional"`
	}
	ocspRevokedInfo struct {
		RevocationTime time.Time       `asn1:"generalized"`
		Reason         asn1.Enumerated `asn1:"explicit,tag:0,optional"`
	}
)

// signOCSP signs a basic OCSP response of issuer ic for req with status st
// at now.
func (a *Authority) signOCSP(ic *issuerCA, req *OCSPRequest, st OCSPStatus, now time.Time) ([]byte, error) {
	hashes := ic.ids[req.HashAlgorithm]
	hashOID := oidSHA1
	if req.HashAlgorithm == crypto.SHA256 {
		hashOID = oidSHA256
	}
	single := ocspSingleResponse{
		CertID: ocspCertID{
			HashAlgorithm: pkix.AlgorithmIdentifier{Algorithm: hashOID, Parameters: asn1NullParam},
			NameHash:      hashes[0],
			IssuerKeyHash: hashes[1],
			SerialNumber:  req.Serial,
		},
		ThisUpdate: now,
		NextUpdate: now.Add(OCSPLifetime),
	}
	switch {
	case !st.Known:
		single.Unknown = true
	case st.Revoked.IsZero():
		single.Good = true
	default:
		at := st.Revoked
		if at.After(now) {
			at = now // a replica's clock ahead must not date it in the future
		}
		single.Revoked.RevocationTime = at
		if st.Reason != certportal.ReasonNone {
			// Zero (unspecified) is left out by the encoder, as RFC 5280 asks.
			single.Revoked.Reason = asn1.Enumerated(st.Reason)
		}
	}
	data := ocspResponseData{
		// byName [1] EXPLICIT Name: the issuing CA is its own responder.
		RawResponderID: asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 1, IsCompound: true, Bytes: ic.cert.RawSubject},
		ProducedAt:     now,
		Responses:      []ocspSingleResponse{single},
	}
	if req.Nonce != nil {
		v, err := asn1.Marshal(req.Nonce)
		if err != nil {
			return nil, wrapError(certportal.Internal, err, "could not encode the OCSP nonce")
		}
		data.ResponseExtensions = []pkix.Extension{{Id: oidOCSPNonce, Value: v}}
	}
	tbs, err := asn1.Marshal(data)
	if err != nil {
		return nil, wrapError(certportal.Internal, err, "could not encode the OCSP response")
	}
	algID, hash := pkix.AlgorithmIdentifier{Algorithm: oidSHA256RSA, Parameters: asn1NullParam}, crypto.SHA256
	switch signatureAlgorithm(ic.key.Public()) {
	case x509.ECDSAWithSHA256:
		algID = pkix.AlgorithmIdentifier{Algorithm: oidECDSA256}
	case x509.ECDSAWithSHA384:
		algID, hash = pkix.AlgorithmIdentifier{Algorithm: oidECDSA384}, crypto.SHA384
	}
	h := hash.New()
	h.Write(tbs)
	sig, err := ic.key.Sign(randOr(a.Rand), h.Sum(nil), hash)
	if err != nil {
		return nil, wrapError(certportal.Internal, err, "could not sign the OCSP response")
	}
	basic, err := asn1.Marshal(ocspBasicResponse{
		TBSResponseData:    asn1.RawValue{FullBytes: tbs},
		SignatureAlgorithm: algID,
		Signature:          asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)},
		Certificates:       []asn1.RawValue{{FullBytes: ic.cert.Raw}},
	})
	if err != nil {
		return nil, wrapError(certportal.Internal, err, "could not encode the OCSP response")
	}
	der, err := asn1.Marshal(ocspResponseASN1{
		Status:   asn1.Enumerated(ocsp.Success),
		Response: ocspResponseBytes{ResponseType: oidOCSPBasic, Response: basic},
	})
	if err != nil {
		return nil, wrapError(certportal.Internal, err, "could not encode the OCSP response")
	}
	return der, nil
}
