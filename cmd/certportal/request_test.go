package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/clientstore"
	"github.com/certportal/certportal/internal/testpki"
	"github.com/certportal/certportal/mail"
	"github.com/certportal/certportal/portal"
	"github.com/certportal/certportal/sqlite"
	"github.com/certportal/certportal/web"
)

// TestStoreRequest runs "certportal store request": a first certificate by
// ID and password for a key made in the store (the portal gets only a
// CSR), stored as an import would store it, that signs in; then a
// re-enrollment over mutual TLS with a P-384 key that replaces it; and the
// refusals.
func TestStoreRequest(t *testing.T) {
	ctx := context.Background()
	p := newClockPortal(t)
	// The real clock runs the command; the whole year is the window.
	p.svc.Config.RenewWindow = 400 * 24 * time.Hour
	if _, _, err := p.svc.AddUser(ctx, portal.Admin, "quinn", "quinn@example.org", "account password 1"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rootPEM := filepath.Join(dir, "root.pem")
	if err := os.WriteFile(rootPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.pki.Root.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	storeDir := filepath.Join(dir, "store")

	// A wrong password: refused, counted, nothing stored.
	fails(t, 1, "user ID or password is wrong", "", "store", "request", "--url", p.url, "--id", "quinn", "--store-dir", storeDir,
		"--password-file", writeSecret(t, "wrong password"), "--root-cert", rootPEM)
	if got := storeEntries(t, storeDir); len(got["personal"]) != 0 {
		t.Fatalf("a refused request stored %v", got)
	}
	// Without the portal's root, the first contact is not trusted.
	fails(t, 1, "--root-cert", "", "store", "request", "--url", p.url, "--id", "quinn", "--store-dir", storeDir,
		"--password-file", writeSecret(t, "account password 1"))

	out := ok(t, "", "store", "request", "--url", p.url, "--id", "quinn", "--store-dir", storeDir,
		"--password-file", writeSecret(t, "account password 1"), "--root-cert", rootPEM)
	if !strings.HasPrefix(out, "Enrolled quinn") {
		t.Errorf("store request printed %q", out)
	}
	first := storeEntries(t, storeDir)
	if len(first["personal"]) != 1 || len(first["intermediate"]) != 1 || len(first["root"]) != 1 {
		t.Fatalf("store after the request: %v; want one certificate in each store", first)
	}
	keyFile := filepath.Join(storeDir, "personal", first["personal"][0]+".key")
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the key file: %v %v", fi, err)
	}
	acc, _ := p.svc.Account(ctx, "quinn")
	if acc.Method != certportal.MethodCertificate {
		t.Errorf("method %s after the request", acc.Method)
	}
	if got := strings.TrimSpace(ok(t, "", "whoami", "--url", p.url, "--store-dir", storeDir)); got != "quinn" {
		t.Errorf("whoami with the requested certificate: %q", got)
	}

	// Again: the store's certificate re-enrolls, no password needed.
	out = ok(t, "", "store", "request", "--url", p.url, "--id", "quinn", "--store-dir", storeDir, "--key-type", "p384")
	if !strings.HasPrefix(out, "Re-enrolled quinn") || !strings.Contains(out, first["personal"][0]+") has been removed") {
		t.Errorf("second store request printed %q", out)
	}
	second := storeEntries(t, storeDir)
	if len(second["personal"]) != 1 || second["personal"][0] == first["personal"][0] {
		t.Fatalf("personal store after re-enrollment: %v", second["personal"])
	}
	s, err := clientstore.Open(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	list, _ := s.List(clientstore.Personal)
	if k, ok := list[0].Cert.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P384() {
		t.Errorf("re-enrolled with --key-type p384, got a %T key", list[0].Cert.PublicKey)
	}
	certs, _ := p.svc.Certificates(ctx, "quinn")
	for _, c := range certs {
		if c.Thumbprint == first["personal"][0] && c.Reason != certportal.ReasonSuperseded {
			t.Errorf("the first certificate: reason %s, want superseded", c.Reason)
		}
	}

	fails(t, 2, "id", "", "store", "request", "--url", p.url, "--store-dir", storeDir)
	fails(t, 2, "key type", "", "store", "request", "--url", p.url, "--id", "quinn", "--store-dir", storeDir, "--key-type", "dsa")
}

// TestStoreRenewFallsBack: a portal without EST (an older one) still
// renews through /api/renew.
func TestStoreRenewFallsBack(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	pki := testpki.New(t)
	db, err := sqlite.Open(ctx, filepath.Join(dir, "portal.db"), true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := portal.New(db, pki.Authority, &mail.Outbox{Dir: filepath.Join(dir, "outbox")}, portal.Config{Policy: certportal.Policy{RenewWindow: 400 * 24 * time.Hour}}, log)
	srv := web.New(svc, log)
	h := srv.Handler()
	var estCalls int
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/.well-known/est/") {
			estCalls++
			http.NotFound(w, r)
			return
		}
		h.ServeHTTP(w, r)
	}))
	cert, err := pki.ServerCertificate()
	if err != nil {
		t.Fatal(err)
	}
	ts.TLS = srv.TLSConfig(cert)
	ts.StartTLS()
	t.Cleanup(ts.Close)
	if _, _, err := svc.AddUser(ctx, portal.Admin, "olly", "olly@example.org", "account password 1"); err != nil {
		t.Fatal(err)
	}
	issued, err := svc.Issue(ctx, portal.Admin, portal.IssueRequest{ID: "olly", P12Password: "a pkcs12 password"})
	if err != nil {
		t.Fatal(err)
	}
	p12 := filepath.Join(dir, "olly.p12")
	if err := os.WriteFile(p12, issued.P12, 0o600); err != nil {
		t.Fatal(err)
	}
	storeDir := filepath.Join(dir, "store")
	ok(t, "", "store", "import", p12, "--store-dir", storeDir, "--password-file", writeSecret(t, "a pkcs12 password"))
	if out := ok(t, "", "store", "renew", "--url", ts.URL, "--store-dir", storeDir); !strings.Contains(out, "Renewed the certificate of olly") {
		t.Errorf("store renew printed %q", out)
	}
	if estCalls == 0 {
		t.Error("store renew did not try EST first")
	}
	if got := storeEntries(t, storeDir)["personal"]; len(got) != 1 || got[0] == issued.Cert.Thumbprint {
		t.Errorf("personal store after the renewal: %v", got)
	}
}
