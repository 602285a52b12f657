// Package p12 writes the PKCS#12 files certportal hands out: the one
// writer behind the portal's downloads, `cert issue` and `store export`,
// so every file has the same protection.
package p12

import (
	"crypto"
	"crypto/x509"
	"io"

	pkcs12 "software.sslmate.com/src/go-pkcs12"
)

const (
	// ModernIterations is the PBKDF2-HMAC-SHA-256 (and MAC) iteration
	// count of the modern format (AES-256-CBC): SPEC.md asks for at least
	// 100,000.
	ModernIterations = 100_000
	// LegacyIterations is the PKCS#12 KDF and MAC iteration count of the
	// legacy format (3DES/SHA-1) that old macOS Keychain and Windows read.
	LegacyIterations = 10_000
)

// Encode writes key, leaf and chain (issuing CA, then root) as a PKCS#12
// file protected by password: modern, or legacy for old systems. rand nil
// means crypto/rand. The password is checked by certportal.ValidateP12Password
// before it gets here.
func Encode(rand io.Reader, key crypto.PrivateKey, leaf *x509.Certificate, chain []*x509.Certificate, password string, legacy bool) ([]byte, error) {
	enc := pkcs12.Modern2023.WithIterations(ModernIterations)
	if legacy {
		enc = pkcs12.LegacyDES.WithIterations(LegacyIterations)
	}
	if rand != nil {
		enc = enc.WithRand(rand)
	}
	return enc.Encode(key, leaf, chain, password)
}
