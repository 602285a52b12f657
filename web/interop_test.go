package web_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ocsp"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/ca"
	"github.com/certportal/certportal/portal"
)

// issueDirect issues a certificate as an administrator would and returns
// the leaf and the PEM files openssl needs.
func issueDirect(t *testing.T, e *env, id string) (leaf *x509.Certificate, leafPEM, keyPEM string) {
	t.Helper()
	iss, err := e.svc.Issue(context.Background(), portal.Admin, portal.IssueRequest{ID: id, P12Password: p12Password})
	if err != nil {
		t.Fatalf("issuing for %s: %v", id, err)
	}
	tc, chain := decodeP12(t, iss.P12, p12Password)
	dir := t.TempDir()
	leafPEM = filepath.Join(dir, id+".pem")
	writePEM(t, leafPEM, "CERTIFICATE", chain[0].Raw, e.pki.Issuing.Raw)
	keyDER, err := x509.MarshalPKCS8PrivateKey(tc.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM = filepath.Join(dir, id+".key")
	writePEM(t, keyPEM, "PRIVATE KEY", keyDER)
	if fi, err := os.Stat(keyPEM); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", fi.Mode(), err)
	}
	return chain[0], leafPEM, keyPEM
}

func (e *env) caFiles(t *testing.T) (root, issuing string) {
	dir := t.TempDir()
	root, issuing = filepath.Join(dir, "root.pem"), filepath.Join(dir, "issuing.pem")
	writePEM(t, root, "CERTIFICATE", e.pki.Root.Raw)
	writePEM(t, issuing, "CERTIFICATE", e.pki.Issuing.Raw)
	return root, issuing
}

func httpGet(t *testing.T, u string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// TestCAListener: the plain-HTTP listener serves the CA files, CRLs and
// OCSP, and nothing else.
func TestCAListener(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		path, ctype string
		der         []byte
	}{
		{"/ca/root.crt", "application/pkix-cert", e.pki.Root.Raw},
		{"/ca/issuing.crt", "application/pkix-cert", e.pki.Issuing.Raw},
		{"/ca/chain.pem", "application/pem-certificate-chain", nil},
		{"/crl/issuing.crl", "application/pkix-crl", nil},
		{"/crl/root.crl", "application/pkix-crl", nil},
	} {
		resp, body := httpGet(t, e.caSrv.URL+tc.path)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != tc.ctype {
			t.Errorf("GET %s: %d %q, want 200 %s", tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), tc.ctype)
		}
		if tc.der != nil && !bytes.Equal(body, tc.der) {
			t.Errorf("GET %s: not the certificate's DER", tc.path)
		}
		switch tc.path {
		case "/ca/chain.pem":
			b1, rest := pem.Decode(body)
			b2, _ := pem.Decode(rest)
			if b1 == nil || b2 == nil || !bytes.Equal(b1.Bytes, e.pki.Issuing.Raw) || !bytes.Equal(b2.Bytes, e.pki.Root.Raw) {
				t.Errorf("chain.pem is not issuing + root")
			}
		case "/crl/issuing.crl", "/crl/root.crl":
			crl, err := x509.ParseRevocationList(body)
			if err != nil {
				t.Errorf("GET %s: %v", tc.path, err)
				continue
			}
			signer := e.pki.Issuing
			if tc.path == "/crl/root.crl" {
				signer = e.pki.Root
			}
			if err := crl.CheckSignatureFrom(signer); err != nil {
				t.Errorf("GET %s: not signed by %s: %v", tc.path, signer.Subject.CommonName, err)
			}
		}
	}
	for _, path := range []string{"/", "/login", "/api/whoami", "/healthz", "/about/certificate"} {
		if resp, _ := httpGet(t, e.caSrv.URL+path); resp.StatusCode != http.StatusNotFound {
			t.Errorf("plain HTTP GET %s: %d, want 404", path, resp.StatusCode)
		}
	}
	resp, err := http.Post(e.caSrv.URL+"/login", "application/x-www-form-urlencoded", strings.NewReader("id=a&password=b"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("plain HTTP POST /login: %d, want 404", resp.StatusCode)
	}
}

// TestOCSPWithOpenSSL: openssl ocsp against the plain-HTTP responder says
// good, then revoked, and unknown for a serial the portal never issued;
// the GET form works with '/' in the base64 and URL-escaped.
func TestOCSPWithOpenSSL(t *testing.T) {
	openssl := need(t, "openssl")
	e := newEnv(t)
	e.addUser("olga", "olga@example.com", "olga password")
	leaf, leafPEM, _ := issueDirect(t, e, "olga")
	root, issuing := e.caFiles(t)

	query := func(certFile string) string {
		t.Helper()
		out, err := run(t, openssl, "ocsp", "-issuer", issuing, "-cert", certFile, "-url", e.caSrv.URL+"/ocsp", "-CAfile", root)
		if err != nil {
			t.Fatalf("openssl ocsp: %v\n%s", err, out)
		}
		if !strings.Contains(out, "Response verify OK") {
			t.Errorf("openssl ocsp did not verify the response:\n%s", out)
		}
		return out
	}
	if out := query(leafPEM); !strings.Contains(out, ": good") {
		t.Errorf("valid certificate: openssl ocsp says\n%s", out)
	}
	if _, err := e.svc.Revoke(context.Background(), portal.Admin, certportal.FormatSerial(leaf.SerialNumber), certportal.ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	if out := query(leafPEM); !strings.Contains(out, ": revoked") {
		t.Errorf("revoked certificate: openssl ocsp says\n%s", out)
	}
	ghost, _, err := e.pki.Issue(ca.LeafRequest{ID: "ghost", Email: "ghost@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	ghostPEM := filepath.Join(t.TempDir(), "ghost.pem")
	writePEM(t, ghostPEM, "CERTIFICATE", ghost.Raw)
	if out := query(ghostPEM); !strings.Contains(out, ": unknown") {
		t.Errorf("unknown serial: openssl ocsp says\n%s", out)
	}

	// GET: find a request whose base64 holds "//" (ServeMux would clean
	// it), then send it raw and fully escaped.
	var req []byte
	var subject *x509.Certificate
	for i := 0; i < 3000 && subject == nil; i++ {
		c, _, err := e.pki.Issue(ca.LeafRequest{ID: "ghost", Email: "ghost@example.com"})
		if err != nil {
			t.Fatal(err)
		}
		r, err := ocsp.CreateRequest(c, e.pki.Issuing, nil)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(base64.StdEncoding.EncodeToString(r), "//") {
			req, subject = r, c
		}
	}
	if subject == nil {
		t.Fatal("no OCSP request with // in its base64 found")
	}
	b64 := base64.StdEncoding.EncodeToString(req)
	for _, path := range []string{b64, url.QueryEscape(b64), strings.TrimRight(b64, "=")} {
		resp, body := httpGet(t, e.caSrv.URL+"/ocsp/"+path)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/ocsp-response" {
			t.Errorf("GET /ocsp/%s: %d %q", path, resp.StatusCode, resp.Header.Get("Content-Type"))
			continue
		}
		// With issuer nil, x/crypto/ocsp checks the signature against the
		// certificate in the response (given an issuer, it would expect a
		// delegated responder); that certificate must be the issuing CA.
		r, err := ocsp.ParseResponseForCert(body, subject, nil)
		if err != nil {
			t.Errorf("GET /ocsp/%s: %v", path, err)
			continue
		}
		if r.Status != ocsp.Unknown || r.Certificate == nil || !bytes.Equal(r.Certificate.Raw, e.pki.Issuing.Raw) {
			t.Errorf("GET /ocsp/%s: status %d, want unknown, signed by the issuing CA", path, r.Status)
		}
	}
	for _, bad := range []string{"not-base64!", "AAAA", "%2F%2F%2F"} {
		resp, body := httpGet(t, e.caSrv.URL+"/ocsp/"+bad)
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, ocsp.MalformedRequestErrorResponse) {
			t.Errorf("GET /ocsp/%s: %d %x, want 200 malformedRequest", bad, resp.StatusCode, body)
		}
	}
	resp, err := http.Post(e.caSrv.URL+"/ocsp", "application/ocsp-request", bytes.NewReader(make([]byte, 65<<10)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized OCSP POST: %d, want 413", resp.StatusCode)
	}
}

// TestCRLWithOpenSSL: the CRLs downloaded from /crl/*.crl let openssl
// verify -crl_check_all accept a valid certificate and reject a revoked one.
func TestCRLWithOpenSSL(t *testing.T) {
	openssl := need(t, "openssl")
	e := newEnv(t)
	e.addUser("pia", "pia@example.com", "pia password")
	leaf, leafPEM, _ := issueDirect(t, e, "pia")
	root, issuing := e.caFiles(t)
	dir := t.TempDir()
	verify := func() (string, error) {
		t.Helper()
		args := []string{"verify", "-crl_check_all", "-CAfile", root, "-untrusted", issuing}
		for _, name := range []string{"issuing", "root"} {
			_, der := httpGet(t, e.caSrv.URL+"/crl/"+name+".crl")
			p := filepath.Join(dir, name+".crl.pem")
			writePEM(t, p, "X509 CRL", der)
			args = append(args, "-CRLfile", p)
		}
		return run(t, openssl, append(args, leafPEM)...)
	}
	if out, err := verify(); err != nil || !strings.Contains(out, ": OK") {
		t.Errorf("openssl verify of a valid certificate: %v\n%s", err, out)
	}
	if _, err := e.svc.Revoke(context.Background(), portal.Admin, certportal.FormatSerial(leaf.SerialNumber), certportal.ReasonNone); err != nil {
		t.Fatal(err)
	}
	if out, err := verify(); err == nil || !strings.Contains(out, "revoked") {
		t.Errorf("openssl verify of a revoked certificate passed: %v\n%s", err, out)
	}
}

// TestCurlWhoami: curl with the certificate and key as PEM files reaches
// /api/whoami over mutual TLS and sees the user ID.
func TestCurlWhoami(t *testing.T) {
	curl := need(t, "curl")
	e := newEnv(t)
	e.addUser("quinn", "quinn@example.com", "quinn password")
	_, leafPEM, keyPEM := issueDirect(t, e, "quinn")
	root, _ := e.caFiles(t)
	u, _ := url.Parse(e.srv.URL)
	out, err := run(t, curl, "--silent", "--show-error", "--fail-with-body",
		"--resolve", "localhost:"+u.Port()+":127.0.0.1",
		"--cert", leafPEM, "--key", keyPEM, "--cacert", root,
		"https://localhost:"+u.Port()+"/api/whoami")
	if err != nil || !strings.Contains(out, `"id":"quinn"`) || !strings.Contains(out, `"method":"certificate"`) {
		t.Errorf("curl /api/whoami: %v\n%s", err, out)
	}
	out, _ = run(t, curl, "--silent", "--resolve", "localhost:"+u.Port()+":127.0.0.1", "--cacert", root,
		"https://localhost:"+u.Port()+"/api/whoami")
	if !strings.Contains(out, `"error":"unauthenticated"`) {
		t.Errorf("curl /api/whoami without a certificate: %s", out)
	}
}
