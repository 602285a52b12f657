package ca_test

import (
	"crypto"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/ca"
	"github.com/certportal/certportal/internal/testpki"
)

// rolledOver returns a CA that issued one certificate from SOP-ICA1, then
// rolled over to SOP-ICA2 and was loaded again: the authority after the
// rollover, the old leaf and the new leaf.
func rolledOver(t *testing.T) (*testpki.PKI, *ca.Authority, *x509.Certificate, *x509.Certificate) {
	t.Helper()
	p := testpki.New(t)
	old, _ := issue(t, p, "before", ca.P256)
	ica2, err := p.Rollover(ca.RolloverOptions{})
	if err != nil {
		t.Fatalf("Rollover: %v", err)
	}
	if ica2.Subject.CommonName != "SOP-ICA2" {
		t.Fatalf("the next issuing CA is %q, want SOP-ICA2", ica2.Subject.CommonName)
	}
	a, err := ca.Load(p.Dir, "")
	if err != nil {
		t.Fatalf("Load after Rollover: %v", err)
	}
	a.Now = p.Clock.Now
	leaf, _, err := a.Issue(ca.LeafRequest{ID: "after", Email: "after@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	return p, a, old, leaf
}

func TestRolloverProfileAndLayout(t *testing.T) {
	p, a, old, leaf := rolledOver(t)
	if len(a.Issuers) != 2 || !a.Issuers[0].Equal(p.Issuing) || a.Issuing != a.Issuers[1] {
		t.Fatalf("Issuers %d, Issuing %s: want SOP-ICA1 then SOP-ICA2 current", len(a.Issuers), a.Issuing.Subject.CommonName)
	}
	ica1, ica2 := a.Issuers[0], a.Issuers[1]
	for _, f := range []struct {
		name string
		perm os.FileMode
	}{{"issuing.crt", 0o644}, {"issuing.key", 0o600}, {"issuing-2.crt", 0o644}, {"issuing-2.key", 0o600}} {
		fi, err := os.Stat(filepath.Join(p.Dir, f.name))
		if err != nil || fi.Mode().Perm() != f.perm {
			t.Errorf("%s: %v, mode %v, want %v", f.name, err, fi, f.perm)
		}
	}
	// Same profile as the first issuing CA, apart from the name and key.
	if ica2.Subject.String() != strings.Replace(ica1.Subject.String(), "SOP-ICA1", "SOP-ICA2", 1) {
		t.Errorf("subject %s, want that of %s with CN=SOP-ICA2", ica2.Subject, ica1.Subject)
	}
	if ica2.KeyUsage != ica1.KeyUsage || !slices.Equal(ica2.ExtKeyUsage, ica1.ExtKeyUsage) ||
		!ica2.IsCA || ica2.MaxPathLen != 0 || !ica2.MaxPathLenZero ||
		!slices.Equal(ica2.CRLDistributionPoints, ica1.CRLDistributionPoints) ||
		!slices.Equal(ica2.IssuingCertificateURL, ica1.IssuingCertificateURL) ||
		ica2.SignatureAlgorithm != ica1.SignatureAlgorithm || len(ica2.PermittedDNSDomains) != 0 {
		t.Errorf("SOP-ICA2's profile differs from SOP-ICA1's")
	}
	if err := ica2.CheckSignatureFrom(p.Root); err != nil {
		t.Errorf("SOP-ICA2 is not signed by the root: %v", err)
	}
	if d := ica2.NotAfter.Sub(ica2.NotBefore); d < 5*365*24*time.Hour {
		t.Errorf("SOP-ICA2 lasts %v, want 5 years", d)
	}
	reg := registry(t, lintSources)
	lintCert(t, reg, ica2)
	lintCert(t, reg, leaf)

	// New certificates come from SOP-ICA2 and point at its own CRL and
	// certificate; the old one still points at SOP-ICA1's.
	if err := leaf.CheckSignatureFrom(ica2); err != nil || leaf.Issuer.CommonName != "SOP-ICA2" {
		t.Errorf("the new leaf is not issued by SOP-ICA2: %v", err)
	}
	for _, c := range []struct {
		leaf *x509.Certificate
		cn   string
	}{{old, "SOP-ICA1"}, {leaf, "SOP-ICA2"}} {
		if !slices.Equal(c.leaf.CRLDistributionPoints, []string{"http://localhost:8080/crl/" + c.cn + ".crl"}) ||
			!slices.Equal(c.leaf.IssuingCertificateURL, []string{"http://localhost:8080/ca/" + c.cn + ".crt"}) {
			t.Errorf("%s: CRL DP %v caIssuers %v", c.leaf.Subject.CommonName, c.leaf.CRLDistributionPoints, c.leaf.IssuingCertificateURL)
		}
	}

	// Both sign in after the rollover; the old authority knows only ICA1.
	for _, c := range []*x509.Certificate{old, leaf} {
		if _, err := a.VerifyClient([]*x509.Certificate{c}); err != nil {
			t.Errorf("VerifyClient(%s) after the rollover: %v", c.Subject.CommonName, err)
		}
	}
	if _, err := p.VerifyClient([]*x509.Certificate{leaf}); err == nil {
		t.Errorf("an authority loaded before the rollover accepted a SOP-ICA2 leaf")
	}
	// An expired SOP-ICA1 leaf is "expired", not "unknown".
	p.Clock.Set(old.NotAfter.Add(time.Hour))
	a.Now = p.Clock.Now
	if _, err := a.VerifyClient([]*x509.Certificate{old}); certportal.ErrorMessage(err) != "expired" {
		t.Errorf("an expired SOP-ICA1 leaf: %v, want expired", err)
	}
}

func TestRolloverOldCAKeepsSigning(t *testing.T) {
	p, a, old, leaf := rolledOver(t)
	ica1, ica2 := a.Issuers[0], a.Issuers[1]
	now := p.Clock.Now()
	// The root signs its CRL only with its key loaded, as ca root-crl does.
	if err := a.LoadRootKey(); err != nil {
		t.Fatal(err)
	}

	// CRLs: each issuing CA signs its own.
	for _, tt := range []struct {
		cn     string
		signer *x509.Certificate
	}{{"SOP-ICA1", ica1}, {"SOP-ICA2", ica2}, {"SOP-RCA", p.Root}} {
		der, _, _, err := a.SignCRL(tt.cn, 2, nil)
		if err != nil {
			t.Fatalf("SignCRL(%s): %v", tt.cn, err)
		}
		crl, err := x509.ParseRevocationList(der)
		if err != nil || crl.CheckSignatureFrom(tt.signer) != nil {
			t.Errorf("the CRL of %s is not signed by it: %v", tt.cn, err)
		}
	}
	if _, _, _, err := a.SignCRL("SOP-ICA9", 1, nil); certportal.ErrorCodeOf(err) != certportal.NotFound {
		t.Errorf("SignCRL of an unknown CA: %v, want NotFound", err)
	}

	// openssl verify -crl_check_all, each leaf against its own issuer's CRL.
	dir := t.TempDir()
	ica1CRL, _, _, err := a.SignCRL("SOP-ICA1", 3, []certportal.Revocation{{Serial: certportal.FormatSerial(old.SerialNumber), Time: now, Reason: certportal.ReasonKeyCompromise}})
	if err != nil {
		t.Fatal(err)
	}
	ica2CRL, _, _, _ := a.SignCRL("SOP-ICA2", 3, nil)
	rootCRL, _, _, _ := a.SignCRL("SOP-RCA", 3, nil)
	root := writeCert(t, dir, "root.pem", p.Root)
	chain := writeCert(t, dir, "inter.pem", ica1, ica2)
	crlArgs := []string{"-crl_check_all", "-CRLfile", writePEM(t, dir, "1.crl", "X509 CRL", ica1CRL),
		"-CRLfile", writePEM(t, dir, "2.crl", "X509 CRL", ica2CRL), "-CRLfile", writePEM(t, dir, "r.crl", "X509 CRL", rootCRL)}
	args := append([]string{"verify", "-CAfile", root, "-untrusted", chain}, crlArgs...)
	if out, err := run(t, "", "openssl", append(args, writeCert(t, dir, "old.pem", old))...); err == nil || !strings.Contains(out, "certificate revoked") {
		t.Errorf("openssl verify of the revoked SOP-ICA1 leaf: %v\n%s", err, out)
	}
	if out := mustRun(t, "", "openssl", append(args, writeCert(t, dir, "new.pem", leaf))...); !strings.Contains(out, "OK") {
		t.Errorf("openssl verify of the SOP-ICA2 leaf: %s", out)
	}

	// OCSP: the issuerKeyHash picks the CA, which signs the answer.
	for _, tt := range []struct {
		leaf, issuer *x509.Certificate
	}{{old, ica1}, {leaf, ica2}} {
		for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256} {
			der, err := ocsp.CreateRequest(tt.leaf, tt.issuer, &ocsp.RequestOptions{Hash: h})
			if err != nil {
				t.Fatal(err)
			}
			req, err := a.ParseOCSPRequest(der)
			if err != nil || !req.KnownIssuer || req.Issuer != tt.issuer.Subject.CommonName {
				t.Fatalf("ParseOCSPRequest for %s: %+v, %v", tt.issuer.Subject.CommonName, req, err)
			}
			st := ca.OCSPStatus{Known: true, Revoked: now, Reason: certportal.ReasonKeyCompromise}
			resp, err := a.OCSPResponse(req, st)
			if err != nil {
				t.Fatal(err)
			}
			// No issuer for ParseResponse: see parseOCSP.
			r, err := ocsp.ParseResponse(resp, nil)
			if err != nil || r.Status != ocsp.Revoked || r.Certificate == nil || !r.Certificate.Equal(tt.issuer) ||
				r.CheckSignatureFrom(tt.issuer) != nil || r.SerialNumber.Cmp(tt.leaf.SerialNumber) != 0 {
				t.Errorf("OCSP for %s (%v): %v, %+v", tt.issuer.Subject.CommonName, h, err, r)
			}
		}
	}
	// A request about SOP-ICA2 is unknown to the authority from before.
	der, _ := ocsp.CreateRequest(leaf, ica2, nil)
	if req, err := p.ParseOCSPRequest(der); err != nil || req.KnownIssuer {
		t.Errorf("the old authority knows SOP-ICA2: %+v %v", req, err)
	}

	// PKCS#12 of an old leaf carries its own issuer.
	oldLeaf, oldKey, err := p.Issue(ca.LeafRequest{ID: "p12", Email: "p12@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	pfx, err := a.PKCS12(oldKey, oldLeaf, "a long pkcs12 password", false)
	if err != nil {
		t.Fatal(err)
	}
	_, _, cas, err := pkcs12.DecodeChain(pfx, "a long pkcs12 password")
	if err != nil || len(cas) != 2 || !cas[0].Equal(ica1) {
		t.Errorf("the PKCS#12 of a SOP-ICA1 leaf carries %d CAs, first %v: %v", len(cas), cas, err)
	}
}

func TestRolloverNamesAndRefusals(t *testing.T) {
	for _, tt := range []struct{ first, next string }{
		{"SOP-ICA1", "SOP-ICA2"}, {"Issuing 9", "Issuing 10"}, {"Acme Users", "Acme Users2"},
	} {
		p := testpki.New(t, func(o *ca.InitOptions) { o.IssuingCN = tt.first })
		c, err := p.Rollover(ca.RolloverOptions{})
		if err != nil || c.Subject.CommonName != tt.next {
			t.Errorf("rollover of %q: %v, %v; want %q", tt.first, c, err, tt.next)
		}
	}
	p := testpki.New(t, func(o *ca.InitOptions) { o.KeyType = ca.P384 })
	for _, tt := range []struct {
		cn   string
		code certportal.ErrorCode
	}{{"SOP-RCA", certportal.Conflict}, {"sop-ica1", certportal.Conflict}, {"SOP-TLS1", certportal.Conflict}, {"root", certportal.Invalid}, {"a/b", certportal.Invalid}} {
		_, err := p.Rollover(ca.RolloverOptions{CN: tt.cn})
		var e *certportal.Error
		if !errors.As(err, &e) || e.Code != tt.code || !strings.HasPrefix(err.Error(), "ca: ") {
			t.Errorf("Rollover(%q): %v, want %s", tt.cn, err, tt.code)
		}
	}
	if _, err := os.Stat(filepath.Join(p.Dir, "issuing-2.crt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused rollover left issuing-2.crt: %v", err)
	}
	// Two in a row: SOP-ICA2 then SOP-ICA3, same key type as the first.
	for _, want := range []string{"SOP-ICA2", "SOP-ICA3"} {
		if c, err := p.Rollover(ca.RolloverOptions{}); err != nil || c.Subject.CommonName != want || c.SignatureAlgorithm != x509.ECDSAWithSHA384 {
			t.Fatalf("rollover: %v %v, want %s", c, err, want)
		}
	}
	a, err := ca.Load(p.Dir, "")
	if err != nil || len(a.Issuers) != 3 || a.Issuing.Subject.CommonName != "SOP-ICA3" {
		t.Fatalf("Load after two rollovers: %v", err)
	}
	if _, err := os.Stat(filepath.Join(p.Dir, "issuing-3.key")); err != nil {
		t.Error(err)
	}
}
