package web

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/certportal/certportal"
)

// FuzzESTBody feeds the EST body reader (content type, base64 or PEM,
// then the CSR check) anything: it must never panic; a refusal is a 400
// with a message; and what it accepts is a CSR whose key is an allowed
// one. Base64 that it wraps itself always decodes to the same bytes.
func FuzzESTBody(f *testing.F) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "fuzz"}}, key)
	if err != nil {
		f.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString(der)
	for _, seed := range []struct {
		ct   string
		body []byte
	}{
		{"application/pkcs10", []byte(b64)},
		{"application/pkcs10", wrapBase64(der)},
		{"application/pkcs10", []byte(b64[:len(b64)-2])},
		{"application/pkcs10; charset=binary", []byte(" \r\n" + b64 + "\r\n")},
		{"application/pkcs10", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})},
		{"application/pkcs10", der},
		{"application/pkcs10", []byte("====")},
		{"application/pkcs10", nil},
		{"application/x-www-form-urlencoded", []byte(b64)},
	} {
		f.Add(seed.ct, seed.body)
	}
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		if got, err := decodeESTBody(wrapBase64(body)); len(body) > 0 && (err != nil || !bytes.Equal(got, body)) {
			t.Fatalf("wrapped base64 of %d bytes decodes to %d bytes, %v", len(body), len(got), err)
		}
		r := httptest.NewRequest(http.MethodPost, "/.well-known/est/simpleenroll", bytes.NewReader(body))
		r.Header.Set("Content-Type", contentType)
		csr, err := parseESTCSR(r, body)
		if err != nil {
			if statusOf(err) != http.StatusBadRequest || certportal.ErrorMessage(err) == "" {
				t.Fatalf("refusal with status %d and message %q, want 400 with a reason", statusOf(err), certportal.ErrorMessage(err))
			}
			return
		}
		if csr == nil || csr.PublicKey() == nil {
			t.Fatal("accepted without a key")
		}
	})
}
