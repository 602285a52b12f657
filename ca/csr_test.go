package ca_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/ca"
)

// hostileCSR is a request that asks for everything the portal must not
// give: another CN and e-mail, a server name, CA rights and serverAuth.
func hostileCSR(t testing.TB, key crypto.Signer) []byte {
	t.Helper()
	bc, _ := asn1.Marshal(struct {
		IsCA bool `asn1:"optional"`
	}{true})
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:        pkix.Name{CommonName: "admin", Organization: []string{"Evil"}},
		EmailAddresses: []string{"attacker@evil.example"},
		DNSNames:       []string{"portal.example.com"},
		IPAddresses:    []net.IP{net.ParseIP("10.0.0.1")},
		ExtraExtensions: []pkix.Extension{
			{Id: asn1.ObjectIdentifier{2, 5, 29, 19}, Critical: true, Value: bc},
			{Id: asn1.ObjectIdentifier{2, 5, 29, 37}, Value: mustMarshal(t, []asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 1}})},
		},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func mustMarshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := asn1.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestIssueCSR: a certificate from a CSR carries the CSR's key and the
// portal's profile, whatever the CSR asked for, and is zlint clean.
func TestIssueCSR(t *testing.T) {
	p := shared(t)
	reg := registry(t, lintSources)
	for _, kt := range allKeyTypes {
		t.Run(string(kt), func(t *testing.T) {
			key, err := ca.GenerateKey(nil, kt)
			if err != nil {
				t.Fatal(err)
			}
			csr, err := ca.ParseCSR(hostileCSR(t, key))
			if err != nil {
				t.Fatalf("ParseCSR: %v", err)
			}
			if csr.KeyType() != kt {
				t.Errorf("KeyType = %s, want %s", csr.KeyType(), kt)
			}
			leaf, err := p.IssueCSR(ca.LeafRequest{ID: "csr-user", Email: "csr-user@example.com"}, csr)
			if err != nil {
				t.Fatalf("IssueCSR: %v", err)
			}
			checkCSRLeaf(t, p.Issuing, leaf, key.Public(), "csr-user", "csr-user@example.com")
			// The profile is Issue's: the same extensions, in the same order.
			ref, _ := issue(t, p, "csr-user", kt)
			var got, want []string
			for _, e := range leaf.Extensions {
				got = append(got, e.Id.String())
			}
			for _, e := range ref.Extensions {
				want = append(want, e.Id.String())
			}
			if !slices.Equal(got, want) {
				t.Errorf("extensions %v, Issue writes %v", got, want)
			}
			lintCert(t, reg, leaf)
		})
	}
}

func checkCSRLeaf(t *testing.T, issuer, leaf *x509.Certificate, pub crypto.PublicKey, id, email string) {
	t.Helper()
	if err := leaf.CheckSignatureFrom(issuer); err != nil {
		t.Errorf("not signed by %s: %v", issuer.Subject.CommonName, err)
	}
	if !pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(leaf.PublicKey) {
		t.Error("the certificate does not carry the CSR's key")
	}
	if leaf.Subject.String() != "CN="+id {
		t.Errorf("subject %q, want CN=%s", leaf.Subject, id)
	}
	if !slices.Equal(leaf.EmailAddresses, []string{email}) || len(leaf.DNSNames) != 0 || len(leaf.IPAddresses) != 0 {
		t.Errorf("SANs: e-mail %v, DNS %v, IP %v; want only %s", leaf.EmailAddresses, leaf.DNSNames, leaf.IPAddresses, email)
	}
	if leaf.IsCA || leaf.KeyUsage != x509.KeyUsageDigitalSignature || !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Errorf("IsCA %v, KeyUsage %v, EKU %v; want a clientAuth leaf with digitalSignature only", leaf.IsCA, leaf.KeyUsage, leaf.ExtKeyUsage)
	}
}

// TestParseCSRRefuses: every request the portal must refuse is refused
// with an Invalid error that says why.
func TestParseCSRRefuses(t *testing.T) {
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	good := hostileCSR(t, mustKey(t, ca.P256))
	broken := slices.Clone(good)
	broken[len(broken)-3] ^= 0x01 // inside the signature
	changed := slices.Clone(good)
	i := strings.Index(string(changed), "admin")
	changed[i] = 'A' // the signed subject, after signing

	for _, tt := range []struct {
		name, want string
		der        []byte
	}{
		{"empty", "empty", nil},
		{"garbage", "not a valid PKCS#10", []byte("this is not a certificate request")},
		{"truncated", "not a valid PKCS#10", good[:len(good)/2]},
		{"broken signature", "signature does not verify", broken},
		{"changed subject", "signature does not verify", changed},
		{"RSA-1024", "1024 bits are too weak", csrDER(t, rsa1024)},
		{"P-521", "P-521", csrDER(t, p521)},
		{"P-224", "P-224", csrDER(t, p224)},
		{"Ed25519", "Ed25519", csrDER(t, edKey)},
		{"DSA", "DSA", dsaCSR(t)},
		{"too large", "larger than", make([]byte, ca.MaxCSRSize+1)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ca.ParseCSR(tt.der)
			if certportal.ErrorCodeOf(err) != certportal.Invalid {
				t.Fatalf("ParseCSR: %v, want an Invalid error", err)
			}
			if msg := certportal.ErrorMessage(err); !strings.Contains(msg, tt.want) {
				t.Errorf("message %q does not say %q", msg, tt.want)
			}
		})
	}
}

// TestParseCSRPEM: PEM as users paste it, and a private key pasted by
// mistake is refused with a warning.
func TestParseCSRPEM(t *testing.T) {
	der := csrDER(t, mustKey(t, ca.P384))
	for _, typ := range []string{"CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"} {
		data := "some text before\n" + string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
		if _, err := ca.ParseCSRPEM([]byte(data)); err != nil {
			t.Errorf("%s: %v", typ, err)
		}
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(mustKey(t, ca.P256))
	_, err := ca.ParseCSRPEM(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	if msg := certportal.ErrorMessage(err); !strings.Contains(msg, "private key") {
		t.Errorf("a pasted private key: %v", err)
	}
	if _, err := ca.ParseCSRPEM([]byte("no pem here")); certportal.ErrorCodeOf(err) != certportal.Invalid {
		t.Errorf("no PEM: %v", err)
	}
}

// TestCertsOnlyOpenSSL: the EST answer format opens with openssl pkcs7.
func TestCertsOnlyOpenSSL(t *testing.T) {
	p := shared(t)
	der, err := ca.CertsOnly(p.Issuing, p.Root)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f := writeFile(t, dir, "certs.p7", der)
	out := mustRun(t, "", "openssl", "pkcs7", "-inform", "DER", "-in", f, "-print_certs", "-noout")
	for _, cn := range []string{"CN = SOP-ICA1\n", "CN = SOP-RCA\n"} {
		if !strings.Contains(out, cn) {
			t.Errorf("openssl pkcs7 -print_certs does not list %s:\n%s", cn, out)
		}
	}
}

func mustKey(t testing.TB, kt ca.KeyType) crypto.Signer {
	t.Helper()
	k, err := ca.GenerateKey(nil, kt)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func csrDER(t testing.TB, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "x"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// dsaCSR makes a DSA request with openssl (Go cannot sign one).
func dsaCSR(t testing.TB) []byte {
	t.Helper()
	dir := t.TempDir()
	key, csr := filepath.Join(dir, "dsa.key"), filepath.Join(dir, "dsa.csr")
	mustRun(t, "", "openssl", "genpkey", "-genparam", "-algorithm", "DSA", "-pkeyopt", "dsa_paramgen_bits:2048", "-out", key+".param")
	mustRun(t, "", "openssl", "genpkey", "-paramfile", key+".param", "-out", key)
	mustRun(t, "", "openssl", "req", "-new", "-key", key, "-subj", "/CN=dsa", "-outform", "DER", "-out", csr)
	der, err := os.ReadFile(csr)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
