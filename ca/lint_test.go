package ca_test

import (
	"crypto"
	"crypto/x509"
	"sort"
	"testing"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/ca"
	"github.com/certportal/certportal/internal/testpki"
	zx509 "github.com/zmap/zcrypto/x509"
	"github.com/zmap/zlint/v3"
	"github.com/zmap/zlint/v3/lint"
)

// lintSources are the sources SPEC.md names: the equivalent of
// zlint -includeSources RFC5280,RFC5480,RFC8813,RFC3279.
var lintSources = lint.SourceList{lint.RFC5280, lint.RFC5480, lint.RFC8813, lint.RFC3279}

func registry(t *testing.T, sources lint.SourceList) lint.Registry {
	t.Helper()
	r, err := lint.GlobalRegistry().Filter(lint.FilterOptions{IncludeSources: sources})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// checkLints fails for every warning, error or fatal in rs and reports how
// many lints ran, so a filter that selects nothing cannot pass silently.
func checkLints(t *testing.T, what string, rs *zlint.ResultSet) {
	t.Helper()
	if len(rs.Results) == 0 {
		t.Fatalf("%s: no lint ran", what)
	}
	var names []string
	for name := range rs.Results {
		names = append(names, name)
	}
	sort.Strings(names)
	applied := 0
	for _, name := range names {
		r := rs.Results[name]
		if r.Status >= lint.Pass {
			applied++
		}
		if r.Status >= lint.Warn {
			t.Errorf("%s: %s: %s %s", what, name, r.Status, r.Details)
		}
	}
	t.Logf("%s: %d lints applied, none warned", what, applied)
}

func lintCert(t *testing.T, reg lint.Registry, c *x509.Certificate) {
	t.Helper()
	zc, err := zx509.ParseCertificate(c.Raw)
	if err != nil {
		t.Fatalf("zcrypto cannot parse %s: %v", c.Subject.CommonName, err)
	}
	checkLints(t, c.Subject.CommonName, zlint.LintCertificateEx(zc, reg))
}

// TestZlint lints every certificate the CA makes, for each CA key type and
// each user key type, and the CRLs.
func TestZlint(t *testing.T) {
	reg := registry(t, lintSources)
	for _, kt := range []ca.KeyType{ca.P256, ca.P384, ca.RSA2048} {
		t.Run("hierarchy-"+string(kt), func(t *testing.T) {
			p := testpki.New(t, func(o *ca.InitOptions) {
				o.KeyType = kt
				o.Hostnames = []string{"portal.example.com", "127.0.0.1", "::1"}
			})
			tc, err := p.ServerCertificate()
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []*x509.Certificate{p.Root, p.Issuing, p.TLSCA, tc.Leaf} {
				lintCert(t, reg, c)
			}
			// A DNS-only TLS CA excludes all IP addresses instead.
			q := testpki.New(t, func(o *ca.InitOptions) { o.KeyType = kt; o.Hostnames = []string{"example.org"} })
			lintCert(t, reg, q.TLSCA)
			lintCRLs(t, reg, p)
		})
	}
	p := shared(t)
	for _, kt := range allKeyTypes {
		t.Run("leaf-"+string(kt), func(t *testing.T) {
			leaf, _ := issue(t, p, "lint-"+string(kt), kt)
			lintCert(t, reg, leaf)
		})
	}
}

func lintCRLs(t *testing.T, reg lint.Registry, p *testpki.PKI) {
	t.Helper()
	now := p.Clock.Now()
	for _, tt := range []struct {
		issuer  string
		revoked []certportal.Revocation
	}{
		{"SOP-RCA", nil},
		{"SOP-ICA1", nil},
		{"SOP-ICA1", []certportal.Revocation{
			{Serial: "7F0102", Time: now.Add(-time.Hour), Reason: certportal.ReasonKeyCompromise},
			{Serial: "7F0103", Time: now.Add(-time.Minute), Reason: certportal.ReasonNone},
			{Serial: "7F0104", Time: now, Reason: certportal.ReasonUnspecified},
			{Serial: "7F0105", Time: now, Reason: certportal.ReasonCessationOfOperation},
		}},
	} {
		der, _, _, err := p.SignCRL(tt.issuer, 3, tt.revoked)
		if err != nil {
			t.Fatal(err)
		}
		crl, err := zx509.ParseRevocationList(der)
		if err != nil {
			t.Fatalf("zcrypto cannot parse the CRL: %v", err)
		}
		checkLints(t, "CRL of "+tt.issuer, zlint.LintRevocationListEx(crl, reg))
	}
}

// TestZlintOCSP lints OCSP responses. None of SPEC.md's sources has OCSP
// lints, so RFC 6960 is added (zlint v3.7.3 has one there).
func TestZlintOCSP(t *testing.T) {
	reg := registry(t, append(lint.SourceList{lint.RFC6960}, lintSources...))
	p := shared(t)
	leaf, _ := issue(t, p, "lint-ocsp", ca.P256)
	for _, st := range []ca.OCSPStatus{{Known: true}, {Known: true, Revoked: p.Clock.Now(), Reason: certportal.ReasonSuperseded}, {}} {
		for _, nonce := range [][]byte{nil, []byte("0123456789abcdef")} {
			resp, err := p.OCSPResponse(&ca.OCSPRequest{Serial: leaf.SerialNumber, HashAlgorithm: crypto.SHA1, Nonce: nonce, KnownIssuer: true}, st)
			if err != nil {
				t.Fatal(err)
			}
			r := parseOCSP(t, p, resp)
			checkLints(t, "OCSP response", zlint.LintOcspResponseEx(r, reg))
		}
	}
}
