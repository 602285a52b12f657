package web_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/ca"
	"github.com/certportal/certportal/portal"
)

// signedByIssuing makes a leaf for id signed by the real issuing CA with
// the given extended key usages, and records it as the account's current
// certificate the way every issuance does (Service.RecordIssue).
func signedByIssuing(t *testing.T, e *env, id string, eku []x509.ExtKeyUsage) *tls.Certificate {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.pki.Dir, ca.IssuingKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := e.pki.Clock.Now()
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 63))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: id},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: eku,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, e.pki.Issuing, key.Public(), k.(crypto.Signer))
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	rec := &certportal.Certificate{
		Serial: certportal.FormatSerial(leaf.SerialNumber), AccountID: id, Issuer: leaf.Issuer.CommonName,
		NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter, Thumbprint: certportal.Thumbprint(der),
		SHA256: certportal.Fingerprint256(der), DER: der, Issued: now,
	}
	err = e.store.Update(context.Background(), func(tx certportal.Tx) error {
		return e.svc.RecordIssue(context.Background(), tx, portal.Admin, rec, "")
	})
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der, e.pki.Issuing.Raw}, PrivateKey: key, Leaf: leaf}
}

// TestClientCertificateNeedsClientAuthEKU: a certificate of the portal's
// own issuing CA, the account's current one, signs in only if it carries
// EKU clientAuth: without an EKU extension, or with anyExtendedKeyUsage
// alone, it is refused (crypto/x509 alone would accept both).
func TestClientCertificateNeedsClientAuthEKU(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name string
		eku  []x509.ExtKeyUsage
		ok   bool
	}{
		{"clientAuth", []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, true},
		{"no EKU", nil, false},
		{"anyExtendedKeyUsage", []x509.ExtKeyUsage{x509.ExtKeyUsageAny}, false},
		{"serverAuth", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, false},
	} {
		id := "eku-" + strings.ReplaceAll(tc.name, " ", "-")
		e.addUser(id, id+"@example.com", "eku password 1")
		cert := signedByIssuing(t, e, id, tc.eku)
		c := e.client(cert)
		home := e.get(c, "/")
		who := e.get(c, "/api/whoami")
		if tc.ok {
			if home.StatusCode != http.StatusOK || who.StatusCode != http.StatusOK {
				t.Errorf("%s: GET / %d, whoami %d, want 200 (the test's certificates must work at all)", tc.name, home.StatusCode, who.StatusCode)
			}
			continue
		}
		if home.StatusCode != http.StatusForbidden || who.StatusCode != http.StatusForbidden || !strings.Contains(who.body, `"unknown"`) {
			t.Errorf("%s: GET / %d, whoami %d %s, want 403 and unknown", tc.name, home.StatusCode, who.StatusCode, who.body)
		}
	}
}
