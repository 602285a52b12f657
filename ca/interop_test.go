package ca_test

import (
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/ca"
)

// TestOpenSSLVerify checks user and server chains, and the CRLs, with
// openssl verify.
func TestOpenSSLVerify(t *testing.T) {
	p := shared(t)
	dir := t.TempDir()
	good, _ := issue(t, p, "good", ca.P256)
	bad, _ := issue(t, p, "bad", ca.RSA2048)
	now := p.Clock.Now()
	rootCRL, _, _, err := p.SignCRL("SOP-RCA", 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	issCRL, _, _, err := p.SignCRL("SOP-ICA1", 7, []certportal.Revocation{
		{Serial: certportal.FormatSerial(bad.SerialNumber), Time: now.Add(-time.Minute), Reason: certportal.ReasonKeyCompromise},
	})
	if err != nil {
		t.Fatal(err)
	}
	root := writeCert(t, dir, "root.pem", p.Root)
	iss := writeCert(t, dir, "issuing.pem", p.Issuing)
	tlsCA := writeCert(t, dir, "tls-ca.pem", p.TLSCA)
	goodF := writeCert(t, dir, "good.pem", good)
	badF := writeCert(t, dir, "bad.pem", bad)
	rootCRLF := writePEM(t, dir, "root.crl", "X509 CRL", rootCRL)
	issCRLF := writePEM(t, dir, "issuing.crl", "X509 CRL", issCRL)
	server := filepath.Join(p.Dir, "server.crt") // server + TLS CA; openssl reads the first

	crlArgs := []string{"-crl_check_all", "-CRLfile", rootCRLF, "-CRLfile", issCRLF}
	tests := []struct {
		name string
		args []string
		ok   bool
		want string
	}{
		{"leaf", []string{"-CAfile", root, "-untrusted", iss, goodF}, true, "OK"},
		{"revoked leaf without CRLs", []string{"-CAfile", root, "-untrusted", iss, badF}, true, "OK"},
		{"leaf, client purpose", []string{"-CAfile", root, "-untrusted", iss, "-purpose", "sslclient", goodF}, true, "OK"},
		{"leaf with CRLs", append(append([]string{"-CAfile", root, "-untrusted", iss}, crlArgs...), goodF), true, "OK"},
		{"revoked leaf with CRLs", append(append([]string{"-CAfile", root, "-untrusted", iss}, crlArgs...), badF), false, "certificate revoked"},
		{"leaf without the issuing CA", []string{"-CAfile", root, goodF}, false, "unable to get local issuer certificate"},
		{"leaf used as a server certificate", []string{"-CAfile", root, "-untrusted", iss, "-purpose", "sslserver", goodF}, false, "unsuitable certificate purpose"},
		{"server", []string{"-CAfile", root, "-untrusted", tlsCA, "-purpose", "sslserver", "-verify_hostname", "localhost", server}, true, "OK"},
		{"server by IP", []string{"-CAfile", root, "-untrusted", tlsCA, "-purpose", "sslserver", "-verify_ip", "127.0.0.1", server}, true, "OK"},
		{"server, wrong host", []string{"-CAfile", root, "-untrusted", tlsCA, "-purpose", "sslserver", "-verify_hostname", "example.com", server}, false, "hostname mismatch"},
		{"issuing CA with root CRL", append(append([]string{"-CAfile", root}, "-crl_check", "-CRLfile", rootCRLF), iss), true, "OK"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := run(t, "", "openssl", append([]string{"verify"}, tt.args...)...)
			if (err == nil) != tt.ok || !strings.Contains(out, tt.want) {
				t.Errorf("openssl verify %s: err=%v, want ok=%v and %q:\n%s", strings.Join(tt.args, " "), err, tt.ok, tt.want, out)
			}
		})
	}

	// The TLS intermediate's name constraints hold: a certificate it
	// signs for a name outside them is refused.
	key, _ := ca.GenerateKey(nil, ca.P256)
	der, err := x509.CreateCertificate(nil, &x509.Certificate{
		SerialNumber: big.NewInt(5),
		Subject:      pkix.Name{CommonName: "evil.example"},
		DNSNames:     []string{"evil.example"},
		IPAddresses:  []net.IP{net.ParseIP("10.0.0.1")},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, p.TLSCA, key.Public(), loadKey(t, filepath.Join(p.Dir, "tls-ca.key")))
	if err != nil {
		t.Fatal(err)
	}
	evil := writePEM(t, dir, "evil.pem", "CERTIFICATE", der)
	out, err := run(t, "", "openssl", "verify", "-CAfile", root, "-untrusted", tlsCA, "-purpose", "sslserver", evil)
	if err == nil || !strings.Contains(out, "permitted subtree violation") {
		t.Errorf("openssl accepted a name outside the TLS CA's constraints (err=%v):\n%s", err, out)
	}
}

// TestOpenSSLCRL checks that openssl parses and verifies both CRLs.
func TestOpenSSLCRL(t *testing.T) {
	p := shared(t)
	dir := t.TempDir()
	der, _, _, err := p.SignCRL("SOP-ICA1", 12, []certportal.Revocation{{Serial: "7F01", Time: p.Clock.Now(), Reason: certportal.ReasonSuperseded}})
	if err != nil {
		t.Fatal(err)
	}
	crl := writeFile(t, dir, "issuing.crl", der)
	iss := writeCert(t, dir, "issuing.pem", p.Issuing)
	out := mustRun(t, "", "openssl", "crl", "-inform", "DER", "-in", crl, "-CAfile", iss, "-noout", "-text")
	for _, want := range []string{"verify OK", "X509v3 CRL Number: \n                12", "Serial Number: 7F01", "Superseded", "Issuer: O = certportal, OU = " + p.InstallationID + ", CN = SOP-ICA1"} {
		if !strings.Contains(out, want) {
			t.Errorf("openssl crl output lacks %q:\n%s", want, out)
		}
	}
}

// ocspRequest builds an OCSP request with openssl and returns its path.
func ocspRequest(t *testing.T, dir, name, issuer, cert string, extra ...string) string {
	t.Helper()
	req := filepath.Join(dir, name)
	// -sha256 and friends must come before -cert.
	args := append(append([]string{"ocsp", "-issuer", issuer}, extra...), "-cert", cert, "-reqout", req)
	mustRun(t, "", "openssl", args...)
	return req
}

// TestOpenSSLOCSP round-trips requests made by openssl through
// ParseOCSPRequest and OCSPResponse and checks the answers with openssl.
func TestOpenSSLOCSP(t *testing.T) {
	p := shared(t)
	dir := t.TempDir()
	leaf, _ := issue(t, p, "ocsp", ca.P256)
	root := writeCert(t, dir, "root.pem", p.Root)
	iss := writeCert(t, dir, "issuing.pem", p.Issuing)
	leafF := writeCert(t, dir, "leaf.pem", leaf)
	revokedAt := p.Clock.Now().Add(-time.Hour)

	statuses := []struct {
		name    string
		st      ca.OCSPStatus
		text    *regexp.Regexp // in -resp_text
		summary *regexp.Regexp // the per-certificate summary of -cert
	}{
		{"good", ca.OCSPStatus{Known: true}, regexp.MustCompile(`Cert Status: good`), regexp.MustCompile(`leaf.pem: good`)},
		{"revoked", ca.OCSPStatus{Known: true, Revoked: revokedAt, Reason: certportal.ReasonKeyCompromise},
			regexp.MustCompile(`Cert Status: revoked\s+Revocation Time: ` + regexp.QuoteMeta(revokedAt.Format("Jan _2 15:04:05 2006 GMT")) + `\s+Revocation Reason: keyCompromise \(0x1\)`),
			regexp.MustCompile(`leaf.pem: revoked\s+This Update: .*\s+Next Update: .*\s+Reason: keyCompromise\s+Revocation Time: ` + regexp.QuoteMeta(revokedAt.Format("Jan _2 15:04:05 2006 GMT")))},
		{"revoked without reason", ca.OCSPStatus{Known: true, Revoked: revokedAt, Reason: certportal.ReasonNone},
			regexp.MustCompile(`Cert Status: revoked\s+Revocation Time: .*\s+This Update`),
			regexp.MustCompile(`leaf.pem: revoked\s+This Update: .*\s+Next Update: .*\s+Revocation Time: `)},
		{"unknown", ca.OCSPStatus{}, regexp.MustCompile(`Cert Status: unknown`), regexp.MustCompile(`leaf.pem: unknown`)},
	}
	requests := []struct {
		name  string
		args  []string
		nonce bool
		hash  crypto.Hash
	}{
		{"nonce", nil, true, crypto.SHA1},
		{"no nonce", []string{"-no_nonce"}, false, crypto.SHA1},
		{"sha256 nonce", []string{"-sha256"}, true, crypto.SHA256},
		{"sha256 no nonce", []string{"-sha256", "-no_nonce"}, false, crypto.SHA256},
	}
	for _, rq := range requests {
		reqF := ocspRequest(t, dir, strings.ReplaceAll(rq.name, " ", "-")+".req", iss, leafF, rq.args...)
		reqDER, err := os.ReadFile(reqF)
		if err != nil {
			t.Fatal(err)
		}
		req, err := p.ParseOCSPRequest(reqDER)
		if err != nil {
			t.Fatalf("%s: ParseOCSPRequest: %v", rq.name, err)
		}
		if !req.KnownIssuer || req.Serial.Cmp(leaf.SerialNumber) != 0 || req.HashAlgorithm != rq.hash || (req.Nonce != nil) != rq.nonce {
			t.Fatalf("%s: parsed %+v", rq.name, req)
		}
		if rq.nonce && len(req.Nonce) != 16 {
			t.Errorf("%s: nonce of %d bytes, openssl sends 16", rq.name, len(req.Nonce))
		}
		for _, s := range statuses {
			t.Run(rq.name+"/"+s.name, func(t *testing.T) {
				resp, err := p.OCSPResponse(req, s.st)
				if err != nil {
					t.Fatal(err)
				}
				respF := writeFile(t, t.TempDir(), "resp.der", resp)
				// With -reqin openssl checks the nonce (and warns when
				// one is missing); -cert cannot be combined with -reqin
				// (it makes a new request), so the status is read from
				// -resp_text here and from the summary below.
				out, err := run(t, "", "openssl", "ocsp", "-respin", respF, "-issuer", iss, "-CAfile", root, "-reqin", reqF, "-resp_text")
				if err != nil || !strings.Contains(out, "Response verify OK") || !s.text.MatchString(out) {
					t.Fatalf("openssl ocsp -reqin: err=%v, want %q:\n%s", err, s.text, out)
				}
				if strings.Contains(out, "WARNING") || strings.Contains(out, "rror") {
					t.Errorf("openssl ocsp complained (nonce?):\n%s", out)
				}
				if rq.nonce != strings.Contains(out, "OCSP Nonce:") {
					t.Errorf("nonce in response = %v, want %v", !rq.nonce, rq.nonce)
				}
				// The CertID matches the certificate and the status reads right.
				args := []string{"ocsp", "-respin", respF, "-issuer", iss, "-CAfile", root, "-no_nonce"}
				if rq.hash == crypto.SHA256 {
					args = append(args, "-sha256")
				}
				out, err = run(t, "", "openssl", append(args, "-cert", leafF)...)
				if err != nil || !s.summary.MatchString(out) {
					t.Fatalf("openssl ocsp -cert: err=%v, want %q:\n%s", err, s.summary, out)
				}
			})
		}
	}

	// Another issuer: the "unauthorized" error response.
	other2 := newOther(t)
	otherIss := writeCert(t, dir, "other-issuing.pem", other2.Issuing)
	reqF := ocspRequest(t, dir, "other.req", otherIss, leafF)
	reqDER, _ := os.ReadFile(reqF)
	req, err := p.ParseOCSPRequest(reqDER)
	if err != nil || req.KnownIssuer {
		t.Fatalf("request about another issuer: %+v, %v", req, err)
	}
	resp, err := p.OCSPResponse(req, ca.OCSPStatus{Known: true})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := run(t, "", "openssl", "ocsp", "-respin", writeFile(t, dir, "unauth.der", resp), "-resp_text", "-noverify")
	if !strings.Contains(out, "unauthorized (6)") {
		t.Errorf("another issuer: want unauthorized:\n%s", out)
	}

	// A nonce mismatch is caught by openssl: the check is real.
	r1, _ := os.ReadFile(ocspRequest(t, dir, "n1.req", iss, leafF))
	req1, err := p.ParseOCSPRequest(r1)
	if err != nil {
		t.Fatal(err)
	}
	resp1, err := p.OCSPResponse(req1, ca.OCSPStatus{Known: true})
	if err != nil {
		t.Fatal(err)
	}
	n2 := ocspRequest(t, dir, "n2.req", iss, leafF)
	out, _ = run(t, "", "openssl", "ocsp", "-respin", writeFile(t, dir, "n1.der", resp1), "-issuer", iss, "-CAfile", root, "-reqin", n2)
	if !strings.Contains(out, "Nonce Verify error") {
		t.Errorf("openssl did not notice a foreign nonce:\n%s", out)
	}
}
