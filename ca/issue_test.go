package ca_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/ca"
	"github.com/certportal/certportal/internal/testpki"
	"software.sslmate.com/src/go-pkcs12"
)

// allKeyTypes are the user key types; RSA 4096 costs about a second.
var allKeyTypes = []ca.KeyType{ca.P256, ca.P384, ca.RSA2048, ca.RSA3072, ca.RSA4096}

func TestIssueProfile(t *testing.T) {
	p := shared(t)
	now := p.Clock.Now()
	for _, kt := range allKeyTypes {
		t.Run(string(kt), func(t *testing.T) {
			leaf, key := issue(t, p, "alice.b_c-d", kt)
			switch kt {
			case ca.P256, ca.P384:
				k, ok := key.(*ecdsa.PrivateKey)
				want := map[ca.KeyType]elliptic.Curve{ca.P256: elliptic.P256(), ca.P384: elliptic.P384()}[kt]
				if !ok || k.Curve != want {
					t.Errorf("key %T, want ECDSA %v", key, want.Params().Name)
				}
			default:
				k, ok := key.(*rsa.PrivateKey)
				bits := map[ca.KeyType]int{ca.RSA2048: 2048, ca.RSA3072: 3072, ca.RSA4096: 4096}[kt]
				if !ok || k.N.BitLen() != bits {
					t.Errorf("key %T, want RSA %d", key, bits)
				}
			}
			if leaf.Subject.String() != "CN=alice.b_c-d" {
				t.Errorf("subject %q: want only the CN", leaf.Subject)
			}
			if !slices.Equal(leaf.EmailAddresses, []string{"alice.b_c-d@example.com"}) {
				t.Errorf("e-mail SAN %v", leaf.EmailAddresses)
			}
			if leaf.KeyUsage != x509.KeyUsageDigitalSignature || !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
				t.Errorf("KU %v EKU %v", leaf.KeyUsage, leaf.ExtKeyUsage)
			}
			if leaf.IsCA || len(leaf.SubjectKeyId) == 0 || !bytes.Equal(leaf.AuthorityKeyId, p.Issuing.SubjectKeyId) {
				t.Errorf("IsCA %v SKI %x AKI %x", leaf.IsCA, leaf.SubjectKeyId, leaf.AuthorityKeyId)
			}
			if !leaf.NotBefore.Equal(now.Add(-5*time.Minute)) || !leaf.NotAfter.Equal(now.AddDate(1, 0, 0)) {
				t.Errorf("validity %v .. %v, want now-5m .. now+1y", leaf.NotBefore, leaf.NotAfter)
			}
			if !slices.Equal(leaf.CRLDistributionPoints, []string{"http://localhost:8080/crl/SOP-ICA1.crl"}) ||
				!slices.Equal(leaf.OCSPServer, []string{"http://localhost:8080/ocsp"}) ||
				!slices.Equal(leaf.IssuingCertificateURL, []string{"http://localhost:8080/ca/SOP-ICA1.crt"}) {
				t.Errorf("CRL DP %v OCSP %v caIssuers %v", leaf.CRLDistributionPoints, leaf.OCSPServer, leaf.IssuingCertificateURL)
			}
			if b := leaf.SerialNumber.Bytes(); len(b) != 16 || b[0]&0x80 != 0 {
				t.Errorf("serial %x", b)
			}
			if leaf.SignatureAlgorithm != x509.ECDSAWithSHA256 {
				t.Errorf("signature %v, want the issuing CA's ECDSA-SHA256", leaf.SignatureAlgorithm)
			}
		})
	}
}

func TestIssueRequest(t *testing.T) {
	p := shared(t)
	serial := big.NewInt(0x1234)
	leaf, _, err := p.Issue(ca.LeafRequest{ID: "Bob@Example.ORG", Serial: serial})
	if err != nil {
		t.Fatal(err)
	}
	if leaf.SerialNumber.Cmp(serial) != 0 || len(leaf.EmailAddresses) != 0 || leaf.Subject.CommonName != "Bob@Example.ORG" {
		t.Errorf("serial %v SANs %v", leaf.SerialNumber, leaf.EmailAddresses)
	}
	for _, req := range []ca.LeafRequest{
		{ID: ""},
		{ID: strings.Repeat("a", 65)},
		{ID: "has space"},
		{ID: "a/b"},
		{ID: "bob", Email: "bób@example.com"},
		{ID: "bob", Email: "no-at-sign"},
		{ID: "bob", Email: "a@b@c"},
		{ID: "bob", Email: "a..b@example.com"}, // the account's rule, which the CA shares
		{ID: "bob", Email: "ab@example..com"},
		{ID: "bob", KeyType: "dsa"},
	} {
		if _, _, err := p.Issue(req); certportal.ErrorCodeOf(err) != certportal.Invalid {
			t.Errorf("Issue(%+v): %v, want Invalid", req, err)
		}
	}
}

// TestIssueNeverPastIssuer issues near the end of the issuing CA's life.
func TestIssueNeverPastIssuer(t *testing.T) {
	p := testpki.New(t)
	p.Clock.Set(p.Issuing.NotAfter.Add(-30 * 24 * time.Hour))
	leaf, _, err := p.Issue(ca.LeafRequest{ID: "late"})
	if err != nil {
		t.Fatal(err)
	}
	if !leaf.NotAfter.Equal(p.Issuing.NotAfter) {
		t.Errorf("NotAfter %v, want the issuing CA's %v", leaf.NotAfter, p.Issuing.NotAfter)
	}
	p.Clock.Set(p.Issuing.NotAfter.Add(time.Second))
	if _, _, err := p.Issue(ca.LeafRequest{ID: "late"}); err == nil {
		t.Error("Issue after the issuing CA expired succeeded")
	}
}

func TestVerifyClient(t *testing.T) {
	p := shared(t)
	other := testpki.New(t)
	good, _ := issue(t, p, "good", ca.P256)
	foreign, _ := issue(t, other, "good", ca.P256)
	now := p.Clock.Now()

	// Expired: issued by this CA, then a year and a day passes.
	q := testpki.New(t)
	old, _ := issue(t, q, "old", ca.P256)
	q.Clock.Advance(366 * 24 * time.Hour)
	expired, err := q.VerifyClient([]*x509.Certificate{old})
	if e := (*certportal.Error)(nil); !errorsAs(err, &e) || e.Message != "expired" || expired != nil {
		t.Errorf("expired leaf: %v, want \"expired\"", err)
	}
	// Not yet valid: issued an hour from now.
	r, err := ca.Load(p.Dir, "")
	if err != nil {
		t.Fatal(err)
	}
	r.Now = func() time.Time { return now.Add(time.Hour) }
	future, _, err := r.Issue(ca.LeafRequest{ID: "future"})
	if err != nil {
		t.Fatal(err)
	}
	// Signed by the root directly: a valid signature, but not via SOP-ICA1.
	rootLeaf := signWith(t, p.Root, p.Dir+"/root.key", x509.ExtKeyUsageClientAuth)
	serverLeaf := signWith(t, p.Issuing, p.Dir+"/issuing.key", x509.ExtKeyUsageServerAuth)
	tampered, err := x509.ParseCertificate(good.Raw)
	if err != nil {
		t.Fatal(err)
	}
	tampered.Signature = bytes.Clone(tampered.Signature)
	tampered.Signature[len(tampered.Signature)-3] ^= 1

	tests := []struct {
		name  string
		chain []*x509.Certificate
		want  string // "" = accepted
	}{
		{"good", []*x509.Certificate{good}, ""},
		{"good with chain", []*x509.Certificate{good, p.Issuing, p.Root}, ""},
		{"good with junk chain", []*x509.Certificate{good, other.Issuing}, ""},
		{"empty", nil, "unknown"},
		{"nil leaf", []*x509.Certificate{nil}, "unknown"},
		{"other CA", []*x509.Certificate{foreign}, "unknown"},
		{"other CA with its chain", []*x509.Certificate{foreign, other.Issuing, other.Root}, "unknown"},
		{"expired by another CA", []*x509.Certificate{old}, "unknown"},
		{"not yet valid", []*x509.Certificate{future}, "expired"},
		{"signed by root", []*x509.Certificate{rootLeaf, p.Root}, "unknown"},
		{"serverAuth EKU", []*x509.Certificate{serverLeaf}, "unknown"},
		{"bad signature", []*x509.Certificate{tampered}, "unknown"},
		{"the issuing CA itself", []*x509.Certificate{p.Issuing}, "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := p.VerifyClient(tt.chain)
			if tt.want == "" {
				if err != nil || got != tt.chain[0] {
					t.Fatalf("VerifyClient: %v, %v; want the leaf", got, err)
				}
				return
			}
			if err == nil {
				t.Fatal("VerifyClient accepted it")
			}
			var e *certportal.Error
			if !errorsAs(err, &e) || e.Code != certportal.Forbidden || e.Message != tt.want {
				t.Fatalf("VerifyClient: %#v, want Forbidden %q", err, tt.want)
			}
		})
	}
}

// signWith signs a client-like leaf with the key in keyFile under parent,
// bypassing Issue, to build certificates Issue would never make.
func signWith(t *testing.T, parent *x509.Certificate, keyFile string, eku x509.ExtKeyUsage) *x509.Certificate {
	t.Helper()
	signer := loadKey(t, keyFile)
	key, err := ca.GenerateKey(nil, ca.P256)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	der, err := x509.CreateCertificate(nil, &x509.Certificate{
		SerialNumber: big.NewInt(99),
		Subject:      pkix.Name{CommonName: "mallory"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{eku},
	}, parent, key.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPKCS12(t *testing.T) {
	p := shared(t)
	leaf, key := issue(t, p, "carol", ca.P256)
	other, otherKey := issue(t, p, "dave", ca.P256)
	_ = other
	const pw = "correct horse battery"
	for _, legacy := range []bool{false, true} {
		der, err := p.PKCS12(key.(crypto.Signer), leaf, pw, legacy)
		if err != nil {
			t.Fatal(err)
		}
		k, c, cas, err := pkcs12.DecodeChain(der, pw)
		if err != nil {
			t.Fatalf("legacy=%v: decode: %v", legacy, err)
		}
		if !c.Equal(leaf) || len(cas) != 2 || !cas[0].Equal(p.Issuing) || !cas[1].Equal(p.Root) {
			t.Errorf("legacy=%v: leaf %v, CAs %d", legacy, c.Subject, len(cas))
		}
		if !k.(*ecdsa.PrivateKey).Equal(key) {
			t.Errorf("legacy=%v: the key does not round-trip", legacy)
		}
		if _, _, _, err := pkcs12.DecodeChain(der, pw+"x"); err == nil {
			t.Errorf("legacy=%v: a wrong password opened the file", legacy)
		}
	}
	for _, tt := range []struct {
		name string
		key  crypto.Signer
		pw   string
	}{
		{"short password", key.(crypto.Signer), "elevenchars"},
		{"11 runes in more bytes", key.(crypto.Signer), "ééééééééééé"},
		{"wrong key", otherKey.(crypto.Signer), pw},
		{"no key", nil, pw},
	} {
		if _, err := p.PKCS12(tt.key, leaf, tt.pw, false); certportal.ErrorCodeOf(err) != certportal.Invalid {
			t.Errorf("%s: %v, want Invalid", tt.name, err)
		} else if strings.Contains(err.Error(), tt.pw) {
			t.Errorf("%s: the error shows the password", tt.name)
		}
	}
	if _, err := p.PKCS12(key.(crypto.Signer), leaf, "twelve chars", false); err != nil {
		t.Errorf("12-character password refused: %v", err)
	}
}

func TestSignCRL(t *testing.T) {
	p := shared(t)
	now := p.Clock.Now()
	revoked := []certportal.Revocation{
		{Serial: "0A0B", Time: now.Add(-time.Hour), Reason: certportal.ReasonKeyCompromise},
		{Serial: "0c0d", Time: now.Add(-time.Minute), Reason: certportal.ReasonNone},
		{Serial: "0E", Time: now.Add(-time.Minute), Reason: certportal.ReasonUnspecified},
		{Serial: "0F", Time: now.Add(time.Hour), Reason: certportal.ReasonSuperseded}, // clock skew
		{Serial: "0F", Time: now, Reason: certportal.ReasonSuperseded},                // duplicate
	}
	der, this, next, err := p.SignCRL("SOP-ICA1", 42, revoked)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(p.Issuing); err != nil {
		t.Errorf("signature: %v", err)
	}
	if crl.Number.Int64() != 42 || !crl.ThisUpdate.Equal(now) || !this.Equal(now) || !crl.NextUpdate.Equal(now.Add(7*24*time.Hour)) || !next.Equal(crl.NextUpdate) {
		t.Errorf("number %v this %v next %v", crl.Number, crl.ThisUpdate, crl.NextUpdate)
	}
	if !bytes.Equal(crl.AuthorityKeyId, p.Issuing.SubjectKeyId) {
		t.Errorf("AKI %x", crl.AuthorityKeyId)
	}
	if len(crl.RevokedCertificateEntries) != 4 {
		t.Fatalf("%d entries, want 4", len(crl.RevokedCertificateEntries))
	}
	want := []struct {
		serial int64
		reason int
		time   time.Time
	}{{0x0a0b, 1, now.Add(-time.Hour)}, {0x0c0d, 0, now.Add(-time.Minute)}, {0x0e, 0, now.Add(-time.Minute)}, {0x0f, 4, now}}
	for i, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber.Int64() != want[i].serial || e.ReasonCode != want[i].reason || !e.RevocationTime.Equal(want[i].time) {
			t.Errorf("entry %d: %x reason %d at %v; want %+v", i, e.SerialNumber, e.ReasonCode, e.RevocationTime, want[i])
		}
		hasReason := false
		for _, x := range e.Extensions {
			hasReason = hasReason || x.Id.String() == "2.5.29.21"
		}
		if hasReason != (want[i].reason != 0) {
			t.Errorf("entry %d: reason extension present=%v", i, hasReason)
		}
	}
	rootDER, _, _, err := p.SignCRL("SOP-RCA", 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	rootCRL, err := x509.ParseRevocationList(rootDER)
	if err != nil || rootCRL.CheckSignatureFrom(p.Root) != nil || len(rootCRL.RevokedCertificateEntries) != 0 {
		t.Errorf("root CRL: %v", err)
	}
	if _, _, _, err := p.SignCRL("SOP-TLS1", 1, nil); certportal.ErrorCodeOf(err) != certportal.NotFound {
		t.Errorf("unknown issuer: %v, want NotFound", err)
	}
	if _, _, _, err := p.SignCRL("SOP-ICA1", 1, []certportal.Revocation{{Serial: "zz"}}); certportal.ErrorCodeOf(err) != certportal.Invalid {
		t.Errorf("bad serial: %v, want Invalid", err)
	}
}
