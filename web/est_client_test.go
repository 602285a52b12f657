package web_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/globalsign/est"

	"github.com/certportal/certportal"
)

// TestESTWithGlobalSignClient: GlobalSign's EST client (the library behind
// its estclient command; Debian packages no EST client) speaks to the
// portal: the CA certificates, csrattrs (nothing asked), a wrong password
// refused, a first certificate by ID and password, and re-enrollment over
// mutual TLS with that certificate, which supersedes it.
func TestESTWithGlobalSignClient(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.svc.Config.RenewWindow = 400 * 24 * time.Hour // renewable at once
	e.addUser("gloria", "gloria@example.com", "gloria password 1")
	host := strings.TrimPrefix(e.srv.URL, "https://")
	client := est.Client{Host: host, ExplicitAnchor: e.roots, Username: "gloria", Password: "gloria password 1"}

	cas, err := client.CACerts(ctx)
	if err != nil || len(cas) != 2 || !cas[0].Equal(e.pki.Issuing) || !cas[1].Equal(e.pki.Root) {
		t.Fatalf("cacerts: %d certificates, %v; want the issuing CA and the root", len(cas), err)
	}
	if attrs, err := client.CSRAttrs(ctx); err != nil || len(attrs.OIDs) != 0 || len(attrs.Attributes) != 0 {
		t.Errorf("csrattrs: %+v, %v; want nothing asked", attrs, err)
	}

	key, csr := gsCSR(t)
	wrong := client
	wrong.Password = "not gloria's password"
	if _, err := wrong.Enroll(ctx, csr); estStatus(err) != http.StatusUnauthorized {
		t.Fatalf("enroll with a wrong password: %v (HTTP %d), want 401", err, estStatus(err))
	}
	if n := len(e.certificates("gloria")); n != 0 {
		t.Fatalf("a wrong password issued %d certificates", n)
	}
	first, err := client.Enroll(ctx, csr)
	if err != nil {
		t.Fatalf("enroll: %v", err)
	}
	if first.Subject.CommonName != "gloria" || !key.PublicKey.Equal(first.PublicKey) {
		t.Fatalf("enrolled certificate: CN %q, the CSR's key %v; want CN gloria and the CSR's key", first.Subject.CommonName, key.PublicKey.Equal(first.PublicKey))
	}

	// Re-enrollment presents the certificate just issued, with a new key.
	key2, csr2 := gsCSR(t)
	renewer := est.Client{Host: host, ExplicitAnchor: e.roots, Certificates: []*x509.Certificate{first}, PrivateKey: key}
	second, err := renewer.Reenroll(ctx, csr2)
	if err != nil {
		t.Fatalf("reenroll: %v", err)
	}
	if !key2.PublicKey.Equal(second.PublicKey) || second.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatal("the re-enrolled certificate does not carry the new key, or has the old serial")
	}
	for _, c := range e.certificates("gloria") {
		if c.Serial == certportal.FormatSerial(first.SerialNumber) && c.Reason != certportal.ReasonSuperseded {
			t.Errorf("the first certificate after re-enrollment: reason %s, want superseded", c.Reason)
		}
	}
	// The superseded certificate re-enrolls no more.
	if _, err := renewer.Reenroll(ctx, csr2); estStatus(err) != http.StatusForbidden {
		t.Errorf("reenroll with the superseded certificate: %v (HTTP %d), want 403", err, estStatus(err))
	}
}

// estStatus is the HTTP status of the client's error (0 for none).
func estStatus(err error) int {
	var e est.Error
	if errors.As(err, &e) {
		return e.StatusCode()
	}
	return 0
}

// gsCSR makes a P-256 key and a CSR for it.
func gsCSR(t *testing.T) (*ecdsa.PrivateKey, *x509.CertificateRequest) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "anything"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, csr
}
