package web_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"

	"github.com/certportal/certportal"
)

// postCSR sends the home page's CSR form as a browser does (multipart):
// pasted text and/or a file.
func (e *env) postCSR(c *http.Client, pasted string, file []byte) *response {
	e.t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	_ = mw.WriteField("csr", pasted)
	fw, _ := mw.CreateFormFile("csr_file", "request.csr")
	_, _ = fw.Write(file)
	_ = mw.Close()
	return e.postRaw(c, "/certificate/csr", mw.FormDataContentType(), b.String())
}

// TestCSRForm: "Use a key from your own device" on the home page: the
// recipe is shown, a pasted PEM CSR gets the certificate and chain as PEM
// for the CSR's key in the portal's profile, mistakes are shown beside the
// field and change nothing, and the rules of POST /certificate hold.
func TestCSRForm(t *testing.T) {
	e := newEnv(t)
	e.addUser("cleo", "cleo@example.com", "cleo password 1")
	c := e.client(nil)
	e.login(c, "cleo", "cleo password 1")
	home := e.get(c, "/")
	for _, want := range []string{"Use a key from your own device", `action="/certificate/csr"`, "openssl req -new -newkey ec", "/CN=cleo"} {
		if !strings.Contains(home.body, want) {
			t.Errorf("the home page lacks %q", want)
		}
	}

	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der := csrFor(t, key)
	pemCSR := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))

	// Mistakes: the page again (400) with the reason, nothing recorded.
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	for _, tt := range []struct {
		name, pasted, want string
		file               []byte
	}{
		{"nothing", "", "paste your certificate request", nil},
		{"garbage", "hello", "no PEM certificate request", nil},
		{"private key", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})), "never send a private key", nil},
		{"broken DER file", "", "not a valid PKCS#10", der[:40]},
	} {
		r := e.postCSR(c, tt.pasted, tt.file)
		if r.StatusCode != http.StatusBadRequest || !strings.Contains(strings.ToLower(r.body), strings.ToLower(tt.want)) || !strings.Contains(r.body, `id="csr_error"`) {
			t.Errorf("%s: %d, want 400 with %q beside the field", tt.name, r.StatusCode, tt.want)
		}
	}
	if n := len(e.certificates("cleo")); n != 0 {
		t.Fatalf("mistakes recorded %d certificates", n)
	}

	r := e.postCSR(c, pemCSR, nil)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("POST /certificate/csr: %d %.300s", r.StatusCode, r.body)
	}
	for h, want := range map[string]string{
		"Content-Type":        "application/pem-certificate-chain",
		"Cache-Control":       "no-store",
		"Content-Disposition": `attachment; filename="cleo.pem"`,
	} {
		if got := r.Header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	var certs []*x509.Certificate
	rest := []byte(r.body)
	for {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, cert)
	}
	if len(certs) != 3 || !certs[1].Equal(e.pki.Issuing) || !certs[2].Equal(e.pki.Root) {
		t.Fatalf("the answer holds %d certificates, want the certificate, the issuing CA and the root", len(certs))
	}
	leaf := certs[0]
	if !key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(leaf.PublicKey) || leaf.Subject.CommonName != "cleo" {
		t.Errorf("the certificate: CN %q, CSR's key %v", leaf.Subject.CommonName, key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(leaf.PublicKey))
	}
	zlintClean(t, leaf)
	if a := e.account("cleo"); a.Method != certportal.MethodCertificate {
		t.Errorf("method %s after the CSR form, want certificate", a.Method)
	}
	// The session that asked stays; the account now has its certificate.
	if r := e.postCSR(c, pemCSR, nil); r.StatusCode != http.StatusForbidden {
		t.Errorf("a second CSR: %d, want 403", r.StatusCode)
	}
	if n := len(e.certificates("cleo")); n != 1 {
		t.Errorf("%d certificates recorded, want 1", n)
	}

	// A DER file works as well, for another account.
	e.addUser("dara", "dara@example.com", "dara password 1")
	d := e.client(nil)
	e.login(d, "dara", "dara password 1")
	if r := e.postCSR(d, "", der); r.StatusCode != http.StatusOK || !strings.HasPrefix(r.body, "-----BEGIN CERTIFICATE-----") {
		t.Errorf("a DER file: %d %.100s", r.StatusCode, r.body)
	}
}
