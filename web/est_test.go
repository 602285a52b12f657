package web_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"
	zx509 "github.com/zmap/zcrypto/x509"
	"github.com/zmap/zlint/v3"
	"github.com/zmap/zlint/v3/lint"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/ca"
	"github.com/certportal/certportal/internal/testpki"
)

// estTool is one run of curl or openssl in the test's directory.
type estTool struct {
	t   *testing.T
	dir string
}

// sh runs a shell pipeline in the directory and returns its standard
// output; it fails the test when the pipeline fails.
func (x estTool) sh(script string) string {
	x.t.Helper()
	cmd := exec.Command("sh", "-ec", script)
	cmd.Dir = x.dir
	out, err := cmd.Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		x.t.Fatalf("%s: %v\n%s%s", script, err, out, msg)
	}
	return string(out)
}

func (x estTool) read(name string) []byte {
	x.t.Helper()
	b, err := os.ReadFile(filepath.Join(x.dir, name))
	if err != nil {
		x.t.Fatal(err)
	}
	return b
}

// certsOf parses the PEM certificates openssl -print_certs wrote.
func (x estTool) certsOf(name string) []*x509.Certificate {
	x.t.Helper()
	var out []*x509.Certificate
	data := x.read(name)
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return out
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			x.t.Fatal(err)
		}
		out = append(out, c)
	}
}

// TestESTWithCurl is EST spoken by curl and read by openssl: the CA
// certificates, a first certificate by ID and password for a key made in
// the test's directory (the key never leaves it), certificate sign-in with
// that key, re-enrollment over mutual TLS with a new key, the superseded
// certificate revoked by OCSP and refused, and another portal's
// certificate refused.
func TestESTWithCurl(t *testing.T) {
	need(t, "curl")
	need(t, "openssl")
	e := newEnv(t)
	// The whole year is the renewal window, so curl and openssl can use the
	// real clock; TestESTReenrollWindow moves the clock instead.
	e.svc.Config.RenewWindow = 400 * 24 * time.Hour
	e.addUser("estelle", "estelle@example.com", "estelle password 1")
	x := estTool{t, t.TempDir()}
	writePEM(t, filepath.Join(x.dir, "root.pem"), "CERTIFICATE", e.pki.Root.Raw)
	curl := "curl -sS --cacert root.pem "
	base := e.srv.URL + "/.well-known/est/"

	// cacerts: the issuing CA and the root.
	x.sh(curl + "-D cacerts.h -o cacerts.b64 " + base + "cacerts")
	checkESTHeaders(t, string(x.read("cacerts.h")))
	x.sh("openssl base64 -d < cacerts.b64 | openssl pkcs7 -inform DER -print_certs -out chain.pem")
	chain := x.certsOf("chain.pem")
	if len(chain) != 2 || !chain[0].Equal(e.pki.Issuing) || !chain[1].Equal(e.pki.Root) {
		t.Fatalf("cacerts holds %d certificates, want the issuing CA and the root", len(chain))
	}
	if code := x.sh(curl + "-o /dev/null -w '%{http_code}' " + base + "csrattrs"); code != "204" {
		t.Errorf("csrattrs: %s, want 204", code)
	}

	// A key and a CSR that asks for another name, e-mail and server use.
	x.sh(`openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout key1.pem \
		-subj '/CN=admin/emailAddress=mallory@evil.example' \
		-addext 'subjectAltName=email:mallory@evil.example,DNS:portal.example.com' \
		-addext 'extendedKeyUsage=serverAuth' -addext 'basicConstraints=critical,CA:TRUE' \
		-outform DER -out csr1.der 2>/dev/null
		openssl base64 -in csr1.der -out csr1.b64`)
	enroll := curl + "--data-binary @csr1.b64 -H 'Content-Type: application/pkcs10' -o out.b64 -D out.h -w '%{http_code}' "

	// A wrong password: 401 with a challenge, counted by the lockout.
	if code := x.sh(enroll + "--user 'estelle:wrong password' " + base + "simpleenroll"); code != "401" {
		t.Fatalf("simpleenroll with a wrong password: %s, want 401", code)
	}
	if h := string(x.read("out.h")); !strings.Contains(strings.ToLower(h), "www-authenticate: basic") {
		t.Errorf("401 without a Basic challenge:\n%s", h)
	}
	if n := countAudit(e.audit(), certportal.ActionSignInFailed, "wrong password"); n != 1 {
		t.Errorf("%d failed sign-ins audited, want 1", n)
	}
	if len(e.certificates("estelle")) != 0 {
		t.Fatal("a wrong password issued a certificate")
	}

	// The right password: the certificate, for the CSR's key, in the
	// portal's profile.
	if code := x.sh(enroll + "--user 'estelle:estelle password 1' " + base + "simpleenroll"); code != "200" {
		t.Fatalf("simpleenroll: %s\n%s", code, x.read("out.b64"))
	}
	checkESTHeaders(t, string(x.read("out.h")))
	x.sh("openssl base64 -d < out.b64 | openssl pkcs7 -inform DER -print_certs -out cert1.pem")
	leaf1 := checkESTLeaf(t, x, e, "cert1.pem", "key1.pem")
	if acc := e.account("estelle"); acc.Method != certportal.MethodCertificate {
		t.Errorf("method %s after simpleenroll, want certificate", acc.Method)
	}

	// The key that never left the directory signs in by mutual TLS.
	if out := x.sh(curl + "--cert cert1.pem --key key1.pem " + e.srv.URL + "/api/whoami"); !strings.Contains(out, `"id":"estelle"`) {
		t.Errorf("whoami with the enrolled certificate: %s", out)
	}

	// A second first certificate is refused like POST /certificate.
	if code := x.sh(enroll + "--user 'estelle:estelle password 1' " + base + "simpleenroll"); code != "403" {
		t.Errorf("simpleenroll for an account that signs in by certificate: %s, want 403", code)
	}

	// Re-enrollment over mutual TLS, with a new RSA key.
	x.sh(`openssl req -new -newkey rsa:2048 -nodes -keyout key2.pem -subj '/CN=whoever' -outform DER -out csr2.der 2>/dev/null
		openssl base64 -in csr2.der -out csr2.b64`)
	reenroll := curl + "--data-binary @csr2.b64 -H 'Content-Type: application/pkcs10' -o out.b64 -D out.h -w '%{http_code}' "
	if code := x.sh(reenroll + "--cert cert1.pem --key key1.pem " + base + "simplereenroll"); code != "200" {
		t.Fatalf("simplereenroll: %s\n%s", code, x.read("out.b64"))
	}
	x.sh("openssl base64 -d < out.b64 | openssl pkcs7 -inform DER -print_certs -out cert2.pem")
	leaf2 := checkESTLeaf(t, x, e, "cert2.pem", "key2.pem")
	if leaf2.SerialNumber.Cmp(leaf1.SerialNumber) == 0 {
		t.Fatal("re-enrollment returned the same serial")
	}

	// The old certificate is superseded: OCSP says revoked, and it can
	// neither re-enroll nor sign in.
	writePEM(t, filepath.Join(x.dir, "issuing.pem"), "CERTIFICATE", e.pki.Issuing.Raw)
	ocsp := x.sh("openssl ocsp -issuer issuing.pem -cert cert1.pem -url " + e.caSrv.URL + "/ocsp -CAfile root.pem 2>&1")
	if !strings.Contains(ocsp, "cert1.pem: revoked") || !strings.Contains(ocsp, "Reason: superseded") {
		t.Errorf("openssl ocsp for the re-enrolled certificate:\n%s", ocsp)
	}
	if code := x.sh(reenroll + "--cert cert1.pem --key key1.pem " + base + "simplereenroll"); code != "403" {
		t.Errorf("simplereenroll with the superseded certificate: %s, want 403", code)
	} else if body := string(x.read("out.b64")); !strings.Contains(body, "revoked") {
		t.Errorf("the refusal does not say revoked: %q", body)
	}

	// Another portal's certificate for the same ID is refused.
	other := testpki.New(t)
	foreign, foreignKey, err := other.Issue(ca.LeafRequest{ID: "estelle", Email: "estelle@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(x.dir, "foreign.pem"), "CERTIFICATE", foreign.Raw)
	fder, _ := x509.MarshalPKCS8PrivateKey(foreignKey)
	writePEM(t, filepath.Join(x.dir, "foreign.key"), "PRIVATE KEY", fder)
	if code := x.sh(reenroll + "--cert foreign.pem --key foreign.key " + base + "simplereenroll"); code != "403" {
		t.Errorf("simplereenroll with another portal's certificate: %s, want 403", code)
	}
	if n := len(e.certificates("estelle")); n != 2 {
		t.Errorf("%d certificates recorded, want 2", n)
	}
}

func checkESTHeaders(t *testing.T, h string) {
	t.Helper()
	lh := strings.ToLower(h)
	for _, want := range []string{"content-type: application/pkcs7-mime; smime-type=certs-only", "content-transfer-encoding: base64"} {
		if !strings.Contains(lh, want) {
			t.Errorf("the answer lacks %q:\n%s", want, h)
		}
	}
}

// checkESTLeaf checks an enrolled certificate with openssl and Go: it
// verifies to the root, carries the key in keyFile, names the account
// whatever the CSR asked for, and is zlint clean.
func checkESTLeaf(t *testing.T, x estTool, e *env, certFile, keyFile string) *x509.Certificate {
	t.Helper()
	certs := x.certsOf(certFile)
	if len(certs) != 1 {
		t.Fatalf("%s: %d certificates, want the issued one alone", certFile, len(certs))
	}
	leaf := certs[0]
	if out := x.sh("openssl verify -CAfile root.pem -untrusted chain.pem -purpose sslclient " + certFile); !strings.Contains(out, ": OK") {
		t.Errorf("openssl verify: %s", out)
	}
	if a, b := x.sh("openssl x509 -in "+certFile+" -noout -pubkey"), x.sh("openssl pkey -in "+keyFile+" -pubout"); a != b {
		t.Errorf("%s does not carry the public key of %s", certFile, keyFile)
	}
	if leaf.Subject.String() != "CN=estelle" || !slices.Equal(leaf.EmailAddresses, []string{"estelle@example.com"}) || len(leaf.DNSNames) != 0 {
		t.Errorf("subject %q, e-mail %v, DNS %v; want CN=estelle and estelle@example.com only", leaf.Subject, leaf.EmailAddresses, leaf.DNSNames)
	}
	if leaf.IsCA || !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Errorf("IsCA %v, EKU %v; want a clientAuth leaf", leaf.IsCA, leaf.ExtKeyUsage)
	}
	zlintClean(t, leaf)
	return leaf
}

// zlintClean lints a certificate with the sources SPEC.md names.
func zlintClean(t *testing.T, c *x509.Certificate) {
	t.Helper()
	reg, err := lint.GlobalRegistry().Filter(lint.FilterOptions{IncludeSources: lint.SourceList{lint.RFC5280, lint.RFC5480, lint.RFC8813, lint.RFC3279}})
	if err != nil {
		t.Fatal(err)
	}
	zc, err := zx509.ParseCertificate(c.Raw)
	if err != nil {
		t.Fatalf("zcrypto cannot parse the certificate: %v", err)
	}
	rs := zlint.LintCertificateEx(zc, reg)
	if len(rs.Results) == 0 {
		t.Fatal("no lint ran")
	}
	for name, r := range rs.Results {
		if r.Status >= lint.Warn {
			t.Errorf("zlint %s: %s %s", name, r.Status, r.Details)
		}
	}
}

// estPost sends an EST body with optional Basic credentials and a client
// certificate.
func (e *env) estPost(c *http.Client, path, contentType string, body []byte, id, password string) *response {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/.well-known/est/"+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if id != "" {
		req.SetBasicAuth(id, password)
	}
	return e.do(c, req)
}

func b64(der []byte) []byte { return []byte(base64.StdEncoding.EncodeToString(der)) }

func csrFor(t *testing.T, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "x"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestESTRefusals: every malformed or refused request gets 400 or 413
// with a plain-text reason, and records nothing: no certificate, no audit
// record, no count against the lockout.
func TestESTRefusals(t *testing.T) {
	e := newEnv(t)
	e.addUser("rhea", "rhea@example.com", "rhea password 1")
	c := e.client(nil)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	good := csrFor(t, p256)
	broken := slices.Clone(good)
	broken[len(broken)-2] ^= 0x40
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	x := estTool{t, t.TempDir()}
	x.sh(`openssl genpkey -genparam -algorithm DSA -pkeyopt dsa_paramgen_bits:2048 -out dsa.param
		openssl genpkey -paramfile dsa.param -out dsa.key
		openssl req -new -key dsa.key -subj /CN=rhea -outform DER -out dsa.der`)
	before := len(e.audit())

	const pkcs10 = "application/pkcs10"
	for _, tt := range []struct {
		name, ctype string
		body        []byte
		code        int
		reason      string
	}{
		{"broken signature", pkcs10, b64(broken), 400, "signature does not verify"},
		{"RSA-1024", pkcs10, b64(csrFor(t, rsa1024)), 400, "too weak"},
		{"DSA", pkcs10, b64(x.read("dsa.der")), 400, "DSA"},
		{"garbage", pkcs10, []byte("%%% not base64 %%%"), 400, "not base64"},
		{"base64 garbage", pkcs10, b64([]byte("not a CSR at all")), 400, "not a valid PKCS#10"},
		{"empty", pkcs10, nil, 400, "empty"},
		{"1 MiB", pkcs10, bytes.Repeat([]byte("A"), 1<<20), 413, "too large"},
		{"form type", "application/x-www-form-urlencoded", b64(good), 400, "application/pkcs10"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := e.estPost(c, "simpleenroll", tt.ctype, tt.body, "rhea", "rhea password 1")
			if r.StatusCode != tt.code || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain") || !strings.Contains(r.body, tt.reason) {
				t.Errorf("%d %q %q; want %d saying %q", r.StatusCode, r.Header.Get("Content-Type"), r.body, tt.code, tt.reason)
			}
		})
	}
	if n := len(e.certificates("rhea")); n != 0 {
		t.Errorf("%d certificates recorded", n)
	}
	if n := len(e.audit()); n != before {
		t.Errorf("%d audit records written by refused requests", n-before)
	}
	if a := e.account("rhea"); a.Method != certportal.MethodPassword {
		t.Errorf("method %s", a.Method)
	}

	// Line-wrapped base64 without its padding is read too.
	wrapped := string(b64(good))
	wrapped = strings.TrimRight(wrapped[:40]+"\r\n"+wrapped[40:], "=")
	r := e.estPost(c, "simpleenroll", pkcs10, []byte(wrapped), "rhea", "rhea password 1")
	if r.StatusCode != http.StatusOK {
		t.Fatalf("wrapped, unpadded base64: %d %s", r.StatusCode, r.body)
	}

	// Re-enrollment: no certificate is 401 (no Basic challenge: Basic
	// would not do), one outside its renewal window is 409 saying when.
	if r := e.estPost(c, "simplereenroll", pkcs10, b64(good), "", ""); r.StatusCode != http.StatusUnauthorized || r.Header.Get("WWW-Authenticate") != "" {
		t.Errorf("simplereenroll without a certificate: %d %q", r.StatusCode, r.Header.Get("WWW-Authenticate"))
	}
	leaf := parseCertsOnly(t, r.body)[0]
	withCert := e.client(&tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: p256, Leaf: leaf})
	r = e.estPost(withCert, "simplereenroll", pkcs10, b64(good), "", "")
	if r.StatusCode != http.StatusConflict || !strings.Contains(r.body, "can be renewed from") {
		t.Errorf("simplereenroll a year before expiry: %d %q, want 409 saying from when", r.StatusCode, r.body)
	}
	if n := len(e.certificates("rhea")); n != 1 {
		t.Errorf("%d certificates recorded, want 1", n)
	}
}

// parseCertsOnly reads an EST answer: base64 of a certs-only PKCS#7.
func parseCertsOnly(t *testing.T, body string) []*x509.Certificate {
	t.Helper()
	der, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(body, "\n", ""))
	if err != nil {
		t.Fatalf("the answer is not base64: %v", err)
	}
	p7, err := pkcs7.Parse(der)
	if err != nil {
		t.Fatalf("the answer is not PKCS#7: %v", err)
	}
	return p7.Certificates
}
