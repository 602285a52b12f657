package ca_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/ca"
	"github.com/certportal/certportal/internal/p12"
	"software.sslmate.com/src/go-pkcs12"
)

const benchPassword = "benchmark password"

// BenchmarkRawIssue is the floor under BenchmarkIssuePKCS12: a P-256 key,
// a bare x509.CreateCertificate and a Modern2023 PKCS#12 with the same
// iteration count PKCS12 uses, without any of the CA's own code.
func BenchmarkRawIssue(b *testing.B) {
	p := shared(b)
	signer := loadKey(b, p.Dir+"/issuing.key")
	now := time.Now()
	enc := pkcs12.Modern2023.WithIterations(p12.ModernIterations)
	for b.Loop() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
			SerialNumber: big.NewInt(42),
			Subject:      pkix.Name{CommonName: "bench"},
			NotBefore:    now,
			NotAfter:     now.AddDate(1, 0, 0),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}, p.Issuing, key.Public(), signer)
		if err != nil {
			b.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(der)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := enc.Encode(key, leaf, []*x509.Certificate{p.Issuing, p.Root}, benchPassword); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIssuePKCS12 is what the portal does per certificate request.
func BenchmarkIssuePKCS12(b *testing.B) {
	p := shared(b)
	for b.Loop() {
		leaf, key, err := p.Issue(ca.LeafRequest{ID: "bench", Email: "bench@example.com"})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.PKCS12(key, leaf, benchPassword, false); err != nil {
			b.Fatal(err)
		}
	}
}

func benchOCSP(b *testing.B, nonce []byte) {
	p := shared(b)
	req := &ca.OCSPRequest{Serial: big.NewInt(0x7f0000 + int64(len(nonce))), HashAlgorithm: crypto.SHA1, KnownIssuer: true, Nonce: nonce}
	st := ca.OCSPStatus{Known: true, Revoked: time.Unix(1e9, 0), Reason: certportal.ReasonSuperseded}
	if _, err := p.OCSPResponse(req, st); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.OCSPResponse(req, st); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOCSPCached answers a request without a nonce for an unchanged
// status: a cache hit.
func BenchmarkOCSPCached(b *testing.B) { benchOCSP(b, nil) }

// BenchmarkOCSPNonce signs a fresh response each time.
func BenchmarkOCSPNonce(b *testing.B) { benchOCSP(b, []byte("0123456789abcdef")) }

// BenchmarkECDSASign is the reference: one raw P-256 signature of a
// 32-byte digest, the cost BenchmarkOCSPNonce cannot go below.
func BenchmarkECDSASign(b *testing.B) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	digest := sha256.Sum256([]byte("tbsResponseData"))
	for b.Loop() {
		if _, err := key.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
			b.Fatal(err)
		}
	}
}
