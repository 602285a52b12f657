// Package ca is certportal's certificate authority: it creates the CA
// hierarchy (root, issuing CA, TLS intermediate and the portal's server
// certificate), loads it, issues user certificates, packs them as PKCS#12,
// signs CRLs and answers OCSP requests. It knows crypto, not databases or
// HTTP: callers keep serials, CRL numbers and revocations, and hand them in.
package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"io"
	"strings"

	"github.com/certportal/certportal"
)

// KeyType names the kind of key generated for a CA, the portal's TLS
// certificate or a user certificate.
type KeyType string

// The key types certportal offers. P-256 is the default: it is accepted
// everywhere that matters and signs fastest.
const (
	P256    KeyType = "p256"
	P384    KeyType = "p384"
	RSA2048 KeyType = "rsa2048"
	RSA3072 KeyType = "rsa3072"
	RSA4096 KeyType = "rsa4096"
)

// KeyTypes lists every key type in the order they are offered to users.
var KeyTypes = []KeyType{P256, P384, RSA2048, RSA3072, RSA4096}

// ParseKeyType parses a key type name as typed on the command line or in the
// configuration (case-insensitive). The empty string means P256.
func ParseKeyType(s string) (KeyType, error) {
	if s == "" {
		return P256, nil
	}
	for _, kt := range KeyTypes {
		if strings.EqualFold(string(kt), s) {
			return kt, nil
		}
	}
	return "", errorf(certportal.Invalid, "unknown key type %q; use one of p256, p384, rsa2048, rsa3072, rsa4096", s)
}

// GenerateKey generates a private key of type kt ("" means P256) using
// randomness from rand (nil means crypto/rand.Reader).
func GenerateKey(rand io.Reader, kt KeyType) (crypto.Signer, error) {
	kt, err := ParseKeyType(string(kt))
	if err != nil {
		return nil, err
	}
	var key crypto.Signer
	switch kt {
	case P256:
		key, err = ecdsa.GenerateKey(elliptic.P256(), randOr(rand))
	case P384:
		key, err = ecdsa.GenerateKey(elliptic.P384(), randOr(rand))
	case RSA2048:
		key, err = rsa.GenerateKey(randOr(rand), 2048)
	case RSA3072:
		key, err = rsa.GenerateKey(randOr(rand), 3072)
	case RSA4096:
		key, err = rsa.GenerateKey(randOr(rand), 4096)
	}
	if err != nil {
		return nil, wrapError(certportal.Internal, err, "could not generate a "+string(kt)+" key")
	}
	return key, nil
}

// randOr returns r, or crypto/rand.Reader when r is nil.
func randOr(r io.Reader) io.Reader {
	if r == nil {
		return rand.Reader
	}
	return r
}

// signatureAlgorithm returns the algorithm a key signs with: ECDSA with the
// hash that matches the curve (SHA-256 for P-256, SHA-384 for P-384, as
// RFC 5480 asks), and RSA PKCS#1 v1.5 with SHA-256, which every client
// verifies (RSA-PSS is still refused by some).
func signatureAlgorithm(pub crypto.PublicKey) x509.SignatureAlgorithm {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P384() {
			return x509.ECDSAWithSHA384
		}
		return x509.ECDSAWithSHA256
	case *rsa.PublicKey:
		return x509.SHA256WithRSA
	}
	return x509.UnknownSignatureAlgorithm
}

// isRSA reports whether pub is an RSA key.
func isRSA(pub crypto.PublicKey) bool {
	_, ok := pub.(*rsa.PublicKey)
	return ok
}

// subjectKeyID returns the key identifier of RFC 5280 section 4.2.1.2,
// method 1: the SHA-1 of the subjectPublicKey bits. It is what most CAs and
// desktop certificate managers compute, so AKI/SKI matching works everywhere.
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	var spki struct {
		Algorithm asn1.RawValue
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil, err
	}
	sum := sha1.Sum(spki.PublicKey.Bytes)
	return sum[:], nil
}

// keyPEM encodes key as a PKCS#8 PEM block.
func keyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// certPEM encodes certificates as consecutive PEM blocks.
func certPEM(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// parseKeyPEM parses a PKCS#8 PEM private key, the form Create writes.
func parseKeyPEM(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errorf(certportal.Invalid, "no PKCS#8 private key (PEM \"PRIVATE KEY\") found")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, wrapError(certportal.Invalid, err, "the private key cannot be parsed")
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, errorf(certportal.Invalid, "the private key is of an unsupported type")
	}
	return signer, nil
}

// parseCertsPEM parses every CERTIFICATE block in data.
func parseCertsPEM(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, wrapError(certportal.Invalid, err, "a certificate cannot be parsed")
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errorf(certportal.Invalid, "no PEM certificate found")
	}
	return certs, nil
}

// keyMatches reports whether key is the private half of cert's public key.
func keyMatches(key crypto.Signer, cert *x509.Certificate) bool {
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(cert.PublicKey)
}

// errorf returns a *certportal.Error of the ca package: Op "ca" makes
// Error() read "ca: ...", while Message stays a plain sentence for users.
func errorf(code certportal.ErrorCode, format string, args ...any) *certportal.Error {
	e := certportal.Errorf(code, format, args...)
	e.Op = "ca"
	return e
}

// wrapError is errorf with a cause, which is kept for logs only.
func wrapError(code certportal.ErrorCode, err error, message string) *certportal.Error {
	e := certportal.WrapError(code, err, message)
	e.Op = "ca"
	return e
}
