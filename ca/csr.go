package ca

import (
	"crypto"
	"crypto/dsa" //nolint:staticcheck // only to name a refused key
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"

	"github.com/smallstep/pkcs7"

	"github.com/certportal/certportal"
)

// Issuance from a certificate signing request (PKCS#10): the key is made on
// the user's machine and only its public half reaches the portal. The CSR
// contributes nothing but that key: its subject, attributes and requested
// extensions are ignored, and the certificate has the same profile as one
// whose key Issue made (see signLeaf).

// MaxCSRSize bounds a CSR's DER: an RSA-4096 request with a long subject
// is under 2 KiB, so 16 KiB leaves room for any honest extension list.
const MaxCSRSize = 16 << 10

// CSR is a certificate request whose self-signature and key type ParseCSR
// has checked. Only ParseCSR makes one, so a *CSR in hand is a checked one.
type CSR struct {
	req *x509.CertificateRequest
}

// PublicKey returns the key the certificate will carry.
func (c *CSR) PublicKey() crypto.PublicKey { return c.req.PublicKey }

// KeyType returns the key type of the request's key.
func (c *CSR) KeyType() KeyType { return keyTypeOf(c.req.PublicKey) }

// KeyTypeOf names the key type of a public key (P256 for a key of no type
// certportal makes), e.g. to renew with a key like the old one.
func KeyTypeOf(pub crypto.PublicKey) KeyType { return keyTypeOf(pub) }

// ParseCSR parses a DER PKCS#10 request and checks it: the key must be of
// an allowed type (CheckPublicKey) and the request must be signed by that
// key. Failures are Invalid errors whose message says what is wrong.
func ParseCSR(der []byte) (*CSR, error) {
	if len(der) == 0 {
		return nil, errorf(certportal.Invalid, "the certificate request is empty")
	}
	if len(der) > MaxCSRSize {
		return nil, errorf(certportal.Invalid, "the certificate request is larger than %d bytes", MaxCSRSize)
	}
	req, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, wrapError(certportal.Invalid, err, "the certificate request is not a valid PKCS#10 request")
	}
	// The key first: a DSA request's signature cannot even be checked,
	// and "DSA keys are not accepted" is the more useful answer.
	if err := CheckPublicKey(req.PublicKey); err != nil {
		return nil, err
	}
	if err := req.CheckSignature(); err != nil {
		return nil, wrapError(certportal.Invalid, err, "the certificate request's signature does not verify: it was changed after signing, or not signed with its own key")
	}
	return &CSR{req: req}, nil
}

// ParseCSRPEM parses a CSR in PEM ("CERTIFICATE REQUEST", or the older
// "NEW CERTIFICATE REQUEST" some tools write), as a user pastes or uploads
// it, and checks it as ParseCSR does.
func ParseCSRPEM(data []byte) (*CSR, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errorf(certportal.Invalid, "no PEM certificate request (-----BEGIN CERTIFICATE REQUEST-----) found")
		}
		if block.Type == "CERTIFICATE REQUEST" || block.Type == "NEW CERTIFICATE REQUEST" {
			return ParseCSR(block.Bytes)
		}
		if strings.Contains(block.Type, "PRIVATE KEY") {
			// Refused before anything else is said: the key must stay
			// on the user's machine, and the user should know it left.
			return nil, errorf(certportal.Invalid, "this is a private key, not a certificate request; never send a private key to anyone, and send the certificate request instead")
		}
	}
}

// keyTypeNames lists the key types a request may use, for messages.
const keyTypeNames = "ECDSA P-256 or P-384, or RSA with 2048, 3072 or 4096 bits"

// CheckPublicKey reports whether pub is of a key type certportal issues
// for: ECDSA on P-256 or P-384, or RSA of 2048, 3072 or 4096 bits with the
// public exponent 65537 (what every current generator uses; a small or even
// exponent is a sign of a broken one). Anything else (RSA under 2048 bits,
// DSA, Ed25519, X25519, other curves) is refused with an Invalid error.
func CheckPublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() || k.Curve == elliptic.P384() {
			return nil
		}
		return errorf(certportal.Invalid, "ECDSA keys on the curve %s are not accepted; use %s", k.Curve.Params().Name, keyTypeNames)
	case *rsa.PublicKey:
		switch bits := k.N.BitLen(); {
		case bits < 2048:
			return errorf(certportal.Invalid, "RSA keys of %d bits are too weak; use %s", bits, keyTypeNames)
		case bits != 2048 && bits != 3072 && bits != 4096:
			return errorf(certportal.Invalid, "RSA keys of %d bits are not accepted; use %s", bits, keyTypeNames)
		}
		if k.E != 65537 {
			return errorf(certportal.Invalid, "RSA keys with the public exponent %d are not accepted; use 65537", k.E)
		}
		return nil
	}
	return errorf(certportal.Invalid, "keys of this type (%s) are not accepted; use %s", keyAlgorithm(pub), keyTypeNames)
}

// keyAlgorithm names the algorithm of a key that CheckPublicKey refuses.
func keyAlgorithm(pub crypto.PublicKey) string {
	switch pub.(type) {
	case *dsa.PublicKey:
		return "DSA"
	case ed25519.PublicKey:
		return "Ed25519"
	case *ecdh.PublicKey:
		return "X25519"
	case nil:
		return "unknown"
	}
	return fmt.Sprintf("%T", pub)
}

// IssueCSR signs a user certificate for the key of a checked request, with
// the profile of Issue: CN = req.ID, req.Email as the rfc822Name SAN, EKU
// clientAuth and the rest, whatever the request asked for.
func (a *Authority) IssueCSR(req LeafRequest, csr *CSR) (*x509.Certificate, error) {
	if csr == nil || csr.req == nil {
		return nil, errorf(certportal.Invalid, "no certificate request")
	}
	if err := a.checkLeaf(req); err != nil {
		return nil, err
	}
	return a.signLeaf(req, csr.req.PublicKey)
}

// CertsOnly encodes certificates as a degenerate ("certs-only") PKCS#7
// SignedData, DER: the answer format of EST (RFC 7030 §4.1.3 and §4.2.3)
// that openssl pkcs7 -print_certs reads.
func CertsOnly(certs ...*x509.Certificate) ([]byte, error) {
	var raw []byte
	for _, c := range certs {
		raw = append(raw, c.Raw...)
	}
	der, err := pkcs7.DegenerateCertificate(raw)
	if err != nil {
		return nil, wrapError(certportal.Internal, err, "could not encode the certificates as PKCS#7")
	}
	return der, nil
}
